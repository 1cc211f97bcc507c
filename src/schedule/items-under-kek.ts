/**
 * Is anything in a campaign's sources still under a KEK? Asked before a scheduled run creates a
 * KEK version, so that no empty campaign (and no unused key version) is ever made.
 * Postgres sources list only rows whose KEK columns name the KEK: exact. S3 listings cannot tell
 * without reading every object, so the ledger's inventory decides for keys a campaign has seen,
 * and a key it has never seen counts as possibly under the KEK (erring toward a campaign that
 * finds nothing to do, never toward leaving items behind).
 */
import { singleKekOf, type CampaignSpec } from '../core/campaign-spec.ts';
import type { Resources } from '../runtime/resources.ts';
import { countKeysUnderKek } from '../ledger/index.ts';

export interface ItemsFound {
  storeId: string;
  /** A lower bound: the search stops at the first page that finds something. */
  atLeast: number;
}

export async function findItemsUnderKek(res: Resources, spec: CampaignSpec, signal?: AbortSignal): Promise<ItemsFound | undefined> {
  const { from } = singleKekOf(spec, 'a scheduled rotation');
  for (let i = 0; i < spec.sources.length; i++) {
    const source = res.source(spec, i);
    const exact = spec.sources[i]!.type === 'pg';
    for (let cursor: unknown = null, done = false; !done; ) {
      const page = await source.page(cursor, 1000, signal);
      for (const g of page.groups) {
        if (g.keys.length === 0) continue;
        const n = exact ? g.keys.length : await countKeysUnderKek(res.ledger, g.storeId, g.keys, from);
        if (n > 0) return { storeId: g.storeId, atLeast: n };
      }
      cursor = page.cursor;
      done = page.done;
    }
  }
  return undefined;
}
