/**
 * `rewrap scheduler`: plans campaigns into the ledger and feeds their batches to BullMQ.
 * One is active per ledger (a Postgres advisory lock decides); others wait as standbys.
 */
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProcessConfig } from '../src/config.ts';
import type { Logger } from '../src/log.ts';
import { campaignProgress, listCampaigns, recordCanary, setCampaignState } from '../src/ledger/index.ts';
import type { Campaign } from '../src/ledger/types.ts';
import { ConfigError } from '../src/core/errors.ts';
import { createBatchQueue } from '../src/queue/batch-queue.ts';
import { planStep, StatisticsSchedule } from './planner.ts';
import { runCanary } from '../src/campaign/canary.ts';
import { checkTargetKek } from '../src/campaign/target-kek-check.ts';
import { feed, reconcile, withdraw } from './feeder.ts';
import { startProcessRuntime } from '../src/runtime/process-runtime.ts';
import { pgClientConfig } from '../src/runtime/resources.ts';
import { LeaderLock } from './leadership.ts';
import { DeltaPassRule, ledgerDeltaPasses } from './delta-pass.ts';
import { runDueSchedules } from '../src/schedule/run-due-schedules.ts';
import { hasNoncurrentScope, noncurrentSweepStep } from '../src/campaign/noncurrent-sweep.ts';
import type { NoncurrentContext } from '../src/reports/noncurrent-versions.ts';

export interface RunningScheduler {
  /** Resolves after the next full tick (tests and the demo wait on it instead of sleeping). */
  tick(): Promise<void>;
  close(): Promise<void>;
}

