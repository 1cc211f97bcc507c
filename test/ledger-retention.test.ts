/**
 * pruneLedger over a real ledger with large campaigns (rows written straight into the ledger's
 * tables, as a long campaign leaves them): the KEK retirement gate's view (kekUsage: items under
 * the KEK, unmoved, failed by reason, the last move) is the same before and after a prune
 * (invariant 7), a cancelled campaign's unmoved items stay, deletes run in bounded steps, a second
 * prune keeps exactly what the first kept, and only finished campaigns older than the cutoff (and
 * the shared-dedupe rows of finished campaigns) are touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { loadConfig } from '../src/config.ts';
import { Resources } from '../src/runtime/resources.ts';
import { DEFAULT_OPTIONS, type CampaignSpec } from '../src/core/campaign-spec.ts';
import { UNDER_NO_KEK_REASONS } from '../src/core/reasons.ts';
import { createCampaign, kekUsage, migrate, setCampaignState, storeDekRewrap } from '../src/ledger/index.ts';
import { pruneLedger } from '../src/reports/ledger-retention.ts';

let db: TestSchema;
let res: Resources;
const kek = { id: 'k', version: '1' };

async function campaign(name: string, table: string): Promise<string> {
  const spec: CampaignSpec = {
    name,
    kind: 'routine',
    sources: [{ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'w', kekIdColumn: 'k', kekVersionColumn: 'v' }],
    provider: { type: 'local', keyringFile: '/etc/rewrap/keyring.json' },
    from: kek,
    to: { id: 'k', version: '2' },
    options: { ...DEFAULT_OPTIONS },
  };
  // Pinned to the per-item form: this file writes item rows straight into rewrap_campaign_items
  // and tests what prune does with them; a Postgres-table spec in the batch form (the `auto`
  // default of the CLI, the API and admitCampaign) has no item rows and prune skips it.
  return (await createCampaign(db.pool, { name, kind: 'routine', spec, scopes: [{ storeId: `pg:${table}` }], ledgerForm: 'items' })).id;
}

/** n items of `table`: outcome by position (every 97th failed, every 50th skipped, the last `pending` without outcome). */
async function items(id: string, table: string, n: number, pending = 0): Promise<void> {
  await db.pool.query(
    `INSERT INTO rewrap_campaign_items (campaign_id, store_id, item_key, batch_no, outcome, reason, from_kek, from_version, to_kek, to_version, done_at)
     SELECT $1, 'pg:' || $2, i::text, i / 100 + 1,
            CASE WHEN i > $3 - $4 THEN NULL WHEN i % 97 = 0 THEN 'failed' WHEN i % 50 = 0 THEN 'skipped' ELSE 'rewrapped' END,
            CASE WHEN i > $3 - $4 THEN NULL WHEN i % 97 = 0 THEN 'invalid-ciphertext' WHEN i % 50 = 0 THEN 'already-at-target' END,
            'k', '1', 'k', '2', CASE WHEN i > $3 - $4 THEN NULL ELSE now() - interval '200 days' + i * interval '1 second' END
       FROM generate_series(1, $3) AS i`,
    [id, table, n, pending],
  );
  await db.pool.query(`INSERT INTO rewrap_batches (campaign_id, batch_no, store_id, item_count, state) SELECT $1, b, 'pg:' || $2, 100, 'done' FROM generate_series(1, $3 / 100 + 1) AS b`, [id, table, n]);
  await db.pool.query(
    `INSERT INTO rewrap_inventory (store_id, item_key, kek_id, kek_version, campaign_id, updated_at)
     SELECT 'pg:' || $2, i::text, 'k', CASE WHEN i % 97 = 0 OR i > $3 - $4 THEN '1' ELSE '2' END, $1, now() - interval '200 days' + i * interval '1 second'
       FROM generate_series(1, $3) AS i`,
    [id, table, n, pending],
  );
}

async function finish(id: string, state: 'completed' | 'cancelled', daysAgo: number): Promise<void> {
  await setCampaignState(db.pool, id, ['planning'], state);
  await db.pool.query(`UPDATE rewrap_campaigns SET finished_at = now() - $2::int * interval '1 day' WHERE id = $1`, [id, daysAgo]);
}

