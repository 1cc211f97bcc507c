/**
 * The fence stands at the write (invariant 8): a worker frozen (SIGSTOP) INSIDE a store write,
 * after every check that runs before the write call, writes nothing when it wakes after its
 * lease ran out and a newer campaign moved the item.
 *
 * The objects carry tags and keep their envelope in METADATA, so a rewrap is: HEAD (read), the
 * KEK rewrap, then the store write = GetObjectTagging (snapshot of the tags, which Ceph RGW drops
 * on a self-copy), CopyObject with an ETag precondition, and tags put back. The proxy in front of
 * S3 freezes worker 1 when it asks for the tags of f/005, i.e. inside writeIfUnchanged, past the
 * pipeline's early lease check. The tag answer waits in the frozen worker's socket. Campaign A
 * (k@1 -> k@2) is cancelled, B (k@1 -> k@3) is admitted once A's lease ran out and completes
 * with a second worker; B's metadata-only copy keeps the ETag A read, so A's conditional copy
 * would land. Then worker 1 is continued: its CopyObject must not leave the process.
 * Before the fence moved into the store (the lease checked once, before the tagging round trip),
 * the woken worker's copy landed and put f/005 back under k@2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ListObjectVersionsCommand, PutBucketVersioningCommand, PutObjectTaggingCommand, GetObjectTaggingCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { CampaignConflictError } from '../src/ledger/index.ts';
import type { Campaign } from '../src/ledger/types.ts';
import type { RewrapProcess } from '../dev/services/processes.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { freeze, startTapProxy, type TapProxy } from './support/tap-proxy.ts';
import { LeakGuard } from './support/leak-guard.ts';

const N = 12;
const BATCH = 4;
const LEASE_MS = 8_000;
const keys = Array.from({ length: N }, (_, i) => `f/${String(i).padStart(3, '0')}`);
/** Batch 2 is f/004..f/007: freeze inside the write of its second item. */
const FREEZE_ON = 'f/005';
const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const k3 = { id: 'k', version: '3', material: randomBytes(32) };

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
let proxy: TapProxy;
let worker1: RewrapProcess | undefined;
let frozenAt: number | undefined;
let thawed = false;
const payloads = new Map<string, Buffer>();

async function versionsByKey(): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  const page = await s3.send(new ListObjectVersionsCommand({ Bucket: tb.bucket, Prefix: 'f/' }));
  expect(page.IsTruncated).toBeFalsy();
  for (const v of page.Versions ?? []) versions.set(v.Key!, (versions.get(v.Key!) ?? 0) + 1);
  return versions;
}

/** Independent check: decrypts with ONLY the given KEK, and compares the payload. */
async function underKek(key: string, kek: { id: string; version: string; material: Buffer }): Promise<boolean> {
  try {
    const d = await getDecrypted(s3, tb.bucket, key, { aes: new Map([[matdescKey({ kek: `${kek.id}@${kek.version}` }), kek.material]]) });
    return d.payload.equals(payloads.get(key)!);
  } catch {
    return false;
  }
}

