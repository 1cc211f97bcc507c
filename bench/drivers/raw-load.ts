/**
 * A load driver, run as its own process so its CPU is measured like a worker's:
 *   node --import tsx bench/drivers/raw-load.ts '<json DriverConfig>'
 * It prepares untimed (reads what it needs), prints {"ready":true}, waits for "go" on stdin,
 * runs the timed part and prints {"items":..,"ok":..,"seconds":..}.
 *
 * Modes: the raw limits of each service at the pipeline's concurrency (no queue, no ledger), the
 * naive one-at-a-time loop a user would write by hand, the loop a careful user would write by
 * hand (pg-loop: a keyset page, rewrapped in process, one batched conditional UPDATE per page), and writing S3 fixtures (several processes
 * write them faster than the bench process alone: the SDK's CPU per PUT is the limit).
 */
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import pg from 'pg';
import pLimit from 'p-limit';
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ReEncryptCommand } from '@aws-sdk/client-kms';
import { createS3Client } from '../../src/stores/s3-client.ts';
import { createKmsClient } from '../../src/kek/kms-client.ts';
import { S3EnvelopeStore } from '../../src/stores/s3-envelope-store.ts';
import { PgTableStore } from '../../src/stores/pg-table-store.ts';
import { kmsEncryptionContext } from '../../src/kek/kms-kek-provider.ts';
import { isWritten, type ItemRef } from '../../src/stores/envelope-store.ts';
import type { Envelope } from '../../src/core/envelope.ts';
import type { WrappedDek } from '../../src/core/kek-ref.ts';
import { putEncrypted } from '../../dev/reference/s3ec-client.ts';
import { fixturePayload } from '../lib/fixture-payload.ts';

export interface KeyRange {
  prefix: string;
  from: number;
  /** exclusive */
  to: number;
  pad: number;
}

export interface S3Target {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  bucket: string;
}

export type DriverConfig =
  | { mode: 'pg-update'; url: string; table: string; ids: [number, number]; batchSize: number; concurrency: number }
  | { mode: 'pg-naive'; url: string; table: string; ids: [number, number]; fromKek: RawKek; toKek: RawKek }
  | { mode: 'pg-loop'; url: string; table: string; ids: [number, number]; page: number; fromKek: RawKek; toKek: RawKek }
  | { mode: 's3-write'; s3: S3Target; keys: KeyRange; concurrency: number }
  | { mode: 'kms-reencrypt'; s3: S3Target; keys: KeyRange; kmsUrl: string; from: string; to: string; concurrency: number }
  | { mode: 's3-naive'; s3: S3Target; keys: KeyRange; kmsUrl: string; from: string; to: string }
  | { mode: 's3-fixture'; s3: S3Target; keys: KeyRange; placement: 'metadata' | 'instruction'; kmsUrl: string; keyId: string; concurrency: number };

export interface RawKek {
  id: string;
  version: string;
  /** base64 of 32 bytes (a throwaway bench KEK) */
  material: string;
}

export interface DriverResult {
  items: number;
  ok: number;
  seconds: number;
}

export const keysOf = (r: KeyRange): string[] => Array.from({ length: r.to - r.from }, (_, i) => `${r.prefix}${String(r.from + i).padStart(r.pad, '0')}`);

type Timed = () => Promise<number>;

