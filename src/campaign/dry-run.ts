/** A dry run: how many items, how many KMS calls, how long at the budget. Writes nothing. */
import type { CampaignSpec } from '../core/campaign-spec.ts';
import type { Resources } from '../runtime/resources.ts';

export interface DryRunReport {
  items: number;
  byStore: Record<string, number>;
  /** One ReEncrypt (or local unwrap+wrap) per item at most; items already at target cost none. */
  kmsCallsAtMost: number;
  /** At the campaign's KMS budget; null when no budget is set. */
  estimatedSeconds: number | null;
}

export async function dryRun(res: Resources, spec: CampaignSpec, signal?: AbortSignal): Promise<DryRunReport> {
  const byStore: Record<string, number> = {};
  let items = 0;
  for (let i = 0; i < spec.sources.length; i++) {
    const source = res.source(spec, i);
    for (let cursor: unknown = null, done = false; !done; ) {
      const page = await source.page(cursor, 5000, signal);
      for (const g of page.groups) {
        byStore[g.storeId] = (byStore[g.storeId] ?? 0) + g.keys.length;
        items += g.keys.length;
      }
      cursor = page.cursor;
      done = page.done;
    }
  }
  const rps = spec.options.kmsRequestsPerSecond;
  return { items, byStore, kmsCallsAtMost: items, estimatedSeconds: rps > 0 ? Math.ceil(items / rps) : null };
}
