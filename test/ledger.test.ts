/**
 * The ledger against real Postgres, in a fresh schema for this file.
 * Test titles state the invariant or postcondition they check.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { loadMigrations } from '../src/ledger/migrate.ts';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { DEFAULT_OPTIONS, type CampaignOptions, type CampaignSpec } from '../src/core/campaign-spec.ts';
import {
  addPlannedItems,
  beginDeltaPass,
  deltaPassChanges,
  campaignFailures,
  campaignProgress,
  claimBatch,
  commitBatch,
  countInFlight,
  countKeysUnderKek,
  createCampaign,
  failureCountsByReason,
  getCampaign,
  inventoryByKek,
  isCampaignComplete,
  listCampaigns,
  listEnqueuedUnfinished,
  markEnqueued,
  markPending,
  migrate,
  nextPendingBatches,
  recordBatchFailure,
  releaseLease,
  renewLease,
  replanItems,
  setCampaignState,
  CampaignConflictError,
  type Campaign,
  type ItemOutcomeRecord,
  type NewCampaign,
  type Scope,
} from '../src/ledger/index.ts';
import { eventually } from './support/eventually.ts';

let db: TestSchema;
let bucketSeq = 0;
/** A bucket name no other test in this file uses, so tests do not block each other's scopes. */
const bucket = () => `s3://ledger-test-${++bucketSeq}`;

function campaignInput(name: string, scopes: Scope[], options: Partial<CampaignOptions> = {}): NewCampaign {
  const spec: CampaignSpec = {
    name,
    kind: 'routine',
    sources: scopes.map((s) => ({ type: 's3' as const, bucket: s.storeId.replace('s3://', ''), prefix: s.prefix })),
    provider: { type: 'local', keyringFile: '/etc/rewrap/keyring.json' },
    from: { id: 'kek-a', version: '1' },
    to: { id: 'kek-a', version: '2' },
    options: { ...DEFAULT_OPTIONS, ...options },
  };
  return { name, kind: 'routine', spec, scopes };
}

