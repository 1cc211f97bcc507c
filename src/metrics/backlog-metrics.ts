/**
 * Backlog gauges, read from the ledger at scrape time (cached briefly) and exported once per
 * deployment by `rewrap api`, never per worker. Labels: campaign id, name and kind (a bounded
 * set), store id and KEK id/version (a handful each; the KEKs of a key map of more than
 * KEK_LABEL_LIMIT entries are summed under one label per campaign: per-tenant KEKs are unbounded).
 */
import type pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import { campaignProgress, inventoryByKek, listCampaigns, noncurrentInventory } from '../ledger/index.ts';
import type { CampaignState } from '../ledger/types.ts';
import { KEK_LABEL_LIMIT } from '../core/campaign-spec.ts';
import { keyMapCounts, type KeyMapCounts } from './key-map-counts.ts';

const STATES: CampaignState[] = ['planning', 'running', 'paused', 'cancelled', 'completed'];

export function registerBacklogMetrics(registry: Registry, pool: pg.Pool, cacheMs = 2000, refreshTimeoutMs = 10_000): void {
  let last = 0;
  let inflight: Promise<void> | undefined;
  const labels = ['campaign', 'name', 'kind'] as const;
  const remaining = new Gauge({ name: 'rewrap_campaign_items_remaining', help: 'Items of the campaign without an outcome yet (the backlog).', labelNames: labels, registers: [registry] });
  const items = new Gauge({ name: 'rewrap_campaign_items', help: 'Items of the campaign by status (planned, rewrapped, skipped, failed).', labelNames: [...labels, 'status'], registers: [registry] });
  const rate = new Gauge({ name: 'rewrap_campaign_done_rate', help: 'Items reaching an outcome per second over the last minute.', labelNames: labels, registers: [registry] });
  const eta = new Gauge({ name: 'rewrap_campaign_eta_seconds', help: 'Estimated seconds until the backlog drains at the current rate (absent while nothing moves).', labelNames: labels, registers: [registry] });
  const deadline = new Gauge({ name: 'rewrap_campaign_deadline_timestamp_seconds', help: 'When the campaign must be done (Unix time), if it has a deadline.', labelNames: labels, registers: [registry] });
  const budget = new Gauge({
    name: 'rewrap_campaign_kms_budget_requests_per_second',
    help: "The campaign's KEK provider budget (options.kmsRequestsPerSecond), for rate-vs-budget panels; absent when unlimited.",
    labelNames: labels,
    registers: [registry],
  });
  const retrying = new Gauge({
    name: 'rewrap_campaign_batches_retrying',
    help: 'Batches of a running campaign whose last attempt went back to be retried (KMS, store or ledger unavailable, throttled): above 0 the campaign is degraded.',
    labelNames: labels,
    registers: [registry],
  });
  const state = new Gauge({ name: 'rewrap_campaign_state', help: '1 for the state the campaign is in.', labelNames: [...labels, 'state'], registers: [registry] });
  const inventory = new Gauge({
    name: 'rewrap_inventory_items',
    help:
      'Items known to the ledger by store and the KEK id and version that wraps them (for a KMS key, the key material id; empty when unknown). ' +
      'version="current": current items; version="noncurrent": noncurrent object versions in versioned buckets still there (exposed, locked or kept) as the last noncurrent sweep saw them.',
    labelNames: ['store', 'kek_id', 'kek_version', 'version'],
    registers: [registry],
  });

  const kekItems = new Gauge({
    name: 'rewrap_campaign_kek_items',
    help:
      `Key map campaigns of at most ${KEK_LABEL_LIMIT} entries: items per source KEK by status (moved, remaining: seen and not moved, failed). ` +
      'Larger maps have no per-KEK series (invariant 6): see rewrap campaign status / the API.',
    labelNames: [...labels, 'kek', 'status'],
    registers: [registry],
  });

  /* Everything is read first, then the gauges are reset and set in one synchronous step: a scrape never sees them half done. */
  async function refresh(): Promise<void> {
    const campaigns = await listCampaigns(pool);
    const progress = new Map<string, Awaited<ReturnType<typeof campaignProgress>>>();
    for (const c of campaigns) if (c.state !== 'completed' && c.state !== 'cancelled') progress.set(c.id, await campaignProgress(pool, c.id));
    /* Summed: groups that differ only in what the label does not show (a version and a material both recorded) share a series. */
    const inventoryItems = new Map<string, { labels: { store: string; kek_id: string; kek_version: string; version: 'current' | 'noncurrent' }; items: number }>();
    const add = (labels: { store: string; kek_id: string; kek_version: string; version: 'current' | 'noncurrent' }, n: number) => {
      const k = JSON.stringify(labels);
      inventoryItems.set(k, { labels, items: (inventoryItems.get(k)?.items ?? 0) + n });
    };
    /* The KEKs of key maps above KEK_LABEL_LIMIT entries are summed under one label per campaign and side (invariant 6). */
    const bigMapIds = new Map<string, string>(); // KEK id -> the campaign whose map names it
    const bigMapSide = new Map<string, 'sources' | 'destinations'>(); // "<id>@<version>" (or "<id>") -> side
    for (const c of campaigns) {
      if (!c.spec.keyMap || c.spec.keyMap.length <= KEK_LABEL_LIMIT) continue;
      for (const e of c.spec.keyMap) {
        for (const [k, side] of [[e.from, 'sources'], [e.to, 'destinations']] as const) {
          if (!bigMapIds.has(k.id)) bigMapIds.set(k.id, c.id);
          const name = k.version === undefined ? k.id : `${k.id}@${k.version}`;
          if (!bigMapSide.has(name)) bigMapSide.set(name, side);
        }
      }
    }
    const kekLabels = (kekId: string, version: string) => {
      const campaign = bigMapIds.get(kekId);
      if (campaign === undefined) return { kek_id: kekId, kek_version: version };
      const side = bigMapSide.get(`${kekId}@${version}`) ?? bigMapSide.get(kekId) ?? 'other versions';
      return { kek_id: `key map ${campaign} ${side}`, kek_version: '' };
    };
    for (const r of await inventoryByKek(pool)) add({ store: r.storeId, ...kekLabels(r.kekId, r.kekVersion ?? r.materialId ?? ''), version: 'current' }, r.items);
    for (const r of await noncurrentInventory(pool)) add({ store: r.storeId, ...kekLabels(r.kekId, r.kekVersion ?? ''), version: 'noncurrent' }, r.versions);
    const perKek = new Map<string, KeyMapCounts>();
    for (const c of campaigns) if (progress.has(c.id) && c.spec.keyMap && c.spec.keyMap.length <= KEK_LABEL_LIMIT) perKek.set(c.id, await keyMapCounts(pool, c.id, c.spec));

    for (const g of [remaining, items, rate, eta, deadline, budget, retrying, state, inventory, kekItems]) g.reset();
    for (const c of campaigns) {
      const l = { campaign: c.id, name: c.name, kind: c.kind };
      for (const s of STATES) state.set({ ...l, state: s }, c.state === s ? 1 : 0);
      const p = progress.get(c.id);
      if (!p) continue;
      remaining.set(l, p.remaining);
      for (const status of ['planned', 'rewrapped', 'skipped', 'failed'] as const) items.set({ ...l, status }, p[status]);
      rate.set(l, p.doneRatePerSec);
      retrying.set(l, p.health.retryingBatches);
      if (p.etaSeconds !== null) eta.set(l, p.etaSeconds);
      const d = c.spec.deadline ? Date.parse(c.spec.deadline) : NaN;
      if (Number.isFinite(d)) deadline.set(l, d / 1000);
      if (c.spec.options.kmsRequestsPerSecond > 0) budget.set(l, c.spec.options.kmsRequestsPerSecond);
      for (const k of perKek.get(c.id)?.keks ?? []) {
        for (const status of ['moved', 'remaining', 'failed'] as const) kekItems.set({ ...l, kek: k.from, status }, k[status]);
      }
    }
    for (const { labels, items: n } of inventoryItems.values()) inventory.set(labels, n);
  }

  // prom-client calls collect() on one metric per scrape pass; refresh all of them once per cacheMs.
  /*
   * A refresh still running (slower than cacheMs) is awaited, not overlapped by another, up to
   * refreshTimeoutMs: a refresh stuck on a dead connection fails that scrape and frees the next
   * one to try again (its late results, if any, are set in one step like any other).
   */
  let running: Promise<void> | undefined;
  const collect = async () => {
    if (running || Date.now() - last < cacheMs) return inflight;
    last = Date.now();
    const r = refresh();
    running = r;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`backlog metrics: the ledger did not answer within ${refreshTimeoutMs} ms`)), refreshTimeoutMs);
    });
    inflight = Promise.race([r, timeout]).finally(() => {
      clearTimeout(timer);
      if (running === r) running = undefined;
    });
    r.catch(() => undefined);
    return inflight;
  };
  for (const g of [remaining, items, rate, eta, deadline, budget, retrying, state, inventory]) (g as unknown as { collect: () => Promise<void> }).collect = collect;
}
