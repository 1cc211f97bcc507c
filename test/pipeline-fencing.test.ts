/**
 * Fencing: a worker frozen (SIGSTOP) in the middle of a batch of a campaign that is then
 * cancelled and followed by a new campaign over the same items writes nothing when it wakes up.
 *
 * Why this needs the fence and not only compare-and-swap: the items are S3 objects with the
 * envelope in their METADATA. A rewrap there is a self-copy that keeps the object's ETag, so the
 * new campaign's write does not change the ETag the frozen worker read, and its conditional copy
 * (If-Match on that ETag) would succeed and put the item back under the old campaign's KEK. The
 * test checks that premise (the ETag is unchanged) and that nothing was written anyway.
 *
 * Design: 24 objects under k@1 (local keyring, AES/GCM), read by the workers through a TCP proxy
 * in front of the S3 server. Campaign A (k@1 -> k@2) runs with one worker, batches of 4, one
 * item at a time. The proxy freezes the worker at an exact point: when it asks for (HEAD) the
 * second item of batch 2, i.e. with the batch's lease held and one of its items written. The
 * HEAD reaches S3 and its answer waits in the frozen worker's socket; after waking, the worker's
 * next step for that item is the store write, right behind the fence check.
 * A is cancelled with the CLI; a campaign B (k@1 -> k@3) over the same objects is refused while
 * A's lease is live, admitted once it expired, and run by a second worker to completion. Then the
 * frozen worker is continued: it must refuse to write (its log says why), every item that was
 * still under k@1 at the freeze ends under k@3 with exactly the one new version B wrote.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, ListObjectVersionsCommand, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
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

const N = 24;
const BATCH = 4;
/** Long enough that the CLI cancel (seconds on a busy machine) returns while A's lease is live. */
const LEASE_MS = 12_000;
const keys = Array.from({ length: N }, (_, i) => `f/${String(i).padStart(3, '0')}`);
/** Batches follow the listing order: batch 2 is f/004..f/007; freeze on its second item. */
const FREEZE_ON = 'f/005';
const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const k3 = { id: 'k', version: '3', material: randomBytes(32) };

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
let proxy: TapProxy;
let worker1: RewrapProcess | undefined;
/** When the proxy froze worker 1 (it freezes it once), and whether it was continued since. */
let frozenAt: number | undefined;
let thawed = false;
const payloads = new Map<string, Buffer>();

/** Object versions per key: each write adds one (the bucket is versioned). */
async function versionsByKey(): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (let km: string | undefined, vm: string | undefined, more = true; more; ) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: tb.bucket, Prefix: 'f/', KeyMarker: km, VersionIdMarker: vm }));
    for (const v of page.Versions ?? []) versions.set(v.Key!, (versions.get(v.Key!) ?? 0) + 1);
    more = Boolean(page.IsTruncated);
    km = page.NextKeyMarker;
    vm = page.NextVersionIdMarker;
  }
  return versions;
}

