/**
 * A whole rewrap deployment for one test file: its own ledger schema, queue prefix, local KMS
 * server, one scheduler and N worker processes (real OS processes, `node bin/rewrap.js`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshSchema, type TestSchema } from '../harness/pg.ts';
import { REDIS_URL } from '../harness/env.ts';
import { deleteByPattern } from '../harness/redis.ts';
import { createRedis, dataServers } from '../../src/queue/redis-connection.ts';
import { s3TestEnv } from '../harness/s3.ts';
import { startKmsServer, type KmsServer } from '../../dev/kms-server/server.ts';
import { startRewrapProcess, type RewrapProcess } from '../../dev/services/processes.ts';
import { admitCampaign } from '../../src/campaign/create.ts';
import type { LedgerFormSetting } from '../../src/ledger/ledger-form.ts';
import { parseCampaignSpec } from '../../src/campaign/spec.ts';
import { campaignProgress, getCampaign, migrate, setCampaignState } from '../../src/ledger/index.ts';
import type { Campaign, CampaignProgress } from '../../src/ledger/types.ts';

export interface PipelineOptions {
  label: string;
  workers: number;
  redisUrl?: string;
  /** The Postgres server of the ledger (default: the shared one), e.g. a private cluster. */
  databaseUrl?: string;
  env?: Record<string, string>;
}

export interface Pipeline {
  db: TestSchema;
  prefix: string;
  redisUrl: string;
  kms: KmsServer;
  env: Record<string, string>;
  dir: string;
  scheduler: RewrapProcess;
  workers: RewrapProcess[];
  /** Every process ever started (killed ones included), for evidence and leak checks. */
  all: RewrapProcess[];
  startWorker(): Promise<RewrapProcess>;
  startScheduler(): Promise<RewrapProcess>;
  /** Admits the spec as the CLI does; `ledgerForm` as REWRAP_LEDGER_FORM would set it (default: the product's default). */
  create(spec: unknown, start?: boolean, ledgerForm?: LedgerFormSetting): Promise<Campaign>;
  progress(id: string): Promise<CampaignProgress>;
  waitFor(id: string, what: string, done: (p: CampaignProgress) => boolean, timeoutMs: number): Promise<CampaignProgress>;
  keyringFile(keks: { id: string; version: string; material: Buffer; state?: string }[]): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startPipeline(o: PipelineOptions): Promise<Pipeline> {
  const db = await freshSchema(o.label, 8, o.databaseUrl);
  await migrate(db.pool);
  const prefix = `{test-${o.label}-${randomBytes(4).toString('hex')}}`;
  const redisUrl = o.redisUrl ?? REDIS_URL;
  const kms = await startKmsServer();
  const s3 = s3TestEnv();
  const dir = await mkdtemp(join(tmpdir(), `rewrap-${o.label}-`));
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REWRAP_QUEUE_PREFIX: prefix,
    S3_ENDPOINT: s3.endpoint,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    KMS_ENDPOINT: kms.url,
    KMS_ACCESS_KEY_ID: 'test',
    KMS_SECRET_ACCESS_KEY: 'test',
    LOG_LEVEL: 'info',
    REWRAP_LEASE_MS: '4000',
    REWRAP_TICK_MS: '100',
    REWRAP_RECONCILE_MS: '1000',
    ...o.env,
  };
  const all: RewrapProcess[] = [];
  let n = 0;
  const p: Pipeline = {
    db,
    prefix,
    redisUrl,
    kms,
    env,
    dir,
    scheduler: undefined as unknown as RewrapProcess,
    workers: [],
    all,
    async startWorker() {
      const w = startRewrapProcess(`worker-${++n}`, ['worker'], { ...env, REWRAP_WORKER_ID: `w${n}` });
      all.push(w);
      p.workers.push(w);
      await w.waitForLine(/worker started/, 60_000); // tsx compiles at start: ~30 s seen with the box loaded
      return w;
    },
    async startScheduler() {
      const s = startRewrapProcess('scheduler', ['scheduler'], env);
      all.push(s);
      p.scheduler = s;
      await s.waitForLine(/scheduler active/, 60_000);
      return s;
    },
    async create(spec, start = true, ledgerForm?: LedgerFormSetting) {
      const c = await admitCampaign(db.pool, parseCampaignSpec(spec), 0, ledgerForm);
      if (start) await setCampaignState(db.pool, c.id, ['planning'], 'running');
      return (await getCampaign(db.pool, c.id))!;
    },
    progress: (id) => campaignProgress(db.pool, id),
    async waitFor(id, what, done, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last: CampaignProgress | undefined;
      for (;;) {
        last = await campaignProgress(db.pool, id);
        if (done(last)) return last;
        const dead = all.find((x) => p.workers.includes(x) && x.child.exitCode !== null && x.child.signalCode === null);
        if (dead) throw new Error(`${dead.name} exited with ${dead.child.exitCode}:\n${dead.lines.slice(-20).join('\n')}`);
        if (Date.now() > deadline) {
          throw new Error(`campaign ${id}: not ${what} within ${timeoutMs} ms; progress ${JSON.stringify(last)}\nscheduler:\n${p.scheduler?.lines.slice(-15).join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async keyringFile(keks) {
      const file = join(dir, `keyring-${randomBytes(3).toString('hex')}.json`);
      await writeFile(file, JSON.stringify({ keks: keks.map((k) => ({ id: k.id, version: k.version, material: k.material.toString('base64'), state: k.state ?? 'enabled' })) }), { mode: 0o600 });
      return file;
    },
    logs: () => all.map((x) => x.lines.join('\n')).join('\n'),
    async stop() {
      await Promise.all(all.map((x) => x.stop('SIGTERM', 10_000)));
      await kms.close();
      const r = createRedis(redisUrl, { maxRetriesPerRequest: 2 });
      r.on('error', () => undefined);
      // A cluster test may have stopped its cluster already: nothing left to remove then.
      let timer: NodeJS.Timeout | undefined;
      const servers = await Promise.race([dataServers(r), new Promise<[]>((res) => (timer = setTimeout(() => res([]), 5000)))]);
      clearTimeout(timer);
      for (const s of servers) await deleteByPattern(s, `${prefix}*`).catch(() => undefined);
      r.disconnect();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await p.startScheduler();
  for (let i = 0; i < o.workers; i++) await p.startWorker();
  return p;
}
