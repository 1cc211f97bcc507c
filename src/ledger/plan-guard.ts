/** Checks shared by the planning operations, run inside their transaction. */
import type pg from 'pg';
import { ConfigError } from '../core/errors.ts';
import { XACT_LOCK_SQL, lockPurpose } from './lock-keys.ts';
import { CampaignNotFoundError } from './ledger-errors.ts';
import { TERMINAL_STATES, type CampaignState, type Scope } from './types.ts';

/** Largest batch we cut: one batch is one worker transaction. */
export const MAX_BATCH_SIZE = 100_000;

export function validatePage(operation: string, keys: readonly string[], batchSize: number): string[] {
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new ConfigError(`${operation}: batchSize must be an integer from 1 to ${MAX_BATCH_SIZE}, got ${batchSize}`);
  }
  if (!Array.isArray(keys)) throw new ConfigError(`${operation}: keys must be an array of item keys`);
  const unique = new Set<string>();
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (typeof k !== 'string' || k.length === 0) throw new ConfigError(`${operation}: keys[${i}] must be a non-empty string`);
    unique.add(k);
  }
  return [...unique];
}

/**
 * Takes the campaign's planning lock (one planner per campaign at a time) and returns the next
 * batch number. Refuses terminal campaigns and stores outside the campaign's scopes.
 */
export async function lockForPlanning(client: pg.PoolClient, operation: string, campaignId: string, storeId: string): Promise<number> {
  await client.query(XACT_LOCK_SQL, [lockPurpose.plan(campaignId)]);
  const { rows } = await client.query<{ state: CampaignState; scopes: Scope[]; next_batch_no: number }>(
    'SELECT state, scopes, next_batch_no FROM rewrap_campaigns WHERE id = $1',
    [campaignId],
  );
  if (rows.length === 0) throw new CampaignNotFoundError(campaignId, operation);
  const c = rows[0];
  if (TERMINAL_STATES.includes(c.state)) throw new Error(`${operation}: campaign ${campaignId} is ${c.state}; nothing more can be planned for it`);
  if (!c.scopes.some((s) => s.storeId === storeId)) {
    throw new ConfigError(`${operation}: store ${storeId} is not in the scopes of campaign ${campaignId} (${c.scopes.map((s) => s.storeId).join(', ')})`);
  }
  return c.next_batch_no;
}
