/**
 * Batch ledger form (docs/batch-ledger-design.md): records a worker's outcomes for a range batch
 * in ONE transaction, only while the worker still owns the batch's lease (else 'fenced', nothing
 * written). No row per item: the batch row takes the counts; failed and skipped items (the
 * exceptions) get a row each in rewrap_batch_exceptions.
 * Invariant 1 (the worker's side): called only after the store writes succeeded.
 * Postconditions:
 * - exactly-once effects: a commit is counted once per claim (`attempt`, kept as counted_attempt):
 *   committing the same attempt twice changes nothing. A later attempt reads the range again, and
 *   the items the earlier ones moved are no longer selected by the source's KEK filter, nor are
 *   the exceptions they recorded (the claim leaves those out), so no item is counted twice by one
 *   batch;
 * - planned: a batch contributes the items the plan counted in its range until it is done, then
 *   the items its commits counted (rows that entered or left the range meanwhile, design
 *   decision 2), so a finished campaign has planned = rewrapped + skipped + failed;
 * - a range claimed more than once keeps the plan's count: an earlier claim may have written rows
 *   and lost its commit (or a write's reply), and the next claim's read, filtered by the source
 *   KEK, no longer selects them. At its last commit the rows the plan counted that no commit did
 *   are `unconfirmed`, counted as skipped (the per-item form finds them already at the target)
 *   and under the campaign's target in `keks` (where it has one target; a key map's are under no
 *   KEK that can be told). The exposure report lists them as moved-unconfirmed;
 * - `rewrapped` counts moves: a row written back under the source KEK after its batch ran, and
 *   moved again by a delta pass, counts once in each (README, batch ledger form).
 */
import type pg from 'pg';
import { withTransaction } from '../transaction.ts';
import { validateLease } from '../lease-guard.ts';
import { applyAutoPause, autoPauseOptions } from '../auto-pause.ts';
import { ConfigError } from '../../core/errors.ts';
import { TOTALS_SQL } from './campaign-totals.ts';
import { addSamples, batchSamples, kekKey, samplesPerKek, type BatchSample } from '../batch-samples.ts';
import { validateOutcome } from './commitBatch.ts';
import type { CampaignSpec } from '../../core/campaign-spec.ts';
import type { CommitRequest, CommitResult, Counters, ItemOutcomeRecord, KekRecord } from '../types.ts';

const EXCEPTIONS_SQL = `
INSERT INTO rewrap_batch_exceptions (campaign_id, store_id, item_key, batch_no, outcome, reason, detail,
                                     from_kek, from_version, from_material, kek_id, kek_version, material_id)
SELECT $1, $2, u.k, $3, u.outcome, u.reason, u.detail, u.fk, u.fv, u.fm, u.ck, u.cv, u.cm
  FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
    AS u(k, outcome, reason, detail, fk, fv, fm, ck, cv, cm)
ON CONFLICT DO NOTHING
RETURNING item_key, outcome, reason`;

/**
 * A store the per-item ledger has seen keeps a per-item inventory (rewrap_inventory): its rows
 * there would otherwise keep naming the KEK this batch moved them away from, and the retirement
 * gate would refuse that KEK for ever. Stores without one (only batch-form campaigns) get none.
 */
export const INVENTORY_SQL = `
INSERT INTO rewrap_inventory AS v (store_id, item_key, kek_id, kek_version, material_id, campaign_id, updated_at)
SELECT $2, u.k, u.kek, u.ver, u.mat, $1, now() FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS u(k, kek, ver, mat)
 WHERE u.kek IS NOT NULL
ON CONFLICT (store_id, item_key) DO UPDATE
   SET kek_id = EXCLUDED.kek_id, kek_version = EXCLUDED.kek_version, material_id = EXCLUDED.material_id,
       campaign_id = EXCLUDED.campaign_id, updated_at = EXCLUDED.updated_at`;

const BATCH_SQL = `
UPDATE rewrap_batches b
   SET rewrapped = b.rewrapped + $3, skipped = b.skipped + $4 + $11, failed = b.failed + $5, unconfirmed = b.unconfirmed + $11,
       counted_attempt = $6, commits = b.commits + 1,
       moved_at = CASE WHEN $3 > 0 THEN coalesce(b.moved_at, now()) ELSE b.moved_at END,
       sample = coalesce($7::jsonb, b.sample), keks = $9::jsonb, from_keks = $10::jsonb,
       state = CASE WHEN $8 THEN 'done' ELSE b.state END,
       done_at = CASE WHEN $8 THEN coalesce(b.done_at, now()) ELSE b.done_at END,
       lease_until = CASE WHEN $8 THEN NULL ELSE b.lease_until END
 WHERE b.campaign_id = $1 AND b.batch_no = $2
RETURNING b.rewrapped + b.skipped + b.failed AS counted`;