const keys = (prefix: string, n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(from + i).padStart(5, '0')}`);

const FROM = { id: 'kek-a', version: '1' };
const TO = { id: 'kek-a', version: '2' };
const rewrapped = (storeId: string, itemKey: string): ItemOutcomeRecord => ({ storeId, itemKey, outcome: 'rewrapped', from: FROM, to: TO });
const failed = (storeId: string, itemKey: string, reason = 'access-denied'): ItemOutcomeRecord => ({
  storeId,
  itemKey,
  outcome: 'failed',
  reason,
  detail: `provider refused kek-a for ${itemKey}`,
  currentKek: FROM,
});

/** A running campaign over a fresh bucket with `n` planned items in batches of `batchSize`. */
async function runningCampaign(n: number, batchSize: number, options: Partial<CampaignOptions> = {}): Promise<{ c: Campaign; store: string }> {
  const store = bucket();
  const c = await createCampaign(db.pool, campaignInput(`run-${store}`, [{ storeId: store }], options));
  await addPlannedItems(db.pool, c.id, store, keys('k', n), batchSize, { after: 'end' }, true);
  expect(await setCampaignState(db.pool, c.id, ['planning'], 'running')).toBe(true);
  return { c, store };
}

async function claimed(campaignId: string, batchNo: number, owner: string, leaseMs = 30_000) {
  const r = await claimBatch(db.pool, { campaignId, batchNo, owner, leaseMs });
  if (r.status !== 'claimed') throw new Error(`expected to claim ${campaignId}/${batchNo}, got ${JSON.stringify(r)}`);
  return r;
}

beforeAll(async () => {
  db = await freshSchema('ledger');
  await migrate(db.pool);
});

afterAll(async () => {
  await db?.drop();
});

describe('migrate', () => {
  it('is idempotent and safe when 3 processes run it at once on a new schema', async () => {
    const fresh = await freshSchema('ledger_migrate');
    // Three separate pools: three "processes" starting together.
    const pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: fresh.url, max: 1 }));
    try {
      const all = (await loadMigrations()).map((m) => m.id);
      const results = await Promise.all(pools.map((p) => migrate(p)));
      expect(results.flat().sort((a, b) => a - b)).toEqual(all); // each applied exactly once
      expect(await migrate(fresh.pool)).toEqual([]);
      const { rows } = await fresh.pool.query('SELECT id FROM rewrap_migrations ORDER BY id');
      expect(rows).toEqual(all.map((id) => ({ id })));
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      await fresh.drop();
    }
  });
});

describe('createCampaign', () => {
  it('creates a campaign in planning with an id safe for job ids, and reads it back', async () => {
    const store = bucket();
    const c = await createCampaign(db.pool, { ...campaignInput('first', [{ storeId: store, prefix: 'a/' }]), priority: 5 });
    expect(c.id).toMatch(/^c[a-z2-7]{10}$/);
    expect(c).toMatchObject({ name: 'first', kind: 'routine', state: 'planning', priority: 5, planDone: false, scopes: [{ storeId: store, prefix: 'a/' }] });
    expect(await getCampaign(db.pool, c.id)).toEqual(c);
    expect((await listCampaigns(db.pool, { states: ['planning'] })).map((x) => x.id)).toContain(c.id);
    expect(await getCampaign(db.pool, 'cnotthere00')).toBeUndefined();
  });

  it('refuses an overlapping scope of an active campaign, naming the other campaign, its state and the scope', async () => {
    const store = bucket();
    const a = await createCampaign(db.pool, campaignInput('a', [{ storeId: store, prefix: 'photos/' }]));
    const attempt = createCampaign(db.pool, campaignInput('b', [{ storeId: store, prefix: 'photos/2024/' }]));
    await expect(attempt).rejects.toBeInstanceOf(CampaignConflictError);
    await expect(attempt).rejects.toThrow(`campaign ${a.id} (state planning)`);
    await expect(attempt).rejects.toThrow(`${store} prefix "photos/2024/" overlaps scope ${store} prefix "photos/"`);
    // A whole-store scope overlaps every prefix of that store.
    await expect(createCampaign(db.pool, campaignInput('c', [{ storeId: store }]))).rejects.toThrow(CampaignConflictError);
    // Paused is still active.
    await setCampaignState(db.pool, a.id, ['planning'], 'paused', 'operator');
    await expect(createCampaign(db.pool, campaignInput('d', [{ storeId: store, prefix: 'p' }]))).rejects.toThrow('(state paused)');
  });

  it('allows scopes that do not overlap: sibling prefixes, other stores, and after the other completed', async () => {
    const store = bucket();
    const a = await createCampaign(db.pool, campaignInput('a', [{ storeId: store, prefix: 'photos/' }]));
    await createCampaign(db.pool, campaignInput('sibling', [{ storeId: store, prefix: 'videos/' }]));
    await createCampaign(db.pool, campaignInput('other store', [{ storeId: bucket() }]));
    expect(await setCampaignState(db.pool, a.id, ['planning'], 'completed')).toBe(true);
    await createCampaign(db.pool, campaignInput('after', [{ storeId: store, prefix: 'photos/x' }]));
  });

  it('refuses overlap with a cancelled campaign while one of its leases is live, says when to retry, and allows it after expiry', async () => {
    const { c, store } = await runningCampaign(4, 2);
    await claimed(c.id, 1, 'worker-1', 1_500);
    expect(await setCampaignState(db.pool, c.id, ['running'], 'cancelled')).toBe(true);
    const err = await createCampaign(db.pool, campaignInput('again', [{ storeId: store }])).catch((e) => e);
    expect(err).toBeInstanceOf(CampaignConflictError);
    expect(err.message).toMatch(new RegExp(`campaign ${c.id} \\(state cancelled\\), whose workers may still hold leases until .*; retry after that time`));
    expect(err.retryAfter).toBeInstanceOf(Date);
    const created = await eventually('the cancelled campaign lease to expire', () =>
      createCampaign(db.pool, campaignInput('again', [{ storeId: store }])).catch((e) => (e instanceof CampaignConflictError ? undefined : Promise.reject(e))),
    );
    expect(created.state).toBe('planning');
    expect(Date.now()).toBeGreaterThanOrEqual(err.retryAfter.getTime() - 50);
  });

  it('admits only one of two overlapping campaigns created at the same moment', async () => {
    const store = bucket();
    const results = await Promise.allSettled([0, 1, 2].map((i) => createCampaign(db.pool, campaignInput(`race-${i}`, [{ storeId: store }]))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof CampaignConflictError)).toHaveLength(2);
  });

  it('rejects invalid input with a message naming the field', async () => {
    await expect(createCampaign(db.pool, { ...campaignInput('x', [{ storeId: bucket() }]), scopes: [] })).rejects.toThrow('campaign scopes: expected a non-empty array');
    await expect(createCampaign(db.pool, { ...campaignInput('x', [{ storeId: bucket() }]), priority: 1.5 })).rejects.toThrow('priority: expected an integer');
  });
});

describe('setCampaignState', () => {
  it('is a compare-and-set that never leaves a terminal state', async () => {
    const c = await createCampaign(db.pool, campaignInput('cas', [{ storeId: bucket() }]));
    expect(await setCampaignState(db.pool, c.id, ['running'], 'paused')).toBe(false);
    expect(await setCampaignState(db.pool, c.id, ['planning'], 'running')).toBe(true);
    expect((await getCampaign(db.pool, c.id))!.startedAt).toBeInstanceOf(Date);
    expect(await setCampaignState(db.pool, c.id, ['running'], 'paused', 'maintenance window')).toBe(true);
    expect((await getCampaign(db.pool, c.id))!.pauseReason).toBe('maintenance window');
    expect(await setCampaignState(db.pool, c.id, ['paused'], 'cancelled')).toBe(true);
    await expect(setCampaignState(db.pool, c.id, ['cancelled'], 'running')).rejects.toThrow('never leaves state cancelled');
  });
});

describe('planning', () => {
  it('cuts new items into batches, saves the cursor, and plans nothing new when the same page comes again', async () => {
    const store = bucket();
    const c = await createCampaign(db.pool, campaignInput('plan', [{ storeId: store }]));
    const first = await addPlannedItems(db.pool, c.id, store, keys('a', 25), 10, { page: 1 }, false);
    expect(first).toEqual({ planned: 25, requeued: 0, batchNos: [1, 2, 3] });
    expect((await getCampaign(db.pool, c.id))!.planCursor).toEqual({ page: 1 });
    // A scheduler that crashed after the commit re-sends the page: nothing is planned twice.
    const again = await addPlannedItems(db.pool, c.id, store, keys('a', 25), 10, { page: 1 }, false);
    expect(again).toEqual({ planned: 0, requeued: 0, batchNos: [] });
    // Overlapping page (half old, half new) and a key repeated inside the page.
    const next = await addPlannedItems(db.pool, c.id, store, [...keys('a', 10, 20), 'a00029'], 10, { page: 2 }, true);
    expect(next).toEqual({ planned: 5, requeued: 0, batchNos: [4] });
    const batches = await nextPendingBatches(db.pool, c.id, 10);
    expect(batches).toEqual([
      { batchNo: 1, storeId: store, itemCount: 10 },
      { batchNo: 2, storeId: store, itemCount: 10 },
      { batchNo: 3, storeId: store, itemCount: 5 },
      { batchNo: 4, storeId: store, itemCount: 5 },
    ]);
    const p = await campaignProgress(db.pool, c.id);
    expect(p).toMatchObject({ planned: 30, remaining: 30, planDone: true, batches: { pending: 4, enqueued: 0, done: 0 } });
    expect((await getCampaign(db.pool, c.id))!.planCursor).toEqual({ page: 2 });
  });

  it('a first-pass page planned without the probe still never plans a key twice nor counts it twice', async () => {
    const store = bucket();
    const c = await createCampaign(db.pool, campaignInput('plan-unprobed', [{ storeId: store }]));
    expect(await addPlannedItems(db.pool, c.id, store, keys('a', 25), 10, { page: 1 }, false, false)).toEqual({ planned: 25, requeued: 0, batchNos: [1, 2, 3] });
    // A source that lists keys again (a00020..a00024) next to new ones (a00025..a00034).
    const next = await addPlannedItems(db.pool, c.id, store, keys('a', 15, 20), 10, { page: 2 }, true, false);
    expect(next.planned).toBe(10);
    const batches = await nextPendingBatches(db.pool, c.id, 10);
    expect(batches.reduce((n, b) => n + b.itemCount, 0)).toBe(35);
    expect(new Set(batches.map((b) => b.batchNo)).size).toBe(batches.length);
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ planned: 35, remaining: 35, planDone: true });
  });

  it('refuses a store outside the campaign scopes and a terminal campaign', async () => {
    const store = bucket();
    const c = await createCampaign(db.pool, campaignInput('plan-guard', [{ storeId: store }]));
    await expect(addPlannedItems(db.pool, c.id, 's3://elsewhere', ['x'], 10, null, false)).rejects.toThrow(`store s3://elsewhere is not in the scopes of campaign ${c.id}`);
    await setCampaignState(db.pool, c.id, ['planning'], 'cancelled');
    await expect(addPlannedItems(db.pool, c.id, store, ['x'], 10, null, false)).rejects.toThrow('is cancelled; nothing more can be planned');
  });

  it('tracks enqueued batches for the scheduler window and the reconciler', async () => {
    const { c } = await runningCampaign(30, 10);
    expect(await markEnqueued(db.pool, c.id, [1, 2])).toBe(2);
    expect(await markEnqueued(db.pool, c.id, [1])).toBe(0); // already enqueued
    expect(await countInFlight(db.pool, c.id)).toBe(2);
    expect((await nextPendingBatches(db.pool, c.id, 10)).map((b) => b.batchNo)).toEqual([3]);
    expect((await listEnqueuedUnfinished(db.pool, c.id)).map((b) => b.batchNo)).toEqual([1, 2]);
    expect(await markPending(db.pool, c.id, [2])).toBe(1);
    expect((await nextPendingBatches(db.pool, c.id, 10)).map((b) => b.batchNo)).toEqual([2, 3]);
    expect(await countInFlight(db.pool, c.id)).toBe(1);
  });
});

