/**
 * CPU seconds per process kind, from /proc/<pid>/stat (utime + stime, all threads), read before
 * and after a measured phase. Postgres backends come and go with the pools, so they are found by
 * application_name in pg_stat_activity and sampled every 500 ms; a backend that exits mid-phase
 * is counted up to its last sample.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type pg from 'pg';

export const KINDS = ['worker', 'scheduler', 'driver', 'redis', 'postgres', 's3', 'kms', 'bench'] as const;
export type Kind = (typeof KINDS)[number];
export type CpuSeconds = Record<Kind, number>;

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of one process in seconds, or undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

export function zeroCpu(): CpuSeconds {
  return Object.fromEntries(KINDS.map((k) => [k, 0])) as CpuSeconds;
}

interface Tracked {
  kind: Kind;
  last: number;
}

export class CpuMeter {
  private readonly tracked = new Map<number, Tracked>();
  private timer?: NodeJS.Timeout;
  private sampling?: Promise<void>;

  /**
   * @param pgMonitor a pool (not tagged) used to list backends; backends whose application_name
   *   starts with `pgTag` are counted as 'postgres'.
   */
  constructor(
    private readonly pgMonitor?: pg.Pool,
    private readonly pgTag?: string,
  ) {}

  track(kind: Kind, pid: number | undefined): void {
    if (pid === undefined) return;
    const now = processCpuSeconds(pid);
    if (now !== undefined && !this.tracked.has(pid)) this.tracked.set(pid, { kind, last: now });
  }

  start(): void {
    this.timer ??= setInterval(() => void this.sample(), 500);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads every tracked process and discovers new Postgres backends. */
  sample(): Promise<void> {
    this.sampling ??= (async () => {
      try {
        if (this.pgMonitor && this.pgTag) {
          const { rows } = await this.pgMonitor.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1', [`${this.pgTag}%`]);
          for (const { pid } of rows) if (!this.tracked.has(pid)) this.tracked.set(pid, { kind: 'postgres', last: 0 });
        }
      } catch {
        // a failed discovery is retried at the next sample
      }
      for (const [pid, t] of this.tracked) {
        const now = processCpuSeconds(pid);
        if (now !== undefined) t.last = now;
      }
    })().finally(() => (this.sampling = undefined));
    return this.sampling;
  }

  /** A phase: call the returned function at its end to get CPU seconds per kind spent in it. */
  async begin(): Promise<() => Promise<CpuSeconds>> {
    await this.sample();
    const base = new Map([...this.tracked].map(([pid, t]) => [pid, t.last]));
    const bench0 = process.cpuUsage();
    return async () => {
      await this.sample();
      const out = zeroCpu();
      for (const [pid, t] of this.tracked) out[t.kind] += t.last - (base.get(pid) ?? 0);
      const b = process.cpuUsage(bench0);
      out.bench += (b.user + b.system) / 1e6;
      for (const k of KINDS) out[k] = Math.round(out[k] * 100) / 100;
      return out;
    };
  }
}

/** The pids of the Ceph daemons (mon, osd, radosgw) of the RGW cluster listening on `rgwPort`. */
export function findRgwPids(rgwPort: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const args = cmd.split('\0');
    if (!/(^|\/)(radosgw|ceph-osd|ceph-mon)$/.test(args[0] ?? '')) continue;
    const c = args.indexOf('-c');
    const conf = c >= 0 ? args[c + 1] : undefined;
    if (!conf) continue;
    try {
      if (!readFileSync(conf, 'utf8').includes(`endpoint=127.0.0.1:${rgwPort} `)) continue;
    } catch {
      continue;
    }
    out.push(Number(entry));
  }
  return out;
}
