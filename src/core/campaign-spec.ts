/**
 * A campaign spec: what to rotate (sources), with which provider, from which KEK to which.
 * Stored in the ledger as JSON, so it holds names and paths only, never secrets: endpoints'
 * credentials come from each process's environment (src/config.ts). Validated at the edge by
 * campaign/spec.ts (parseCampaignSpec).
 */
import type { KekSelector } from './kek-ref.ts';
import { pgStoreId, s3StoreId, type StoreId } from './store-id.ts';
import { ConfigError } from './errors.ts';

export type SourceSpec =
  | { type: 's3'; bucket: string; prefix?: string; placement?: 'auto' | 'metadata' | 'instruction'; requesterPays?: boolean }
  | { type: 's3-manifest'; manifestFile: string; keysUrlEncoded?: boolean; placement?: 'auto' | 'metadata' | 'instruction' }
  /**
   * An S3 Inventory report (CSV): `manifest` is the s3:// address of its manifest.json; `bucket`
   * is the inventory's source bucket, named in the spec so that overlap and policy checks see it
   * before anything is read (the source refuses a manifest whose sourceBucket differs).
   */
  | { type: 's3-inventory'; manifest: string; bucket: string; placement?: 'auto' | 'metadata' | 'instruction' }
  | {
      type: 'pg';
      table: string;
      idColumn: string;
      wrappedKeyColumn: string;
      kekIdColumn: string;
      kekVersionColumn: string;
      contextColumns?: string[];
      wrapAlg?: 'AES/GCM' | 'kms+context' | 'AESWrap' | 'AESWrapPad';
    };

export type ProviderSpec =
  | { type: 'local'; keyringFile: string }
  | { type: 'kms'; region?: string; endpoint?: string }
  /**
   * KEKs in a PKCS#11 token (an HSM). `pinEnv` names the environment variable that holds the user
   * PIN in each worker's environment (the spec, stored in the ledger, never holds it). `labels`
   * maps KEK names (`<id>@<version>`) to token labels where they are not the name itself.
   */
  | { type: 'pkcs11'; module: string; slot?: number; tokenLabel?: string; pinEnv: string; labels?: Record<string, string>; maxSessions?: number };

export interface CampaignOptions {
  /** Items per batch (one ledger commit, one BullMQ job). */
  batchSize: number;
  /** Provider/store calls in flight per batch. */
  concurrency: number;
  /** Shared by all workers; 0 = unlimited. */
  kmsRequestsPerSecond: number;
  /** Auto-pause when this many items failed permanently (0 = never). */
  maxFailures: number;
  /** Auto-pause when failed / done exceeds this, after minItemsForRatio done (0 = never). */
  maxFailureRatio: number;
  minItemsForRatio: number;
  /** Pause the campaign when one batch failed as a whole (not item by item) this many times. */
  maxBatchFailures: number;
  /** Write to stores that honour no compare-and-swap (invariant 3: off unless the user says so). */
  allowUnconditionalWrites: boolean;
  /** S3 objects above this size are rewritten by multipart copy. */
  multipartThresholdBytes: number;
  /**
   * Canary stage: this fraction of the items (at least one) is rewrapped and decrypted end to end
   * before the campaign fans out; 0 = no canary. 0.001 (0.1 %) is a good start.
   */
  canaryFraction: number;
  /**
   * The canary starts once the whole scope is planned or this many items are, whichever comes
   * first; its fraction is of the items planned then. A scope of a billion objects need not be
   * listed in full before the first item moves.
   */
  canaryAfterItems: number;
  /**
   * What happens to noncurrent versions under the source KEK in versioned S3 buckets (the ones
   * rewrap's own rewrites leave behind and the ones that were there before), once the current
   * items are done (campaign/noncurrent-sweep.ts):
   *   - 'report' (default): listed and counted per store; they block `kek retire`;
   *   - 'delete': deleted by version id, each re-read first and only when still under the source
   *     KEK and the key's current version is not; versions under object lock stay and block;
   *   - 'keep': counted, and do not block `kek retire`: the user accepts losing them.
   */
  noncurrentVersions: NoncurrentVersionsMode;
  /**
   * With 'delete': also delete versions under GOVERNANCE retention (x-amz-bypass-governance-retention;
   * needs s3:BypassGovernanceRetention). COMPLIANCE retention and legal holds are never bypassed.
   */
  bypassGovernanceRetention: boolean;
  /**
   * Rewrap a wrapped DEK shared by items in different batches once per campaign, across worker
   * processes (src/kek/shared-deduping-kek-provider.ts): a claim and a result row in the ledger
   * per distinct DEK, two statements on the worker that computes it. Worth it where DEKs repeat
   * across items (a DEK per tenant or per file group); where every item has its own DEK (the S3
   * Encryption Client's default) it only adds two ledger statements per item, so it is off by
   * default. Within one process repeats are always deduplicated, for free.
   */
  dedupeAcrossWorkers: boolean;
}

/** One source KEK of a campaign and the KEK its items move to. */
export interface KeyMapEntry {
  from: KekSelector;
  to: KekSelector;
}

