/**
 * What a long-running rewrap process (scheduler, worker) sets up first: one Redis connection,
 * refused if Redis may evict keys; the shared clients; its metrics with /healthz and /readyz
 * (served when REWRAP_METRICS_PORT is set; ready once the ledger is migrated and Redis answers);
 * the ledger schema, migrated (waiting for a ledger that is not up yet, within
 * REWRAP_PG_STARTUP_WAIT_MS, instead of exiting: containers start in any order).
 */
import type { RedisConnection } from '../queue/redis-connection.ts';
import type { ProcessConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { migrate } from '../ledger/index.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { backoffMs } from '../core/backoff.ts';
import { isTransientPgError } from '../stores/pg-table-errors.ts';
import { assertNoEviction, createRedis } from '../queue/batch-queue.ts';
import { ProcessMetrics } from '../metrics/process-metrics.ts';
import { serveMetrics } from '../metrics/metrics-server.ts';
import { Resources } from './resources.ts';
import { ledgerCheck, redisCheck } from '../metrics/health.ts';

export interface ProcessRuntime {
  redis: RedisConnection;
  res: Resources;
  metrics: ProcessMetrics;
  /** Closes the metrics endpoint, the clients and Redis, in that order. */
  close(): Promise<void>;
}

export async function startProcessRuntime(config: ProcessConfig, log: Logger, role: 'worker' | 'scheduler'): Promise<ProcessRuntime> {
  const redis = createRedis(config.redisUrl);
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));
  try {
    await assertNoEviction(redis);
  } catch (err) {
    redis.disconnect(); // refuse to start, and let the process end
    throw err;
  }
  const metrics = new ProcessMetrics(role);
  const res = new Resources(config, redis, metrics);
  const metricsServer = config.metricsPort !== undefined ? await serveMetrics(metrics.registry, config.metricsPort, config.metricsHost, { role, checks: [ledgerCheck(res.ledger), redisCheck(redis)] }) : undefined;
  if (metricsServer) log.info({ url: metricsServer.url }, 'metrics served');
  try {
    await migrateWhenReachable(res.ledger, config.postgres, log);
  } catch (err) {
    await metricsServer?.close();
    await res.close();
    redis.disconnect();
    throw err;
  }
  return {
    redis,
    res,
    metrics,
    async close() {
      await metricsServer?.close();
      await res.close();
      redis.disconnect();
    },
  };
}

/**
 * Migrates the ledger, retrying while Postgres cannot be reached (refused, timed out, starting
 * up, shutting down) until `startupWaitMs` has passed; any other error (authentication, a
 * missing database, a failed migration) is thrown at once: waiting would not fix it.
 */
async function migrateWhenReachable(pool: pg.Pool, pgc: ProcessConfig['postgres'], log: Logger): Promise<void> {
  const giveUpAt = Date.now() + pgc.startupWaitMs;
  for (let failures = 1; ; failures++) {
    try {
      await migrate(pool);
      return;
    } catch (err) {
      const waitMs = backoffMs(failures, pgc.reconnectMinMs, pgc.reconnectMaxMs);
      if (!isTransientPgError(err) || Date.now() + waitMs > giveUpAt) throw err;
      log.warn({ err, failures, waitMs }, 'ledger unreachable at start: retrying (REWRAP_PG_STARTUP_WAIT_MS bounds the wait)');
      await sleep(waitMs);
    }
  }
}