/**
 * The rows a retried range's plan counted that no commit did, at its last commit (see the
 * postconditions); 0 for a range claimed once, whose read is the truth (design decision 2).
 */
function unconfirmedAtLastCommit(b: { attempts: number; item_count: number }, countedAfter: number): number {
  return b.attempts > 1 ? Math.max(b.item_count - countedAfter, 0) : 0;
}

/**
 * Where a range's unconfirmed rows are counted: the campaign's one target, as its commits name it
 * (a sample's `to`) or as the spec does; undefined ([null, null, null]: no KEK can be told) for a
 * key map, whose rows may have moved to any of its targets.
 */
function singleTarget(spec: CampaignSpec, samples: BatchSample[]): KekRecord | undefined {
  if (spec.keyMap && spec.keyMap.length !== 1) return undefined;
  if (samples.length > 0) return samples[0]!.to;
  const to = spec.keyMap?.[0]?.to ?? spec.to;
  return to ? { id: to.id, ...(to.version !== undefined ? { version: to.version } : {}) } : undefined;
}

/** Items by KEK: key JSON [id, version, material] (nulls where unknown; [null, null, null]: no KEK could be told). */
export type KekCounts = Record<string, number>;
export function addKek(into: KekCounts, k: KekRecord | undefined): void {
  const key = kekKey(k);
  into[key] = (into[key] ?? 0) + 1;
}

/** What a batch adds to the campaign's planned count (see the postconditions). */
export const plannedShare = (itemCount: number, counted: number, done: boolean) => (done ? counted : Math.max(itemCount, counted));

