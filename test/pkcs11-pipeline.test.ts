/**
 * A whole campaign through the PKCS#11 provider (issue 19, point 1): a scheduler and a real
 * `rewrap worker` process on a SoftHSM2 token move Postgres rows (AESWrapPad) and S3 objects
 * (AESWrap) from app@1 to app@2; independent code decrypts everything under app@2's known bytes.
 * While the worker is in the middle of its batches, its V8 heap is snapshotted (the
 * --heapsnapshot-signal of Node) and its whole address space is read (/proc/<pid>/mem): neither
 * holds a plaintext DEK, in any encoding. Positive controls prove that each capture sees what the
 * worker holds (the token PIN, which the worker keeps for re-login).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { createS3Client } from '../src/stores/s3-client.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { CEK, encryptPayload } from '../dev/reference/s3ec-client.ts';
import { initTestToken, keyUnwrap, keyWrap, type TestToken } from './support/softhsm.ts';

const ROWS = 2000;
const OBJECTS = 30;
const app1 = randomBytes(32);
const app2 = randomBytes(32);
const rowDeks = new Map<string, Buffer>();
const objDeks = new Map<string, { dek: Buffer; payload: Buffer }>();

let hsm: TestToken;
let p: Pipeline;
let s3: S3Client;
let tb: TestBucket;
const snapDir = mkdtempSync(join(tmpdir(), 'rewrap-heap-'));

const t0 = Date.now();
const mark = (what: string) => console.log(`[pkcs11-pipeline] ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);

beforeAll(async () => {
  hsm = initTestToken('hsm-pipeline');
  await hsm.importKek('app', '1', app1);
  await hsm.importKek('app', '2', app2);
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'pkcs11-e2e');
  mark('bucket ready');
  p = await startPipeline({
    label: 'pkcs11',
    workers: 1,
    env: { ...hsm.env, NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapDir}` },
  });
  mark('pipeline started');
  await createEnvelopeTable(p.db.pool, 'hsm_secrets');
  const ids: string[] = [];
  const payloads: Buffer[] = [];
  const ivs: Buffer[] = [];
  const wrapped: Buffer[] = [];
  for (let i = 1; i <= ROWS; i++) {
    const dek = randomBytes(32);
    const { iv, body } = encryptPayload(dek, Buffer.from(`row ${i}`));
    rowDeks.set(String(i), dek);
    ids.push(String(i));
    payloads.push(body);
    ivs.push(iv);
    wrapped.push(keyWrap('AESWrapPad', app1, dek));
  }
  await p.db.pool.query(
    `INSERT INTO hsm_secrets (id, payload, iv, wrapped_dek, kek_id, kek_version)
     SELECT id, p, iv, w, 'app', '1' FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(id, p, iv, w)`,
    [ids, payloads, ivs, wrapped],
  );
  for (let i = 0; i < OBJECTS; i++) {
    const dek = randomBytes(32);
    const payload = randomBytes(100 + i);
    const { iv, body } = encryptPayload(dek, payload);
    const key = `e2e/${i}`;
    objDeks.set(key, { dek, payload });
    await s3.send(
      new PutObjectCommand({
        Bucket: tb.bucket,
        Key: key,
        Body: body,
        Metadata: {
          'x-amz-key-v2': keyWrap('AESWrap', app1, dek).toString('base64'),
          'x-amz-wrap-alg': 'AESWrap',
          'x-amz-cek-alg': CEK,
          'x-amz-iv': iv.toString('base64'),
          'x-amz-matdesc': JSON.stringify({ kek: 'app@1' }),
          'x-amz-tag-len': '128',
          'x-amz-unencrypted-content-length': String(payload.length),
        },
      }),
    );
  }
  mark('fixtures written');
}, 240_000);

afterAll(async () => {
  await p?.stop();
  await tb?.cleanup();
  hsm?.close();
  rmSync(snapDir, { recursive: true, force: true });
});

/** Every encoding of a DEK that could sit in a heap snapshot (JSON text) or in raw memory. */
function forms(dek: Buffer): string[] {
  return [dek.toString('hex'), dek.toString('hex').toUpperCase(), dek.toString('base64'), dek.toString('base64url')];
}

/**
 * DEK encodings found in `text`: every run of hex/base64 characters (up to 4 KiB, as a log line or
 * a JSON field would hold it) is checked at every offset against the set of all encodings: one
 * pass over the text, not one per DEK.
 */
function dekFormsIn(text: string, deks: Buffer[]): string[] {
  const wanted = new Set(deks.flatMap(forms));
  const lengths = [...new Set([...wanted].map((f) => f.length))];
  const found: string[] = [];
  for (const m of text.matchAll(/[A-Za-z0-9+/=_-]{43,4096}/g)) {
    const run = m[0];
    for (const len of lengths) for (let i = 0; i + len <= run.length; i++) if (wanted.has(run.slice(i, i + len))) found.push(run.slice(i, i + len));
  }
  return found;
}

