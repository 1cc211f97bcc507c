/**
 * Helpers of the batch ledger form's tests (batch-ledger-pg, batch-form-canary): a campaign
 * created and started through the real CLI, and the ledger rows a campaign holds in each form.
 */
import { expect } from 'vitest';
import type pg from 'pg';
import type { Pipeline } from './pipeline.ts';
import type { LeakGuard } from './leak-guard.ts';
import { jsonOf, rewrapCli, specFile } from './cli.ts';

/** `rewrap campaign create --start` with this spec; the CLI's output goes through the leak guard. Returns the campaign id. */
export async function createStarted(pipe: Pipeline, guard: LeakGuard, spec: unknown): Promise<string> {
  const r = await rewrapCli(pipe, ['campaign', 'create', '--spec', await specFile(pipe, spec), '--start', '--json']);
  guard.text(r.stdout, r.stderr);
  expect(r.code, r.stderr).toBe(0);
  return jsonOf<{ id: string }>(r).id;
}

/** Rows the campaign holds: per item, per batch, per exception, and its form. */
export async function ledgerRows(pool: pg.Pool, campaignId: string): Promise<{ items: number; batches: number; exceptions: number; form: string }> {
  const { rows } = await pool.query(
    `SELECT (SELECT count(*) FROM rewrap_campaign_items WHERE campaign_id = $1)::int AS items,
            (SELECT count(*) FROM rewrap_batches WHERE campaign_id = $1)::int AS batches,
            (SELECT count(*) FROM rewrap_batch_exceptions WHERE campaign_id = $1)::int AS exceptions,
            (SELECT ledger_form FROM rewrap_campaigns WHERE id = $1) AS form`,
    [campaignId],
  );
  return rows[0];
}
