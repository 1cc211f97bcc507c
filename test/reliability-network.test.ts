/**
 * Issue 20, scenario 4: network faults between the workers and S3, and between the workers and
 * KMS. Two TCP fault proxies (test/support/fault-proxy.ts) stand in front of RGW and the local
 * KMS; the workers know only the proxies (S3_ENDPOINT, KMS_ENDPOINT), with low request timeouts.
 * For the whole campaign every request is delayed 200 ms +- 100 and 1 % of them lose their
 * connection (RST) after the server received them; mid-campaign both proxies black-hole
 * everything for 20 s (connections accepted, no reply, no reset). Timeouts fire (the campaign
 * shows degraded), leases are kept (renewed through the ledger, which the faults do not touch)
 * and never lost silently: a batch that loses one says so and writes nothing more, and the
 * proof below finds every object written exactly once. Objects keep their envelope in metadata
 * in a versioned bucket: each write is a new version, so writes are counted at the store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { ListObjectVersionsCommand, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { createS3Client } from '../src/stores/s3-client.ts';
import { inventoryByKek } from '../src/ledger/index.ts';
import { getDecrypted, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { startFaultProxy, type FaultProxy, type NetFaults } from './support/fault-proxy.ts';
import { recordFigure, secondsSince } from './support/reliability-figures.ts';

const OBJECTS = 600;
const HOLE_MS = 20_000;
const REQUEST_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 1_000;
const NOISE: NetFaults = { latencyMs: 200, jitterMs: 100, resetRatio: 0.01 };

let pipe: Pipeline;
let s3: S3Client;
let kms: KMSClient;
let tb: TestBucket;
let s3Proxy: FaultProxy;
let kmsProxy: FaultProxy;
let keyA: string;
let keyB: string;
const payloads = new Map<string, Buffer>();

beforeAll(async () => {
  // The default lease (15 s) rather than the pipeline's 4 s: with 200 ms per request and a loaded
  // box, a 4 s lease leaves a renewal less than a second of slack before a batch fences itself.
  pipe = await startPipeline({ label: 'netfaults', workers: 0, env: { REWRAP_LEASE_MS: '15000' } });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  [keyA, keyB] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  tb = await freshBucket(s3, 'netfaults');
  await s3.send(new PutBucketVersioningCommand({ Bucket: tb.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  for (let i = 0; i < OBJECTS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, OBJECTS - i) }, async (_, j) => {
        const key = `n/${i + j}`;
        const payload = randomBytes(200);
        payloads.set(key, payload);
        await putEncrypted(s3, tb.bucket, key, payload, { placement: 'metadata', wrap: { kind: 'kms', kms, keyId: keyA!, matdesc: { app: 'net' } } });
      }),
    );
  }
  // The scheduler (already running) talks to S3 and KMS directly; the workers only through the proxies.
  s3Proxy = await startFaultProxy(env.endpoint, NOISE);
  kmsProxy = await startFaultProxy(pipe.kms.url, NOISE);
  Object.assign(pipe.env, {
    S3_ENDPOINT: s3Proxy.url,
    KMS_ENDPOINT: kmsProxy.url,
    REWRAP_S3_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    REWRAP_S3_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
    REWRAP_KMS_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    REWRAP_KMS_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
  });
  await pipe.startWorker();
  await pipe.startWorker();
}, 240_000);

afterAll(async () => {
  await pipe?.stop();
  await s3Proxy?.close();
  await kmsProxy?.close();
  await tb?.cleanup();
  kms?.destroy();
}, 180_000);

async function writesPerObject(): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (let km: string | undefined, vm: string | undefined, more = true; more; ) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: tb.bucket, KeyMarker: km, VersionIdMarker: vm }));
    for (const v of page.Versions ?? []) if (!v.Key!.startsWith('.rewrap-probe/')) versions.set(v.Key!, (versions.get(v.Key!) ?? 0) + 1);
    more = Boolean(page.IsTruncated);
    km = page.NextKeyMarker;
    vm = page.NextVersionIdMarker;
  }
  // The first version is the original object: every other one is a write.
  return new Map([...versions].map(([k, n]) => [k, n - 1]));
}

describe('network faults between workers and S3 / KMS (issue 20, scenario 4)', () => {
  it('latency 200 +- 100 ms, 1 % resets, a 20 s black hole: timeouts fire, leases hold, every object written exactly once', async () => {
    const c = await pipe.create({
      name: 'network faults',
      sources: [{ type: 's3', bucket: tb.bucket, placement: 'metadata' }],
      provider: { type: 'kms' },
      from: keyA,
      to: keyB,
      options: { batchSize: 50, concurrency: 8 },
    });
    const t0 = Date.now();
    await pipe.waitFor(c.id, 'under way', (p) => p.rewrapped >= OBJECTS / 5, 180_000);

    const mark = new Map(pipe.workers.map((w) => [w, w.lines.length]));
    const holeAt = Date.now();
    for (const p of [s3Proxy, kmsProxy]) p.set({ ...NOISE, blackhole: true });
    let detectSeconds: number | null = null;
    let degradedReason: string | null = null;
    // The fault lasts a set time; meanwhile, note when the campaign first shows degraded.
    while (Date.now() - holeAt < HOLE_MS) {
      if (detectSeconds === null) {
        const p = await pipe.progress(c.id);
        if (p.health.status === 'degraded') {
          detectSeconds = secondsSince(holeAt);
          degradedReason = p.health.reason;
        }
      }
      await sleep(200);
    }
    for (const p of [s3Proxy, kmsProxy]) p.set(NOISE);
    const holeEnd = Date.now();
    const at = await pipe.progress(c.id);
    expect(at.state).toBe('running');
    expect(at.failed).toBe(0);
    expect(detectSeconds, 'the black hole made the campaign degraded').not.toBeNull();
    expect(degradedReason).toMatch(/store-unavailable|provider-unavailable/);
    await pipe.waitFor(c.id, 'moving after the black hole', (p) => p.rewrapped + p.skipped > at.rewrapped + at.skipped || p.state === 'completed', 120_000);
    const recoverSeconds = secondsSince(holeEnd);
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 300_000);

    // Timeouts fired, and a lease that was lost said so (never silently).
    const timeouts = s3Proxy.stats.abandoned + kmsProxy.stats.abandoned; // dead connections only the client's timeout closes
    expect(timeouts).toBeGreaterThan(0);
    const retried = pipe.workers.flatMap((w) => w.lines.slice(mark.get(w) ?? 0)).filter((l) => l.includes('batch job will be retried')).length;
    const leaseLines = pipe.logs().split('\n').filter((l) => /batch lease lost|batch fenced|lease was taken over/.test(l));
    const leaseLost = leaseLines.length;
    if (leaseLost) console.log(`network: lease losses, e.g.\n${leaseLines.slice(0, 3).join('\n')}`);
    const { rows: held } = await pipe.db.pool.query('SELECT batch_no FROM rewrap_batches WHERE campaign_id = $1 AND (state <> $2 OR lease_until IS NOT NULL)', [c.id, 'done']);
    expect(held).toEqual([]);

    // Proof: every object decrypts under keyB only (KMS Decrypt with KeyId) to its payload.
    const keys = [...payloads.keys()];
    for (let i = 0; i < keys.length; i += 32) {
      await Promise.all(
        keys.slice(i, i + 32).map(async (key) => {
          const d = await getDecrypted(s3, tb.bucket, key, { kms, kmsKeyId: keyB });
          expect(d.payload.equals(payloads.get(key)!), key).toBe(true);
        }),
      );
    }
    expect(p.planned).toBe(OBJECTS);
    expect(p.failed).toBe(0);
    expect(p.rewrapped + p.skipped).toBe(OBJECTS);
    const inv = await inventoryByKek(pipe.db.pool);
    expect(inv.filter((r) => r.kekId === keyB).reduce((a, r) => a + r.items, 0)).toBe(OBJECTS);
    const writes = await writesPerObject();
    expect(writes.size).toBe(OBJECTS);
    const twice = [...writes].filter(([, n]) => n > 1);
    expect(twice).toEqual([]);
    expect([...writes.values()].every((n) => n === 1)).toBe(true);

    const s = (x: FaultProxy) => x.stats;
    const faults = `S3 and KMS: +200 +-100 ms per request (${s(s3Proxy).delayed + s(kmsProxy).delayed} delayed), ${s(s3Proxy).resets + s(kmsProxy).resets} connections reset, black hole ${HOLE_MS / 1000} s (${s(s3Proxy).blackholed + s(kmsProxy).blackholed} connections died); request timeouts ${REQUEST_TIMEOUT_MS} ms: ${timeouts} requests timed out, ${retried} batch attempts retried, ${leaseLost} leases lost (all logged)`;
    console.log(`network: ${faults}; degraded: ${degradedReason}`);
    expect(s(s3Proxy).resets + s(kmsProxy).resets).toBeGreaterThan(0);
    recordFigure({
      scenario: 'Network faults (S3 + KMS)',
      items: OBJECTS,
      faults,
      lost: OBJECTS - p.rewrapped - p.skipped,
      duplicatedWrites: twice.length,
      detectSeconds,
      recoverSeconds,
      wallSeconds: secondsSince(t0),
    });
  }, 480_000);
});