describe('leases', () => {
  it('claims only while running; a live lease of another owner is refused; the same owner may re-claim', async () => {
    const store = bucket();
    const c = await createCampaign(db.pool, campaignInput('lease', [{ storeId: store }]));
    await addPlannedItems(db.pool, c.id, store, keys('k', 3), 10, null, true);
    expect(await claimBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', leaseMs: 10_000 })).toEqual({ status: 'campaign-not-running', state: 'planning' });
    await setCampaignState(db.pool, c.id, ['planning'], 'running');
    const r = await claimed(c.id, 1, 'w1');
    expect(r.batch).toMatchObject({ batchNo: 1, storeId: store, items: keys('k', 3), attempts: 1 });
    expect(r.campaign.spec.options.batchSize).toBe(DEFAULT_OPTIONS.batchSize);
    expect(await claimBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w2', leaseMs: 10_000 })).toMatchObject({ status: 'leased', leaseOwner: 'w1' });
    expect((await claimed(c.id, 1, 'w1')).batch.attempts).toBe(2);
    expect(await claimBatch(db.pool, { campaignId: c.id, batchNo: 99, owner: 'w1', leaseMs: 10_000 })).toEqual({ status: 'not-found' });
    expect(await releaseLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1' })).toBe(true);
    expect((await claimed(c.id, 1, 'w2')).batch.attempts).toBe(3);
  });

  it('fencing: a worker whose lease expired and was taken over cannot commit; nothing it sent is written', async () => {
    const { c, store } = await runningCampaign(4, 4);
    await claimed(c.id, 1, 'slow', 150);
    // 'fast' takes over as soon as the slow worker's lease has expired.
    await eventually('the lease of "slow" to expire', async () => {
      const r = await claimBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'fast', leaseMs: 30_000 });
      return r.status === 'claimed' ? r : undefined;
    });
    expect((await renewLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'slow', leaseMs: 30_000 })).ok).toBe(false);
    const stale = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'slow', outcomes: keys('k', 4).map((k) => failed(store, k)), final: true });
    expect(stale).toEqual({ status: 'fenced', leaseOwner: 'fast' });
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ rewrapped: 0, failed: 0, remaining: 4 });
    expect(await failureCountsByReason(db.pool, c.id)).toEqual([]);
    const ok = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'fast', outcomes: keys('k', 4).map((k) => rewrapped(store, k)), final: true });
    expect(ok).toMatchObject({ status: 'committed', changed: 4, batchDone: true });
  });

  it('renew extends our lease while running, and fails once the campaign is paused or cancelled', async () => {
    const { c } = await runningCampaign(4, 2);
    const r = await claimed(c.id, 1, 'w1', 1_000);
    const renewed = await renewLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', leaseMs: 60_000 });
    expect(renewed.ok).toBe(true);
    expect(renewed.leaseUntil!.getTime()).toBeGreaterThan(r.batch.leaseUntil.getTime() + 30_000);
    expect((await renewLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w2', leaseMs: 60_000 })).ok).toBe(false);
    await setCampaignState(db.pool, c.id, ['running'], 'paused');
    expect(await renewLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', leaseMs: 60_000 })).toEqual({ ok: false, campaignState: 'paused' });
    await setCampaignState(db.pool, c.id, ['paused'], 'running');
    expect((await renewLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', leaseMs: 60_000 })).ok).toBe(true);
    await setCampaignState(db.pool, c.id, ['running'], 'cancelled');
    expect(await renewLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', leaseMs: 60_000 })).toEqual({ ok: false, campaignState: 'cancelled' });
    expect(await claimBatch(db.pool, { campaignId: c.id, batchNo: 2, owner: 'w1', leaseMs: 1_000 })).toEqual({ status: 'campaign-not-running', state: 'cancelled' });
  });
});

describe('commitBatch', () => {
  it('exactly-once effects: committing the same outcomes twice leaves every count unchanged', async () => {
    const { c, store } = await runningCampaign(6, 6);
    await claimed(c.id, 1, 'w1');
    const outcomes: ItemOutcomeRecord[] = [
      rewrapped(store, 'k00000'),
      rewrapped(store, 'k00001'),
      { storeId: store, itemKey: 'k00002', outcome: 'skipped', reason: 'already-at-target', currentKek: TO },
      failed(store, 'k00003', 'invalid-ciphertext'),
    ];
    const first = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes, final: true });
    expect(first).toEqual({ status: 'committed', changed: 4, notInBatch: 0, remaining: 2, batchDone: false, autoPaused: false });
    const second = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes, final: true });
    expect(second).toEqual({ status: 'committed', changed: 0, notInBatch: 0, remaining: 2, batchDone: false, autoPaused: false });
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ planned: 6, rewrapped: 2, skipped: 1, failed: 1, remaining: 2 });
    expect(await failureCountsByReason(db.pool, c.id)).toEqual([{ reason: 'invalid-ciphertext', items: 1 }]);

    // A redelivered job gets only the items still without an outcome.
    expect((await claimed(c.id, 1, 'w1')).batch.items).toEqual(['k00004', 'k00005']);
    // The re-run finds k00000 at the target: its rewrap is not downgraded to a skip.
    const rest: ItemOutcomeRecord[] = [
      { storeId: store, itemKey: 'k00000', outcome: 'skipped', reason: 'already-at-target', currentKek: TO },
      rewrapped(store, 'k00004'),
      rewrapped(store, 'k00005'),
      rewrapped(store, 'not-in-this-batch'),
    ];
    const last = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: rest, final: true });
    expect(last).toEqual({ status: 'committed', changed: 2, notInBatch: 1, remaining: 0, batchDone: true, autoPaused: false });
    const again = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: rest, final: true });
    expect(again).toMatchObject({ status: 'committed', changed: 0, batchDone: true });
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ planned: 6, rewrapped: 4, skipped: 1, failed: 1, remaining: 0, batches: { done: 1 } });
    expect(await claimBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w9', leaseMs: 1000 })).toEqual({ status: 'done' });

    // Counters agree with the item rows they summarise.
    const { rows } = await db.pool.query(`SELECT outcome, count(*)::int AS n FROM rewrap_campaign_items WHERE campaign_id = $1 GROUP BY outcome ORDER BY outcome`, [c.id]);
    expect(rows).toEqual([
      { outcome: 'failed', n: 1 },
      { outcome: 'rewrapped', n: 4 },
      { outcome: 'skipped', n: 1 },
    ]);
    // The inventory knows which KEK wraps each item now: 5 at the target, 1 (the failure) at the source.
    expect((await inventoryByKek(db.pool, store)).map((r) => [r.kekVersion, r.items])).toEqual([
      ['1', 1],
      ['2', 5],
    ]);
    expect(await isCampaignComplete(db.pool, c.id)).toBe(true);
  });

  it('a failure that later succeeds moves between counters and reasons exactly', async () => {
    const { c, store } = await runningCampaign(2, 2);
    await claimed(c.id, 1, 'w1');
    await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [failed(store, 'k00000', 'kek-disabled')], final: false });
    expect(await failureCountsByReason(db.pool, c.id)).toEqual([{ reason: 'kek-disabled', items: 1 }]);
    await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [rewrapped(store, 'k00000'), rewrapped(store, 'k00001')], final: true });
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ rewrapped: 2, failed: 0, remaining: 0 });
    expect(await failureCountsByReason(db.pool, c.id)).toEqual([]);
  });

  it('auto-pauses when failures reach maxFailures, naming the threshold and the top reasons', async () => {
    const { c, store } = await runningCampaign(10, 5, { maxFailures: 3 });
    await claimed(c.id, 1, 'w1');
    const r1 = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [failed(store, 'k00000'), failed(store, 'k00001')], final: false });
    expect(r1).toMatchObject({ status: 'committed', autoPaused: false });
    const r2 = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [failed(store, 'k00002', 'invalid-ciphertext')], final: false });
    expect(r2).toMatchObject({ status: 'committed', autoPaused: true });
    const paused = (await getCampaign(db.pool, c.id))!;
    expect(paused.state).toBe('paused');
    expect(paused.pauseReason).toBe('auto-paused: 3 failed items reached maxFailures 3; top reasons: access-denied 2, invalid-ciphertext 1');
    // Workers stop: the lease is no longer renewable, and no new batch can be claimed.
    expect((await renewLease(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', leaseMs: 1000 })).ok).toBe(false);
    expect(await claimBatch(db.pool, { campaignId: c.id, batchNo: 2, owner: 'w2', leaseMs: 1000 })).toEqual({ status: 'campaign-not-running', state: 'paused' });
    // An operator resumes: the next failure does not pause again (the threshold was already crossed).
    await setCampaignState(db.pool, c.id, ['paused'], 'running');
    const r3 = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [failed(store, 'k00003')], final: false });
    expect(r3).toMatchObject({ status: 'committed', autoPaused: false });
    const page1 = await campaignFailures(db.pool, c.id, { limit: 3 });
    expect(page1.map((f) => f.itemKey)).toEqual(['k00000', 'k00001', 'k00002']);
    expect(page1[2]).toMatchObject({ reason: 'invalid-ciphertext', detail: 'provider refused kek-a for k00002', from: null });
    const page2 = await campaignFailures(db.pool, c.id, { limit: 3, after: page1[2] });
    expect(page2.map((f) => f.itemKey)).toEqual(['k00003']);
  });

  it('auto-pauses on maxFailureRatio only after minItemsForRatio items are done', async () => {
    const { c, store } = await runningCampaign(20, 20, { maxFailureRatio: 0.2, minItemsForRatio: 10 });
    await claimed(c.id, 1, 'w1');
    const k = keys('k', 20);
    // 3 of 5 failed (60%) but only 5 done: no pause yet.
    const early = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [...k.slice(0, 3).map((x) => failed(store, x)), ...k.slice(3, 5).map((x) => rewrapped(store, x))], final: false });
    expect(early.status === 'committed' && early.autoPaused).toBe(false);
    // 10 done, 3 failed: 30% > 20%; reaching minItemsForRatio with the ratio already over pauses.
    const late = await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: k.slice(5, 10).map((x) => rewrapped(store, x)), final: false });
    expect(late).toMatchObject({ status: 'committed', autoPaused: true });
    expect((await getCampaign(db.pool, c.id))!.pauseReason).toBe(
      'auto-paused: failure ratio 0.3000 (3 of 10 done) exceeds maxFailureRatio 0.2; top reasons: access-denied 3',
    );
  });
});

