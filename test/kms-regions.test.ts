/**
 * Two campaigns against two KMS endpoints (two regions) at once, served by the same worker
 * process: each campaign's ReEncrypt calls go to its own endpoint, and every row decrypts under
 * its campaign's new key, there and only there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { startKmsServer, type KmsServer } from '../src/kms-server/server.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';

const CONTEXT = { 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' };
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
  await createEnvelopeTable(pipe.db.pool, table);
  const deks = new Map<string, Buffer>();
  const ids: string[] = [];
  const blobs: Buffer[] = [];
  for (let i = 1; i <= ROWS; i++) {
    const dek = randomBytes(32);
    const blob = Buffer.from((await client.send(new EncryptCommand({ KeyId: oldKey!, Plaintext: dek, EncryptionContext: CONTEXT }))).CiphertextBlob!);
    ids.push(String(i));
    blobs.push(blob);
    deks.set(String(i), dek);
  }
  await pipe.db.pool.query(
    `INSERT INTO ${table} (id, wrapped_dek, kek_id, kek_version) SELECT id, w, $3, '' FROM unnest($1::bigint[], $2::bytea[]) AS u(id, w)`,
    [ids, blobs, oldKey],
  );
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
          sources: [{ type: 'pg', table: r.table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'kms+context' }],
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
    for (const r of regions) {
      const { rows } = await pipe.db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string }>(`SELECT id::text, wrapped_dek, kek_id FROM ${r.table}`);
      expect(rows).toHaveLength(ROWS);
      for (const row of rows) {
        expect(row.kek_id, `${r.table} ${row.id}`).toBe(r.newKey);
        const out = await r.client.send(new DecryptCommand({ CiphertextBlob: row.wrapped_dek, KeyId: r.newKey, EncryptionContext: CONTEXT }));
        expect(Buffer.from(out.Plaintext!).equals(r.deks.get(row.id)!), `${r.table} ${row.id}`).toBe(true);
      }
    }
  });
});
