/**
 * Planning: enumerate a campaign's sources page by page into the ledger. The cursor is saved
 * with each page, so a restarted scheduler resumes exactly where it stopped.
 * Delta passes (after the main plan drained) look again for items that appeared meanwhile:
 * S3 and manifests add only keys the campaign has not seen; Postgres re-plans every row still
 * under the source KEK (except permanent failures), since a row rewritten under the old KEK
 * after we moved it must move again.
 */
import { addPlannedBounds, addPlannedItems, addPlannedRanges, refreshStatistics, replanItems } from '../src/ledger/index.ts';
import { PgTableSource, type PlanBounds } from '../src/sources/pg-table-source.ts';
import type { SourcePage } from '../src/sources/source.ts';
import { savePlanCursor } from '../src/ledger/sql/savePlanCursor.ts';
import type { Campaign } from '../src/ledger/types.ts';
import type { Resources } from '../src/runtime/resources.ts';

interface PlanCursor {
  /** index into spec.sources */
  s: number;
  /** that source's own cursor */
  c: unknown;
}

export interface PlanStepResult {
  planned: number;
  planDone: boolean;
}

/**
 * Plans pages until `budgetMs` is spent or the plan is done. The next page is read from the
 * source while this one is written to the ledger (one page ahead): the source's read and the
 * ledger's insert run side by side. A page read ahead but not planned when the budget ends is
 * dropped; the saved cursor still points before it.
 */
export async function planStep(res: Resources, campaign: Campaign, pageSize: number, budgetMs: number, signal?: AbortSignal): Promise<PlanStepResult> {
  const spec = campaign.spec;
  const started = Date.now();
  const delta = campaign.deltaPasses > 0;
  const since = campaign.planStartedAt ?? new Date(0);
  const read = (at: PlanCursor): Promise<SourcePage | PlanBounds> => {
    const source = res.source(spec, at.s, { planning: { campaignId: campaign.id } });
    /* The batch form's main pass over a table: the batches' bounds, not every id (PgTableSource.batchBounds). */
    const p: Promise<SourcePage | PlanBounds> = delta
      ? source.deltaPage(since, at.c, pageSize, signal)
      : campaign.ledgerForm === 'batches' && source instanceof PgTableSource
        ? source.batchBounds(at.c, pageSize, spec.options.batchSize)
        : source.page(at.c, pageSize, signal);
    /* Awaited only once the ledger write of the page before it is done: a read that fails first
       (a restart ends both sessions; the read's 57P01 may arrive first) would be an unhandled
       rejection meanwhile, and that ends the process. Marked handled here, it still rejects for
       the await below, which fails the step like any other error. */
    p.catch(() => undefined);
    return p;
  };
  let cur: PlanCursor = (campaign.planCursor as PlanCursor | null) ?? { s: 0, c: null };
  let reading = read(cur);
  let planned = 0;
  for (;;) {
    const page = await reading;
    const next: PlanCursor | null = !page.done ? { s: cur.s, c: page.cursor } : cur.s + 1 < spec.sources.length ? { s: cur.s + 1, c: null } : null;
    const planDone = next === null;
    if (next) reading = read(next);
    if ('bounds' in page) {
      const lo = typeof cur.c === 'string' ? cur.c : null;
      if (page.bounds.length === 0) await savePlanCursor(res.ledger, campaign.id, next, planDone);
      else planned += (await addPlannedBounds(res.ledger, campaign.id, page.storeId, page.bounds, lo, next, planDone, false)).planned;
      if (planDone) return { planned, planDone: true };
      cur = next!;
      if (Date.now() - started >= budgetMs) return { planned, planDone: false };
      continue;
    }
    const groups = page.groups.filter((g) => g.keys.length > 0);
    if (groups.length === 0) groups.push({ storeId: '', keys: [] });
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      const last = i === groups.length - 1;
      if (g.keys.length === 0) {
        await savePlanCursor(res.ledger, campaign.id, last ? next : cur, last && planDone);
        continue;
      }
      const replan = delta && spec.sources[cur.s]!.type === 'pg';
      /* Batch form (Postgres tables only): ranges of the page's ids, read after the cursor. */
      const r = campaign.ledgerForm === 'batches'
        ? await addPlannedRanges(res.ledger, campaign.id, g.storeId, g.keys, spec.options.batchSize, typeof cur.c === 'string' ? cur.c : null, last ? next : cur, last && planDone, delta)
        : replan
        ? await replanItems(res.ledger, campaign.id, g.storeId, g.keys, spec.options.batchSize, last ? { cursor: next, planDone } : undefined)
        : await addPlannedItems(res.ledger, campaign.id, g.storeId, g.keys, spec.options.batchSize, last ? next : cur, last && planDone, delta);
      planned += r.planned + r.requeued;
    }
    if (planDone) return { planned, planDone: true };
    cur = next;
    if (Date.now() - started >= budgetMs) return { planned, planDone: false };
  }
}

/**
 * When to refresh the ledger's statistics (refreshStatistics): after a campaign's first planned
 * page, whenever its plan has doubled since, and when it is fully planned. O(log n) ANALYZEs.
 */
export class StatisticsSchedule {
  private readonly next = new Map<string, number>();
  private readonly seen = new Map<string, number>();

  async afterPlanStep(res: Resources, campaignId: string, step: PlanStepResult): Promise<void> {
    const total = (this.seen.get(campaignId) ?? 0) + step.planned;
    this.seen.set(campaignId, total);
    const due = this.next.get(campaignId) ?? 1;
    if (step.planDone) {
      this.seen.delete(campaignId);
      this.next.delete(campaignId);
    } else if (total >= due) this.next.set(campaignId, total * 2);
    if ((step.planDone && total > 0) || total >= due) await refreshStatistics(res.ledger);
  }
}
