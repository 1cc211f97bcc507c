/** Maps a rewrap_campaigns row to a Campaign. */
import type { Campaign } from './types.ts';

export const CAMPAIGN_COLUMNS = `id, name, kind, state, spec, scopes, priority, plan_cursor, plan_done, plan_started_at,
  delta_passes, pause_reason, created_at, started_at, finished_at, updated_at, canary_state, noncurrent_cursor, noncurrent_swept_at, ledger_form`;

export function toCampaign(r: Record<string, any>): Campaign {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind,
    state: r.state,
    spec: r.spec,
    scopes: r.scopes,
    priority: r.priority,
    planCursor: r.plan_cursor,
    planDone: r.plan_done,
    planStartedAt: r.plan_started_at,
    deltaPasses: r.delta_passes,
    pauseReason: r.pause_reason,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
    canaryState: r.canary_state ?? null,
    noncurrentCursor: r.noncurrent_cursor ?? null,
    noncurrentSweptAt: r.noncurrent_swept_at ?? null,
    ledgerForm: r.ledger_form ?? 'items',
  };
}

/** jsonb parameters go as JSON text: pg would turn a JS array into a Postgres array. */
export function jsonParam(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}