describe('progress and completion', () => {
  it('reports rate, ETA, batch states; complete only when planned, done and nothing pending', async () => {
    const { c, store } = await runningCampaign(40, 10);
    await markEnqueued(db.pool, c.id, [1, 2, 3, 4]);
    const before = await campaignProgress(db.pool, c.id);
    expect(before).toMatchObject({ planned: 40, remaining: 40, doneRatePerSec: 0, etaSeconds: null, state: 'running', batches: { pending: 0, enqueued: 4, done: 0 } });
    await claimed(c.id, 1, 'w1');
    await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: keys('k', 10).map((k) => rewrapped(store, k)), final: true });
    const p = await campaignProgress(db.pool, c.id);
    expect(p).toMatchObject({ rewrapped: 10, remaining: 30, batches: { pending: 0, enqueued: 3, done: 1 } });
    // 10 items since the campaign started (under 60 s ago): rate = 10 / elapsed seconds (>= 1 s).
    expect(p.doneRatePerSec).toBeGreaterThan(0);
    expect(p.doneRatePerSec).toBeLessThanOrEqual(10);
    expect(p.etaSeconds).toBe(Math.ceil(30 / p.doneRatePerSec));
    expect(await isCampaignComplete(db.pool, c.id)).toBe(false);
    for (const b of [2, 3, 4]) {
      await claimed(c.id, b, 'w1');
      await commitBatch(db.pool, { campaignId: c.id, batchNo: b, owner: 'w1', outcomes: keys('k', 10, (b - 1) * 10).map((k) => rewrapped(store, k)), final: true });
    }
    expect(await isCampaignComplete(db.pool, c.id)).toBe(true);
    expect(await countInFlight(db.pool, c.id)).toBe(0);
  });

  it('delta pass: new keys are planned, done keys re-queued with exact counters, failed keys and keys not under the source stay; what the pass moved and which of its batches may hide a move are counted', async () => {
    const { c, store } = await runningCampaign(5, 5);
    await claimed(c.id, 1, 'w1');
    await commitBatch(db.pool, {
      campaignId: c.id,
      batchNo: 1,
      owner: 'w1',
      outcomes: [
        rewrapped(store, 'k00000'),
        { storeId: store, itemKey: 'k00001', outcome: 'skipped', reason: 'already-at-target', currentKek: TO },
        failed(store, 'k00002'),
        rewrapped(store, 'k00003'),
        { storeId: store, itemKey: 'k00004', outcome: 'skipped', reason: 'not-under-source' },
      ],
      final: true,
    });
    const pass = await beginDeltaPass(db.pool, c.id);
    expect(pass).toEqual({ pass: 1, firstBatchNo: 2 });
    expect(await isCampaignComplete(db.pool, c.id)).toBe(false); // planning reopened
    const r = await replanItems(db.pool, c.id, store, ['k00000', 'k00001', 'k00002', 'k00004', 'new-1'], 10, { cursor: { delta: 'end' }, planDone: true });
    expect(r).toEqual({ planned: 1, requeued: 2, batchNos: [2] });
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ planned: 6, rewrapped: 1, skipped: 1, failed: 1, remaining: 3 });
    const again = await claimed(c.id, 2, 'w2');
    expect(again.batch.items).toEqual(['k00000', 'k00001', 'new-1']);
    await claimed(c.id, 2, 'w2'); // the job retried (its first run's commit lost): two claims, one commit
    await commitBatch(db.pool, {
      campaignId: c.id,
      batchNo: 2,
      owner: 'w2',
      outcomes: [
        { storeId: store, itemKey: 'k00000', outcome: 'skipped', reason: 'already-at-target', currentKek: TO },
        { storeId: store, itemKey: 'k00001', outcome: 'skipped', reason: 'already-at-target', currentKek: TO },
        rewrapped(store, 'new-1'),
      ],
      final: true,
    });
    // k00000 was rewrapped by this campaign before the delta pass: it still counts as rewrapped.
    // What the pass itself moved: new-1 only (k00000 and k00001 were found at the target); one claim of its batch lost its commit.
    expect(await deltaPassChanges(db.pool, c.id, pass!.firstBatchNo)).toEqual({ moved: 1, suspectBatches: 1 });
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ planned: 6, rewrapped: 3, skipped: 2, failed: 1, remaining: 0 });
    expect(await isCampaignComplete(db.pool, c.id)).toBe(true);
  });

  it('a batch claimed again after a commit that landed is suspect only if its second claim found an item already at the target', async () => {
    const { c, store } = await runningCampaign(4, 2);
    // Batch 1: an item failed transiently (throttled) and was rewrapped by the second claim.
    await claimed(c.id, 1, 'w1');
    await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [rewrapped(store, 'k00000')], final: false });
    await claimed(c.id, 1, 'w1');
    await commitBatch(db.pool, { campaignId: c.id, batchNo: 1, owner: 'w1', outcomes: [rewrapped(store, 'k00001')], final: true });
    expect(await deltaPassChanges(db.pool, c.id, 1)).toEqual({ moved: 2, suspectBatches: 0 });
    // Batch 2: a write whose reply was lost came back as transient; the second claim found it done.
    await claimed(c.id, 2, 'w1');
    await commitBatch(db.pool, { campaignId: c.id, batchNo: 2, owner: 'w1', outcomes: [rewrapped(store, 'k00002')], final: false });
    await claimed(c.id, 2, 'w1');
    await commitBatch(db.pool, { campaignId: c.id, batchNo: 2, owner: 'w1', outcomes: [{ storeId: store, itemKey: 'k00003', outcome: 'skipped', reason: 'already-at-target', currentKek: TO }], final: true });
    expect(await deltaPassChanges(db.pool, c.id, 2)).toEqual({ moved: 1, suspectBatches: 1 });
  });

  it('concurrent commits of different batches keep the counters exact', async () => {
    const { c, store } = await runningCampaign(200, 10);
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const b = i + 1;
        await claimed(c.id, b, `w${b}`);
        const ks = keys('k', 10, i * 10);
        await commitBatch(db.pool, { campaignId: c.id, batchNo: b, owner: `w${b}`, outcomes: ks.map((k, j) => (j === 0 ? failed(store, k) : rewrapped(store, k))), final: true });
      }),
    );
    expect(await campaignProgress(db.pool, c.id)).toMatchObject({ planned: 200, rewrapped: 180, failed: 20, remaining: 0, batches: { done: 20 } });
    expect(await failureCountsByReason(db.pool, c.id)).toEqual([{ reason: 'access-denied', items: 20 }]);
  });
});

