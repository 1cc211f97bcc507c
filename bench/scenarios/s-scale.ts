/**
 * `npm run bench -- --scale` (issue 17, point 5): the per-batch cost of each component at growing
 * plan sizes, and the model of a billion-item rotation built from them (bench/lib/scale-model.ts).
 *
 * For each size N (full: 1M and 10M; quick: 100k and 1M; or --scale-sizes): a synthetic table of
 * N rows (one wrapped DEK repeated: no payload, and identical DEKs cost one keyring call per
 * worker, so the workers' CPU is the pipeline's own), one scheduler and 2 workers as a user runs
 * them, then
 *   - plan: the whole table into the ledger (REWRAP_PLAN_PAGE 50,000, as B3): items/s, CPU of
 *     the scheduler and of Postgres per item, ledger bytes per item;
 *   - run: a window of the campaign running: per batch, Redis commands and Redis, Postgres and
 *     scheduler CPU; per item, worker CPU; ledger bytes per item once committed.
 *   - plan, batch ledger form: the same table planned as id ranges (one statement per page, no
 *     row per item), in this process, before the per-item campaign;
 *   - delta: the final delta pass's search (issue 17, point 7) once every row is at the target
 *     but 1 in 10,000, rewritten under the source KEK "after the plan" (late writes): the pg
 *     source's own delta pages (PLAN_PAGE rows) over the whole table, first as created (no index
 *     on the KEK columns: one pass of the primary key index over every row), then with an index on
 *     (kek_id, kek_version, id) (only the late rows are visited); wall time and Postgres CPU.
 * Then the shared KMS budget alone at 10,000 req/s, per request and in blocks: Redis CPU per
 * round trip and per token, worker CPU per token.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';
import { aesWrap } from '../../dev/reference/s3ec-client.ts';
import { KmsBudget } from '../../src/queue/kms-budget.ts';
import { Deployment, round } from '../lib/deployment.ts';
import { benchKeyring, scenarioEnv, target, type BenchContext, type ScenarioResult, type ScenarioEnv } from '../lib/context.ts';
import { describeScale, scaleModel, type ScaleInputs } from '../lib/scale-model.ts';
import { ROW_BATCH, rowSpec } from './b1-rows.ts';
import { PgTableSource } from '../../src/sources/pg-table-source.ts';
import { admitCampaign } from '../../src/campaign/create.ts';
import { parseCampaignSpec } from '../../src/campaign/spec.ts';
import { addPlannedBounds, migrate, setCampaignState } from '../../src/ledger/index.ts';

const PLAN_PAGE = 50_000;
/** The model's assumed ListObjectsV2 page time (1,000 keys), not measured here: no AWS from this box. */
const S3_LIST_PAGE_SECONDS = 0.1;

async function redisCalls(r: Redis): Promise<number> {
  const info = await r.info('stats');
  return Number(/^total_commands_processed:(\d+)/m.exec(info)?.[1] ?? NaN);
}

async function ledgerBytes(env: ScenarioEnv): Promise<number> {
  const { rows } = await env.db.pool.query<{ bytes: string }>(
    `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'rewrap\\_%'`,
    [env.db.schema],
  );
  return Number(rows[0]!.bytes);
}

/** One delta pass's search over the table, as the scheduler runs it (PgTableSource.deltaPage): rows found, wall and Postgres CPU. */
async function deltaScan(env: ScenarioEnv, table: string) {
  const source = new PgTableSource(env.db.pool, { table, idColumn: 'id', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }, { id: 'scale', version: '1' });
  const end = await env.meter.begin();
  const t = performance.now();
  let found = 0;
  let pages = 0;
  for (let cursor: unknown = null, done = false; !done; pages++) {
    const page = await source.deltaPage(new Date(0), cursor, PLAN_PAGE);
    found += page.groups.reduce((a, g) => a + g.keys.length, 0);
    cursor = page.cursor;
    done = page.done;
  }
  const seconds = (performance.now() - t) / 1000;
  const cpu = await end();
  return { found, pages, seconds: round(seconds, 3), postgresCpuSeconds: cpu.postgres };
}

