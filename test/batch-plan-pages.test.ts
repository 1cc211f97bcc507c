/**
 * The batch ledger form's plan reads a page of batch bounds, not every id (PgTableSource.batchBounds,
 * addPlannedBounds): Postgres numbers the page's rows and returns each batch's last id and count.
 * Through the real scheduler, with plan pages (35 rows) that batches (10) do not divide, over a
 * table whose ids have gaps and whose rows under another KEK sit between the source's:
 * - the ranges tile the ids without a gap or an overlap, each counts exactly the source's rows
 *   in it, none holds more than a batch, and the plan counts every source row once;
 * - a range whose page ended short of a batch (35 = 3 x 10 + 5) is planned short, not merged
 *   with the next page's rows;
 * - the campaign then moves every source row and leaves the other KEK's rows alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { RowKek } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsAt, rowTable } from './support/row-fixture.ts';
import { setCampaignState } from '../src/ledger/index.ts';

const PAGE = 35;
const BATCH = 10;
const v1: RowKek = { id: 'pp', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'pp', version: '2', material: randomBytes(32) };
const other: RowKek = { id: 'other', version: '1', material: randomBytes(32) };

let pipe: Pipeline;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'planpages', workers: 1, env: { REWRAP_PLAN_PAGE: String(PAGE), REWRAP_LEDGER_FORM: 'batches' } });
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

describe('batch form plan pages', () => {
  it('ranges from pages of bounds tile the table, count each source row once, and the campaign moves exactly those rows', async () => {
    /* Ids 1..300 under pp@1, then every 4th row moved to another KEK and every 7th deleted: gaps and foreign rows between the source's. */
    await rowTable(pipe.db.pool, 'paged', 300, v1);
    await pipe.db.pool.query(`UPDATE paged SET kek_id = 'other' WHERE id % 4 = 0`);
    await pipe.db.pool.query(`DELETE FROM paged WHERE id % 7 = 0`);
    const { rows: src } = await pipe.db.pool.query<{ id: string }>(`SELECT id FROM paged WHERE kek_id = 'pp' ORDER BY id`); // bigint, ordered as a number
    const sourceIds = src.map((r) => Number(r.id));
    const keyringFile = await pipe.keyringFile([v1, v2, other]);
    const c = await pipe.create({ name: 'plan pages', sources: [rowSource('paged')], provider: { type: 'local', keyringFile }, from: 'pp@1', to: 'pp@2', options: { batchSize: BATCH } }, false);
    expect(c.ledgerForm).toBe('batches');
    const planned = await pipe.waitFor(c.id, 'planned', (p) => p.planDone, 60_000);
    expect(planned.planned).toBe(sourceIds.length);

    const { rows: ranges } = await pipe.db.pool.query<{ lo: string | null; hi: string; n: number }>(
      `SELECT lo, hi, item_count AS n FROM rewrap_batches WHERE campaign_id = $1 ORDER BY batch_no`,
      [c.id],
    );
    let lo: number | null = null;
    let pageRows = 0;
    for (const r of ranges) {
      expect(r.lo === null ? null : Number(r.lo), 'each range starts where the one before ended').toBe(lo);
      const inRange = sourceIds.filter((id) => (lo === null || id > lo) && id <= Number(r.hi));
      expect(r.n, `range (${lo}, ${r.hi}]`).toBe(inRange.length);
      expect(r.n).toBeLessThanOrEqual(BATCH);
      /* A page of 35 source rows is 3 full batches and one of 5: the short one ends the page. */
      pageRows += r.n;
      if (r.n < BATCH) {
        expect(pageRows === PAGE || Number(r.hi) === sourceIds.at(-1), `a short range (${lo}, ${r.hi}] ends a page (at ${pageRows} of ${PAGE}) or the table (at ${sourceIds.at(-1)})`).toBe(true);
      }
      if (pageRows === PAGE) pageRows = 0;
      lo = Number(r.hi);
    }
    expect(lo).toBe(sourceIds.at(-1));
    expect(ranges.reduce((a, r) => a + r.n, 0)).toBe(sourceIds.length);

    await setCampaignState(pipe.db.pool, c.id, ['planning'], 'running');
    const done = await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(done).toMatchObject({ planned: sourceIds.length, rewrapped: sourceIds.length, failed: 0 });
    expect(await rowsAt(pipe.db.pool, 'paged', 'pp', '2')).toBe(sourceIds.length);
    expect(await rowsAt(pipe.db.pool, 'paged', 'other', '1')).toBe(300 / 4 - Math.floor(300 / 28));
  }, 240_000);
});