const keys = async (id: string) =>
  (await db.pool.query<{ k: string }>(`SELECT store_id || ' ' || item_key || ' ' || coalesce(outcome, '-') AS k FROM rewrap_campaign_items WHERE campaign_id = $1 ORDER BY 1`, [id])).rows.map((r) => r.k);
const usage = (ids: string[]) => kekUsage(db.pool, kek, ids, UNDER_NO_KEK_REASONS);

let done: string;
let cancelled: string;
let recent: string;
let running: string;

beforeAll(async () => {
  db = await freshSchema('retention');
  await migrate(db.pool);
  res = new Resources(loadConfig({ DATABASE_URL: db.url }));
  done = await campaign('completed long ago', 'a');
  await items(done, 'a', 5000);
  await finish(done, 'completed', 120);
  cancelled = await campaign('cancelled long ago', 'b');
  await items(cancelled, 'b', 3000, 700);
  await finish(cancelled, 'cancelled', 100);
  recent = await campaign('completed last week', 'c');
  await items(recent, 'c', 500);
  await finish(recent, 'completed', 7);
  running = await campaign('still planning', 'd');
  await items(running, 'd', 300, 300);
  const digest = () => randomBytes(32);
  for (const id of [done, running]) for (let i = 0; i < 5; i++) await storeDekRewrap(db.pool, id, digest(), { for: 'k@2', wrapped: 'AAAA' });
}, 120_000);

afterAll(async () => {
  await res?.close();
  await db?.drop();
});

describe('pruneLedger (issue 17, point 4)', () => {
  it('the retirement gate sees the same before and after: unmoved, failed by reason, under the KEK, the last move (invariant 7)', async () => {
    const before = await usage([done, cancelled]);
    expect(before.stores.find((s) => s.storeId === 'pg:b')!.notYetMoved).toBe(700);
    expect(before.failed.reduce((a, f) => a + f.items, 0)).toBeGreaterThan(50);

    const r = await pruneLedger(res, { cutoff: new Date(Date.now() - 90 * 86_400_000), dryRun: false, stepRows: 1000 });
    expect(r.campaigns.map((c) => c.id).sort()).toEqual([done, cancelled].sort());
    expect(r.dekRewraps).toBe(5); // the completed campaign's; the planning one keeps its own
    const after = await usage([done, cancelled]);
    expect(after).toEqual(before);

    const a = r.campaigns.find((c) => c.id === done)!;
    expect(a.kept.failed).toBe(Math.floor(5000 / 97));
    expect(a.kept.movedSample).toBeGreaterThanOrEqual(100);
    expect(a.kept.movedSample).toBeLessThanOrEqual(101);
    expect(a.deleted.batches).toBe(51);
    const b = r.campaigns.find((c) => c.id === cancelled)!;
    expect(b.kept.pending).toBe(700);
    const left = await keys(cancelled);
    expect(left.filter((k) => k.endsWith(' -'))).toHaveLength(700);
    expect(left).toHaveLength(700 + b.kept.failed + b.kept.movedSample);
  });

  it('a second prune keeps exactly what the first kept and deletes nothing', async () => {
    const before = [await keys(done), await keys(cancelled)];
    const r = await pruneLedger(res, { cutoff: new Date(Date.now() - 90 * 86_400_000), dryRun: false, stepRows: 1000 });
    for (const c of r.campaigns) {
      expect(c.prunedBefore).toBe(true);
      expect(c.deleted).toEqual({ items: 0, batches: 0, progress: 0, noncurrentVersions: 0 });
    }
    expect([await keys(done), await keys(cancelled)]).toEqual(before);
  });

  it('a campaign that finished after the cutoff and one still planning are untouched, shared-dedupe rows of the unfinished one too', async () => {
    expect(await keys(recent)).toHaveLength(500);
    expect(await keys(running)).toHaveLength(300);
    const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rewrap_dek_rewraps WHERE campaign_id = $1`, [running]);
    expect(rows[0]!.n).toBe(5);
    const { rows: batches } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rewrap_batches WHERE campaign_id = $1`, [recent]);
    expect(batches[0]!.n).toBe(6);
  });
});
