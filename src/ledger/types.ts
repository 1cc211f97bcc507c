/** Shared types of the ledger (progress store). Everything here is stored in Postgres; nothing is secret. */
import type pg from 'pg';
import type { CampaignSpec } from '../core/campaign-spec.ts';

/** Anything that runs one statement: the pool, or a client inside a caller's transaction. */
export type Queryable = pg.Pool | pg.PoolClient;

export type CampaignKind = 'routine' | 'incident';
export type CampaignState = 'planning' | 'running' | 'paused' | 'cancelled' | 'completed';
export const CAMPAIGN_STATES: readonly CampaignState[] = ['planning', 'running', 'paused', 'cancelled', 'completed'];
/** A campaign in one of these states may still write to its stores: its scopes are taken. */
export const ACTIVE_STATES: readonly CampaignState[] = ['planning', 'running', 'paused'];
export const TERMINAL_STATES: readonly CampaignState[] = ['cancelled', 'completed'];

/** What a campaign covers: a whole store, or the keys of an S3 store under a prefix. */
export interface Scope {
  storeId: string;
  prefix?: string;
}

export interface Campaign {
  /** 'c' + 10 base32 characters: safe in BullMQ job ids (no ':'). */
  id: string;
  name: string;
  kind: CampaignKind;
  state: CampaignState;
  spec: CampaignSpec;
  scopes: Scope[];
  priority: number;
  /** The planner's enumeration cursor, saved with each page of planned items. */
  planCursor: unknown;
  planDone: boolean;
  planStartedAt: Date | null;
  deltaPasses: number;
  pauseReason: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  /** The canary stage: null until it ran (or when the campaign has none). */
  canaryState: 'passed' | 'failed' | null;
  /** The noncurrent sweep's cursor (noncurrent-sweep.ts), saved with each page; null before it began. */
  noncurrentCursor: unknown;
  /** When the noncurrent sweep finished; the campaign completes only after it. */
  noncurrentSweptAt: Date | null;
  /** How the ledger records its items (migration 000009.sql): a row per item, or per batch (id ranges). */
  ledgerForm: LedgerForm;
}

/** 'batches': Postgres table sources only; a batch is an id range evaluated when it runs. */
export type LedgerForm = 'items' | 'batches';

/** What a campaign's noncurrent sweep saw or did to one noncurrent object version (schema 6). */
export type NoncurrentState = 'exposed' | 'deleted' | 'locked' | 'kept';

export interface NoncurrentVersionRecord {
  storeId: string;
  itemKey: string;
  versionId: string;
  kekId: string | null;
  kekVersion: string | null;
  state: NoncurrentState;
  reason: string | null;
}

/** Noncurrent versions by store and state (and reason), for status, the API and metrics. */
export interface NoncurrentCount {
  storeId: string;
  state: NoncurrentState;
  reason: string | null;
  versions: number;
}

export interface NewCampaign {
  name: string;
  kind: CampaignKind;
  spec: CampaignSpec;
  scopes: Scope[];
  /** Higher runs first; default 0. */
  priority?: number;
  /** Default 'items'; 'batches' only for campaigns whose sources are all Postgres tables. */
  ledgerForm?: LedgerForm;
}

export type BatchState = 'pending' | 'enqueued' | 'done';

export interface BatchRef {
  batchNo: number;
  storeId: string;
  itemCount: number;
}

export interface EnqueuedBatch extends BatchRef {
  attempts: number;
  enqueuedAt: Date | null;
  leaseOwner: string | null;
  leaseUntil: Date | null;
}

/** The result of planning one page of keys. */
export interface PlanResult {
  /** Items newly added to the plan (already planned ones are not counted). */
  planned: number;
  /** Items of an earlier pass put back into a new batch (replanItems only). */
  requeued: number;
  /** The batches created for them, in order. */
  batchNos: number[];
}

export interface LeaseRequest {
  campaignId: string;
  batchNo: number;
  /** Who holds the lease: a worker id + job id, never containing key material. */
  owner: string;
  leaseMs: number;
}

export type ClaimResult =
  | {
      status: 'claimed';
      batch: {
        batchNo: number;
        storeId: string;
        /** only items without an outcome (batch form: empty, the items are `range`) */
        items: string[];
        attempts: number;
        leaseUntil: Date;
        /** Batch form: the rows lo < id <= hi the source selects now, less `exclude` (items with an exception already). */
        range?: BatchRange;
      };
      campaign: Campaign;
    }
  | { status: 'done' }
  | { status: 'leased'; leaseOwner: string; leaseUntil: Date }
  | { status: 'campaign-not-running'; state: CampaignState }
  | { status: 'not-found' };