/** The delta pass's search at size n (see the header): without and with an index on the KEK columns. */
async function measureDelta(ctx: BenchContext, env: ScenarioEnv, table: string, n: number) {
  await env.db.pool.query(`UPDATE ${table} SET kek_version = '2'`);
  const late = await env.db.pool.query(`UPDATE ${table} SET kek_version = '1' WHERE id % 10000 = 0`);
  await env.db.pool.query(`VACUUM ANALYZE ${table}`);
  const scan = await deltaScan(env, table);
  await env.db.pool.query(`CREATE INDEX ${table}_kek ON ${table} (kek_id, kek_version, id)`);
  await env.db.pool.query(`ANALYZE ${table}`);
  const indexed = await deltaScan(env, table);
  const delta = {
    rows: n,
    lateRows: late.rowCount ?? 0,
    noIndex: { ...scan, usPerTableRow: round((1e6 * scan.seconds) / n, 3), postgresCpuUsPerTableRow: round((1e6 * scan.postgresCpuSeconds) / n, 3) },
    kekIndex: { ...indexed, usPerLateRow: round((1e6 * indexed.seconds) / Math.max(1, indexed.found), 1) },
  };
  ctx.say(`    delta pass search: ${delta.lateRows} late rows of ${n.toLocaleString('en')}; no index ${scan.seconds} s (${delta.noIndex.usPerTableRow} us/row, found ${scan.found}); KEK index ${indexed.seconds} s (found ${indexed.found})`);
  return delta;
}

/**
 * The batch ledger form's plan (REWRAP_LEDGER_FORM=batches) of the whole table, as the planner
 * runs it (the source's page of batch bounds, then one statement per page: addPlannedBounds), in this
 * process, before the deployment starts. Wall time, Postgres CPU and ledger bytes per item.
 */
async function measureBatchFormPlan(env: ScenarioEnv, table: string, keyringFile: string, n: number) {
  await migrate(env.db.pool);
  const c = await admitCampaign(env.db.pool, parseCampaignSpec(rowSpec(`scale ${n} batch form`, table, keyringFile, 'scale@1', 'scale@2')), 0, 'batches');
  const source = new PgTableSource(env.db.pool, { table, idColumn: 'id', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }, { id: 'scale', version: '1' });
  const end = await env.meter.begin();
  const t = performance.now();
  let planned = 0;
  for (let cursor: string | null = null, done = false; !done; ) {
    const page = await source.batchBounds(cursor, PLAN_PAGE, ROW_BATCH);
    done = page.done;
    const r = await addPlannedBounds(env.db.pool, c.id, page.storeId, page.bounds, cursor, page.cursor, done, false);
    planned += r.planned;
    cursor = page.cursor;
  }
  const seconds = (performance.now() - t) / 1000;
  const cpu = await end();
  const { rows } = await env.db.pool.query<{ n: number; bytes: string }>('SELECT count(*)::int AS n, coalesce(sum(pg_column_size(b.*)), 0) AS bytes FROM rewrap_batches b WHERE campaign_id = $1', [c.id]);
  if (planned !== n) throw new Error(`scale: the batch form planned ${planned} of ${n} rows`);
  return {
    campaignId: c.id,
    items: n,
    seconds: round(seconds, 2),
    itemsPerSec: Math.round(n / seconds),
    postgresCpuUsPerItem: round((1e6 * cpu.postgres) / n, 3),
    batches: rows[0]!.n,
    ledgerBytesPerItem: round(Number(rows[0]!.bytes) / n, 3),
  };
}

