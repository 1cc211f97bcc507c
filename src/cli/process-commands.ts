/** Long-running processes: scheduler, worker; and `migrate`. */
import { loadConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { Resources } from '../runtime/resources.ts';
import { migrate } from '../ledger/index.ts';
import { startScheduler } from '../../scheduler/scheduler.ts';
import { startWorker } from '../../workers/worker.ts';
import { EXIT, type Command } from './args.ts';

/** Ordered, bounded shutdown on SIGTERM/SIGINT; a second signal forces exit. */
function untilSignal(close: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = () => {
      if (stopping) process.exit(130);
      stopping = true;
      close().then(
        () => resolve(EXIT.ok),
        () => resolve(EXIT.failed),
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

const ENV_HELP = `
Environment: DATABASE_URL (ledger), REDIS_URL, REWRAP_QUEUE_PREFIX (default {rewrap}),
S3_ENDPOINT / S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY, KMS_ENDPOINT, AWS_REGION, LOG_LEVEL.
REWRAP_METRICS_PORT serves /metrics, /healthz (alive) and /readyz (ledger migrated, Redis up) on
REWRAP_METRICS_HOST (default 127.0.0.1; 0.0.0.0 in a container, for probes and Prometheus).`;

export const processCommands: Command[] = [
  {
    name: 'migrate',
    summary: 'Apply the ledger\'s database migrations (idempotent; every process also does it at start).',
    usage: 'rewrap migrate' + ENV_HELP,
    async run() {
      const res = new Resources(loadConfig());
      try {
        const applied = await migrate(res.ledger);
        process.stdout.write(`ledger schema up to date${Array.isArray(applied) && applied.length ? ` (applied ${applied.join(', ')})` : ''}\n`);
      } finally {
        await res.close();
      }
      return EXIT.ok;
    },
  },
  {
    name: 'scheduler',
    summary: 'Run the scheduler: plans campaigns into the ledger and keeps a bounded window of batches in Redis. One is active per ledger; more stand by.',
    usage: `rewrap scheduler
  REWRAP_WINDOW_BATCHES (default 64) batches per campaign in Redis; REWRAP_TICK_MS (250);
  REWRAP_RECONCILE_MS (3000): how often Redis is checked against the ledger.` + ENV_HELP,
    async run() {
      const config = loadConfig();
      const s = await startScheduler(config, createLogger({ level: config.logLevel, name: 'scheduler' }));
      return untilSignal(() => s.close());
    },
  },
  {
    name: 'worker',
    summary: 'Run a worker: takes batch jobs, rewraps their items, commits outcomes to the ledger. Run any number, anywhere.',
    usage: `rewrap worker
  REWRAP_WORKER_JOBS (default 2) batches at once; REWRAP_LEASE_MS (15000) batch lease;
  REWRAP_SHUTDOWN_TIMEOUT_MS (10000) how long SIGTERM waits for batches in hand.` + ENV_HELP,
    async run() {
      const config = loadConfig();
      const w = await startWorker(config, createLogger({ level: config.logLevel, name: 'worker' }));
      return untilSignal(() => w.close());
    },
  },
];
