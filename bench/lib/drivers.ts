/**
 * Runs load drivers (bench/drivers/raw-load.ts) as processes side by side: all prepare, then all
 * start on the same "go", and the phase lasts until the last one finishes.
 */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuMeter, CpuSeconds } from './cpu-meter.ts';
import type { DriverConfig, DriverResult } from '../drivers/raw-load.ts';
import { round } from './deployment.ts';

const DRIVER = resolve(dirname(fileURLToPath(import.meta.url)), '../drivers/raw-load.ts');

export interface DriverMeasurement {
  items: number;
  ok: number;
  seconds: number;
  itemsPerSec: number;
  processes: number;
  cpu: CpuSeconds;
}

export async function runDrivers(configs: DriverConfig[], meter: CpuMeter, timeoutMs = 600_000): Promise<DriverMeasurement> {
  const procs = configs.map((c) => {
    const child = spawn(process.execPath, ['--import', 'tsx', DRIVER, JSON.stringify(c)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-4000)));
    const line = (n: number) =>
      new Promise<Record<string, unknown>>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`driver ${c.mode}: no output line ${n} within ${timeoutMs} ms; stderr:\n${err}`)), timeoutMs);
        const check = () => {
          const lines = out.split('\n').filter((l) => l.startsWith('{'));
          if (lines.length >= n) {
            clearTimeout(timer);
            child.stdout.off('data', check);
            res(JSON.parse(lines[n - 1]!) as Record<string, unknown>);
          }
        };
        child.stdout.on('data', check);
        child.once('exit', (code) => {
          clearTimeout(timer);
          if (out.split('\n').filter((l) => l.startsWith('{')).length < n) rej(new Error(`driver ${c.mode} exited (${code}); stderr:\n${err}`));
        });
        check();
      });
    return { child, line };
  });
  try {
    await Promise.all(procs.map((p) => p.line(1)));
    for (const p of procs) meter.track('driver', p.child.pid);
    const end = await meter.begin();
    const t0 = performance.now();
    for (const p of procs) p.child.stdin.write('go\n');
    const results = (await Promise.all(procs.map((p) => p.line(2)))) as unknown as DriverResult[];
    const seconds = (performance.now() - t0) / 1000;
    const cpu = await end();
    for (const p of procs) p.child.stdin.end();
    const items = results.reduce((a, r) => a + r.items, 0);
    const ok = results.reduce((a, r) => a + r.ok, 0);
    return { items, ok, seconds: round(seconds), itemsPerSec: Math.round(ok / seconds), processes: configs.length, cpu };
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  }
}

/** Splits [from, to) into `n` contiguous ranges. */
export function splitRange(from: number, to: number, n: number): [number, number][] {
  const size = Math.ceil((to - from) / n);
  return Array.from({ length: n }, (_, i) => [from + i * size, Math.min(to, from + (i + 1) * size)] as [number, number]).filter(([a, b]) => b > a);
}