/** A window of a campaign running (after a warm-up of 4 batches), then cancelled: per batch and per item costs. */
async function measureRun(ctx: BenchContext, env: ScenarioEnv, d: Deployment, id: string, n: number, runSeconds: number) {
  await d.run(id);
  const warm = Date.now() + 120_000;
  for (let q = await d.progress(id); q.rewrapped + q.skipped < ROW_BATCH * 4; q = await d.progress(id)) {
    if (Date.now() > warm) throw new Error('scale: no batch committed within 120 s of the start');
    await new Promise((r) => setTimeout(r, 250));
  }
  const done = (x: { rewrapped: number; skipped: number; failed: number }) => x.rewrapped + x.skipped + x.failed;
  const p0 = await d.progress(id);
  const end = await env.meter.begin();
  const calls0 = await redisCalls(env.redis.client);
  const t = performance.now();
  await new Promise((r) => setTimeout(r, runSeconds * 1000));
  const p1 = await d.progress(id);
  const runCpu = await end();
  const seconds = (performance.now() - t) / 1000;
  const calls = (await redisCalls(env.redis.client)) - calls0;
  await d.cancel(id);
  const items = done(p1) - done(p0);
  const batches = items / ROW_BATCH;
  const bytesAfter = await ledgerBytes(env);
  const run = {
    items,
    seconds: round(seconds),
    itemsPerSec: Math.round(items / seconds),
    cpu: runCpu,
    batches: round(batches, 1),
    workerCpuUsPerItem: round((1e6 * runCpu.worker) / items, 2),
    postgresCpuMsPerBatch: round((1000 * runCpu.postgres) / batches, 3),
    schedulerCpuMsPerBatch: round((1000 * runCpu.scheduler) / batches, 3),
    redisCpuMsPerBatch: round((1000 * runCpu.redis) / batches, 3),
    redisCommandsPerBatch: round(calls / batches, 1),
    ledgerBytesPerItemAfterCommits: round(bytesAfter / n, 1),
  };
  ctx.say(`    ran ${items} items (${run.itemsPerSec}/s): per batch of ${ROW_BATCH}: Postgres ${run.postgresCpuMsPerBatch} ms, Redis ${run.redisCommandsPerBatch} commands / ${run.redisCpuMsPerBatch} ms, scheduler ${run.schedulerCpuMsPerBatch} ms; worker ${run.workerCpuUsPerItem} us/item`);
  return run;
}

