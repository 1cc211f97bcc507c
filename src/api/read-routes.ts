/** Read-only JSON endpoints: campaigns with progress, failures, burn-down history, inventory. */
import type pg from 'pg';
import { campaignFailures, campaignProgress, getCampaign, inventoryByKek } from '../ledger/index.ts';
import type { InventoryCount } from '../ledger/types.ts';
import { HttpError, intParam, sendJson } from './http-io.ts';
import type { Route } from './router.ts';
import { campaignDetail, campaignPages } from './campaign-view.ts';
import { HISTORY_WINDOW_SECONDS, progressHistory } from './progress-history.ts';
import { cached } from './cached.ts';

/** The inventory is a GROUP BY over every item known: one query per few seconds, shared by all clients. */
const INVENTORY_CACHE_MS = 2000;

export function readRoutes(pool: pg.Pool): Route[] {
  const inventory = cached<InventoryCount[]>(INVENTORY_CACHE_MS, () => inventoryByKek(pool));
  const pages = campaignPages(pool);
  return [
    {
      method: 'GET',
      path: '/api/campaigns',
      name: 'campaigns.list',
      async handle({ res, url }) {
        // Paged: ?limit= (default 50, at most 500) and ?after=<the previous page's `next`>.
        const after = url.searchParams.get('after') || undefined;
        sendJson(res, 200, await pages({ limit: intParam(url, 'limit', 50, 500), after }));
      },
    },
    {
      method: 'GET',
      path: '/api/campaigns/:id',
      name: 'campaigns.get',
      async handle({ res, params }) {
        const detail = await campaignDetail(pool, params.id!, inventory);
        if (!detail) throw notFound(params.id!);
        sendJson(res, 200, detail);
      },
    },
    {
      method: 'GET',
      path: '/api/campaigns/:id/failures',
      name: 'campaigns.failures',
      async handle({ res, params, url }) {
        const id = params.id!;
        const limit = intParam(url, 'limit', 100, 1000);
        const after = decodeCursor(url.searchParams.get('after'));
        if (!(await getCampaign(pool, id))) throw notFound(id);
        const items = await campaignFailures(pool, id, { limit, after });
        const last = items[items.length - 1];
        sendJson(res, 200, { items, next: items.length === limit && last ? encodeCursor(last) : null });
      },
    },
    {
      method: 'GET',
      path: '/api/campaigns/:id/history',
      name: 'campaigns.history',
      async handle({ res, params }) {
        const id = params.id!;
        if (!(await getCampaign(pool, id))) throw notFound(id);
        const p = await campaignProgress(pool, id);
        sendJson(res, 200, { windowSeconds: HISTORY_WINDOW_SECONDS, points: await progressHistory(pool, id, p.remaining) });
      },
    },
    {
      method: 'GET',
      path: '/api/inventory',
      name: 'inventory',
      async handle({ res }) {
        sendJson(res, 200, { items: await inventory() });
      },
    },
  ];
}

export function notFound(id: string): HttpError {
  return new HttpError(404, `no campaign ${id} in the ledger (GET /api/campaigns lists them)`);
}

/** Failures are paged by (store, key): the cursor is that pair, opaque to clients. */
function encodeCursor(f: { storeId: string; itemKey: string }): string {
  return Buffer.from(JSON.stringify([f.storeId, f.itemKey]), 'utf8').toString('base64url');
}

function decodeCursor(v: string | null): { storeId: string; itemKey: string } | undefined {
  if (v === null || v === '') return undefined;
  try {
    const pair = JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(pair) && pair.length === 2 && pair.every((x) => typeof x === 'string')) return { storeId: pair[0], itemKey: pair[1] };
  } catch {
    // fall through to the 400 below
  }
  throw new HttpError(400, 'query parameter after: expected the `next` value of the previous page');
}