beforeAll(async () => {
  const env = s3TestEnv();
  proxy = await startTapProxy(env.endpoint, async (method, target) => {
    if (method !== 'GET' || !target.includes(`/${FREEZE_ON}?tagging`) || !worker1 || frozenAt !== undefined) return;
    frozenAt = Date.now();
    await freeze(worker1.child.pid!);
  });
  /* A long request timeout: the held answer must still be read when the worker wakes, so that
     what stops the copy is the fence, not a timeout of the tag request. */
  pipe = await startPipeline({
    label: 'fencewrite',
    workers: 0,
    env: { S3_ENDPOINT: proxy.url, REWRAP_LEASE_MS: String(LEASE_MS), REWRAP_WORKER_JOBS: '1', REWRAP_S3_REQUEST_TIMEOUT_MS: '600000' },
  });
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'fencewrite');
  await s3.send(new PutBucketVersioningCommand({ Bucket: tb.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  for (const key of keys) {
    const payload = randomBytes(300);
    payloads.set(key, payload);
    await putEncrypted(s3, tb.bucket, key, payload, { placement: 'metadata', wrap: { kind: 'aes', material: k1.material, matdesc: { kek: 'k@1' } } });
    await s3.send(new PutObjectTaggingCommand({ Bucket: tb.bucket, Key: key, Tagging: { TagSet: [{ Key: 'team', Value: 'a' }] } }));
  }
}, 120_000);

afterAll(async () => {
  if (frozenAt !== undefined && !thawed) worker1?.child.kill('SIGCONT');
  await pipe?.stop();
  await proxy?.close();
  await tb?.cleanup();
  s3?.destroy();
});

describe('the fence at the write request', () => {
  it('a worker frozen inside a slow write past its lease, while a newer campaign moves the item, writes nothing when it wakes (invariant 8)', async () => {
    const keyringFile = await pipe.keyringFile([k1, k2, k3]);
    const spec = (name: string, to: string, options: Record<string, unknown>) => ({
      name,
      sources: [{ type: 's3', bucket: tb.bucket, prefix: 'f/', placement: 'metadata' }],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to,
      options,
    });
    worker1 = await pipe.startWorker();
    const a = await pipe.create(spec('A: k@1 to k@2', 'k@2', { batchSize: BATCH, concurrency: 1 }));
    const deadline = Date.now() + 120_000;
    while (frozenAt === undefined) {
      if (Date.now() > deadline) throw new Error(`worker 1 never asked for the tags of ${FREEZE_ON}; its log:\n${worker1.lines.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const atFreeze = await versionsByKey();
    const movedByA = keys.filter((k) => atFreeze.get(k) === 2);
    const stillK1 = keys.filter((k) => atFreeze.get(k) === 1);
    expect(movedByA).toEqual(['f/000', 'f/001', 'f/002', 'f/003', 'f/004']);
    expect(stillK1).toContain(FREEZE_ON);

    const cancelled = await rewrapCli(pipe, ['campaign', 'cancel', a.id, '--json']);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(jsonOf(cancelled)).toMatchObject({ id: a.id, state: 'cancelled' });

    // B is admitted once A's lease ran out, and moves every item still under k@1.
    let b: Campaign | undefined;
    const bDeadline = Date.now() + LEASE_MS + 60_000;
    while (!b) {
      try {
        b = await pipe.create(spec('B: k@1 to k@3', 'k@3', { batchSize: 8, concurrency: 4 }));
      } catch (err) {
        if (!(err instanceof CampaignConflictError) || Date.now() > bDeadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await pipe.startWorker();
    const pb = await pipe.waitFor(b.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(pb).toMatchObject({ planned: N, rewrapped: stillK1.length, failed: 0 });
    expect(await underKek(FREEZE_ON, k3)).toBe(true);

    // Wake worker 1: the tag answer it asked for is waiting; its next request would be the copy.
    worker1.child.kill('SIGCONT');
    thawed = true;
    console.log(`fence at the write: worker 1 frozen for ${((Date.now() - frozenAt!) / 1000).toFixed(1)} s`);
    const released = Date.now() + 30_000;
    for (;;) {
      const { rows } = await pipe.db.pool.query<{ owner: string | null }>('SELECT lease_owner AS owner FROM rewrap_batches WHERE campaign_id = $1 AND batch_no = 2', [a.id]);
      if (rows[0]!.owner === null) break;
      if (Date.now() > released) throw new Error(`the woken worker still holds batch 2; its log:\n${worker1.lines.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`fence at the write: the woken worker said:\n  ${worker1.lines.filter((l) => /lease|fenced/.test(l)).join('\n  ')}`);

    // Nothing written late: every item B moved is under k@3 with B's one new version, tags kept.
    const after = await versionsByKey();
    for (const k of stillK1) {
      expect(after.get(k), `versions of ${k}`).toBe(2);
      expect(await underKek(k, k3), `${k} under k@3 after the frozen worker woke`).toBe(true);
    }
    for (const k of movedByA) expect(await underKek(k, k2), `${k} under k@2 (moved by A before the freeze)`).toBe(true);
    const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: tb.bucket, Key: FREEZE_ON }));
    expect(tags.TagSet).toEqual([{ Key: 'team', Value: 'a' }]);
    const { rows: aRewrapped } = await pipe.db.pool.query<{ item_key: string }>(
      `SELECT item_key FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'rewrapped' ORDER BY item_key`,
      [a.id],
    );
    expect(aRewrapped.map((r) => r.item_key)).toEqual(movedByA);
  }, 300_000);

  it('no KEK bytes in any process log (invariant 5)', () => {
    const guard = new LeakGuard();
    guard.secret(k1.material, k2.material, k3.material);
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