export interface RenewResult {
  ok: boolean;
  /** undefined when the campaign does not exist. */
  campaignState: CampaignState | undefined;
  leaseUntil?: Date;
}

/** A KEK as recorded in the ledger (ids and versions only). */
export interface KekRecord {
  id: string;
  version?: string;
  materialId?: string;
}

export interface ItemOutcomeRecord {
  storeId: string;
  itemKey: string;
  outcome: 'rewrapped' | 'skipped' | 'failed';
  /** Reason code (src/core/reasons.ts); required for skipped and failed. */
  reason?: string;
  /** Produced by our code; never holds key bytes. */
  detail?: string;
  from?: KekRecord;
  /** Required for 'rewrapped': the KEK that wraps the DEK now. */
  to?: KekRecord;
  /** The KEK seen wrapping the item (skipped/failed), if known: goes to the inventory. */
  currentKek?: KekRecord;
  /**
   * S3 instruction placement: the ETag of the item's `<key>.instruction`, marked as an
   * instruction file, as this attempt left it (EnvelopeFileSeen; sql/instructionFilesSeen.ts).
   */
  envelopeFileEtag?: string;
}

export interface BatchRange {
  lo: string | null;
  hi: string;
  exclude: string[];
  /** A delta pass's batch: items the campaign recorded an exception for in earlier batches are left out too (the worker asks). */
  delta: boolean;
}

export interface CommitRequest {
  campaignId: string;
  batchNo: number;
  owner: string;
  outcomes: ItemOutcomeRecord[];
  /** The worker is finished with this batch: mark it done if every item has an outcome. */
  final: boolean;
  /** Batch form: the claim's attempt number; a second commit of one attempt changes nothing. */
  attempt?: number;
}

export type CommitResult =
  | { status: 'fenced'; leaseOwner: string | null }
  | {
      status: 'committed';
      /** Items whose recorded outcome changed (0 when the same commit is applied twice). */
      changed: number;
      /** Outcomes given for items that are not (or no longer) in this batch: ignored. */
      notInBatch: number;
      /** Items of the batch still without an outcome. */
      remaining: number;
      batchDone: boolean;
      autoPaused: boolean;
    };

export interface Counters {
  planned: number;
  rewrapped: number;
  skipped: number;
  failed: number;
}

export interface CampaignProgress extends Counters {
  remaining: number;
  /** Items that reached an outcome per second, over the last 60 s (or since the campaign started). */
  doneRatePerSec: number;
  /** remaining / doneRatePerSec; null while nothing is moving. */
  etaSeconds: number | null;
  state: CampaignState;
  planDone: boolean;
  pauseReason: string | null;
  batches: Record<BatchState, number>;
  health: CampaignHealth;
}

/**
 * Derived from the ledger, not stored. A running campaign is 'degraded' while any of its batches
 * in Redis went back unfinished on its last attempt and waits to be retried: items failed
 * transiently (KMS or a store unavailable, timing out, throttling), the ledger was unavailable or
 * too slow for the commit, or the batch failed as a whole. Nothing is failed for good; the
 * campaign resumes by itself when the cause goes away, and is 'ok' once those batches are done.
 */
export interface CampaignHealth {
  status: 'ok' | 'degraded';
  /** Batches whose last attempt ended in a retry (see above). */
  retryingBatches: number;
  /** The most common last error of those batches, e.g. "200 of 200 items failed transiently (provider-unavailable); ...". */
  reason: string | null;
  /** When an item of the campaign last reached an outcome (ISO 8601; null if none in the last hour). */
  lastDoneAt: string | null;
}

export interface FailedItem {
  storeId: string;
  itemKey: string;
  reason: string | null;
  detail: string | null;
  from: KekRecord | null;
  doneAt: Date | null;
}

export interface ReasonCount {
  reason: string;
  items: number;
}

export interface InventoryCount {
  storeId: string;
  kekId: string;
  kekVersion: string | null;
  materialId: string | null;
  items: number;
}

/** What `rewrap ledger prune` keeps of a campaign whose per-item detail it deleted (rewrap_campaign_summaries). */
export interface CampaignSummary {
  campaignId: string;
  prunedAt: Date;
  /** Where the completion report was archived, its size and S3 ETag as read back; null: pruned without an archive. */
  archive: { location: string; bytes: number; etag?: string } | null;
  /** Items per outcome when first pruned (rewrapped, skipped, failed, pending). */
  outcomes: Record<string, number>;
  /** The exposure report's totals when first pruned (ExposureSummary: totals, firstMovedAt, lastMovedAt, exposedByStore). */
  exposure: Record<string, unknown>;
  /** Per-item and per-batch rows deleted, over every prune of the campaign. */
  rowsDeleted: number;
}