describe('countKeysUnderKek', () => {
  it('counts keys the inventory puts under the KEK, keys it has never seen, and, for a KMS key material, keys seen under the key with no material recorded', async () => {
    const store = 's3://count-under-kek';
    const m1 = 'a'.repeat(64);
    const m2 = 'b'.repeat(64);
    await db.pool.query(
      `INSERT INTO rewrap_inventory (store_id, item_key, kek_id, kek_version, material_id)
       SELECT $1, k, kek, v, m FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(k, kek, v, m)`,
      [
        store,
        ['at-m1', 'version-m1', 'at-m2', 'unrecorded', 'placeholder', 'other-key', 'local-1', 'local-2'],
        ['K', 'K', 'K', 'K', 'K', 'K2', 'L', 'L'],
        [null, m1, null, null, 'v1', null, '1', '2'],
        [m1, null, m2, null, null, null, null, null],
      ],
    );
    const all = ['at-m1', 'version-m1', 'at-m2', 'unrecorded', 'placeholder', 'other-key', 'local-1', 'local-2', 'never-seen'];
    const under = async (kek: { id: string; version?: string }) => countKeysUnderKek(db.pool, store, all, kek);
    expect(await under({ id: 'K', version: m1 })).toBe(5); // at-m1, version-m1, unrecorded, placeholder, never-seen
    expect(await under({ id: 'K', version: m2 })).toBe(4); // at-m2, unrecorded, placeholder, never-seen
    expect(await under({ id: 'K' })).toBe(6);
    expect(await under({ id: 'L', version: '1' })).toBe(2); // a keyring version is exact: local-1, never-seen
  });
});