export async function startScheduler(config: ProcessConfig, log: Logger): Promise<RunningScheduler> {
  const rt = await startProcessRuntime(config, log, 'scheduler');
  const { redis, res } = rt;
  const queue = createBatchQueue(redis, config.queuePrefix);
  queue.on('error', (err) => log.warn({ err }, 'queue error'));

  const pgc = config.postgres;
  const lock = new LeaderLock({
    newClient: () => new pg.Client(pgClientConfig(config.databaseUrl, pgc)),
    log,
    standbyPollMs: 1000,
    reconnectMinMs: pgc.reconnectMinMs,
    reconnectMaxMs: pgc.reconnectMaxMs,
    checkTimeoutMs: pgc.connectTimeoutMs,
  });
  /* Aborted by close(): ends a standby's wait, a leader's pause between ticks, and the canary. */
  const stop = new AbortController();

  const completion = new DeltaPassRule(ledgerDeltaPasses(res.ledger));
  const yielding = new Set<string>();
  const statistics = new StatisticsSchedule();
  let lastReconcile = 0;
  let stopping = false;
  let waiters: (() => void)[] = [];

  /* Set by a tick that left a plan unfinished: the next tick follows at once (no tickMs pause),
     so a large plan is enumerated continuously, with feeding and reconciling between its steps. */
  let planning = false;

  /** One pass over the campaigns as leader; stops between steps once `term` (the leadership) ends. */
  async function tickOnce(term: AbortSignal): Promise<void> {
    planning = false;
    const campaigns = await listCampaigns(res.ledger, { states: ['planning', 'running', 'paused', 'cancelled'] });
    const reconcileNow = Date.now() - lastReconcile >= config.scheduler.reconcileEveryMs;
    /* Incidents first; while one runs, routine campaigns stop feeding and yield the workers. */
    campaigns.sort((a, b) => Number(b.kind === 'incident') - Number(a.kind === 'incident'));
    const incident = campaigns.find((c) => c.kind === 'incident' && c.state === 'running');
    /* Free the workers before anything else, so the incident's first batches find them idle
       instead of behind a window of routine jobs. */
    if (incident) {
      for (const c of campaigns) {
        if (term.aborted) return;
        if (c.kind === 'routine' && c.state === 'running') await yieldWorkers(c, incident, log.child({ campaignId: c.id }));
      }
    }
    for (const c of campaigns) {
      if (term.aborted) return;
      const clog = log.child({ campaignId: c.id });
      try {
        await tickCampaign(c, reconcileNow, clog, term, c.kind === 'routine' ? incident : undefined);
      } catch (err) {
        /* A source that cannot work as configured (a missing column, a column that cannot hold
           what the campaign needs) will not fix itself: a running campaign pauses with the
           reason instead of retrying forever (one not yet started keeps its state and logs it;
           once started, it pauses). */
        if (err instanceof ConfigError && c.state === 'running') {
          if (await setCampaignState(res.ledger, c.id, ['running'], 'paused', err.message)) clog.error({ err }, 'campaign paused: fix its configuration, then resume it');
        } else clog.error({ err }, 'campaign tick failed; retrying next tick');
      }
    }
    if (reconcileNow) lastReconcile = Date.now();
    if (term.aborted) return;
    await runDueSchedules(res, log, new Date());
  }

  async function tickCampaign(c: Campaign, reconcileNow: boolean, clog: Logger, term: AbortSignal, yieldTo?: Campaign): Promise<void> {
    if (c.state === 'paused' || c.state === 'cancelled') {
      const n = await withdraw(res.ledger, queue, c);
      if (n) clog.info({ batches: n }, `jobs withdrawn from Redis (campaign ${c.state})`);
      return;
    }
    if (!c.planDone) {
      const r = await planStep(res, c, config.scheduler.planPageSize, config.scheduler.planStepMs, term);
      await statistics.afterPlanStep(res, c.id, r);
      if (!r.planDone) planning = true;
    }
    if (c.state !== 'running' || term.aborted) return;
    checkTargetKek(res, c); // a target no longer enabled pauses the campaign (ConfigError, below)
    if (yieldTo) return; // yieldWorkers ran at the start of the tick
    if (yielding.delete(c.id)) clog.info('incident over: routine campaign resumes');
    if (c.spec.options.canaryFraction > 0 && c.canaryState !== 'passed') {
      await canaryStage(c, clog, AbortSignal.any([term, stop.signal]));
      return;
    }
    const fed = await feed(res.ledger, queue, c, config.scheduler.windowBatches);
    if (reconcileNow) {
      const n = await reconcile(res.ledger, queue, c, config.scheduler.reconcileEveryMs);
      if (n) clog.warn({ batches: n }, 'batches missing from Redis re-enqueued');
    }
    /* Complete only when nothing in scope remains under the old KEK (delta-pass.ts). The noncurrent
       sweep (noncurrent-sweep.ts) runs only on a clean pass, when every current item is committed:
       a page per tick, the next tick at once, until it is done. */
    const step = await completion.step(c, fed, () => sweepNoncurrent(c, clog, AbortSignal.any([term, stop.signal])));
    if (step.kind === 'completed') {
      const p = step.progress;
      clog.info({ rewrapped: p.rewrapped, skipped: p.skipped, failed: p.failed }, 'campaign completed');
    } else if (step.kind === 'finishing') {
      planning = true;
    } else if (step.kind === 'delta-pass') {
      clog.info({ pass: step.pass }, 'delta pass: looking for items that appeared since the plan');
    }
  }

  async function sweepNoncurrent(c: Campaign, clog: Logger, signal: AbortSignal): Promise<boolean> {
    if (c.noncurrentSweptAt || !hasNoncurrentScope(c)) return true;
    let provider: NoncurrentContext['provider'];
    try {
      provider = res.provider(c.id, c.spec);
    } catch {
      provider = undefined; // cannot tell a keyring KEK by its matdesc: every AES/GCM version may be under the source
    }
    return noncurrentSweepStep(res.ledger, { s3: (bucket) => res.s3ClientFor(bucket, [c.spec]), provider }, c, clog, () => new Date(), signal);
  }

  /** A routine campaign stops feeding while an incident runs; its waiting jobs leave Redis, batches in hand finish. */
  async function yieldWorkers(c: Campaign, incident: Campaign, clog: Logger): Promise<void> {
    try {
      if (!yielding.has(c.id)) clog.info({ incident: incident.id }, 'routine campaign yields to an incident: no new batches until it ends');
      yielding.add(c.id);
      await withdraw(res.ledger, queue, c);
    } catch (err) {
      clog.error({ err }, 'yielding to the incident failed; retrying next tick');
    }
  }

  /**
   * Before fan-out: the whole plan or its first canaryAfterItems items, then the canary sample;
   * nothing is fed until it passes. A 'failed' canary runs again when the operator resumes.
   */
  async function canaryStage(c: Campaign, clog: Logger, signal: AbortSignal): Promise<void> {
    const p = await campaignProgress(res.ledger, c.id);
    if (!c.planDone && p.planned < c.spec.options.canaryAfterItems) return;
    const v = await runCanary(res, c, p.planned, clog, signal);
    if (v.verdict === 'retry-later') {
      clog.info({ why: v.why }, 'canary: transient failure, trying again');
      return;
    }
    await recordCanary(res.ledger, c.id, v.verdict, v.report);
    if (v.verdict === 'passed') {
      clog.info({ items: v.report.items }, 'canary passed: fanning out');
      return;
    }
    const reasons = [...new Set(v.report.failed.map((f) => `${f.step}:${f.reason}`))].join(', ');
    await setCampaignState(res.ledger, c.id, ['running'], 'paused', `canary failed: ${v.report.failed.length} of ${v.report.items} items (${reasons}); see the canary report`);
    clog.error({ report: v.report }, 'canary failed: campaign stopped before fanning out');
  }

  /*
   * Leadership terms: take the lock (standing by while another scheduler holds it, reconnecting
   * with backoff while the ledger is unreachable), tick while the lock connection lives, and
   * after losing it take it again. Each tick begins with a round trip on the lock connection, so
   * a leader cut off from it stops within one tick even when no error arrives.
   */
  const loop = (async () => {
    while (!stopping) {
      const term = await lock.acquire(stop.signal);
      if (!term) break;
      log.info('scheduler active');
      const pause = AbortSignal.any([term, stop.signal]);
      while (!stopping && !term.aborted) {
        try {
          if (await lock.confirm()) await tickOnce(term);
        } catch (err) {
          if (term.aborted) log.info({ err }, 'scheduler tick stopped: the lock was lost');
          else log.error({ err }, 'scheduler tick failed');
        }
        const w = waiters;
        waiters = [];
        for (const f of w) f();
        if (!stopping && !term.aborted) await sleep(planning ? 0 : config.scheduler.tickMs, undefined, { signal: pause }).catch(() => undefined);
      }
    }
  })();

  let closing: Promise<void> | undefined;
  return {
    tick: () => new Promise<void>((resolve) => waiters.push(resolve)),
    close() {
      closing ??= (async () => {
        stopping = true;
        stop.abort(new Error('scheduler stopping'));
        await loop;
        await lock.release(); // ends the session, and with it the advisory lock
        await queue.close();
        await rt.close();
        log.info('scheduler stopped');
      })();
      return closing;
    },
  };
}
