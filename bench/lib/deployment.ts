/**
 * A rewrap deployment as a user runs it: one scheduler and N worker processes
 * (`node bin/rewrap.js scheduler|worker`), logging at the default level (audit lines included)
 * to files, as a service manager would. Campaigns are admitted directly in the ledger, as
 * `rewrap campaign create --start` does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { REWRAP_BIN } from '../../dev/services/processes.ts';
import { admitCampaign } from '../../src/campaign/create.ts';
import { parseCampaignSpec } from '../../src/campaign/spec.ts';
import { campaignProgress, migrate, setCampaignState } from '../../src/ledger/index.ts';
import type { CampaignProgress, LedgerForm } from '../../src/ledger/types.ts';
import type { CpuMeter } from './cpu-meter.ts';
import type { BenchSchema } from './services.ts';

export interface BenchProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

export function spawnLogged(name: string, args: string[], env: Record<string, string>, dir: string): BenchProcess {
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  /* bench --profile DIR: a V8 CPU profile of each rewrap process, written when it exits. */
  const profileDir = process.env.REWRAP_BENCH_PROFILE_DIR;
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
  /* REWRAP_BENCH_NODE_FLAGS: Node flags for the rewrap processes only, not the baselines' drivers (a trial: --max-semi-space-size=64). */
  const flags = (process.env.REWRAP_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, ...profile, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = once(child, 'exit');
  return {
    name,
    child,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Polls a process's log file for a line (with a deadline); fails early if the process exits. */
export async function waitForLog(p: BenchProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(p.logFile, 'utf8');
    if (pattern.test(text)) return;
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${p.child.exitCode}) before logging ${pattern}; see ${p.logFile}:\n${text.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${p.name}: no log line matching ${pattern} within ${timeoutMs} ms; see ${p.logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface DeploymentOptions {
  db: BenchSchema;
  redisUrl: string;
  prefix: string;
  dir: string;
  kmsUrl?: string;
  s3?: { endpoint: string; accessKeyId: string; secretAccessKey: string };
  meter: CpuMeter;
  env?: Record<string, string>;
  /** How campaigns this deployment starts record their items (default: REWRAP_LEDGER_FORM's default, `auto`). */
  ledgerForm?: LedgerForm;
}

export class Deployment {
  readonly workers: BenchProcess[] = [];
  scheduler?: BenchProcess;
  private readonly env: Record<string, string>;

  constructor(private readonly o: DeploymentOptions) {
    this.env = {
      REDIS_URL: o.redisUrl,
      REWRAP_QUEUE_PREFIX: o.prefix,
      ...(o.kmsUrl ? { KMS_ENDPOINT: o.kmsUrl, KMS_ACCESS_KEY_ID: 'bench', KMS_SECRET_ACCESS_KEY: 'bench' } : {}),
      ...(o.s3 ? { S3_ENDPOINT: o.s3.endpoint, S3_ACCESS_KEY_ID: o.s3.accessKeyId, S3_SECRET_ACCESS_KEY: o.s3.secretAccessKey } : {}),
      LOG_LEVEL: 'info',
      ...o.env,
    };
  }

  static async start(o: DeploymentOptions, workers: number): Promise<Deployment> {
    await migrate(o.db.pool);
    const d = new Deployment(o);
    const s = spawnLogged('scheduler', [REWRAP_BIN, 'scheduler'], { ...d.env, DATABASE_URL: o.db.url('scheduler') }, o.dir);
    d.scheduler = s;
    await d.scaleTo(workers);
    await waitForLog(s, /scheduler active/, 180_000);
    o.meter.track('scheduler', s.child.pid);
    return d;
  }

  /** Starts or stops workers until `n` run; waits until new ones take jobs. */
  async scaleTo(n: number): Promise<void> {
    const started: BenchProcess[] = [];
    while (this.workers.length < n) {
      const i = this.workers.length + 1;
      const w = spawnLogged(`worker-${i}`, [REWRAP_BIN, 'worker'], { ...this.env, DATABASE_URL: this.o.db.url(`worker-${i}`), REWRAP_WORKER_ID: `bench-w${i}` }, this.o.dir);
      this.workers.push(w);
      started.push(w);
    }
    while (this.workers.length > n) await this.workers.pop()!.stop();
    for (const w of started) {
      await waitForLog(w, /worker started/, 180_000);
      this.o.meter.track('worker', w.child.pid);
    }
  }

  /** Admits a campaign and (unless `start` is false: the scheduler then only plans it) starts it. */
  async startCampaign(spec: unknown, start = true): Promise<string> {
    const c = await admitCampaign(this.o.db.pool, parseCampaignSpec(spec), 0, this.o.ledgerForm);
    if (start) await this.run(c.id);
    return c.id;
  }

  async run(id: string): Promise<void> {
    await setCampaignState(this.o.db.pool, id, ['planning'], 'running');
  }

  progress(id: string): Promise<CampaignProgress> {
    return campaignProgress(this.o.db.pool, id);
  }

  /**
   * Polls (every 200 ms, with a deadline) until the campaign completes. Returns the seconds until
   * every planned item had an outcome and until the scheduler marked it completed (delta pass done).
   */
  async waitCompleted(id: string, t0: number, timeoutMs: number, onProgress?: (p: CampaignProgress) => void): Promise<{ itemsDoneSeconds: number; completedSeconds: number; progress: CampaignProgress }> {
    const deadline = Date.now() + timeoutMs;
    let itemsDone: number | undefined;
    let lastReport = 0;
    for (;;) {
      const p = await this.progress(id);
      const now = performance.now();
      if (itemsDone === undefined && p.planDone && p.planned > 0 && p.rewrapped + p.skipped + p.failed >= p.planned) itemsDone = now;
      if (p.state === 'completed') return { itemsDoneSeconds: ((itemsDone ?? now) - t0) / 1000, completedSeconds: (now - t0) / 1000, progress: p };
      if (onProgress && now - lastReport > 5000) {
        lastReport = now;
        onProgress(p);
      }
      const dead = [this.scheduler!, ...this.workers].find((x) => x.child.exitCode !== null);
      if (dead) throw new Error(`${dead.name} exited (${dead.child.exitCode}); see ${dead.logFile}`);
      if (p.state === 'paused' || p.state === 'cancelled') throw new Error(`campaign ${id} is ${p.state} (${p.pauseReason ?? ''}); see ${this.o.dir}`);
      if (Date.now() > deadline) throw new Error(`campaign ${id} not completed within ${timeoutMs} ms: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async cancel(id: string): Promise<void> {
    await setCampaignState(this.o.db.pool, id, ['running', 'planning', 'paused'], 'cancelled');
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.stop()));
    await this.scheduler?.stop();
  }
}

/** Runs one campaign to completion under the CPU meter: wall time, rates and CPU per kind. */
export async function measureCampaign(d: Deployment, meter: CpuMeter, spec: unknown, items: number, timeoutMs: number, say: (s: string) => void) {
  const end = await meter.begin();
  const t0 = performance.now();
  const id = await d.startCampaign(spec);
  const r = await d.waitCompleted(id, t0, timeoutMs, (p) => say(`    ${p.rewrapped + p.skipped + p.failed}/${p.planned} done, ${p.doneRatePerSec.toFixed(0)} items/s`));
  const cpu = await end();
  const p = r.progress;
  if (p.failed > 0 || p.rewrapped + p.skipped !== items) {
    throw new Error(`campaign ${id}: expected ${items} items rewrapped, got rewrapped ${p.rewrapped}, skipped ${p.skipped}, failed ${p.failed}`);
  }
  return {
    campaignId: id,
    items,
    rewrapped: p.rewrapped,
    skipped: p.skipped,
    seconds: round(r.completedSeconds),
    itemsDoneSeconds: round(r.itemsDoneSeconds),
    itemsPerSec: Math.round(items / r.completedSeconds),
    cpu,
  };
}

export const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export type CampaignMeasurement = Awaited<ReturnType<typeof measureCampaign>>;
