/**
 * Issue 13 point 10: a KMS campaign never calls Decrypt (the DEK would leave KMS in plaintext);
 * without a canary it moves every item by ReEncrypt alone. The local KMS server counts requests
 * per operation; its admin route is read here as an operator would read it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { expectKmsRowsUnder, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';

const ROWS = 400;
let pipe: Pipeline;
let kms: KMSClient;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'kms-no-decrypt', workers: 2 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
}, 120_000);

afterAll(async () => {
  kms?.destroy();
  await pipe?.stop();
});

async function kmsStats(): Promise<{ requests: Record<string, number> }> {
  const r = await fetch(`${pipe.kms.url}/__admin/stats`, { headers: { authorization: `Bearer ${pipe.kms.adminToken}` } });
  expect(r.status).toBe(200);
  return (await r.json()) as { requests: Record<string, number> };
}

describe('KMS path (issue 13 point 10)', () => {
  it('a KMS campaign without canary makes zero Decrypt calls, only ReEncrypt, and every row decrypts under the new key', async () => {
    const [oldKey, newKey] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
    const { deks } = await kmsRowTable(pipe.db.pool, kms, 'kms_rows', ROWS, oldKey!);
    expect((await fetch(`${pipe.kms.url}/__admin/stats/reset`, { method: 'POST', headers: { authorization: `Bearer ${pipe.kms.adminToken}` } })).ok).toBe(true);

    const c = await pipe.create({ name: 'kms rows', sources: [kmsRowSource('kms_rows')], provider: { type: 'kms' }, from: oldKey, to: newKey, options: { batchSize: 50, concurrency: 8 } });
    const done = await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(done).toMatchObject({ rewrapped: ROWS, failed: 0 });

    const stats = await kmsStats(); // before the check below, which decrypts on purpose
    expect(stats.requests.Decrypt ?? 0).toBe(0);
    expect(stats.requests.ReEncrypt).toBeGreaterThanOrEqual(ROWS);
    expect(Object.keys(stats.requests).filter((op) => !['ReEncrypt', 'DescribeKey'].includes(op))).toEqual([]);

    expect(await expectKmsRowsUnder(pipe.db.pool, kms, 'kms_rows', newKey!, deks)).toBe(ROWS);
  }, 300_000);
});
