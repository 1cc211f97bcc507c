/** The JSON shapes the API returns for campaigns: ledger records minus anything secret. */
import type pg from 'pg';
import { campaignProgress, failureCountsByReason, getCampaign, listCampaigns } from '../ledger/index.ts';
import type { Campaign, CampaignProgress, InventoryCount } from '../ledger/types.ts';
import { describeReason, type ReasonCode } from '../rewrap/reasons.ts';
import { formatKek } from '../kek/kek-provider.ts';
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
}

function summary(c: Campaign, progress: CampaignProgress): CampaignSummary {
  return {
    id: c.id,
    name: c.name,
    kind: c.kind,
    state: progress.state,
    priority: c.priority,
    from: formatKek(c.spec.from),
    to: formatKek(c.spec.to),
    createdAt: c.createdAt,
    startedAt: c.startedAt,
    finishedAt: c.finishedAt,
    progress,
  };
}

export async function campaignSummaries(pool: pg.Pool): Promise<CampaignSummary[]> {
  const campaigns = await listCampaigns(pool);
  return Promise.all(campaigns.map(async (c) => summary(c, await campaignProgress(pool, c.id))));
}

/** undefined when there is no such campaign. `inventory` gives the (cached) inventory rows. */
export async function campaignDetail(pool: pg.Pool, id: string, inventory: () => Promise<InventoryCount[]>): Promise<CampaignDetail | undefined> {
  const c = await getCampaign(pool, id);
  if (!c) return undefined;
  const [progress, reasons, inv] = await Promise.all([campaignProgress(pool, id), failureCountsByReason(pool, id), inventory()]);
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
  };
}
