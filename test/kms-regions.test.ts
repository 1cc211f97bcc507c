/**
 * Two campaigns against two KMS endpoints (two regions) at once, served by the same worker
 * process: each campaign's ReEncrypt calls go to its own endpoint, and every row decrypts under
 * its campaign's new key, there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { startKmsServer, type KmsServer } from '../dev/kms-server/server.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { expectKmsRowsUnder, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';

const ROWS = 300;
let pipe: Pipeline;
let euServer: KmsServer;

interface Region {
  name: string;
  table: string;
  client: KMSClient;
  url: string;
  oldKey: string;
  newKey: string;
  deks: Map<string, Buffer>;
}
const regions: Region[] = [];

async function region(name: string, url: string, table: string): Promise<Region> {
  const client = createKmsClient({ endpoint: url, region: name, credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  const [oldKey, newKey] = await Promise.all([0, 1].map(async () => (await client.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  const { deks } = await kmsRowTable(pipe.db.pool, client, table, ROWS, oldKey!);
  return { name, table, client, url, oldKey: oldKey!, newKey: newKey!, deks };
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'kms-regions', workers: 1 });
  euServer = await startKmsServer({ region: 'eu-west-1' });
  regions.push(await region('us-east-1', pipe.kms.url, 'us_rows'), await region('eu-west-1', euServer.url, 'eu_rows'));
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
  await euServer?.close();
  for (const r of regions) r.client.destroy();
});

describe('KMS endpoints per campaign', () => {
  it('one worker rotates a us-east-1 and an eu-west-1 campaign at once, each through its own endpoint', async () => {
    const campaigns = await Promise.all(
      regions.map((r) =>
        pipe.create({
          name: `rotate ${r.name}`,
          sources: [kmsRowSource(r.table)],
          provider: { type: 'kms', region: r.name, endpoint: r.url },
          from: r.oldKey,
          to: r.newKey,
          options: { batchSize: 100, concurrency: 8 },
        }),
      ),
    );
    for (const c of campaigns) {
      const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed' || x.failed > 0, 120_000);
      expect(p).toMatchObject({ state: 'completed', planned: ROWS, rewrapped: ROWS, failed: 0 });
    }
    for (const r of regions) expect(await expectKmsRowsUnder(pipe.db.pool, r.client, r.table, r.newKey, r.deks)).toBe(ROWS);
  });
});
