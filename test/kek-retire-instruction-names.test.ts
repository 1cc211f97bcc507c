/**
 * The planner leaves every `<key>.instruction` name to the delta pass (S3ListSource), where it is
 * checked for the instruction-file marker: an object merely named so is an item. So a campaign
 * cancelled after its plan but before a delta pass never looked at such an object, and the
 * retirement gate must count it as "cannot tell" (invariant 7). Here `p/foo.instruction` is an
 * ordinary object encrypted under k@1 (envelope in its metadata, no marker): the plan of campaign
 * A finds nothing in `p/`; A is cancelled; campaign C moves `q/x` and `q/y` (envelope in its
 * instruction file) from k@1 (so the gate has moved items to sample, and nothing else blocks; the
 * ledger keeps the ETag of `q/y.instruction` as C's worker wrote it, the one its delta pass lists); `kek retire k@1` (the real CLI) refuses, naming A
 * alone, and k@1 stays enabled (before the rule: exit 0, k@1 disabled, p/foo.instruction under it). Campaign B over the same scope runs to completion, its delta pass plans and
 * moves `p/foo.instruction` (it decrypts under k@2), and then the gate passes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client, normalizeEtag } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { setCampaignState } from '../src/ledger/index.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material);

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
let keyringFile: string;

interface RetireJson {
  retired: boolean;
  blockers: string[];
}

async function retire(): Promise<{ code: number; json: RetireJson }> {
  const r = await rewrapCli(pipe, ['kek', 'retire', 'k@1', '--grace', '0', '--json']);
  guard.text(r.stdout, r.stderr);
  return { code: r.code, json: jsonOf<RetireJson>(r) };
}

const underK2 = { aes: new Map([[matdescKey({ kek: 'k@2' }), k2.material]]) };
const keyring = () => loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`);

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire-instr-names', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'retire-instr-names');
  keyringFile = await pipe.keyringFile([k1, k2]);
  const wrap = { kind: 'aes' as const, material: k1.material, matdesc: { kek: 'k@1' } };
  await putEncrypted(s3, tb.bucket, 'p/foo.instruction', randomBytes(100), { placement: 'metadata', wrap });
  await putEncrypted(s3, tb.bucket, 'q/x', randomBytes(100), { placement: 'metadata', wrap });
  await putEncrypted(s3, tb.bucket, 'q/y', randomBytes(100), { placement: 'instruction', wrap });
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
  await tb?.cleanup();
});

const spec = (name: string, prefix = 'p/') => ({ name, sources: [{ type: 's3', bucket: tb.bucket, prefix }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2' });

describe('.instruction names checked in the delta pass, and the retirement gate (invariant 7)', () => {
  it('a campaign cancelled after its plan, before its delta pass, blocks kek retire (exit 3, it alone named) and k@1 stays enabled (invariant 7)', async () => {
    const a = await pipe.create(spec('cancelled after plan'), false);
    const planned = await pipe.waitFor(a.id, 'planned', (p) => p.planDone, 60_000);
    expect(planned.planned).toBe(0); // p/foo.instruction is left to the delta pass
    expect(await setCampaignState(pipe.db.pool, a.id, ['planning'], 'cancelled')).toBe(true);
    const c = await pipe.create(spec('elsewhere', 'q/'));
    expect(await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 120_000)).toMatchObject({ planned: 2, rewrapped: 2, skipped: 0, failed: 0 });
    for (const key of ['q/x', 'q/y']) expect((await getDecrypted(s3, tb.bucket, key, underK2)).payload.length).toBe(100);
    // What makes the delta pass's check of q/y.instruction free: the ETag the worker recorded is the one S3 lists.
    const { rows } = await pipe.db.pool.query<{ item_key: string; envelope_file_etag: string | null }>(
      `SELECT item_key, envelope_file_etag FROM rewrap_campaign_items WHERE campaign_id = $1 ORDER BY item_key`,
      [c.id],
    );
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: tb.bucket, Prefix: 'q/y.instruction' }));
    expect(rows).toEqual([
      { item_key: 'q/x', envelope_file_etag: null },
      { item_key: 'q/y', envelope_file_etag: normalizeEtag(listed.Contents?.[0]?.ETag) },
    ]);

    const r = await retire();
    expect(r.code, JSON.stringify(r.json)).toBe(3);
    expect(r.json.retired).toBe(false);
    expect(r.json.blockers).toEqual([
      `campaign ${a.id} (cancelled after plan) was cancelled before its delta pass: objects named <key>.instruction that are not instruction files (items) were never checked and may still be under k@1; run a campaign from k@1 over its scope to completion`,
    ]);
    expect(keyring()).toContain('k@1:enabled');
  }, 120_000);

  it('a campaign over the same scope run to completion moves p/foo.instruction (its delta pass plans it), and then the gate passes', async () => {
    const b = await pipe.create(spec('to completion'));
    const p = await pipe.waitFor(b.id, 'completed', (x) => x.state === 'completed', 120_000);
    expect(p).toMatchObject({ planned: 1, rewrapped: 1, skipped: 0, failed: 0 });
    expect((await getDecrypted(s3, tb.bucket, 'p/foo.instruction', underK2)).payload.length).toBe(100);

    const r = await retire();
    expect(r.code, JSON.stringify(r.json)).toBe(0);
    expect(r.json.retired).toBe(true);
    expect(keyring()).not.toContain('k@1:enabled');
  }, 180_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
