/**
 * What a long-running rewrap process (scheduler, worker) sets up first: one Redis connection,
 * refused if Redis may evict keys; the shared clients; its metrics with /healthz and /readyz
 * (served when REWRAP_METRICS_PORT is set; ready once the ledger is migrated and Redis answers);
 * the ledger schema, migrated.
 */
import type { Redis } from 'ioredis';
import type { ProcessConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { migrate } from '../ledger/index.ts';
import { assertNoEviction, createRedis } from '../queue/batch-queue.ts';
import { ProcessMetrics } from '../metrics/process-metrics.ts';
import { serveMetrics } from '../metrics/metrics-server.ts';
import { Resources } from './resources.ts';
import { ledgerCheck, redisCheck } from '../metrics/health.ts';

export interface ProcessRuntime {
  redis: Redis;
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
  await migrate(res.ledger);
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
