/**
 * Issue 14, point 2: the exposure report of an incident over a versioned bucket counts
 * noncurrent versions (invariant 7). Every self-copy rewrap makes in a versioned bucket leaves
 * the previous version behind, its DEK still wrapped under the compromised KEK; so do the
 * application's own overwrites. The report (the real CLI) must list each such version as
 * exposed-noncurrent with its version id, count none under another KEK, and not list versions
 * of an unversioned bucket at all (no ListObjectVersions there). Real RGW, scheduler and worker
 * processes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { putEncrypted } from '../dev/reference/s3ec-client.ts';
import { runRewrap } from '../dev/services/processes.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { startTapProxy, type TapProxy } from './support/tap-proxy.ts';
import { jsonOf } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const j1 = { id: 'j', version: '1', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material, j1.material);

let pipe: Pipeline;
let proxy: TapProxy;
let s3: S3Client;
let versioned: TestBucket;
let plain: TestBucket;
let keyringFile: string;
/** S3 requests the report CLI sent (through the proxy). */
const seen: string[] = [];

const underK1 = { kind: 'aes' as const, material: k1.material, matdesc: { kek: 'k@1' } };
const underJ1 = { kind: 'aes' as const, material: j1.material, matdesc: { kek: 'j@1' } };
const put = (b: TestBucket, key: string, wrap: typeof underK1) => putEncrypted(s3, b.bucket, key, randomBytes(64), { placement: 'metadata', wrap });

type Row = Record<string, string | null>;
type Summary = { totals: Record<string, number>; noncurrentExposedByStore: Record<string, number>; noncurrentUnchecked: string[] };

beforeAll(async () => {
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  proxy = await startTapProxy(env.endpoint, (method, target) => {
    seen.push(`${method} ${target}`);
  });
  pipe = await startPipeline({ label: 'exposure-noncurrent', workers: 1 });
  versioned = await freshBucket(s3, 'exposure-nc-versioned');
  plain = await freshBucket(s3, 'exposure-nc-plain');
  await s3.send(new PutBucketVersioningCommand({ Bucket: versioned.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  keyringFile = await pipe.keyringFile([k1, k2, j1]);
  await Promise.all(Array.from({ length: 10 }, (_, i) => put(versioned, `o/${i}`, underK1)));
  // The application overwrote two objects before the incident: their old versions are under k@1 too.
  await Promise.all([put(versioned, 'o/0', underK1), put(versioned, 'o/1', underK1)]);
  // Instruction-file placement, overwritten once: the old `i/0.instruction` version holds a k@1
  // envelope in its body; the old `i/0` version holds none. (RGW honours no If-Match on
  // PutObject, so rewrap refuses to rewrite i/0 itself: it stays exposed.)
  for (let n = 0; n < 2; n++) await putEncrypted(s3, versioned.bucket, 'i/0', randomBytes(64), { placement: 'instruction', wrap: underK1 });
  // Under another KEK, overwritten once: neither version is under k@1.
  await put(versioned, 'j/0', underJ1);
  await put(versioned, 'j/0', underJ1);
  await Promise.all(Array.from({ length: 3 }, (_, i) => put(plain, `p/${i}`, underK1)));
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await proxy?.close();
  await versioned?.cleanup();
  await plain?.cleanup();
});

async function incident(bucket: string, objects: number, failed = 0): Promise<string> {
  const c = await pipe.create({ name: `incident ${bucket}`, kind: 'incident', sources: [{ type: 's3', bucket }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2', options: { batchSize: 5 } });
  const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 120_000);
  expect(p).toMatchObject({ rewrapped: objects, failed });
  return c.id;
}

/** The exposure report through the real CLI, its S3 requests through the proxy. */
async function report(id: string): Promise<{ rows: Row[]; summary: Summary; requests: string[] }> {
  const out = join(pipe.dir, `exposure-${id}.jsonl`);
  const from = seen.length;
  const cli = await runRewrap(['campaign', 'report', id, '--kind', 'exposure', '--format', 'jsonl', '--out', out, '--json'], { ...pipe.env, S3_ENDPOINT: proxy.url });
  guard.text(cli.stdout, cli.stderr);
  expect(cli.code, cli.stderr).toBe(0);
  const rows = (await readFile(out, 'utf8')).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
  return { rows, summary: jsonOf<Summary>(cli), requests: seen.slice(from) };
}

describe('exposure report and noncurrent versions (issue 14, invariant 7)', () => {
  it('an incident over a versioned bucket lists every noncurrent version under the compromised KEK as exposed-noncurrent with its version id: rewrap\'s own copies and older ones (metadata and instruction file), none under another KEK (invariant 7)', async () => {
    const id = await incident(versioned.bucket, 10, 1);
    const { rows, summary } = await report(id);
    const store = `s3://${versioned.bucket}`;
    const nc = rows.filter((r) => r.status === 'exposed-noncurrent' && r.item !== 'i/0.instruction');
    expect(nc.map((r) => r.item).sort()).toEqual(['o/0', 'o/0', 'o/1', 'o/1', ...Array.from({ length: 8 }, (_, i) => `o/${i + 2}`)]);
    for (const r of nc) expect(r).toMatchObject({ store, kek_now: 'k@1', moved_at: null, to_kek: null });
    expect(new Set(nc.map((r) => `${r.item}|${r.version_id}`)).size).toBe(12); // 10 left by rewrap's copies, 2 by the application
    // Each listed version really is a noncurrent version under k@1 (read independently).
    for (const r of nc) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: versioned.bucket, Key: r.item!, VersionId: r.version_id! }));
      expect(head.Metadata?.['x-amz-matdesc']).toBe('{"kek":"k@1"}');
    }
    // The instruction file's old version carries the k@1 envelope in its body; i/0's own old version is not listed.
    expect(rows.filter((r) => r.item === 'i/0.instruction')).toEqual([expect.objectContaining({ store, status: 'exposed-noncurrent', kek_now: 'k@1', version_id: expect.any(String) })]);
    expect(rows.filter((r) => r.item === 'i/0')).toEqual([expect.objectContaining({ status: 'exposed', reason: 'unconditional-write-refused', version_id: null })]);
    expect(rows.filter((r) => r.status === 'moved')).toHaveLength(10);
    expect(rows.filter((r) => r.status !== 'exposed-noncurrent').every((r) => r.version_id === null)).toBe(true);
    expect(summary.totals).toEqual({ underKek: 11, moved: 10, movedUnconfirmed: 0, exposed: 1, neverUnderKek: 1, noEnvelope: 0, noncurrentExposed: 13 });
    expect(summary.noncurrentExposedByStore).toEqual({ [store]: 13 });
    expect(summary.noncurrentUnchecked).toEqual([]);
  }, 240_000);

  it('an unversioned bucket yields no exposed-noncurrent rows and is never listed by version', async () => {
    const id = await incident(plain.bucket, 3);
    const { rows, summary, requests } = await report(id);
    expect(rows.filter((r) => r.status === 'exposed-noncurrent')).toEqual([]);
    expect(summary.totals.noncurrentExposed).toBe(0);
    expect(summary.noncurrentExposedByStore).toEqual({});
    expect(requests.some((r) => /[?&]versioning\b/.test(r)), requests.join('\n')).toBe(true);
    expect(requests.filter((r) => /[?&]versions\b/.test(r))).toEqual([]);
  }, 240_000);

  it('no key bytes in any process log or report output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
