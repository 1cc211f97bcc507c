/**
 * A requester-pays bucket is planned as requester: an `s3` source with `"requesterPays": true`
 * lists the bucket (ListObjectsV2) and checks its `.instruction` names (HeadObject) with
 * `x-amz-request-payer: requester`, as the store already reads and writes it (issue 14.3). A
 * bucket that charges the requester answers every request without the header with AWS's 403
 * (support/requester-pays-front.ts). Without the flag, planning fails with that AccessDenied, never a silently empty plan.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { Resources } from '../src/runtime/resources.ts';
import { loadConfig } from '../src/config.ts';
import { parseCampaignSpec } from '../src/campaign/spec.ts';
import { putEncrypted } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { requesterPaysFront, type RequesterPaysFront } from './support/requester-pays-front.ts';

let client: S3Client;
let tb: TestBucket;
let front: RequesterPaysFront;
let frontUrl: string;
let seen: RequesterPaysFront['seen'];

beforeAll(async () => {
  const env = s3TestEnv();
  client = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(client, 'list-requester-pays');
  const wrap = { kind: 'aes' as const, material: randomBytes(32), matdesc: { kek: 'k@1' } };
  for (let i = 0; i < 5; i++) await putEncrypted(client, tb.bucket, `rp/${i}`, randomBytes(50), { placement: i === 0 ? 'instruction' : 'metadata', wrap });
  front = await requesterPaysFront(env.endpoint);
  frontUrl = front.url;
  seen = front.seen;
}, 60_000);

afterAll(async () => {
  await front?.close();
  await tb?.cleanup();
});

function resourcesViaFront(): Resources {
  const env = s3TestEnv();
  return new Resources(loadConfig({ DATABASE_URL: 'postgres://127.0.0.1:5432/postgres', S3_ENDPOINT: frontUrl, S3_REGION: env.region, S3_ACCESS_KEY_ID: env.accessKeyId, S3_SECRET_ACCESS_KEY: env.secretAccessKey }));
}

const spec = (requesterPays: boolean) =>
  parseCampaignSpec({ name: 'rp', sources: [{ type: 's3', bucket: tb.bucket, requesterPays }], provider: { type: 'local', keyringFile: '/nonexistent/keyring.json' }, from: 'k@1', to: 'k@2' });

describe('planning a requester-pays bucket (issue 14.3)', () => {
  it('with requesterPays the listing and the instruction-file check are sent as requester and plan every object (the instruction file is no item)', async () => {
    const res = resourcesViaFront();
    try {
      seen.length = 0;
      const page = await res.source(spec(true), 0).page(null, 1000);
      expect(page.groups).toEqual([{ storeId: `s3://${tb.bucket}`, keys: ['rp/0', 'rp/1', 'rp/2', 'rp/3', 'rp/4'] }]);
      expect(page.done).toBe(true);
      expect(seen.some((r) => r.method === 'HEAD')).toBe(true); // rp/0.instruction was checked
      expect(seen.filter((r) => !r.payer)).toEqual([]);
    } finally {
      await res.close();
    }
  });

  it('without requesterPays the listing fails with the 403 (AccessDenied), not an empty plan', async () => {
    const res = resourcesViaFront();
    try {
      await expect(res.source(spec(false), 0).page(null, 1000)).rejects.toMatchObject({ name: 'AccessDenied' });
    } finally {
      await res.close();
    }
  });
});