/** `tenant-*@current-1`: an id with one `*`, and a version: a literal, `current` or `current-<n>`. */
export interface KekPattern {
  prefix: string;
  suffix: string;
  /** A literal version, or an offset from the newest version (0 = current, 1 = current-1). */
  version: { literal: string } | { back: number };
}

/** A key map rule as written: `"from": "tenant-*@current-1", "to": "tenant-*@current"`. */
export interface KeyMapRule {
  from: KekPattern;
  to: KekPattern;
  text: { from: string; to: string };
}

/** At most this many entries in one key map (spec validation). */
export const MAX_KEY_MAP_ENTRIES = 100_000;
/**
 * Metrics name a campaign's KEKs in labels only while its key map has at most this many entries
 * (invariant 6: low-cardinality labels); above, only aggregates.
 */
export const KEK_LABEL_LIMIT = 20;

/**
 * The campaign's source -> destination KEKs: `keyMap`, or today's single from/to as a one-entry
 * map (specs stored before key maps existed read the same, no migration).
 */
export function keyMapOf(spec: Pick<CampaignSpec, 'from' | 'to' | 'keyMap' | 'keyMapRule'>): KeyMapEntry[] {
  if (spec.keyMap) return spec.keyMap;
  if (spec.keyMapRule) throw new ConfigError(`campaign spec: the key map rule ${spec.keyMapRule.text.from} -> ${spec.keyMapRule.text.to} is not resolved yet (resolveKeyMap)`);
  if (!spec.from || !spec.to) throw new ConfigError('campaign spec: expected "from" and "to", or "keyMap"');
  return [{ from: spec.from, to: spec.to }];
}

/** The source KEKs of the campaign, in map order. */
export const sourceKeksOf = (spec: Pick<CampaignSpec, 'from' | 'to' | 'keyMap'>): KekSelector[] => keyMapOf(spec).map((e) => e.from);

/**
 * The one from/to of a campaign, for the features that drain one KEK only (incident, schedules):
 * a ConfigError naming `what` for a key map of several entries.
 */
export function singleKekOf(spec: Pick<CampaignSpec, 'name' | 'from' | 'to' | 'keyMap'>, what: string): KeyMapEntry {
  const map = keyMapOf(spec);
  if (map.length !== 1) throw new ConfigError(`campaign ${spec.name}: ${what} works on one source KEK; this campaign has a key map of ${map.length} entries`);
  return map[0]!;
}

export const NONCURRENT_MODES = ['report', 'delete', 'keep'] as const;
export type NoncurrentVersionsMode = (typeof NONCURRENT_MODES)[number];

export interface CampaignSpec {
  name: string;
  kind: 'routine' | 'incident';
  sources: SourceSpec[];
  provider: ProviderSpec;
  /** One KEK to drain, and where to: a one-entry key map (keyMapOf). Absent when `keyMap` is set. */
  from?: KekSelector;
  to?: KekSelector;
  /**
   * Many KEKs at once (per-tenant KEKs): each source KEK with its destination, explicit and
   * resolved (a rule such as `tenant-*@current-1` is resolved when the campaign is created, so the
   * stored spec and the plan are deterministic). Exactly one of (from, to) or keyMap.
   */
  keyMap?: KeyMapEntry[];
  /** A rule not resolved yet (parseCampaignSpec's output only; campaign/key-map-rule.ts resolves it before the spec is stored). */
  keyMapRule?: KeyMapRule;
  options: CampaignOptions;
  /** ISO 8601 time by which the backlog must be drained (alerts compare it with the ETA). */
  deadline?: string;
}

export const DEFAULT_OPTIONS: CampaignOptions = {
  batchSize: 200,
  concurrency: 16,
  kmsRequestsPerSecond: 0,
  maxFailures: 0,
  maxFailureRatio: 0,
  minItemsForRatio: 100,
  maxBatchFailures: 5,
  allowUnconditionalWrites: false,
  multipartThresholdBytes: 5 * 1024 ** 3,
  canaryFraction: 0,
  canaryAfterItems: 100_000,
  noncurrentVersions: 'report',
  bypassGovernanceRetention: false,
  dedupeAcrossWorkers: false,
};

/** A spec stored before these options existed reads as the defaults. */
export const noncurrentModeOf = (spec: CampaignSpec): NoncurrentVersionsMode => spec.options.noncurrentVersions ?? 'report';

export function storeIdOf(s: SourceSpec): StoreId[] {
  if (s.type === 's3' || s.type === 's3-inventory') return [s3StoreId(s.bucket)];
  if (s.type === 'pg') return [pgStoreId(s.table)];
  return []; // a manifest names its buckets line by line
}

export function scopesOf(spec: CampaignSpec): { storeId: string; prefix?: string }[] {
  return spec.sources.flatMap((s) =>
    s.type === 's3'
      ? [{ storeId: s3StoreId(s.bucket), prefix: s.prefix || undefined }]
      : s.type === 's3-inventory'
        ? [{ storeId: s3StoreId(s.bucket) }] // an inventory may cover a prefix, unknown until read: the whole bucket
        : s.type === 'pg'
          ? [{ storeId: pgStoreId(s.table) }]
          : [{ storeId: `manifest:${s.manifestFile}` }],
  );
}
