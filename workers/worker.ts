/**
 * `rewrap worker`: a BullMQ worker process. Any number run anywhere; each takes batch jobs,
 * processes them (workers/batch-processor.ts) and shuts down in order on SIGTERM: stop taking
 * jobs, finish or release the batches in hand within the timeout, close clients.
 */
import { Worker, type Job } from 'bullmq';
import type { ProcessConfig } from '../src/config.ts';
import type { Logger } from '../src/log.ts';
import { BATCH_QUEUE, batchBackoffMs, createBatchQueue, type BatchJobData } from '../src/queue/batch-queue.ts';
import { processBatch, RetryLaterError } from './batch-processor.ts';
import { startProcessRuntime } from '../src/runtime/process-runtime.ts';
import { handBack, handBackDecision } from './budget-hand-back.ts';
import { getCampaign } from '../src/ledger/index.ts';

export interface RunningWorker {
  close(): Promise<void>;
}

export async function startWorker(config: ProcessConfig, log: Logger): Promise<RunningWorker> {
  const rt = await startProcessRuntime(config, log, 'worker');
  const { redis, res, metrics } = rt;
  const aborts = new Set<AbortController>();
  /** Batch jobs in hand per campaign, and the queue's waiting jobs, for the budget hand-back. */
  const inHand = new Map<string, number>();
  const queue = createBatchQueue(redis, config.queuePrefix);
  queue.on('error', (err) => log.warn({ err }, 'queue error'));
  const othersWaiting = async () => (await queue.getJobCountByTypes('waiting', 'prioritized')) > 0;
  const deps = { res, log, workerId: config.worker.id, leaseMs: config.worker.leaseMs };

  const worker = new Worker<BatchJobData>(
    BATCH_QUEUE,
    async (job: Job<BatchJobData>, token?: string) => {
      const { campaignId, batchNo } = job.data;
      /* Counted at once, before any await: of two batches of a campaign started together, the second sees the first. */
      const ahead = inHand.get(campaignId) ?? 0;
      inHand.set(campaignId, ahead + 1);
      const ac = new AbortController();
      try {
        /* A slot does not sit waiting on one campaign's spoken-for budget while other jobs wait (budget-hand-back.ts). */
        if (ahead > 0 && token !== undefined) {
          /* Cannot tell (the ledger or Redis unreachable): the batch runs, and meets the failure as usual. */
          const delayMs = await getCampaign(res.ledger, campaignId).then(
            (c) => (c ? handBackDecision(res, campaignId, c.spec, ahead, othersWaiting) : undefined),
            () => undefined,
          ).catch(() => undefined);
          if (delayMs !== undefined) {
            log.debug({ jobId: job.id, campaignId, batchNo, delayMs, batchesInHand: ahead }, 'batch handed back: its KMS budget holds back the batches in hand');
            await handBack(job, token, delayMs);
          }
        }
        aborts.add(ac);
        metrics.jobsInFlight.inc();
        try {
          return await processBatch(deps, campaignId, batchNo, job.id ?? 'unknown', ac.signal);
        } finally {
          metrics.jobsInFlight.dec();
          aborts.delete(ac);
        }
      } finally {
        const n = (inHand.get(campaignId) ?? 1) - 1;
        if (n > 0) inHand.set(campaignId, n);
        else inHand.delete(campaignId);
      }
    },
    {
      connection: redis,
      prefix: config.queuePrefix,
      concurrency: config.worker.jobConcurrency,
      // A killed worker's job is offered again after about lockDuration + stalledInterval.
      lockDuration: 10_000,
      stalledInterval: 5_000,
      maxStalledCount: 1000,
      settings: { backoffStrategy: (attemptsMade: number) => batchBackoffMs(attemptsMade) },
    },
  );
  worker.on('error', (err) => log.error({ err }, 'worker error'));
  worker.on('failed', (job, err) => {
    const level = err instanceof RetryLaterError || err.name === 'RetryLaterError' ? 'info' : 'warn';
    log[level]({ jobId: job?.id, attemptsMade: job?.attemptsMade, err }, 'batch job will be retried');
  });
  await worker.waitUntilReady();
  log.info({ workerId: config.worker.id, jobs: config.worker.jobConcurrency }, 'worker started');

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        log.info('worker stopping: no new jobs; finishing batches in hand');
        const timer = setTimeout(() => {
          log.warn('shutdown timeout: aborting batches in hand (their leases are released)');
          for (const ac of aborts) ac.abort(new Error('worker shutting down'));
        }, config.worker.shutdownTimeoutMs);
        try {
          await worker.close();
          await queue.close();
        } finally {
          clearTimeout(timer);
          await rt.close();
        }
        log.info('worker stopped');
      })();
      return closing;
    },
  };
}
