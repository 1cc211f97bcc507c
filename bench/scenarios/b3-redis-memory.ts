/**
 * B3: Redis memory of a very large campaign. A private redis-server (nothing else in it) while a
 * 10,000,000-row campaign is planned (quick: 1,000,000) and then runs for a minute (quick: 10 s).
 * Invariant 4 says Redis holds only a bounded window of batch ids, so this should stay flat.
 */
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';
import { aesWrap } from '../../dev/reference/s3ec-client.ts';
import { randomBytes } from 'node:crypto';
import { Deployment, round } from '../lib/deployment.ts';
import { benchKeyring, scenarioEnv, target, type BenchContext, type ScenarioResult } from '../lib/context.ts';
import { rowSpec } from './b1-rows.ts';

const MB = 1024 * 1024;
const PLAN_PAGE = 50_000;

export async function runB3(ctx: BenchContext): Promise<ScenarioResult> {
  const started = performance.now();
  const n = ctx.quick ? 200_000 : 10_000_000;
  const runSeconds = ctx.quick ? 5 : 60;
  const env = await scenarioEnv(ctx, 'b3');
  const table = 'big';
  try {
    const { keks, file } = await benchKeyring(env.dir, 'bench', 2);
    ctx.say(`  B3: inserting ${n.toLocaleString('en')} rows (one DEK wrapped under bench@1, repeated) ...`);
    let t = performance.now();
    await createEnvelopeTable(env.db.pool, table);
    await env.db.pool.query(`ALTER TABLE ${table} DROP CONSTRAINT ${table}_pkey`);
    const wrapped = aesWrap(keks[0]!.material, randomBytes(32));
    for (let first = 1; first <= n; first += 2_000_000) {
      await env.db.pool.query(`INSERT INTO ${table} (id, wrapped_dek, kek_id, kek_version) SELECT i, $1::bytea, 'bench', '1' FROM generate_series($2::bigint, $3::bigint) i`, [wrapped, first, Math.min(n, first + 1_999_999)]);
    }
    await env.db.pool.query(`ALTER TABLE ${table} ADD PRIMARY KEY (id)`);
    await env.db.pool.query(`ANALYZE ${table}`);
    ctx.say(`  B3: inserted in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    /* A documented knob for very large sources: planning pages of 50,000 ids instead of 5,000. */
    const d = await Deployment.start({ db: env.db, redisUrl: env.redis.url, prefix: env.prefix, dir: env.dir, meter: env.meter, env: { REWRAP_PLAN_PAGE: String(PLAN_PAGE) } }, 2);
    const baseline = await env.redis.usedMemory();
    let peakPlanning = baseline.used;
    let peakRunning = 0;
    let planSeconds = 0;
    let progress;
    const end = await env.meter.begin();
    try {
      t = performance.now();
      /* Planned first (the scheduler plans a campaign that is not started), then run. */
      const id = await d.startCampaign(rowSpec('bench B3', table, file, 'bench@1', 'bench@2'), false);
      ctx.say(`  B3: planning ${n.toLocaleString('en')} rows (Redis used_memory sampled every 250 ms)`);
      let lastSay = 0;
      let runStart: number | undefined;
      const deadline = Date.now() + (ctx.quick ? 5 : 30) * 60_000;
      for (;;) {
        const m = await env.redis.usedMemory();
        progress = await d.progress(id);
        if (runStart === undefined) {
          peakPlanning = Math.max(peakPlanning, m.used);
          if (progress.planDone) {
            runStart = performance.now();
            planSeconds = (runStart - t) / 1000;
            ctx.say(`    planned in ${planSeconds.toFixed(1)} s; running for ${runSeconds} s`);
            await d.run(id);
          }
        } else {
          peakRunning = Math.max(peakRunning, m.used);
          if (performance.now() - runStart >= runSeconds * 1000) break;
        }
        if (performance.now() - lastSay > 5000) {
          lastSay = performance.now();
          ctx.say(`    planned ${progress.planned.toLocaleString('en')}, done ${(progress.rewrapped + progress.skipped + progress.failed).toLocaleString('en')}, used_memory ${(m.used / MB).toFixed(1)} MB`);
        }
        if (Date.now() > deadline) throw new Error(`B3: campaign ${id} not planned within the deadline: ${JSON.stringify(progress)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      await d.cancel(id);
    } finally {
      await d.stop();
    }
    const cpu = await end();
    const info = await env.redis.usedMemory();
    const peak = Math.max(peakPlanning, peakRunning, info.peak);
    const peakMb = round(peak / MB, 1);
    return {
      id: 'B3',
      title: 'Redis memory of a large campaign',
      params: { rows: n, runSeconds, workers: 2, planPage: PLAN_PAGE },
      phases: {
        memory: {
          baselineMb: round(baseline.used / MB, 1),
          peakWhilePlanningMb: round(peakPlanning / MB, 1),
          peakWhileRunningMb: round(peakRunning / MB, 1),
          usedMemoryPeakMb: round(info.peak / MB, 1),
        },
        planning: { planned: progress?.planned, planSeconds: round(planSeconds, 1), rowsPlannedPerSec: Math.round(n / planSeconds), doneWhileRunning: (progress?.rewrapped ?? 0) + (progress?.skipped ?? 0) },
        cpu,
      },
      ratios: {},
      targets: { 'peak used_memory MB': target(peakMb, '<=', 64) },
      notes: ['every row holds the same wrapped DEK (fast to create); workers rewrap each row, but identical wrapped keys may share one provider call (DedupingKekProvider), so the run phase is not a throughput figure'],
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    await env.close();
  }
}
