/**
 * Issue 14, points 1 and 2: noncurrent versions in versioned buckets (invariant 7). Real RGW,
 * scheduler and worker processes, the real CLI.
 *   - report (default): the campaign completes; status and rewrap_inventory_items count the
 *     noncurrent versions under k@1 (the application's older ones, rewrap's own self-copies,
 *     instruction-file versions, the last version under a delete marker); kek retire (and
 *     --delete) refuses naming the bucket and the count.
 *   - delete (a bucket with object lock): after completion no version wraps a DEK under k@1
 *     except the locked ones (legal hold, COMPLIANCE, GOVERNANCE without the bypass), each with
 *     its reason in the ledger, each deletion in the ledger and the audit log; they block kek
 *     retire; a locked CURRENT object is still rewrapped and its new version keeps the lock;
 *     GOVERNANCE goes only with bypassGovernanceRetention. Delete markers and versions under
 *     another KEK stay. Every current object decrypts under k@2 with its bytes unchanged
 *     (independent reference client).
 *   - keep: campaign create warns on stderr; the campaign records it; retirement of its KEK is
 *     not blocked by them, and says so.
 * Measured on Ceph RGW 16.2: ObjectLockEnabledForBucket at CreateBucket, PutObjectRetention
 * GOVERNANCE and COMPLIANCE, legal holds, HEAD's x-amz-object-lock-* and AccessDenied ("forbidden
 * by object lock") on a locked delete all work; CopyObject ignores the lock headers (the store
 * puts the lock back, s3-object-lock.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Registry } from 'prom-client';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { registerBacklogMetrics } from '../src/metrics/backlog-metrics.ts';
import { campaignProgress, getCampaign, noncurrentCounts } from '../src/ledger/index.ts';
import { renderStatus } from '../src/cli/status-view.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli, specFile } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const j1 = { id: 'j', version: '1', material: randomBytes(32) };
const m1 = { id: 'm', version: '1', material: randomBytes(32) };
const m2 = { id: 'm', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material, j1.material, m1.material, m2.material);
const wrapOf = (k: typeof k1) => ({ kind: 'aes' as const, material: k.material, matdesc: { kek: `${k.id}@${k.version}` } });

let pipe: Pipeline;
let s3: S3Client;
let reportBucket: TestBucket;
let keepBucket: TestBucket;
let lockBucket: string;
let keyringFile: string;
/** The current payload of every object, by bucket and key. */
const payloads = new Map<string, Buffer>();
const HOUR = 3_600_000;

async function put(bucket: string, key: string, kek: typeof k1, placement: 'metadata' | 'instruction' = 'metadata') {
  const payload = randomBytes(64);
  await putEncrypted(s3, bucket, key, payload, { placement, wrap: wrapOf(kek) });
  payloads.set(`${bucket}/${key}`, payload);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: placement === 'instruction' ? `${key}.instruction` : key }));
  return head.VersionId!;
}

/** Every version and delete marker of the bucket, with the KEK its envelope names (metadata or instruction body). */
async function versionsOf(bucket: string) {
  const out: { key: string; versionId: string; latest: boolean; marker: boolean; kek?: string }[] = [];
  for (let km: string | undefined, vm: string | undefined, more = true; more; ) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, KeyMarker: km, VersionIdMarker: vm }));
    for (const d of page.DeleteMarkers ?? []) out.push({ key: d.Key!, versionId: d.VersionId!, latest: d.IsLatest === true, marker: true });
    for (const v of page.Versions ?? []) {
      let envelope: Record<string, string>;
      if (v.Key!.endsWith('.instruction')) {
        const o = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId }));
        envelope = JSON.parse(await o.Body!.transformToString());
      } else envelope = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId }))).Metadata ?? {};
      const matdesc = envelope['x-amz-matdesc'];
      out.push({ key: v.Key!, versionId: v.VersionId!, latest: v.IsLatest === true, marker: false, ...(matdesc ? { kek: (JSON.parse(matdesc) as { kek: string }).kek } : {}) });
    }
    more = page.IsTruncated === true;
    km = page.NextKeyMarker;
    vm = page.NextVersionIdMarker;
  }
  return out;
}

const locked: Record<string, string> = {};

