/**
 * Every long-running process answers /healthz (alive) and /readyz (ledger reachable and migrated,
 * Redis reachable where used): the worker and the scheduler on their metrics port, `rewrap api` on
 * its own. The container HEALTHCHECKs, the compose file and the Kubernetes probes rely on these
 * routes (test/deploy-compose.test.ts and test/deploy-kubernetes.test.ts check they point here).
 */
import { request } from 'node:http';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { migrate } from '../src/ledger/index.ts';
import { serveMetrics } from '../src/metrics/metrics-server.ts';
import { ledgerCheck, redisCheck } from '../src/metrics/health.ts';
import { startApiServer } from '../src/api/server.ts';
import { startWorker } from '../workers/worker.ts';
import { startScheduler } from '../scheduler/scheduler.ts';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { freshRedisPrefix, type TestRedis } from './harness/redis.ts';
import { REDIS_URL } from './harness/env.ts';

const log = createLogger({ level: 'warn', name: 'health-test' });

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** GET over node:http (fetch does not let a caller choose the Host header). */
function get(url: string, host?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: host ? { host } : {}, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch (err) {
          reject(new Error(`${url}: ${res.statusCode} ${text}`, { cause: err }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer`))).on('error', reject).end();
  });
}

let db: TestSchema;
let q: TestRedis;

beforeAll(async () => {
  db = await freshSchema('health');
  q = await freshRedisPrefix('health');
});

afterAll(async () => {
  await q?.cleanup();
  await db?.drop();
});

describe('/readyz follows the ledger, its migrations and Redis', () => {
  it('is 503 before the migrations, 200 after, 503 with a migration this build does not know or Redis gone; /healthz stays 200', async () => {
    const deadRedis = new Redis(`redis://127.0.0.1:${await freePort()}`, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    deadRedis.on('error', () => {});
    const live = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    let redis = live;
    const server = await serveMetrics(new Registry(), 0, '127.0.0.1', {
      role: 'worker',
      checks: [ledgerCheck(db.pool), { name: 'redis', run: () => redisCheck(redis).run() }],
    });
    const base = server.url.replace(/\/metrics$/, '');
    try {
      let r = await get(`${base}/readyz`);
      expect(r.status).toBe(503);
      expect(r.body.checks).toEqual({ ledger: 'migrations not applied', redis: 'ok' });
      expect((await get(`${base}/healthz`)).status).toBe(200);

      await migrate(db.pool);
      r = await get(`${base}/readyz`);
      expect(r).toEqual({ status: 200, body: { status: 'ready', role: 'worker', checks: { ledger: 'ok', redis: 'ok' } } });

      await db.pool.query("INSERT INTO rewrap_migrations (id, file) VALUES (999, '000999.sql')");
      r = await get(`${base}/readyz`);
      expect(r.status).toBe(503);
      expect(r.body.checks).toMatchObject({ ledger: 'ledger has migrations this build does not know: 999' });
      await db.pool.query('DELETE FROM rewrap_migrations WHERE id = 999');

      redis = deadRedis;
      r = await get(`${base}/readyz`);
      expect(r.status).toBe(503);
      expect(r.body.checks).toMatchObject({ ledger: 'ok', redis: expect.stringMatching(/^error|^no answer/) });
      expect((await get(`${base}/healthz`)).body).toEqual({ status: 'ok', role: 'worker' });
    } finally {
      await server.close();
      live.disconnect();
      deadRedis.disconnect();
    }
  });
});

describe('every long-running process serves them', () => {
  it('a worker and a scheduler on REWRAP_METRICS_PORT, the API on its port whatever the Host header', async () => {
    await migrate(db.pool);
    const env = { DATABASE_URL: db.url, REDIS_URL, REWRAP_QUEUE_PREFIX: `{${q.prefix}}`, REWRAP_METRICS_HOST: '127.0.0.1' };
    const workerPort = await freePort();
    const worker = await startWorker(loadConfig({ ...env, REWRAP_METRICS_PORT: String(workerPort) }), log);
    const schedulerPort = await freePort();
    const scheduler = await startScheduler(loadConfig({ ...env, REWRAP_METRICS_PORT: String(schedulerPort) }), log);
    const api = await startApiServer({ pool: db.pool, config: loadConfig(env), log, port: 0 });
    try {
      for (const [role, port] of [['worker', workerPort], ['scheduler', schedulerPort]] as const) {
        expect(await get(`http://127.0.0.1:${port}/readyz`)).toEqual({ status: 200, body: { status: 'ready', role, checks: { ledger: 'ok', redis: 'ok' } } });
        expect((await get(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      }
      // kubelet sends the pod IP as Host: the probes must not meet the API's Host allowlist (403).
      const apiPort = new URL(api.url).port;
      expect(await get(`${api.url}/readyz`, `10.1.2.3:${apiPort}`)).toEqual({ status: 200, body: { status: 'ready', role: 'api', checks: { ledger: 'ok' } } });
      expect((await get(`${api.url}/healthz`, `10.1.2.3:${apiPort}`)).status).toBe(200);
      expect((await get(`${api.url}/api/campaigns`, `10.1.2.3:${apiPort}`)).status).toBe(403);
    } finally {
      await api.close();
      await scheduler.close();
      await worker.close();
    }
  });
});