export async function commitBatchRange(pool: pg.Pool, req: CommitRequest): Promise<CommitResult> {
  validateLease('commitBatchRange', req);
  const attempt = req.attempt;
  if (!Number.isInteger(attempt) || attempt! < 1) throw new ConfigError(`commitBatchRange(${req.campaignId}/${req.batchNo}).attempt: expected the claim's attempt number (an integer >= 1), got ${String(attempt)}`);
  const byItem = new Map<string, ItemOutcomeRecord>();
  req.outcomes.forEach((o, i) => {
    validateOutcome(`commitBatchRange(${req.campaignId}/${req.batchNo}).outcomes[${i}]`, o);
    byItem.set(o.itemKey, o);
  });
  const outcomes = [...byItem.values()];
  const exceptions = outcomes.filter((o) => o.outcome !== 'rewrapped');
  const rewrapped = outcomes.length - exceptions.length;
  /* Moved items of each KEK the batch moved items from (batch-samples.ts): the retirement gate of each source KEK of a key map has samples to re-read. */
  const moved: BatchSample[] = outcomes.filter((o) => o.outcome === 'rewrapped').map((o) => ({ key: o.itemKey, from: o.from ?? null, to: o.to! }));

  return withTransaction(pool, async (client) => {
    const { rows: batches } = await client.query<{
      lease_owner: string | null; state: string; store_id: string; item_count: number; counted: number; counted_attempt: number; attempts: number;
      keks: KekCounts | null; from_keks: KekCounts | null; sample: BatchSample | BatchSample[] | null; spec: unknown; campaign_state: string; has_inventory: boolean;
    }>(
      `SELECT b.lease_owner, b.state, b.store_id, b.item_count, b.rewrapped + b.skipped + b.failed AS counted, b.counted_attempt, b.attempts, b.keks, b.from_keks, b.sample,
              c.spec, c.state AS campaign_state,
              EXISTS (SELECT 1 FROM rewrap_inventory v WHERE v.store_id = b.store_id) AS has_inventory
         FROM rewrap_batches b JOIN rewrap_campaigns c ON c.id = b.campaign_id
        WHERE b.campaign_id = $1 AND b.batch_no = $2 FOR UPDATE OF b`,
      [req.campaignId, req.batchNo],
    );
    if (batches.length === 0) throw new Error(`commitBatchRange: batch ${req.batchNo} of campaign ${req.campaignId} does not exist in the ledger`);
    const batch = batches[0]!;
    if (batch.lease_owner !== req.owner) return { status: 'fenced', leaseOwner: batch.lease_owner };
    const wasDone = batch.state === 'done';
    const unchanged = { status: 'committed' as const, changed: 0, notInBatch: 0, remaining: 0, batchDone: wasDone, autoPaused: false };
    if (batch.counted_attempt >= attempt!) return unchanged;
    const other = outcomes.find((o) => o.storeId !== batch.store_id);
    if (other) throw new ConfigError(`commitBatchRange(${req.campaignId}/${req.batchNo}): item ${other.itemKey} names store ${other.storeId}; the batch is of ${batch.store_id}`);

    const col = (f: (o: ItemOutcomeRecord) => string | undefined) => exceptions.map((o) => f(o) ?? null);
    const inserted = exceptions.length === 0
      ? []
      : (await client.query<{ item_key: string; outcome: string; reason: string }>(EXCEPTIONS_SQL, [
          req.campaignId, batch.store_id, req.batchNo,
          col((o) => o.itemKey), col((o) => o.outcome), col((o) => o.reason), col((o) => o.detail),
          col((o) => o.from?.id), col((o) => o.from?.version), col((o) => o.from?.materialId),
          col((o) => o.currentKek?.id), col((o) => o.currentKek?.version), col((o) => o.currentKek?.materialId),
        ])).rows;
    if (batch.has_inventory && outcomes.length > 0) {
      const kekOf = (o: ItemOutcomeRecord) => (o.outcome === 'rewrapped' ? o.to : o.currentKek);
      await client.query(INVENTORY_SQL, [
        req.campaignId, batch.store_id, outcomes.map((o) => o.itemKey),
        outcomes.map((o) => kekOf(o)?.id ?? null), outcomes.map((o) => kekOf(o)?.version ?? null), outcomes.map((o) => kekOf(o)?.materialId ?? null),
      ]);
    }
    const insertedKeys = new Set(inserted.map((r) => r.item_key));
    const skipped = inserted.filter((r) => r.outcome === 'skipped').length;
    const failed = inserted.length - skipped;
    const samples = addSamples(batchSamples(batch.sample), moved, samplesPerKek(req.batchNo));
    const sample = samples.length > 0 ? JSON.stringify(samples) : null;
    const done = wasDone || req.final;
    /* What wraps the items this commit counted (an exception an earlier commit recorded is not counted again). */
    const keks = { ...(batch.keks ?? {}) };
    const fromKeks = { ...(batch.from_keks ?? {}) };
    for (const o of outcomes) {
      if (o.outcome !== 'rewrapped' && !insertedKeys.has(o.itemKey)) continue;
      addKek(keks, o.outcome === 'rewrapped' ? o.to : o.currentKek);
      if (o.outcome === 'rewrapped') addKek(fromKeks, o.from);
    }
    const unconfirmed = done && !wasDone ? unconfirmedAtLastCommit(batch, batch.counted + rewrapped + inserted.length) : 0;
    if (unconfirmed > 0) {
      const target = kekKey(singleTarget(batch.spec as CampaignSpec, samples));
      keks[target] = (keks[target] ?? 0) + unconfirmed;
    }
    const { rows } = await client.query<{ counted: number }>(BATCH_SQL, [
      req.campaignId, req.batchNo, rewrapped, skipped, failed, attempt, sample, req.final, JSON.stringify(keks), JSON.stringify(fromKeks), unconfirmed,
    ]);
    const plannedDelta = plannedShare(batch.item_count, rows[0]!.counted, done) - plannedShare(batch.item_count, batch.counted, wasDone);
    const newlyDone = rewrapped + inserted.length + unconfirmed;
    const result = { ...unchanged, changed: newlyDone, batchDone: done };
    if (newlyDone === 0 && plannedDelta === 0) return result;

    const reasons = new Map<string, number>();
    for (const r of inserted) if (r.outcome === 'failed') reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
    const { rows: totals } = await client.query<Record<keyof Counters, string>>(TOTALS_SQL, [
      req.campaignId, rewrapped, skipped + unconfirmed, failed, newlyDone, [...reasons.keys()], [...reasons.values()], plannedDelta,
    ]);
    const t = totals[0]!;
    const after: Counters = { planned: Number(t.planned), rewrapped: Number(t.rewrapped), skipped: Number(t.skipped), failed: Number(t.failed) };
    const before: Counters = { planned: after.planned - plannedDelta, rewrapped: after.rewrapped - rewrapped, skipped: after.skipped - skipped - unconfirmed, failed: after.failed - failed };
    if (batch.campaign_state === 'running') result.autoPaused = await applyAutoPause(client, req.campaignId, autoPauseOptions(batch.spec), before, after);
    return result;
  });
}