/** Until no worker of the cancelled campaign may still hold a lease (a new campaign over the table is refused until then). */
async function leasesGone(env: ScenarioEnv, id: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { rows } = await env.db.pool.query<{ live: boolean }>('SELECT EXISTS (SELECT 1 FROM rewrap_batches WHERE campaign_id = $1 AND lease_until > now()) AS live', [id]);
    if (!rows[0]!.live) return;
    if (Date.now() > deadline) throw new Error(`scale: campaign ${id} still holds leases 120 s after its cancel`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function measureSize(ctx: BenchContext, n: number, runSeconds: number) {
  const env = await scenarioEnv(ctx, `s${n}`);
  const table = 'synthetic';
  try {
    const { keks, file } = await benchKeyring(env.dir, 'scale', 2);
    let t = performance.now();
    await createEnvelopeTable(env.db.pool, table);
    await env.db.pool.query(`ALTER TABLE ${table} DROP CONSTRAINT ${table}_pkey`);
    const wrapped = aesWrap(keks[0]!.material, randomBytes(32));
    for (let first = 1; first <= n; first += 2_000_000) {
      await env.db.pool.query(`INSERT INTO ${table} (id, wrapped_dek, kek_id, kek_version) SELECT i, $1::bytea, 'scale', '1' FROM generate_series($2::bigint, $3::bigint) i`, [wrapped, first, Math.min(n, first + 1_999_999)]);
    }
    await env.db.pool.query(`ALTER TABLE ${table} ADD PRIMARY KEY (id)`);
    await env.db.pool.query(`ANALYZE ${table}`);
    ctx.say(`  scale ${n.toLocaleString('en')}: table written in ${((performance.now() - t) / 1000).toFixed(0)} s; planning`);
    const batchPlan = await measureBatchFormPlan(env, table, file, n);
    ctx.say(`    batch ledger form: planned in ${batchPlan.seconds} s (${batchPlan.itemsPerSec} items/s), ${batchPlan.batches} batch rows, ${batchPlan.ledgerBytesPerItem} ledger bytes/item`);
    /* ledgerForm 'items': the campaign it starts is the per-item form's (the default, auto, would make it the batch form's again). */
    const d = await Deployment.start({ db: env.db, redisUrl: env.redis.url, prefix: env.prefix, dir: env.dir, meter: env.meter, ledgerForm: 'items', env: { REWRAP_PLAN_PAGE: String(PLAN_PAGE) } }, 2);
    try {
      /* The batch-form campaign planned above runs its window first, then the table goes back under scale@1. */
      ctx.say(`    batch ledger form: running ${runSeconds} s`);
      const batchRun = await measureRun(ctx, env, d, batchPlan.campaignId, n, runSeconds);
      const batchBytes = await env.db.pool.query<{ bytes: string }>(
        `SELECT (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM rewrap_batches b WHERE campaign_id = $1)
              + (SELECT coalesce(sum(pg_column_size(e.*)), 0) FROM rewrap_batch_exceptions e WHERE campaign_id = $1) AS bytes`,
        [batchPlan.campaignId],
      );
      const batchFormRun = { ...batchRun, ledgerBytesPerItemAfterCommits: round(Number(batchBytes.rows[0]!.bytes) / n, 3) };
      await leasesGone(env, batchPlan.campaignId);
      await env.db.pool.query(`UPDATE ${table} SET kek_version = '1', wrapped_dek = $1 WHERE kek_version <> '1'`, [wrapped]);
      await env.db.pool.query(`VACUUM ANALYZE ${table}`);

      /* Plan. */
      let end = await env.meter.begin();
      let calls0 = await redisCalls(env.redis.client);
      t = performance.now();
      const id = await d.startCampaign(rowSpec(`scale ${n}`, table, file, 'scale@1', 'scale@2'), false);
      const deadline = Date.now() + 90 * 60_000;
      let p = await d.progress(id);
      let lastSay = performance.now();
      while (!p.planDone) {
        if (Date.now() > deadline) throw new Error(`scale: ${n} items not planned within 90 minutes: ${JSON.stringify(p)}`);
        await new Promise((r) => setTimeout(r, 500));
        p = await d.progress(id);
        if (performance.now() - lastSay > 15_000) {
          lastSay = performance.now();
          ctx.say(`    planned ${p.planned.toLocaleString('en')}`);
        }
      }
      const planSeconds = (performance.now() - t) / 1000;
      const planCpu = await end();
      const planRedisCalls = (await redisCalls(env.redis.client)) - calls0;
      const bytesPlanned = await ledgerBytes(env);
      const plan = {
        items: n,
        seconds: round(planSeconds),
        itemsPerSec: Math.round(n / planSeconds),
        cpu: planCpu,
        schedulerCpuUsPerItem: round((1e6 * planCpu.scheduler) / n, 2),
        postgresCpuUsPerItem: round((1e6 * planCpu.postgres) / n, 2),
        redisCommands: planRedisCalls,
        ledgerBytesPerItem: round(bytesPlanned / n, 1),
      };
      ctx.say(`    planned in ${plan.seconds} s (${plan.itemsPerSec} items/s), ledger ${plan.ledgerBytesPerItem} bytes/item; running ${runSeconds} s`);

      const run = await measureRun(ctx, env, d, id, n, runSeconds);
      const delta = await measureDelta(ctx, env, table, n);
      return { plan, batchPlan, run, batchFormRun, delta };
    } finally {
      await d.stop();
    }
  } finally {
    await env.close();
  }
}

/** The shared budget alone: 4 "workers" (own Redis connection each, 64 callers) at `rate` for `seconds`. */
async function measureBudget(env: ScenarioEnv, rate: number, blockMs: number, seconds: number) {
  const conns = [0, 1, 2, 3].map(() => new Redis(env.redis.url, { maxRetriesPerRequest: null }));
  try {
    const key = `${env.prefix}:budget:${rate}-${blockMs}`;
    const budgets = conns.map((c) => new KmsBudget(c, key, rate, { blockMs }));
    const drive = async (until: number) => {
      let n = 0;
      await Promise.all(
        budgets.flatMap((b) =>
          Array.from({ length: 64 }, async () => {
            while (performance.now() < until) {
              await b.take();
              n++;
            }
          }),
        ),
      );
      return n;
    };
    await drive(performance.now() + 1000);
    const trips0 = budgets.reduce((s, b) => s + b.counters.roundTrips, 0);
    const end = await env.meter.begin();
    const t = performance.now();
    const tokens = await drive(t + seconds * 1000);
    const wall = (performance.now() - t) / 1000;
    const cpu = await end();
    const trips = budgets.reduce((s, b) => s + b.counters.roundTrips, 0) - trips0;
    return {
      rate,
      blockMs,
      tokensPerSec: Math.round(tokens / wall),
      roundTripsPerSec: Math.round(trips / wall),
      redisCpuUsPerToken: round((1e6 * cpu.redis) / tokens, 2),
      redisCpuUsPerRoundTrip: round((1e6 * cpu.redis) / Math.max(1, trips), 2),
      workerCpuUsPerToken: round((1e6 * cpu.bench) / tokens, 2),
    };
  } finally {
    for (const c of conns) c.disconnect();
  }
}

export async function runScale(ctx: BenchContext, sizes?: number[]): Promise<ScenarioResult> {
  const started = performance.now();
  const list = sizes ?? (ctx.quick ? [100_000, 1_000_000] : [1_000_000, 10_000_000]);
  const runSeconds = ctx.quick ? 10 : 30;
  const phases: Record<string, unknown> = {};
  ctx.say('  scale: the shared KMS budget alone, 4 workers x 64 callers');
  const env = await scenarioEnv(ctx, 'sbudget');
  let perRequest;
  let blocks;
  let blocks100k;
  try {
    perRequest = await measureBudget(env, 10_000, 0, 5);
    blocks = await measureBudget(env, 10_000, 200, 5);
    blocks100k = await measureBudget(env, 100_000, 200, 5);
  } finally {
    await env.close();
  }
  phases['budget 10k per request'] = perRequest;
  phases['budget 10k blocks'] = blocks;
  phases['budget 100k blocks'] = blocks100k;
  ctx.say(`    per request: ${JSON.stringify(perRequest)}\n    blocks: ${JSON.stringify(blocks)}\n    blocks at 100k: ${JSON.stringify(blocks100k)}`);

  const measured: Awaited<ReturnType<typeof measureSize>>[] = [];
  for (const n of list) {
    const m = await measureSize(ctx, n, runSeconds);
    measured.push(m);
    phases[`plan ${n.toLocaleString('en')}`] = m.plan;
    phases[`plan, batch ledger form ${n.toLocaleString('en')}`] = m.batchPlan;
    phases[`run, batch ledger form ${n.toLocaleString('en')}`] = m.batchFormRun;
    phases[`run ${n.toLocaleString('en')}`] = m.run;
    phases[`delta ${n.toLocaleString('en')}`] = m.delta;
  }
  /* The model, from the largest size measured. */
  const big = measured.at(-1)!;
  const inputs: ScaleInputs = {
    batchSize: ROW_BATCH,
    planItemsPerSec: big.plan.itemsPerSec,
    pgCpuPerItemPlan: big.plan.postgresCpuUsPerItem / 1e6,
    pgCpuPerItemRun: big.run.postgresCpuMsPerBatch / 1000 / ROW_BATCH,
    workerCpuPerItem: big.run.workerCpuUsPerItem / 1e6,
    schedulerCpuPerBatch: big.run.schedulerCpuMsPerBatch / 1000,
    redisCpuPerBatch: big.run.redisCpuMsPerBatch / 1000,
    ledgerBytesPerItem: big.run.ledgerBytesPerItemAfterCommits,
    deltaPgSecondsPerTableRow: big.delta.noIndex.usPerTableRow / 1e6,
    deltaPgSecondsPerLateRowIndexed: big.delta.kekIndex.usPerLateRow / 1e6,
    budget: {
      redisCpuPerToken: perRequest.redisCpuUsPerToken / 1e6,
      redisCpuPerRoundTrip: blocks.redisCpuUsPerRoundTrip / 1e6,
      workerCpuPerTokenBlocks: blocks.workerCpuUsPerToken / 1e6,
      workerCpuPerTokenPerRequest: perRequest.workerCpuUsPerToken / 1e6,
      blockMs: 200,
    },
  };
  /* The batch ledger form (Postgres tables): the same model from its own plan and run. */
  const batchInputs: ScaleInputs = {
    ...inputs,
    planItemsPerSec: big.batchPlan.itemsPerSec,
    pgCpuPerItemPlan: big.batchPlan.postgresCpuUsPerItem / 1e6,
    pgCpuPerItemRun: big.batchFormRun.postgresCpuMsPerBatch / 1000 / ROW_BATCH,
    workerCpuPerItem: big.batchFormRun.workerCpuUsPerItem / 1e6,
    schedulerCpuPerBatch: big.batchFormRun.schedulerCpuMsPerBatch / 1000,
    redisCpuPerBatch: big.batchFormRun.redisCpuMsPerBatch / 1000,
    ledgerBytesPerItem: big.batchFormRun.ledgerBytesPerItemAfterCommits,
    ledgerRowsPerItem: 0,
  };
  const notes: string[] = [];
  const models: Record<string, unknown> = {};
  for (const [form, m] of [
    ['per-item ledger', inputs],
    ['batch ledger form', batchInputs],
  ] as const) {
    for (const [quota, pgCores] of [
      [10_000, 2],
      [10_000, 16],
      [100_000, 16],
    ] as const) {
      const o = scaleModel(m, { items: 1e9, quota, pgCoresAvailable: pgCores, workerCoresEach: 1, lateItems: 1e5, s3ListPageSeconds: S3_LIST_PAGE_SECONDS });
      models[`${form}: 1B at ${quota} req/s, Postgres ${pgCores} cores`] = o;
      notes.push(...describeScale(o).split('\n').map((l, i) => (i === 0 ? `${form}: ${l}` : l)));
    }
  }
  phases.modelInputsBatchForm = batchInputs;
  phases.modelInputs = inputs;
  phases.model = models;
  for (const line of notes) ctx.say(`  ${line}`);
  return {
    id: 'S',
    title: 'scale model',
    params: { sizes: list.join('/'), runSeconds, workers: 2, batchSize: ROW_BATCH, planPage: PLAN_PAGE },
    phases,
    ratios: Object.fromEntries(
      measured.flatMap((m) => [
        [`worker us/item @${m.plan.items}`, m.run.workerCpuUsPerItem],
        [`batch-form plan items/s @${m.plan.items}`, m.batchPlan.itemsPerSec],
        [`batch-form plan ledger bytes/item @${m.plan.items}`, m.batchPlan.ledgerBytesPerItem],
        [`delta search us/table row, no KEK index @${m.plan.items}`, m.delta.noIndex.usPerTableRow],
      ]),
    ),
    targets: Object.fromEntries(
      measured.flatMap((m) => [
        [`batch-form plan items/s @${m.plan.items}`, target(m.batchPlan.itemsPerSec, '>=', 1_000_000)],
        [`batch-form plan ledger bytes/item @${m.plan.items}`, target(m.batchPlan.ledgerBytesPerItem, '<=', 2)],
      ]),
    ),
    notes,
    seconds: round((performance.now() - started) / 1000, 1),
  };
}
