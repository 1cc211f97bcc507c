/** What every scenario gets, and the shape of what it reports. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CpuMeter } from './cpu-meter.ts';
import { createBenchSchema, startPrivateRedis, type BenchSchema, type PrivateRedis, type S3Service } from './services.ts';
import { findRgwPids } from './cpu-meter.ts';

export interface BenchContext {
  quick: boolean;
  /** Scratch directory of the whole run (logs, keyrings). */
  dir: string;
  s3?: S3Service;
  say(line: string): void;
}

export interface ScenarioResult {
  id: string;
  title: string;
  params: Record<string, unknown>;
  /** Named measurements (rates, seconds, CPU seconds per process kind...). */
  phases: Record<string, unknown>;
  ratios: Record<string, number>;
  /** Target name -> { value, target, met }. */
  targets: Record<string, { value: number; target: string; met: boolean }>;
  notes: string[];
  seconds: number;
}

/** A scenario's private Postgres schema, Redis server, scratch dir and CPU meter; `close` removes them. */
export interface ScenarioEnv {
  db: BenchSchema;
  redis: PrivateRedis;
  meter: CpuMeter;
  dir: string;
  prefix: string;
  close(): Promise<void>;
}

export async function scenarioEnv(ctx: BenchContext, label: string): Promise<ScenarioEnv> {
  const db = await createBenchSchema(label);
  const redis = await startPrivateRedis();
  const meter = new CpuMeter(db.monitor, db.pgTag);
  meter.track('redis', redis.pid);
  if (ctx.s3?.rgwPort !== undefined) for (const pid of findRgwPids(ctx.s3.rgwPort)) meter.track('s3', pid);
  meter.start();
  const dir = await mkdtemp(join(ctx.dir, `${label}-`));
  return {
    db,
    redis,
    meter,
    dir,
    prefix: `{rwb-${label}-${randomBytes(3).toString('hex')}}`,
    async close() {
      meter.stop();
      await redis.stop();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface BenchKek {
  id: string;
  version: string;
  material: Buffer;
}

/** Throwaway KEKs `<id>@1..n` and a keyring file (mode 0600) holding them. */
export async function benchKeyring(dir: string, id: string, versions: number): Promise<{ keks: BenchKek[]; file: string }> {
  const keks = Array.from({ length: versions }, (_, i) => ({ id, version: String(i + 1), material: randomBytes(32) }));
  const file = join(dir, `keyring-${id}.json`);
  await writeFile(file, JSON.stringify({ keks: keks.map((k) => ({ id: k.id, version: k.version, material: k.material.toString('base64'), state: 'enabled' })) }), { mode: 0o600 });
  return { keks, file };
}

export function target(value: number, op: '>=' | '<=', threshold: number): { value: number; target: string; met: boolean } {
  return { value, target: `${op} ${threshold}`, met: op === '>=' ? value >= threshold : value <= threshold };
}