describe('recordBatchFailure (issue 13, point 6)', () => {
  it('counts whole-batch failures of the lease holder only, and pauses the campaign at maxBatchFailures naming the batch and the error', async () => {
    const { c, store } = await runningCampaign(4, 10, { maxBatchFailures: 3 });
    const fail = (owner: string, error = 'pg:t: read of 4 rows failed: relation "t" does not exist') => recordBatchFailure(db.pool, { campaignId: c.id, batchNo: 1, owner, error });
    expect(await fail('w1/j1')).toEqual({ counted: false, failures: 0, paused: false }); // nobody holds it: nothing counted
    await claimed(c.id, 1, 'w1/j1');
    expect(await fail('w2/j9')).toEqual({ counted: false, failures: 0, paused: false }); // not the holder
    expect(await fail('w1/j1')).toEqual({ counted: true, failures: 1, paused: false });
    expect(await fail('w1/j1', `line one\n  line two ${'x'.repeat(1000)}`)).toEqual({ counted: true, failures: 2, paused: false });
    const { rows } = await db.pool.query<{ last_error: string }>('SELECT last_error FROM rewrap_batches WHERE campaign_id = $1 AND batch_no = 1', [c.id]);
    expect(rows[0]!.last_error).toMatch(/^line one line two x+$/);
    expect(rows[0]!.last_error).toHaveLength(500);
    expect((await getCampaign(db.pool, c.id))!.state).toBe('running');
    expect(await fail('w1/j1')).toEqual({ counted: true, failures: 3, paused: true });
    const after = (await getCampaign(db.pool, c.id))!;
    expect(after.state).toBe('paused');
    expect(after.pauseReason).toBe(`auto-paused: batch 1 (${store}) failed as a whole 3 times (maxBatchFailures 3); last error: pg:t: read of 4 rows failed: relation "t" does not exist`);
    // Already paused: counted, not paused again.
    expect(await fail('w1/j1')).toEqual({ counted: true, failures: 4, paused: false });
  });
});
