/**
 * `npm run bench [-- --quick] [-- --only B1,B2] [-- --profile DIR] [-- --scale [--scale-sizes 1e6,1e7]]`: rewrap's benchmarks against
 * the real local services, every figure a ratio measured side by side in the same run. Prints
 * progress and a table; writes bench/results/<date>.json. Not part of `npm test`.
 * --profile DIR writes a V8 CPU profile of every scheduler and worker process into DIR (open in
 * Chrome DevTools); profiling slows them, so its figures are not comparable.
 * --scale runs the scale model instead (bench/scenarios/s-scale.ts): per-batch costs at 1M and 10M
 * planned items (quick: 100k and 1M; --scale-sizes to choose) and the billion-item model.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startS3 } from './lib/services.ts';
import type { BenchContext, ScenarioResult } from './lib/context.ts';
import { formatTable } from './lib/report.ts';
import { runB1 } from './scenarios/b1-rows.ts';
import { runB2 } from './scenarios/b2-s3.ts';
import { runB3 } from './scenarios/b3-redis-memory.ts';
import { runB4 } from './scenarios/b4-scaling.ts';
import { runB5 } from './scenarios/b5-budget.ts';
import { runScale } from './scenarios/s-scale.ts';
import { runB1Hsm } from './scenarios/b1-hsm.ts';

/* `optIn`: informational scenarios run only when named in --only. */
const SCENARIOS: Record<string, { needsS3: boolean; optIn?: boolean; run: (ctx: BenchContext) => Promise<ScenarioResult> }> = {
  B1: { needsS3: false, run: runB1 },
  B2: { needsS3: true, run: runB2 },
  B3: { needsS3: false, run: runB3 },
  B4: { needsS3: true, run: runB4 },
  B5: { needsS3: false, run: runB5 },
  B1H: { needsS3: false, optIn: true, run: runB1Hsm },
};

const RESULTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), 'results');

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, profile: { type: 'string' }, scale: { type: 'boolean', default: false }, 'scale-sizes': { type: 'string' } },
    strict: true,
  });
  if (values.scale) {
    const sizes = values['scale-sizes']?.split(',').map((x) => Number(x.trim()));
    if (sizes?.some((x) => !Number.isInteger(x) || x < 1000)) throw new Error(`--scale-sizes: integers >= 1000 (e.g. 1e6,1e7), got ${values['scale-sizes']}`);
    SCENARIOS.S = { needsS3: false, run: (ctx) => runScale(ctx, sizes) };
  }
  const only = values.scale ? ['S'] : values.only ? values.only.toUpperCase().split(',').map((s) => s.trim()) : Object.keys(SCENARIOS).filter((id) => !SCENARIOS[id]!.optIn);
  for (const id of only) if (!(id in SCENARIOS)) throw new Error(`--only: unknown scenario ${id}; expected some of ${Object.keys(SCENARIOS).join(', ')}`);
  const quick = values.quick ?? false;
  if (values.profile) {
    await mkdir(values.profile, { recursive: true });
    /* Read by bench/lib/deployment.ts when it spawns rewrap processes. */
    process.env.REWRAP_BENCH_PROFILE_DIR = resolve(values.profile);
  }
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s`;
  const say = (line: string) => process.stdout.write(`[${elapsed()}] ${line}\n`);
  const dir = await mkdtemp(join(tmpdir(), 'rewrap-bench-'));
  const ctx: BenchContext = { quick, dir, say };
  const results: ScenarioResult[] = [];
  const failures: { id: string; error: string }[] = [];
  say(`rewrap bench (${quick ? 'quick' : 'full'}): ${only.join(', ')} on ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)}`);
  try {
    if (only.some((id) => SCENARIOS[id]!.needsS3)) {
      say('starting a throwaway Ceph RGW (real S3) ...');
      ctx.s3 = await startS3();
      say(`S3 at ${ctx.s3.env.endpoint}`);
    }
    for (const id of only) {
      say(`${id} ...`);
      try {
        const r = await SCENARIOS[id]!.run(ctx);
        results.push(r);
        say(`${id} done in ${r.seconds} s`);
      } catch (err) {
        const e = err as Error;
        failures.push({ id, error: e.stack ?? String(e) });
        say(`${id} FAILED: ${e.message}`);
      }
    }
  } finally {
    await ctx.s3?.stop().catch((err: Error) => say(`stopping S3: ${err.message}`));
    await rm(dir, { recursive: true, force: true });
  }
  const totalSeconds = Math.round((performance.now() - t0) / 1000);
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model, loadAverageAtEnd: loadavg().map((x) => Math.round(x * 10) / 10), node: process.version };
  process.stdout.write(`\n${formatTable(results, { quick, totalSeconds, machine })}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z');
  const file = join(RESULTS_DIR, `${stamp}${values.scale ? '-scale' : ''}${quick ? '-quick' : ''}.json`);
  await writeFile(file, JSON.stringify({ mode: quick ? 'quick' : 'full', startedAt: new Date(Date.now() - totalSeconds * 1000).toISOString(), totalSeconds, machine, results, failures }, null, 2) + '\n');
  say(`results written to ${file}`);
  for (const f of failures) process.stderr.write(`\n${f.id} failed:\n${f.error}\n`);
  return failures.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(2);
  },
);