const etagOf = async (key: string) => (await s3.send(new HeadObjectCommand({ Bucket: tb.bucket, Key: key }))).ETag!;

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
  // The workers reach S3 through the proxy; the first HEAD of FREEZE_ON by worker 1 freezes it.
  proxy = await startTapProxy(env.endpoint, async (method, target) => {
    if (method !== 'HEAD' || !target.endsWith(`/${FREEZE_ON}`) || !worker1 || frozenAt !== undefined) return;
    frozenAt = Date.now();
    await freeze(worker1.child.pid!);
  });
  pipe = await startPipeline({ label: 'fencing', workers: 0, env: { S3_ENDPOINT: proxy.url, REWRAP_LEASE_MS: String(LEASE_MS), REWRAP_WORKER_JOBS: '1' } });
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'fencing');
  await s3.send(new PutBucketVersioningCommand({ Bucket: tb.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  await Promise.all(
    keys.map(async (key) => {
      const payload = randomBytes(300);
      payloads.set(key, payload);
      await putEncrypted(s3, tb.bucket, key, payload, { placement: 'metadata', wrap: { kind: 'aes', material: k1.material, matdesc: { kek: 'k@1' } } });
    }),
  );
}, 120_000);

afterAll(async () => {
  if (frozenAt !== undefined && !thawed) worker1?.child.kill('SIGCONT'); // a stopped process cannot act on SIGTERM
  await pipe?.stop();
  await proxy?.close();
  await tb?.cleanup();
  s3?.destroy();
});

describe('fencing a frozen worker', () => {
  it('a worker frozen mid-batch, whose campaign was cancelled and superseded, writes nothing when it wakes', async () => {
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

    // Frozen mid-batch: the ledger shows batch 2 leased by worker 1, with some items written.
    const deadline = Date.now() + 120_000;
    while (frozenAt === undefined) {
      if (Date.now() > deadline) throw new Error(`worker 1 never asked for ${FREEZE_ON}; its log:\n${worker1.lines.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const { rows: leased } = await pipe.db.pool.query<{ batch_no: number; lease_owner: string }>(
      `SELECT batch_no, lease_owner FROM rewrap_batches WHERE campaign_id = $1 AND lease_owner IS NOT NULL AND state <> 'done'`,
      [a.id],
    );
    expect(leased).toHaveLength(1);
    expect(leased[0]!.batch_no).toBe(2);
    expect(leased[0]!.lease_owner).toMatch(/^w1\//);
    const { rows: batchItems } = await pipe.db.pool.query<{ item_key: string }>(
      'SELECT item_key FROM rewrap_campaign_items WHERE campaign_id = $1 AND batch_no = 2 ORDER BY item_key',
      [a.id],
    );
    expect(batchItems.map((r) => r.item_key)).toEqual(['f/004', 'f/005', 'f/006', 'f/007']);
    const versionsAtFreeze = await versionsByKey();
    const movedByA = keys.filter((k) => versionsAtFreeze.get(k) === 2);
    const stillK1 = keys.filter((k) => versionsAtFreeze.get(k) === 1);
    expect(movedByA).toEqual(['f/000', 'f/001', 'f/002', 'f/003', 'f/004']); // batch 1, and the first item of batch 2
    expect(stillK1).toHaveLength(N - movedByA.length);
    const etagAtFreeze = await etagOf(FREEZE_ON);

    // Cancel A with the CLI.
    const cancelled = await rewrapCli(pipe, ['campaign', 'cancel', a.id, '--json']);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(jsonOf(cancelled)).toMatchObject({ id: a.id, ok: true, state: 'cancelled' });

    // B over the same objects is refused while A's frozen worker may still hold its lease ...
    const bSpec = spec('B: k@1 to k@3', 'k@3', { batchSize: 8, concurrency: 8 });
    const refusal = await pipe.create(bSpec).then(
      (c) => new Error(`campaign B was admitted (${c.id}) while A's lease was live`),
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(CampaignConflictError);
    expect((refusal as Error).message).toContain(`campaign ${a.id} (state cancelled)`);
    expect((refusal as Error).message).toContain('may still hold leases until');
    const retryAfter = (refusal as CampaignConflictError).retryAfter!;
    expect(retryAfter.getTime()).toBeGreaterThan(Date.now() - 1000);

    // ... and admitted once the lease expired.
    let b: Campaign | undefined;
    const bDeadline = Date.now() + LEASE_MS + 30_000;
    while (!b) {
      try {
        b = await pipe.create(bSpec);
      } catch (err) {
        if (!(err instanceof CampaignConflictError) || Date.now() > bDeadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(Date.now()).toBeGreaterThanOrEqual(retryAfter.getTime() - 1000); // not before the lease said (1 s clock slack)
    await pipe.startWorker();
    const pb = await pipe.waitFor(b.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(pb).toMatchObject({ planned: N, rewrapped: stillK1.length, skipped: movedByA.length, failed: 0 });
    for (const k of stillK1) expect(await underKek(k, k3), `${k} under k@3 after B`).toBe(true);
    // The premise: B's metadata-only copy kept the ETag the frozen worker read, so its If-Match
    // copy would still succeed; only the fence stands between it and an item put back under k@2.
    expect(await etagOf(FREEZE_ON)).toBe(etagAtFreeze);

    // Wake the frozen worker: its HEAD answer is waiting; its next step would be the write.
    worker1.child.kill('SIGCONT');
    thawed = true;
    console.log(`fencing: worker 1 frozen for ${((Date.now() - frozenAt!) / 1000).toFixed(1)} s`);
    await worker1.waitForLine(/batch fenced/, 30_000);
    // Done with the batch once its lease is released (the worker's finally block).
    const released = Date.now() + 30_000;
    for (;;) {
      const { rows } = await pipe.db.pool.query<{ owner: string | null }>('SELECT lease_owner AS owner FROM rewrap_batches WHERE campaign_id = $1 AND batch_no = 2', [a.id]);
      if (rows[0]!.owner === null) break;
      if (Date.now() > released) throw new Error(`the woken worker still holds batch 2; its log:\n${worker1.lines.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const said = worker1.lines.filter((l) => /batch lease lost|batch fenced/.test(l));
    console.log(`fencing: the woken worker said:\n  ${said.join('\n  ')}`);
    // The fence itself (the lease checked on the monotonic clock right before the write) stopped it.
    expect(said.some((l) => l.includes('"batch fenced: stopped before a store write"') && l.includes('not writing'))).toBe(true);

    // Nothing was written by it: every item B moved is under k@3 with exactly B's version.
    const after = await versionsByKey();
    for (const k of stillK1) {
      expect(after.get(k), `versions of ${k}`).toBe(2);
      expect(await underKek(k, k3), `${k} under k@3 after the frozen worker woke`).toBe(true);
    }
    for (const k of movedByA) {
      expect(after.get(k), `versions of ${k}`).toBe(2);
      expect(await underKek(k, k2), `${k} under k@2 (moved by A before the freeze)`).toBe(true);
    }
    // The ledger agrees: A recorded no rewrap of an item that was still under k@1 at the freeze.
    const { rows: aRewrapped } = await pipe.db.pool.query<{ item_key: string }>(
      `SELECT item_key FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'rewrapped' ORDER BY item_key`,
      [a.id],
    );
    expect(aRewrapped.map((r) => r.item_key)).toEqual(movedByA);
    expect((await pipe.progress(a.id)).state).toBe('cancelled');
  }, 300_000);

  it('no KEK bytes in any process log (invariant 5)', () => {
    const guard = new LeakGuard();
    guard.secret(k1.material, k2.material, k3.material);
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
