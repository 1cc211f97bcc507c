/** The JSON shapes the API returns for campaigns: ledger records minus anything secret. */
import type pg from 'pg';
import { campaignProgress, failureCountsByReason, getCampaign, listCampaigns, noncurrentCounts } from '../ledger/index.ts';
import { noncurrentStatus } from '../campaign/noncurrent-sweep.ts';
import type { Campaign, CampaignProgress, InventoryCount } from '../ledger/types.ts';
import { describeReason, type ReasonCode } from '../core/reasons.ts';
import { describeKeks, entriesToShow, keyMapCounts, type KekCounts, type KeyMapCounts } from '../metrics/key-map-counts.ts';
import { publicSpec } from './public-spec.ts';

export interface CampaignSummary {
  id: string;
  name: string;
  kind: Campaign['kind'];
  state: Campaign['state'];
  priority: number;
  from: string;
  to: string;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  progress: CampaignProgress;
}

export interface CampaignDetail extends CampaignSummary {
  scopes: Campaign['scopes'];
  planDone: boolean;
  deltaPasses: number;
  pauseReason: string | null;
  deadline: string | null;
  spec: unknown;
  failuresByReason: { reason: string; items: number; description: string | null }[];
  /** Items per KEK version in the campaign's stores, as last observed (the ledger inventory). */
  kekVersions: InventoryCount[];
  /** Noncurrent versions under the source KEK in versioned buckets: the option, the sweep, counts by store and state. */
  noncurrentVersions: ReturnType<typeof noncurrentStatus>;
  /**
   * Key-map campaigns only: per-KEK counters (moved, remaining, failed) for every entry of a map
   * of at most API_KEK_ROWS entries; above, the entries with something left, worst first.
   */
  keyMap?: { entries: number; keks: KekCounts[]; truncated: boolean; outsideMap: KeyMapCounts['outsideMap'] };
}

/** Per-KEK rows in one campaign detail at most (the full list: `rewrap campaign report <id> --kind keks`). */
export const API_KEK_ROWS = 1000;

function summary(c: Campaign, progress: CampaignProgress): CampaignSummary {
  return {
    id: c.id,
    name: c.name,
    kind: c.kind,
    state: progress.state,
    priority: c.priority,
    ...describeKeks(c.spec),
    createdAt: c.createdAt,
    startedAt: c.startedAt,
    finishedAt: c.finishedAt,
    progress,
  };
}

/** A campaign's progress is a few aggregate queries: shared by every client for this long. */
export const PROGRESS_CACHE_MS = 2000;

/**
 * Campaign summaries a page at a time, in the ledger's order (priority, then age), with progress
 * cached per campaign for PROGRESS_CACHE_MS: a list of thousands of campaigns costs one query
 * for the rows and at most `limit` progress queries, whatever the number of clients.
 */
export function campaignPages(pool: pg.Pool): (page: { limit: number; after?: string }) => Promise<{ campaigns: CampaignSummary[]; next: string | null }> {
  const progress = new Map<string, { at: number; value: Promise<CampaignProgress> }>();
  const progressOf = (id: string): Promise<CampaignProgress> => {
    const hit = progress.get(id);
    if (hit && performance.now() - hit.at < PROGRESS_CACHE_MS) return hit.value;
    const value = campaignProgress(pool, id);
    progress.set(id, { at: performance.now(), value });
    value.catch(() => progress.delete(id));
    return value;
  };
  return async ({ limit, after }) => {
    const campaigns = await listCampaigns(pool);
    const start = after === undefined ? 0 : campaigns.findIndex((c) => c.id === after) + 1;
    const page = start === 0 && after !== undefined ? [] : campaigns.slice(start, start + limit);
    // Forget campaigns that are gone; the map stays as small as the ledger.
    if (progress.size > campaigns.length) for (const id of progress.keys()) if (!campaigns.some((c) => c.id === id)) progress.delete(id);
    const last = page[page.length - 1];
    return {
      campaigns: await Promise.all(page.map(async (c) => summary(c, await progressOf(c.id)))),
      next: last && start + page.length < campaigns.length ? last.id : null,
    };
  };
}

/** undefined when there is no such campaign. `inventory` gives the (cached) inventory rows. */
export async function campaignDetail(pool: pg.Pool, id: string, inventory: () => Promise<InventoryCount[]>): Promise<CampaignDetail | undefined> {
  const c = await getCampaign(pool, id);
  if (!c) return undefined;
  const [progress, reasons, inv, noncurrent] = await Promise.all([campaignProgress(pool, id), failureCountsByReason(pool, id), inventory(), noncurrentCounts(pool, id)]);
  const stores = new Set(c.scopes.map((s) => s.storeId));
  return {
    ...summary(c, progress),
    scopes: c.scopes,
    planDone: progress.planDone,
    deltaPasses: c.deltaPasses,
    pauseReason: progress.pauseReason,
    deadline: c.spec.deadline ?? null,
    spec: publicSpec(c.spec),
    failuresByReason: reasons.map((r) => ({ ...r, description: describeReason(r.reason as ReasonCode) ?? null })),
    kekVersions: inv.filter((r) => stores.has(r.storeId)),
    noncurrentVersions: noncurrentStatus(c, noncurrent),
    ...(c.spec.keyMap ? { keyMap: await keyMapView(pool, c) } : {}),
  };
}

async function keyMapView(pool: pg.Pool, c: Campaign): Promise<NonNullable<CampaignDetail['keyMap']>> {
  const counts = await keyMapCounts(pool, c.id, c.spec);
  const keks = entriesToShow(counts, API_KEK_ROWS);
  return { entries: counts.entries, keks, truncated: keks.length < counts.entries, outsideMap: counts.outsideMap };
}