beforeAll(async () => {
  pipe = await startPipeline({ label: 'noncurrent-versions', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  keyringFile = await pipe.keyringFile([k1, k2, j1, m1, m2]);
  reportBucket = await freshBucket(s3, 'nc-report');
  keepBucket = await freshBucket(s3, 'nc-keep');
  lockBucket = `t-nc-lock-${randomBytes(4).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket: lockBucket, ObjectLockEnabledForBucket: true })); // versioned by that
  for (const b of [reportBucket.bucket, keepBucket.bucket]) await s3.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Enabled' } }));

  for (const b of [reportBucket.bucket, lockBucket]) {
    // Written twice under k@1 before any campaign: one pre-existing noncurrent version each.
    for (const key of ['o/0', 'o/1']) for (let n = 0; n < 2; n++) await put(b, key, k1);
    await put(b, 'o/2', k1);
    for (let n = 0; n < 2; n++) await put(b, 'i/0', k1, 'instruction');
    // A deleted object: its only version is noncurrent under a delete marker.
    await put(b, 'd/0', k1);
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'd/0' }));
    payloads.delete(`${b}/d/0`);
    // Under another KEK: never rewrapped, never deleted.
    for (let n = 0; n < 2; n++) await put(b, 'j/0', j1);
  }
  // Object lock on older versions (the sweep must leave them) and on a current one (rewrap must still rewrite it).
  const first = async (key: string) => {
    const v = await put(lockBucket, key, k1);
    await put(lockBucket, key, k1);
    return v;
  };
  locked.g = await first('g/0');
  await s3.send(new PutObjectRetentionCommand({ Bucket: lockBucket, Key: 'g/0', VersionId: locked.g, Retention: { Mode: 'GOVERNANCE', RetainUntilDate: new Date(Date.now() + HOUR) } }));
  locked.h = await first('h/0');
  await s3.send(new PutObjectLegalHoldCommand({ Bucket: lockBucket, Key: 'h/0', VersionId: locked.h, LegalHold: { Status: 'ON' } }));
  locked.c = await first('c/0');
  // COMPLIANCE cannot be lifted by anyone: 10 minutes, longer than this file runs on a loaded box (see afterAll).
  await s3.send(new PutObjectRetentionCommand({ Bucket: lockBucket, Key: 'c/0', VersionId: locked.c, Retention: { Mode: 'COMPLIANCE', RetainUntilDate: new Date(Date.now() + 600_000) } }));
  locked.l = await put(lockBucket, 'l/0', k1);
  await s3.send(new PutObjectRetentionCommand({ Bucket: lockBucket, Key: 'l/0', VersionId: locked.l, Retention: { Mode: 'GOVERNANCE', RetainUntilDate: new Date(Date.now() + HOUR) } }));
  await s3.send(new PutObjectLegalHoldCommand({ Bucket: lockBucket, Key: 'l/0', VersionId: locked.l, LegalHold: { Status: 'ON' } }));

  for (const key of ['k/0', 'k/1']) for (let n = 0; n < 2; n++) await put(keepBucket.bucket, key, m1);
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await reportBucket?.cleanup();
  await keepBucket?.cleanup();
  if (lockBucket) {
    // Lift what can be lifted; the COMPLIANCE version stays until its retention ends (10 minutes,
    // nobody can shorten it): on the throwaway RGW the bucket goes with the server at the end of the run.
    for (const v of await versionsOf(lockBucket).catch(() => [])) {
      await s3.send(new PutObjectLegalHoldCommand({ Bucket: lockBucket, Key: v.key, VersionId: v.versionId, LegalHold: { Status: 'OFF' } })).catch(() => undefined);
      await s3.send(new DeleteObjectCommand({ Bucket: lockBucket, Key: v.key, VersionId: v.versionId, BypassGovernanceRetention: true })).catch(() => undefined);
    }
    await s3.send(new DeleteBucketCommand({ Bucket: lockBucket })).catch(() => undefined);
  }
});

const store = (b: string) => `s3://${b}`;
const underK2 = { aes: new Map([[matdescKey({ kek: 'k@2' }), k2.material], [matdescKey({ kek: 'j@1' }), j1.material], [matdescKey({ kek: 'm@2' }), m2.material]]) };

async function cli(args: string[]) {
  const r = await rewrapCli(pipe, args);
  guard.text(r.stdout, r.stderr);
  return r;
}

async function campaign(bucket: string, options: Record<string, unknown>) {
  const c = await pipe.create({ name: `nc ${bucket}`, sources: [{ type: 's3', bucket }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2', options: { batchSize: 5, allowUnconditionalWrites: true, ...options } });
  await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 90_000);
  return c.id;
}

async function ledgerStates(campaignId: string) {
  const { rows } = await pipe.db.pool.query(`SELECT item_key, version_id, state, reason FROM rewrap_noncurrent_versions WHERE campaign_id = $1 ORDER BY item_key, version_id`, [campaignId]);
  return rows as { item_key: string; version_id: string; state: string; reason: string | null }[];
}

async function currentObjectsDecryptUnderTarget(bucket: string) {
  for (const [k, payload] of payloads) {
    if (!k.startsWith(`${bucket}/`)) continue;
    const d = await getDecrypted(s3, bucket, k.slice(bucket.length + 1), underK2);
    expect(d.payload.equals(payload), k).toBe(true);
    if (!k.includes('/j/')) expect(JSON.parse(d.envelope['x-amz-matdesc']!)).toEqual({ kek: 'k@2' });
  }
}

describe('noncurrent versions: report, delete, keep (issue 14, invariant 7)', () => {
  let reportId: string;
  let deleteId: string;
  let keepId: string;

  it('the three campaigns complete; keep is warned about on stderr and recorded on the campaign', async () => {
    const keepSpec = await specFile(pipe, {
      name: 'nc keep',
      sources: [{ type: 's3', bucket: keepBucket.bucket }],
      provider: { type: 'local', keyringFile },
      from: 'm@1',
      to: 'm@2',
      options: { noncurrentVersions: 'keep' },
    });
    const created = await cli(['campaign', 'create', '--spec', keepSpec, '--start', '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toMatch(/warning: "noncurrentVersions": "keep": noncurrent versions under m@1 in versioned buckets are counted but will NOT block kek retire/);
    keepId = jsonOf<{ id: string }>(created).id;
    [reportId, deleteId] = await Promise.all([campaign(reportBucket.bucket, {}), campaign(lockBucket, { noncurrentVersions: 'delete' })]);
    await pipe.waitFor(keepId, 'completed', (x) => x.state === 'completed', 90_000);
    await currentObjectsDecryptUnderTarget(reportBucket.bucket);
    await currentObjectsDecryptUnderTarget(lockBucket);
  }, 180_000);

  it('report: status and rewrap_inventory_items{version="noncurrent"} count the versions under k@1 (older ones, self-copies, instruction files, under a delete marker); nothing is deleted', async () => {
    const versions = await versionsOf(reportBucket.bucket);
    const underK1 = versions.filter((v) => !v.latest && v.kek === 'k@1');
    // o/0, o/1: older + self-copy; o/2: self-copy; i/0.instruction: older + own rewrite; d/0: under its delete marker.
    expect(underK1.map((v) => v.key).sort()).toEqual(['d/0', 'i/0.instruction', 'i/0.instruction', 'o/0', 'o/0', 'o/1', 'o/1', 'o/2']);
    expect(versions.filter((v) => v.marker && v.latest).map((v) => v.key)).toEqual(['d/0']);
    const status = await cli(['campaign', 'status', reportId, '--json']);
    expect(jsonOf<{ noncurrentVersions: unknown }>(status).noncurrentVersions).toMatchObject({ mode: 'report', sweptAt: expect.any(String), byStore: { [store(reportBucket.bucket)]: { exposed: 8 } } });
    const c = (await getCampaign(pipe.db.pool, reportId))!;
    const human = renderStatus(c, await campaignProgress(pipe.db.pool, reportId), [], await noncurrentCounts(pipe.db.pool, reportId));
    expect(human).toContain(`noncurrent versions under k@1: "report"; sweep done`);
    expect(human).toContain(`${store(reportBucket.bucket)}: exposed 8`);
    expect((await ledgerStates(reportId)).map((r) => `${r.item_key}|${r.version_id}`).sort()).toEqual(underK1.map((v) => `${v.key}|${v.versionId}`).sort());

    const registry = new Registry();
    registerBacklogMetrics(registry, pipe.db.pool, 0);
    const text = await registry.metrics();
    expect(text).toContain(`rewrap_inventory_items{store="${store(reportBucket.bucket)}",kek_id="k",kek_version="1",version="noncurrent"} 8`);
    expect(text).toMatch(new RegExp(`rewrap_inventory_items\\{store="${store(reportBucket.bucket)}",kek_id="k",kek_version="2",version="current"\\} 4`));
  }, 120_000);

  it('delete: no version under k@1 is left but the locked ones (legal hold, COMPLIANCE, GOVERNANCE), each with its reason; each deletion in the ledger and the audit log; delete markers and other KEKs stay; a locked current object is rewritten and keeps its lock', async () => {
    const versions = await versionsOf(lockBucket);
    const left = versions.filter((v) => !v.latest && v.kek === 'k@1');
    expect(left.map((v) => v.versionId).sort()).toEqual([locked.g, locked.h, locked.c, locked.l].sort());
    expect(versions.filter((v) => v.marker).map((v) => `${v.key}:${v.latest}`)).toEqual(['d/0:true']); // the delete marker stays
    expect(versions.filter((v) => v.key === 'j/0' && v.kek === 'j@1')).toHaveLength(2);
    expect(versions.filter((v) => v.latest && !v.marker).every((v) => v.kek === 'k@2' || v.kek === 'j@1' || v.kek === undefined)).toBe(true);

    const rows = await ledgerStates(deleteId);
    const byState = (s: string) => rows.filter((r) => r.state === s);
    expect(byState('locked').map((r) => `${r.item_key}:${r.reason}`).sort()).toEqual(['c/0:retention-compliance', 'g/0:retention-governance', 'h/0:legal-hold', 'l/0:legal-hold']);
    // o/0, o/1 x2, o/2, i/0.instruction x2, d/0, and the self-copies of g/0, h/0, c/0.
    expect(byState('deleted').map((r) => r.item_key).sort()).toEqual(['c/0', 'd/0', 'g/0', 'h/0', 'i/0.instruction', 'i/0.instruction', 'o/0', 'o/0', 'o/1', 'o/1', 'o/2']);
    for (const r of byState('deleted')) expect(versions.some((v) => v.versionId === r.version_id)).toBe(false);
    const audit = pipe
      .logs()
      .split('\n')
      .filter((l) => l.includes('"event":"version.deleted"'))
      .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as { store: string; item: string; versionId: string });
    expect(audit.filter((a) => a.store === store(lockBucket)).map((a) => a.versionId).sort()).toEqual(byState('deleted').map((r) => r.version_id).sort());

    // The locked current object was rewrapped (a new version) and its lock carried over.
    const l0 = await s3.send(new HeadObjectCommand({ Bucket: lockBucket, Key: 'l/0' }));
    expect(l0.VersionId).not.toBe(locked.l);
    const evidence = pipe.logs().split('\n').filter((l) => l.includes('l/0')).join('\n');
    expect({ hold: l0.ObjectLockLegalHoldStatus, mode: l0.ObjectLockMode }, evidence).toEqual({ hold: 'ON', mode: 'GOVERNANCE' });
  }, 120_000);

  it('kek retire k@1 (and --delete) is refused naming each bucket and its count; the locked leftovers with their reasons; k@1 stays', async () => {
    const runs = await Promise.all([[], ['--delete']].map((extra) => cli(['kek', 'retire', 'k@1', '--grace', '0', '--json', ...extra])));
    for (const r of runs) {
      expect(r.code, r.stdout + r.stderr).toBe(3);
      const blockers = jsonOf<{ blockers: string[] }>(r).blockers;
      expect(blockers).toContainEqual(expect.stringMatching(new RegExp(`^${store(reportBucket.bucket)}: 8 noncurrent version\\(s\\) still under k@1: the newest campaign over their keys reports them`)));
      expect(blockers).toContainEqual(
        expect.stringMatching(new RegExp(`^${store(lockBucket)}: 4 noncurrent version\\(s\\) still under k@1 \\(4 under object lock: 2 legal-hold, 1 retention-compliance, 1 retention-governance\\): left after the noncurrent sweep`)),
      );
    }
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`)).toContain('k@1:enabled');
  }, 120_000);

  it('GOVERNANCE retention goes only with bypassGovernanceRetention; legal holds and COMPLIANCE never', async () => {
    const id = await campaign(lockBucket, { noncurrentVersions: 'delete', bypassGovernanceRetention: true });
    const left = (await versionsOf(lockBucket)).filter((v) => !v.latest && v.kek === 'k@1');
    expect(left.map((v) => v.versionId).sort()).toEqual([locked.h, locked.c, locked.l].sort());
    const rows = await ledgerStates(id);
    expect(rows.map((r) => `${r.item_key}:${r.state}:${r.reason}`).sort()).toEqual(['c/0:locked:retention-compliance', 'g/0:deleted:null', 'h/0:locked:legal-hold', 'l/0:locked:legal-hold']);
    await currentObjectsDecryptUnderTarget(lockBucket);
    const registry = new Registry();
    registerBacklogMetrics(registry, pipe.db.pool, 0);
    expect(await registry.metrics()).toContain(`rewrap_inventory_items{store="${store(lockBucket)}",kek_id="k",kek_version="1",version="noncurrent"} 3`);
  }, 120_000);

  it('keep: the versions are counted and listed, and do not block retiring m@1', async () => {
    const status = await cli(['campaign', 'status', keepId, '--json']);
    expect(jsonOf<{ noncurrentVersions: unknown }>(status).noncurrentVersions).toMatchObject({ mode: 'keep', byStore: { [store(keepBucket.bucket)]: { kept: 4 } } });
    const r = await cli(['kek', 'retire', 'm@1', '--grace', '0', '--json']);
    const out = jsonOf<{ action: string | null; blockers: string[]; noncurrent: unknown[] }>(r);
    expect(r.code, JSON.stringify(out.blockers)).toBe(0);
    expect(out.action).toBe('disabled');
    expect(out.noncurrent).toEqual([{ storeId: store(keepBucket.bucket), mode: 'keep', versions: 4, lockedByReason: {}, blocking: false }]);
  }, 120_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
