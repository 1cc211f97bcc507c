/**
 * The services a bench scenario runs against, each private to the run: a redis-server of its own
 * (clean `used_memory` and CPU), the local KMS server as a process of its own (its CPU, stats and
 * faults), a Postgres schema on the shared server, and a throwaway Ceph RGW (or S3_ENDPOINT).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { freePort, startRgw, type S3Endpoint } from '../../dev/services/rgw-server.ts';
import { KMS_SERVER_MAIN } from '../../dev/services/processes.ts';
import { createKmsClient } from '../../src/kek/kms-client.ts';
import type { FaultOptions, KmsStats } from '../../dev/kms-server/faults.ts';

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export { startPrivateRedis, type PrivateRedis } from '../../dev/services/private-redis.ts';

export interface KmsProcess {
  url: string;
  pid: number;
  client: KMSClient;
  createKey(description: string): Promise<string>;
  stats(): Promise<KmsStats>;
  resetStats(): Promise<void>;
  setFaults(f: FaultOptions): Promise<void>;
  stop(): Promise<void>;
}

/** The local KMS server (`npm run kms-server`) as its own process, so its CPU is its own. */
export async function startKmsProcess(): Promise<KmsProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', KMS_SERVER_MAIN, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4000)));
  const { url, adminToken } = await new Promise<{ url: string; adminToken: string }>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`kms-server did not print its url within 30 s; stderr:\n${stderr}`)), 30_000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { url: string; adminToken: string });
      }
    });
    child.once('exit', (code) => reject(new Error(`kms-server exited (${code}) before listening; stderr:\n${stderr}`)));
  });
  const client = createKmsClient({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
  const admin = async (path: string, body?: unknown) => {
    const headers = { authorization: `Bearer ${adminToken}` };
    const res = await fetch(`${url}${path}`, body === undefined ? { headers } : { method: 'POST', headers, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`KMS admin ${path}: HTTP ${res.status} ${await res.text()}`);
    return res.json() as Promise<unknown>;
  };
  return {
    url,
    pid: child.pid!,
    client,
    async createKey(description) {
      return (await client.send(new CreateKeyCommand({ Description: description }))).KeyMetadata!.Arn!;
    },
    stats: () => admin('/__admin/stats') as Promise<KmsStats>,
    resetStats: async () => void (await admin('/__admin/stats/reset', {})),
    setFaults: async (f) => void (await admin('/__admin/faults', f)),
    async stop() {
      client.destroy();
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    },
  };
}

export interface S3Service {
  env: S3Endpoint;
  /** Our own RGW: its port (to find its daemons' pids); undefined for S3_ENDPOINT. */
  rgwPort?: number;
  stop(): Promise<void>;
}

export async function startS3(): Promise<S3Service> {
  if (process.env.S3_ENDPOINT) {
    return {
      env: {
        endpoint: process.env.S3_ENDPOINT,
        accessKeyId: process.env.S3_ACCESS_KEY_ID ?? '',
        secretAccessKey: process.env.S3_SECRET_ACCESS_KEY ?? '',
        region: process.env.S3_REGION ?? 'us-east-1',
      },
      stop: async () => {},
    };
  }
  const rgw = await startRgw();
  return { env: rgw.env, rgwPort: Number(new URL(rgw.env.endpoint).port), stop: rgw.stop };
}

/** A private schema on the shared Postgres; connection strings carry a tag for CPU accounting. */
export interface BenchSchema {
  schema: string;
  /** application_name prefix of every connection made for this schema (see CpuMeter). */
  pgTag: string;
  /** A connection string for `role` (scheduler, worker-1, driver...), search_path = schema. */
  url(role: string): string;
  /** The bench's own pool for this schema (tagged 'bench', counted as postgres CPU). */
  pool: pg.Pool;
  /** An untagged pool for monitoring (pg_stat_activity), not counted. */
  monitor: pg.Pool;
  drop(): Promise<void>;
}

export async function createBenchSchema(label: string): Promise<BenchSchema> {
  const id = randomBytes(3).toString('hex');
  const schema = `rwb_${label}_${id}`;
  const pgTag = `rwb-${label}-${id}`;
  const monitor = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  await monitor.query(`CREATE SCHEMA "${schema}"`);
  const url = (role: string) => {
    const u = new URL(DATABASE_URL);
    u.searchParams.set('options', `-c search_path=${schema}`);
    u.searchParams.set('application_name', `${pgTag}-${role}`);
    return u.toString();
  };
  const pool = new pg.Pool({ connectionString: url('bench'), max: 8 });
  return {
    schema,
    pgTag,
    url,
    pool,
    monitor,
    async drop() {
      await pool.end();
      await monitor.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await monitor.end();
    },
  };
}