/** Reads every readable private mapping of `pid` (heap, stacks, native allocations, off-heap buffers). */
function readProcessMemory(pid: number): Buffer[] {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const chunks: Buffer[] = [];
  try {
    for (const line of maps) {
      const [range, perms, , , inode, path] = line.split(/\s+/);
      // Readable and writable: data, heaps, anonymous memory; not the code and read-only files.
      if (!perms!.startsWith('rw') || (inode !== '0' && path && !path.startsWith('['))) continue;
      const [start, end] = range!.split('-').map((h) => BigInt(`0x${h}`));
      const len = Number(end! - start!);
      if (len > 256 * 1024 ** 2) continue; // V8's reservations: mostly unbacked
      const buf = Buffer.allocUnsafe(len);
      try {
        const n = readSync(fd, buf, 0, len, start!);
        chunks.push(buf.subarray(0, n));
      } catch {
        /* a guard page or a mapping gone since maps was read */
      }
    }
  } finally {
    closeSync(fd);
  }
  return chunks;
}

describe('a campaign on a PKCS#11 token (SoftHSM2), worker as a real process', () => {
  it('rows and S3 objects move from app@1 to app@2 inside the token; mid-batch, neither the worker heap snapshot nor its memory holds a plaintext DEK', async () => {
    const campaign = await p.create({
      name: 'hsm-e2e',
      sources: [
        { type: 'pg', table: 'hsm_secrets', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'AESWrapPad' },
        { type: 's3', bucket: tb.bucket },
      ],
      provider: hsm.providerSpec,
      from: 'app@1',
      to: 'app@2',
      options: { batchSize: 100, concurrency: 4 },
    });
    const total = ROWS + OBJECTS;
    // Mid-run: some batches committed, more to come.
    await p.waitFor(campaign.id, 'under way', (g) => g.rewrapped >= 200, 120_000);
    const worker = p.workers[0]!;
    const pid = worker.child.pid!;
    const memory = readProcessMemory(pid);
    worker.child.kill('SIGUSR2');
    mark('memory read mid-run');
    const done = await p.waitFor(campaign.id, 'completed', (g) => g.state === 'completed', 120_000);
    mark('campaign completed');
    expect(done).toMatchObject({ rewrapped: total, failed: 0 });

    // Independent check: only app@2's bytes are given.
    const { rows } = await p.db.pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string }>('SELECT id::text, wrapped_dek, kek_id, kek_version FROM hsm_secrets');
    expect(rows).toHaveLength(ROWS);
    for (const r of rows) {
      expect(`${r.kek_id}@${r.kek_version}`).toBe('app@2');
      expect(keyUnwrap('AESWrapPad', app2, r.wrapped_dek).equals(rowDeks.get(r.id)!)).toBe(true);
    }
    for (const [key, o] of objDeks) {
      const obj = await s3.send(new GetObjectCommand({ Bucket: tb.bucket, Key: key }));
      const meta = obj.Metadata!;
      const body = Buffer.from(await obj.Body!.transformToByteArray());
      const dek = keyUnwrap('AESWrap', app2, Buffer.from(meta['x-amz-key-v2']!, 'base64'));
      expect(dek.equals(o.dek)).toBe(true);
      const d = createDecipheriv('aes-256-gcm', dek, Buffer.from(meta['x-amz-iv']!, 'base64'));
      d.setAuthTag(body.subarray(body.length - 16));
      expect(Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]).equals(o.payload)).toBe(true);
    }

    // The heap snapshot (written by the worker itself on SIGUSR2, mid-run).
    // Node streams the snapshot into its file, strings last: under load the campaign can complete
    // before it is whole, so wait (with a deadline) for the JSON's closing `]}`.
    let snapFile: string | undefined;
    let snapshot = '';
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      snapFile = readdirSync(snapDir).find((f) => f.endsWith('.heapsnapshot'));
      snapshot = snapFile ? readFileSync(join(snapDir, snapFile), 'latin1') : '';
      if (snapshot.trimEnd().endsWith(']}')) break;
    }
    expect(snapFile, 'the worker wrote a heap snapshot').toBeDefined();
    expect(snapshot.trimEnd().endsWith(']}'), 'the heap snapshot was written whole within 60 s').toBe(true);
    expect(snapshot.includes(hsm.pin), 'positive control: the snapshot holds the strings the worker keeps (the PIN)').toBe(true);
    const allDeks = [...rowDeks.values(), ...[...objDeks.values()].map((o) => o.dek)];
    expect(dekFormsIn(snapshot, allDeks), 'plaintext DEKs (hex, base64) in the worker heap snapshot').toEqual([]);

    // The whole address space, read while batches ran: off-heap Buffers and native memory too.
    const pinBytes = Buffer.from(hsm.pin, 'utf8');
    expect(memory.some((m) => m.includes(pinBytes)), 'positive control: the memory capture holds the PIN').toBe(true);
    const sample = allDeks.filter((_, i) => i % 100 === 0);
    const inMemory = sample.filter((d) => memory.some((m) => m.includes(d)));
    expect(inMemory.length, `plaintext DEKs (of a sample of ${sample.length}) in the worker's memory`).toBe(0);
  }, 300_000);
});