async function prepare(c: DriverConfig): Promise<{ items: number; run: Timed; close: () => Promise<void> }> {
  switch (c.mode) {
    case 'pg-update': {
      const pool = new pg.Pool({ connectionString: c.url, max: c.concurrency });
      const store = new PgTableStore({ pool, table: c.table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'AES/GCM' });
      /* Precomputed: every row's current value as the token and the same envelope as the new value. */
      const batches: { item: ItemRef; token: unknown; next: Envelope }[][] = [];
      for (let id = c.ids[0]; id < c.ids[1]; id += c.batchSize) {
        const items = Array.from({ length: Math.min(c.batchSize, c.ids[1] - id) }, (_, i) => ({ key: String(id + i) }));
        const reads = await store.readMany(items);
        batches.push(items.flatMap((item) => {
          const r = reads.get(item.key)!;
          return r.kind === 'envelope' ? [{ item, token: r.token, next: r.envelope }] : [];
        }));
      }
      const limit = pLimit(c.concurrency);
      return {
        items: c.ids[1] - c.ids[0],
        run: async () => {
          const written = await Promise.all(batches.map((b) => limit(async () => [...(await store.writeManyIfUnchanged(b)).values()].filter((v) => v === 'written').length)));
          return written.reduce((a, b) => a + b, 0);
        },
        close: () => pool.end(),
      };
    }
    case 'pg-naive': {
      const client = new pg.Client({ connectionString: c.url });
      await client.connect();
      const fromKey = Buffer.from(c.fromKek.material, 'base64');
      const toKey = Buffer.from(c.toKek.material, 'base64');
      return {
        items: c.ids[1] - c.ids[0],
        run: async () => {
          let ok = 0;
          for (let id = c.ids[0]; id < c.ids[1]; id++) {
            const { rows } = await client.query<{ wrapped_dek: Buffer; kek_version: string }>(`SELECT wrapped_dek, kek_version FROM ${c.table} WHERE id = $1`, [id]);
            const row = rows[0];
            if (!row || row.kek_version !== c.fromKek.version) continue;
            const rewrapped = aesGcmWrap(toKey, aesGcmUnwrap(fromKey, row.wrapped_dek));
            const r = await client.query(`UPDATE ${c.table} SET wrapped_dek = $2, kek_version = $3 WHERE id = $1 AND wrapped_dek = $4`, [id, rewrapped, c.toKek.version, row.wrapped_dek]);
            ok += r.rowCount ?? 0;
          }
          return ok;
        },
        close: () => client.end(),
      };
    }
    case 'pg-loop': {
      /* What a careful user writes by hand (~100 lines): no ledger, no queue, no lease, no audit. */
      const client = new pg.Client({ connectionString: c.url });
      await client.connect();
      const fromKey = Buffer.from(c.fromKek.material, 'base64');
      const toKey = Buffer.from(c.toKek.material, 'base64');
      return {
        items: c.ids[1] - c.ids[0],
        run: async () => {
          let ok = 0;
          for (let last = c.ids[0] - 1; ; ) {
            /* ORDER BY the bigint column (an output column named id, as text, would order as text). */
            const { rows } = await client.query<{ id: string; wrapped_dek: Buffer }>(
              `SELECT t.id::text AS id, t.wrapped_dek FROM ${c.table} t WHERE t.id > $1 AND t.id < $2 AND t.kek_id = $3 AND t.kek_version = $4 ORDER BY t.id LIMIT $5`,
              [last, c.ids[1], c.fromKek.id, c.fromKek.version, c.page],
            );
            if (rows.length === 0) return ok;
            const ids = rows.map((r) => r.id);
            const old = rows.map((r) => r.wrapped_dek);
            const next = rows.map((r) => aesGcmWrap(toKey, aesGcmUnwrap(fromKey, r.wrapped_dek)));
            const u = await client.query(
              `UPDATE ${c.table} t SET wrapped_dek = u.w, kek_version = $4 FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS u(id, o, w)
                WHERE t.id = u.id AND t.wrapped_dek = u.o`,
              [ids, old, next, c.toKek.version],
            );
            ok += u.rowCount ?? 0;
            last = Number(ids[ids.length - 1]);
          }
        },
        close: () => client.end(),
      };
    }
    case 's3-write': {
      const s3 = s3Client(c.s3);
      const store = new S3EnvelopeStore({ client: s3, bucket: c.s3.bucket });
      await store.capabilities();
      const keys = keysOf(c.keys);
      const limit = pLimit(c.concurrency);
      return {
        items: keys.length,
        run: async () => {
          /* HEAD (+ GET of the instruction file) and the conditional write of an envelope known in advance. */
          const done = await Promise.all(
            keys.map((key) =>
              limit(async () => {
                const r = await store.read({ key });
                if (r.kind !== 'envelope') return 0;
                return isWritten(await store.writeIfUnchanged({ key }, r.token, r.envelope)) ? 1 : 0;
              }),
            ),
          );
          return done.reduce<number>((a, b) => a + b, 0);
        },
        close: async () => s3.destroy(),
      };
    }
    case 'kms-reencrypt': {
      const s3 = s3Client(c.s3);
      const store = new S3EnvelopeStore({ client: s3, bucket: c.s3.bucket });
      const kms = createKmsClient({ endpoint: c.kmsUrl, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
      const deks: WrappedDek[] = [];
      const readLimit = pLimit(32);
      await Promise.all(
        keysOf(c.keys).map((key) =>
          readLimit(async () => {
            const r = await store.read({ key });
            if (r.kind === 'envelope') deks.push(r.envelope.dek);
          }),
        ),
      );
      const limit = pLimit(c.concurrency);
      return {
        items: deks.length,
        run: async () => {
          const done = await Promise.all(
            deks.map((dek) =>
              limit(async () => {
                const ctx = kmsEncryptionContext(dek);
                const out = await kms.send(new ReEncryptCommand({ CiphertextBlob: dek.wrapped, SourceKeyId: c.from, DestinationKeyId: c.to, SourceEncryptionContext: ctx, DestinationEncryptionContext: ctx }));
                return out.CiphertextBlob ? 1 : 0;
              }),
            ),
          );
          return done.reduce<number>((a, b) => a + b, 0);
        },
        close: async () => {
          s3.destroy();
          kms.destroy();
        },
      };
    }
    case 's3-fixture':
      return writeFixture(c);
    case 's3-naive': {
      const s3 = s3Client(c.s3);
      const kms = createKmsClient({ endpoint: c.kmsUrl, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
      const keys = keysOf(c.keys);
      const Bucket = c.s3.bucket;
      const reEncrypt = async (env: Record<string, string>) => {
        const ctx = { ...(JSON.parse(env['x-amz-matdesc']!) as Record<string, string>), 'aws:x-amz-cek-alg': env['x-amz-cek-alg']! };
        const out = await kms.send(
          new ReEncryptCommand({ CiphertextBlob: Buffer.from(env['x-amz-key-v2']!, 'base64'), SourceKeyId: c.from, DestinationKeyId: c.to, SourceEncryptionContext: ctx, DestinationEncryptionContext: ctx }),
        );
        return Buffer.from(out.CiphertextBlob!).toString('base64');
      };
      return {
        items: keys.length,
        run: async () => {
          /* What a user writes by hand: one object at a time, HEAD, ReEncrypt, write back. */
          let ok = 0;
          for (const Key of keys) {
            const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
            const meta = head.Metadata ?? {};
            if ('x-amz-key-v2' in meta) {
              const Metadata = { ...meta, 'x-amz-key-v2': await reEncrypt(meta) };
              await s3.send(new CopyObjectCommand({ Bucket, Key, CopySource: `${Bucket}/${encodeURIComponent(Key)}`, CopySourceIfMatch: head.ETag, MetadataDirective: 'REPLACE', Metadata, ContentType: head.ContentType }));
            } else {
              const ins = await s3.send(new GetObjectCommand({ Bucket, Key: `${Key}.instruction` }));
              const env = JSON.parse(await ins.Body!.transformToString()) as Record<string, string>;
              const next = { ...env, 'x-amz-key-v2': await reEncrypt(env) };
              await s3.send(new PutObjectCommand({ Bucket, Key: `${Key}.instruction`, Body: JSON.stringify(next), Metadata: { 'x-amz-crypto-instr-file': '' }, ContentType: 'application/json' }));
            }
            ok++;
          }
          return ok;
        },
        close: async () => {
          s3.destroy();
          kms.destroy();
        },
      };
    }
  }
}

function writeFixture(c: Extract<DriverConfig, { mode: 's3-fixture' }>): { items: number; run: Timed; close: () => Promise<void> } {
  const s3 = s3Client(c.s3);
  const kms = createKmsClient({ endpoint: c.kmsUrl, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
  const limit = pLimit(c.concurrency);
  const keys = keysOf(c.keys);
  const wrap = { kind: 'kms' as const, kms, keyId: c.keyId, matdesc: { app: 'bench' } };
  return {
    items: keys.length,
    run: async () => {
      /* As the official client writes them: a KMS data key per object, envelope in metadata or instruction file. */
      await Promise.all(
        keys.map((key, i) => limit(() => putEncrypted(s3, c.s3.bucket, key, fixturePayload(key, c.keys.from + i), { placement: c.placement, wrap, contentType: 'application/octet-stream' }))),
      );
      return keys.length;
    },
    close: async () => {
      s3.destroy();
      kms.destroy();
    },
  };
}

function s3Client(t: S3Target) {
  return createS3Client({ endpoint: t.endpoint, region: t.region, credentials: { accessKeyId: t.accessKeyId, secretAccessKey: t.secretAccessKey } });
}

const CEK = Buffer.from('AES/GCM/NoPadding');

function aesGcmUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  const d = createDecipheriv('aes-256-gcm', kek, wrapped.subarray(0, 12));
  d.setAAD(CEK);
  d.setAuthTag(wrapped.subarray(wrapped.length - 16));
  return Buffer.concat([d.update(wrapped.subarray(12, wrapped.length - 16)), d.final()]);
}

function aesGcmWrap(kek: Buffer, dek: Buffer): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek, iv);
  c.setAAD(CEK);
  const ct = Buffer.concat([c.update(dek), c.final()]);
  return Buffer.concat([iv, ct, c.getAuthTag()]);
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as DriverConfig;
  const job = await prepare(config);
  process.stdout.write(`${JSON.stringify({ ready: true, items: job.items })}\n`);
  const lines = createInterface({ input: process.stdin });
  const closed = new Promise((r) => lines.once('close', r));
  await new Promise<void>((go) => lines.on('line', (l) => l.trim() === 'go' && go()));
  const t0 = performance.now();
  const ok = await job.run();
  const seconds = (performance.now() - t0) / 1000;
  await job.close();
  process.stdout.write(`${JSON.stringify({ items: job.items, ok, seconds } satisfies DriverResult)}\n`);
  /* Stay until the parent has read our CPU time (it closes stdin). */
  await closed;
  process.exit(0);
}

/* Run only as a process of its own; the bench imports the types and keysOf from here. */
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`raw-load: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
