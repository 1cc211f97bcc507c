/**
 * The canary of a batch-form campaign (README, "The batch ledger form"), through real scheduler
 * and worker processes and the real CLI (REWRAP_LEDGER_FORM=batches): a failing canary pauses the
 * campaign before any batch runs and writes nothing it cannot unwrap; a passing one moves the
 * first rows of the plan's first ranges before fan-out, and each row it moved is counted once, on
 * its batch (the batch's claim no longer selects it); a canary write whose count was lost is
 * counted moved-unconfirmed at its range's last commit, `planned` kept. No key bytes in any log
 * or output (invariant 5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { unwrapAll, type RowKek } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsAt, rowTable } from './support/row-fixture.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { createStarted, ledgerRows as ledgerRowsOf } from './support/batch-ledger.ts';
import { Resources } from '../src/runtime/resources.ts';
import { loadConfig } from '../src/config.ts';
import { rewrapItem } from '../src/rewrap/rewrap-item.ts';
import { KekMap } from '../src/kek/kek-map.ts';
import { keyMapOf } from '../src/core/campaign-spec.ts';
import { pgStoreId } from '../src/core/store-id.ts';
import { beginCanaryRange, setCampaignState } from '../src/ledger/index.ts';

let pipe: Pipeline;
const guard = new LeakGuard();

const spec = (name: string, table: string, from: string, to: string, keyringFile: string, options: Record<string, unknown>) => ({
  name,
  sources: [rowSource(table)],
  provider: { type: 'local', keyringFile },
  from,
  to,
  options: { batchSize: 100, concurrency: 8, ...options },
});

const create = (s: unknown) => createStarted(pipe, guard, s);

const ledgerRows = (id: string) => ledgerRowsOf(pipe.db.pool, id);

beforeAll(async () => {
  pipe = await startPipeline({ label: 'batchcanary', workers: 2, env: { REWRAP_LEDGER_FORM: 'batches' } });
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

describe('the canary of a batch-form campaign', () => {
  it('a canary in the batch form: a failing one stops the campaign before any batch runs; a passing one moves the first rows, counted on their batches once', async () => {
    /* Failing: the keyring's w@1 holds other material than the rows were wrapped with (every unwrap fails). */
    const w1: RowKek = { id: 'w', version: '1', material: randomBytes(32) };
    const w2: RowKek = { id: 'w', version: '2', material: randomBytes(32) };
    guard.secret(w1.material, w2.material);
    for (const d of (await rowTable(pipe.db.pool, 'canary_bad', 1_000, w1)).values()) guard.secret(d);
    const wrongRing = await pipe.keyringFile([{ ...w1, material: randomBytes(32) }, w2]);
    const bad = await create(spec('bad canary', 'canary_bad', 'w@1', 'w@2', wrongRing, { canaryFraction: 0.005 }));
    const paused = await pipe.waitFor(bad, 'paused', (p) => p.state === 'paused', 60_000);
    expect(paused.pauseReason).toMatch(/canary failed: 5 of 5 items \(rewrap:invalid-ciphertext\)/);
    expect(paused.rewrapped + paused.skipped + paused.failed).toBe(0);
    expect(await rowsAt(pipe.db.pool, 'canary_bad', 'w', '1')).toBe(1_000);
    expect((await ledgerRows(bad)).form).toBe('batches');

    /* Passing: 2 % of 1,000 rows (the first 20, in the first ranges) move before fan-out; the batches move the rest. */
    const g1: RowKek = { id: 'g', version: '1', material: randomBytes(32) };
    const g2: RowKek = { id: 'g', version: '2', material: randomBytes(32) };
    guard.secret(g1.material, g2.material);
    const deks = await rowTable(pipe.db.pool, 'canary_good', 1_000, g1);
    for (const d of deks.values()) guard.secret(d);
    const ring = await pipe.keyringFile([g1, g2]);
    const good = await create(spec('good canary', 'canary_good', 'g@1', 'g@2', ring, { canaryFraction: 0.02 }));
    const p = await pipe.waitFor(good, 'completed', (x) => x.state === 'completed', 60_000);
    expect({ planned: p.planned, rewrapped: p.rewrapped, skipped: p.skipped, failed: p.failed }).toEqual({ planned: 1_000, rewrapped: 1_000, skipped: 0, failed: 0 });
    expect(await ledgerRows(good)).toMatchObject({ items: 0, exceptions: 0, form: 'batches' });
    const rows = await unwrapAll(pipe.db.pool, 'canary_good', [g2]);
    for (const [key, dek] of deks) expect(rows.get(key)?.dek.equals(dek), `row ${key}`).toBe(true);
    /* The canary's writes are in the audit log, marked; its 20 rows are in the first batch's count (batches of 100). */
    const canaryLines = pipe.logs().split('\n').filter((l) => l.includes('"canary":true') && l.includes(good));
    expect(canaryLines.length).toBe(20);
    const { rows: first } = await pipe.db.pool.query<{ rewrapped: number; item_count: number }>('SELECT rewrapped, item_count FROM rewrap_batches WHERE campaign_id = $1 ORDER BY batch_no LIMIT 1', [good]);
    expect(first[0]).toEqual({ rewrapped: 100, item_count: 100 });
  });

  it('a canary write whose count was lost (stopped between the write and its count) is counted moved-unconfirmed at its range\'s last commit; planned holds', async () => {
    const h1: RowKek = { id: 'h', version: '1', material: randomBytes(32) };
    const h2: RowKek = { id: 'h', version: '2', material: randomBytes(32) };
    guard.secret(h1.material, h2.material);
    const deks = await rowTable(pipe.db.pool, 'canary_lost', 300, h1);
    for (const d of deks.values()) guard.secret(d);
    const ring = await pipe.keyringFile([h1, h2]);
    const c = await pipe.create(spec('lost canary count', 'canary_lost', 'h@1', 'h@2', ring, {}), false);
    await pipe.waitFor(c.id, 'planned', (p) => p.planDone, 60_000);
    /* What the canary does before a write (the range counts it as a claim), then the write, and no count: as if it stopped in between. */
    const res = new Resources(loadConfig(pipe.env));
    try {
      expect(await beginCanaryRange(res.ledger, c.id, 1)).toBe(true);
      const o = await rewrapItem({ store: res.store(c.spec, pgStoreId('canary_lost')), provider: res.provider(c.id, c.spec), keyMap: new KekMap(keyMapOf(c.spec)) }, { key: '1' });
      expect(o.status).toBe('rewrapped');
    } finally {
      await res.close();
    }
    await setCampaignState(pipe.db.pool, c.id, ['planning'], 'running');
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 60_000);
    expect({ planned: p.planned, rewrapped: p.rewrapped, skipped: p.skipped, failed: p.failed }).toEqual({ planned: 300, rewrapped: 299, skipped: 1, failed: 0 });
    const rows = await unwrapAll(pipe.db.pool, 'canary_lost', [h2]);
    expect(rows.size).toBe(300);
    for (const [key, dek] of deks) expect(rows.get(key)?.dek.equals(dek), `row ${key}`).toBe(true);
    const exposure = await rewrapCli(pipe, ['campaign', 'report', c.id, '--kind', 'exposure', '--json', '--out', `${pipe.dir}/lost-canary-exposure.jsonl`]);
    guard.text(exposure.stdout, exposure.stderr);
    expect(exposure.code, exposure.stderr).toBe(0);
    expect(jsonOf<{ totals: Record<string, number> }>(exposure).totals).toMatchObject({ moved: 299, movedUnconfirmed: 1, exposed: 0, underKek: 300 });
  });

  it('no DEK or KEK bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.linesSeen).toBeGreaterThan(0);
    expect(guard.findLeaks()).toEqual([]);
  });
});
