/**
 * Planning throughput against real Postgres: a large campaign planned in pages, as the scheduler
 * does. 200,000 keys keep this file well under a minute on a 2-core machine; the 1,000,000-key
 * figure (same code, PLANNED_KEYS = 1_000_000) is in the ledger's report.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { DEFAULT_OPTIONS, type CampaignSpec } from '../src/core/campaign-spec.ts';
import { addPlannedItems, campaignProgress, createCampaign, getCampaign, migrate, nextPendingBatches } from '../src/ledger/index.ts';

const PLANNED_KEYS = 200_000;
const PAGE = 10_000;
const BATCH = 500;
const STORE = 's3://scale-bucket';

let db: TestSchema;
beforeAll(async () => {
  db = await freshSchema('ledger_scale');
  await migrate(db.pool);
});
afterAll(async () => {
  await db?.drop();
});

const page = (n: number) => Array.from({ length: PAGE }, (_, i) => `tenant-${n % 7}/objects/${String(n * PAGE + i).padStart(9, '0')}.bin`);

it(`plans ${PLANNED_KEYS.toLocaleString('en')} keys in pages of ${PAGE.toLocaleString('en')}, resumably, without doubling any`, async () => {
  const spec: CampaignSpec = {
    name: 'scale',
    kind: 'routine',
    sources: [{ type: 's3', bucket: 'scale-bucket' }],
    provider: { type: 'kms' },
    from: { id: 'alias/old' },
    to: { id: 'alias/new' },
    options: { ...DEFAULT_OPTIONS, batchSize: BATCH },
  };
  const c = await createCampaign(db.pool, { name: 'scale', kind: 'routine', spec, scopes: [{ storeId: STORE }] });
  const pages = PLANNED_KEYS / PAGE;
  const started = performance.now();
  for (let n = 0; n < pages; n++) {
    const r = await addPlannedItems(db.pool, c.id, STORE, page(n), BATCH, { page: n + 1 }, n === pages - 1, false);
    expect(r.planned).toBe(PAGE);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`ledger planning: ${PLANNED_KEYS} keys in ${seconds.toFixed(1)} s = ${Math.round(PLANNED_KEYS / seconds)} keys/s`);

  // A scheduler restarted from an older cursor re-sends pages already planned: nothing doubles.
  const again = await addPlannedItems(db.pool, c.id, STORE, page(pages - 1), BATCH, { page: pages }, true);
  expect(again.planned).toBe(0);
  const p = await campaignProgress(db.pool, c.id);
  expect(p).toMatchObject({ planned: PLANNED_KEYS, remaining: PLANNED_KEYS, planDone: true, batches: { pending: PLANNED_KEYS / BATCH } });
  expect((await getCampaign(db.pool, c.id))!.planCursor).toEqual({ page: pages });
  const batches = await nextPendingBatches(db.pool, c.id, 3);
  expect(batches.map((b) => [b.batchNo, b.itemCount])).toEqual([
    [1, BATCH],
    [2, BATCH],
    [3, BATCH],
  ]);
});
