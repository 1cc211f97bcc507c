/**
 * A campaign spec: what to rotate (sources), with which provider, from which KEK to which.
 * Stored in the ledger as JSON, so it holds names and paths only, never secrets: endpoints'
 * credentials come from each process's environment (src/config.ts).
 */
import { ConfigError } from '../errors.ts';
import type { KekSelector } from '../kek/kek-provider.ts';
import { formatScope, scopesOverlap } from '../ledger/scopes.ts';
import { checkNumber, rejectUnknownFields, type NumberRule } from './spec-fields.ts';

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
}

export interface CampaignSpec {
  name: string;
  kind: 'routine' | 'incident';
  sources: SourceSpec[];
  provider: ProviderSpec;
  from: KekSelector;
  to: KekSelector;
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
};

export function storeIdOf(s: SourceSpec): string[] {
  if (s.type === 's3' || s.type === 's3-inventory') return [`s3://${s.bucket}`];
  if (s.type === 'pg') return [`pg:${s.table}`];
  return []; // a manifest names its buckets line by line
}

export function scopesOf(spec: CampaignSpec): { storeId: string; prefix?: string }[] {
  return spec.sources.flatMap((s) =>
    s.type === 's3'
      ? [{ storeId: `s3://${s.bucket}`, prefix: s.prefix || undefined }]
      : s.type === 's3-inventory'
        ? [{ storeId: `s3://${s.bucket}` }] // an inventory may cover a prefix, unknown until read: the whole bucket
        : s.type === 'pg'
          ? [{ storeId: `pg:${s.table}` }]
          : [{ storeId: `manifest:${s.manifestFile}` }],
  );
}

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Validates user input once, at the edge; messages name the field and what was expected. */
export function parseCampaignSpec(input: unknown): CampaignSpec {
  if (typeof input !== 'object' || input === null) throw new ConfigError('campaign spec: expected a JSON object');
  const r = input as Record<string, unknown>;
  if (!str(r.name)) throw new ConfigError('campaign spec.name: expected a non-empty string');
  const kind = r.kind ?? 'routine';
  if (kind !== 'routine' && kind !== 'incident') throw new ConfigError('campaign spec.kind: expected "routine" or "incident"');
  rejectUnknownFields(r, SPEC_FIELDS, 'campaign spec');
  if (!Array.isArray(r.sources) || r.sources.length === 0) throw new ConfigError('campaign spec.sources: expected a non-empty array');
  const sources = r.sources.map((s, i) => parseSource(s, `campaign spec.sources[${i}]`));
  rejectOverlappingSources(sources);
  const provider = parseProvider(r.provider);
  const from = parseSelector(r.from, 'campaign spec.from');
  const to = parseSelector(r.to, 'campaign spec.to');
  if (from.id === to.id && from.version === undefined) {
    throw new ConfigError(`campaign spec.from: same key id as "to" (${from.id}); give from.version, the KEK version (or KMS key material id) to drain`);
  }
  if (from.id === to.id && from.version === to.version) throw new ConfigError('campaign spec: "from" and "to" name the same KEK version');
  if (provider.type === 'kms' && to.version !== undefined) {
    throw new ConfigError(
      `campaign spec.to: "${to.id}@${to.version}" names a key material, but KMS always encrypts under a key's current material; give the key id or ARN alone`,
    );
  }
  const options = parseOptions(r.options ?? {});
  if (provider.type === 'pkcs11' && options.canaryFraction > 0) {
    throw new ConfigError('campaign spec.options.canaryFraction: the canary decrypts content with the plaintext DEK, which a pkcs11 provider never exports; set it to 0');
  }
  let deadline: string | undefined;
  if (r.deadline !== undefined) {
    if (typeof r.deadline !== 'string' || !Number.isFinite(Date.parse(r.deadline))) throw new ConfigError('campaign spec.deadline: expected an ISO 8601 time, e.g. "2026-12-31T00:00:00Z"');
    deadline = r.deadline;
  }
  return { name: r.name, kind, sources, provider, from, to, options, ...(deadline ? { deadline } : {}) };
}

const PG_WRAP_ALGS: readonly string[] = ['AES/GCM', 'kms+context', 'AESWrap', 'AESWrapPad'];
const SPEC_FIELDS = ['name', 'kind', 'sources', 'provider', 'from', 'to', 'options', 'deadline'];
const GiB = 1024 ** 3;
const COUNT = Number.MAX_SAFE_INTEGER;
const OPTION_RULES: Record<Exclude<keyof CampaignOptions, 'allowUnconditionalWrites'>, NumberRule> = {
  batchSize: { integer: true, min: 1, max: 10_000, what: 'items per batch' },
  concurrency: { integer: true, min: 1, max: 1024, what: 'provider/store calls in flight per batch' },
  kmsRequestsPerSecond: { min: 0, max: 100_000, what: 'KMS requests per second for all workers; 0 = unlimited' },
  maxFailures: { integer: true, min: 0, max: COUNT, what: 'failed items before auto-pause; 0 = never' },
  maxFailureRatio: { min: 0, max: 1, what: 'failed / done before auto-pause; 0 = never' },
  minItemsForRatio: { integer: true, min: 0, max: COUNT, what: 'items done before maxFailureRatio applies' },
  maxBatchFailures: { integer: true, min: 1, max: 1000, what: 'times one batch may fail as a whole before the campaign pauses, e.g. 5' },
  multipartThresholdBytes: { integer: true, min: 1, max: 5 * GiB, what: 'object size from which S3 objects are copied in parts; CopyObject takes at most 5 GiB' },
  canaryFraction: { min: 0, max: 1, what: 'fraction of the items in the canary, e.g. 0.001 for 0.1 %; 0 = no canary' },
  canaryAfterItems: { integer: true, min: 1, max: COUNT, what: 'items planned before the canary starts' },
};

function parseOptions(v: unknown): CampaignOptions {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError('campaign spec.options: expected an object');
  rejectUnknownFields(v, Object.keys(DEFAULT_OPTIONS), 'campaign spec.options');
  const o = v as Record<string, unknown>;
  const options = { ...DEFAULT_OPTIONS };
  for (const [k, rule] of Object.entries(OPTION_RULES)) {
    if (o[k] !== undefined) (options as Record<string, unknown>)[k] = checkNumber(o[k], rule, `campaign spec.options.${k}`);
  }
  if (o.allowUnconditionalWrites !== undefined) {
    if (typeof o.allowUnconditionalWrites !== 'boolean') throw new ConfigError('campaign spec.options.allowUnconditionalWrites: expected true or false');
    options.allowUnconditionalWrites = o.allowUnconditionalWrites;
  }
  return options;
}

/**
 * Two sources of one campaign over the same items would plan them twice. Compared through
 * scopesOverlap, which sees `pg:orders` and `pg:public.orders` as one table.
 */
function rejectOverlappingSources(sources: SourceSpec[]): void {
  const scopes = sources.map((s) => scopesOf({ sources: [s] } as CampaignSpec)[0]!);
  for (let i = 1; i < scopes.length; i++) {
    const j = scopes.slice(0, i).findIndex((o) => scopesOverlap(o, scopes[i]!));
    if (j >= 0) throw new ConfigError(`campaign spec.sources[${i}]: covers the same items as sources[${j}] (${formatScope(scopes[j]!)}); merge them into one source`);
  }
}

function parseSelector(v: unknown, at: string): KekSelector {
  if (typeof v === 'string' && v) {
    const i = v.lastIndexOf('@');
    return i > 0 ? { id: v.slice(0, i), version: v.slice(i + 1) } : { id: v };
  }
  const r = v as Record<string, unknown> | null;
  if (!r || !str(r.id)) throw new ConfigError(`${at}: expected "<kek id>[@<version>]" or { "id": ..., "version"?: ... }`);
  rejectUnknownFields(r, ['id', 'version'], at);
  if (r.version !== undefined && !str(r.version)) throw new ConfigError(`${at}.version: expected a non-empty string`);
  return r.version === undefined ? { id: r.id } : { id: r.id, version: r.version as string };
}

function parseProvider(v: unknown): ProviderSpec {
  const r = v as Record<string, unknown> | null;
  if (r?.type === 'local') {
    rejectUnknownFields(r, ['type', 'keyringFile'], 'campaign spec.provider');
    if (!str(r.keyringFile)) throw new ConfigError('campaign spec.provider.keyringFile: expected the path of the keyring JSON file');
    return { type: 'local', keyringFile: r.keyringFile };
  }
  if (r?.type === 'kms') {
    rejectUnknownFields(r, ['type', 'region', 'endpoint'], 'campaign spec.provider');
    return { type: 'kms', region: str(r.region) ? r.region : undefined, endpoint: str(r.endpoint) ? r.endpoint : undefined };
  }
  if (r?.type === 'pkcs11') return parsePkcs11Provider(r);
  throw new ConfigError(
    'campaign spec.provider: expected { "type": "local", "keyringFile": ... }, { "type": "kms", "region"?: ..., "endpoint"?: ... } or { "type": "pkcs11", "module": ..., "tokenLabel" | "slot": ..., "pinEnv": ... }',
  );
}

function parsePkcs11Provider(r: Record<string, unknown>): ProviderSpec {
  const at = 'campaign spec.provider';
  rejectUnknownFields(r, ['type', 'module', 'slot', 'tokenLabel', 'pinEnv', 'labels', 'maxSessions'], at);
  if (!str(r.module) || !r.module.startsWith('/')) throw new ConfigError(`${at}.module: expected the absolute path of the PKCS#11 module, e.g. "/usr/lib/softhsm/libsofthsm2.so"`);
  if ((r.slot === undefined) === (r.tokenLabel === undefined)) throw new ConfigError(`${at}: give exactly one of "slot" (the slot id) and "tokenLabel" (the token's label)`);
  if (r.slot !== undefined) checkNumber(r.slot, { integer: true, min: 0, max: 2 ** 32 - 1, what: 'the slot id of the token' }, `${at}.slot`);
  if (r.tokenLabel !== undefined && (!str(r.tokenLabel) || r.tokenLabel.length > 32)) throw new ConfigError(`${at}.tokenLabel: expected the token label (1 to 32 characters)`);
  if (!str(r.pinEnv) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(r.pinEnv)) {
    throw new ConfigError(`${at}.pinEnv: expected the name of the environment variable holding the user PIN, e.g. "REWRAP_PKCS11_PIN" (never the PIN itself)`);
  }
  if (r.labels !== undefined) {
    const l = r.labels as Record<string, unknown> | null;
    if (typeof l !== 'object' || l === null || Array.isArray(l) || !Object.entries(l).every(([k, v]) => /.@./.test(k) && str(v))) {
      throw new ConfigError(`${at}.labels: expected { "<kek id>@<version>": "<token label>", ... }`);
    }
  }
  if (r.maxSessions !== undefined) checkNumber(r.maxSessions, { integer: true, min: 2, max: 1024, what: 'PKCS#11 sessions per worker process, the login session included' }, `${at}.maxSessions`);
  return {
    type: 'pkcs11',
    module: r.module,
    ...(r.slot !== undefined ? { slot: r.slot as number } : { tokenLabel: r.tokenLabel as string }),
    pinEnv: r.pinEnv,
    ...(r.labels !== undefined ? { labels: { ...(r.labels as Record<string, string>) } } : {}),
    ...(r.maxSessions !== undefined ? { maxSessions: r.maxSessions as number } : {}),
  };
}

const PLACEMENTS = ['auto', 'metadata', 'instruction'];

/** `s3://bucket/key` → its parts; undefined when it is not one. */
export function parseS3Url(url: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  return m ? { bucket: m[1]!, key: m[2]! } : undefined;
}
const SOURCE_FIELDS: Record<string, string[]> = {
  s3: ['type', 'bucket', 'prefix', 'placement', 'requesterPays'],
  's3-manifest': ['type', 'manifestFile', 'keysUrlEncoded', 'placement'],
  's3-inventory': ['type', 'manifest', 'bucket', 'placement'],
  pg: ['type', 'table', 'idColumn', 'wrappedKeyColumn', 'kekIdColumn', 'kekVersionColumn', 'contextColumns', 'wrapAlg'],
};

function parseSource(v: unknown, at: string): SourceSpec {
  const r = v as Record<string, unknown> | null;
  if (r?.placement !== undefined && !PLACEMENTS.includes(r.placement as string)) throw new ConfigError(`${at}.placement: expected one of ${PLACEMENTS.join(', ')}`);
  const placement = r?.placement as 'auto' | 'metadata' | 'instruction' | undefined;
  if (r && typeof r.type === 'string' && r.type in SOURCE_FIELDS) rejectUnknownFields(r, SOURCE_FIELDS[r.type]!, at);
  switch (r?.type) {
    case 's3':
      if (!str(r.bucket)) throw new ConfigError(`${at}.bucket: expected a bucket name`);
      if (r.prefix !== undefined && typeof r.prefix !== 'string') throw new ConfigError(`${at}.prefix: expected a string`);
      if (r.requesterPays !== undefined && typeof r.requesterPays !== 'boolean') throw new ConfigError(`${at}.requesterPays: expected true or false (true: accept the charges of a requester-pays bucket)`);
      return { type: 's3', bucket: r.bucket, prefix: r.prefix as string | undefined, placement, ...(r.requesterPays === true ? { requesterPays: true } : {}) };
    case 's3-manifest':
      if (!str(r.manifestFile)) throw new ConfigError(`${at}.manifestFile: expected the path of a CSV manifest of bucket,key lines`);
      return { type: 's3-manifest', manifestFile: r.manifestFile, keysUrlEncoded: r.keysUrlEncoded === true, placement };
    case 's3-inventory':
      if (!str(r.manifest) || parseS3Url(r.manifest) === undefined) {
        throw new ConfigError(`${at}.manifest: expected the s3:// address of an S3 Inventory manifest.json, e.g. "s3://inventory-bucket/prefix/source-bucket/config/2026-12-01T00-00Z/manifest.json"`);
      }
      if (!str(r.bucket)) throw new ConfigError(`${at}.bucket: expected the inventory's source bucket (the sourceBucket of its manifest.json), whose listed objects are planned`);
      return { type: 's3-inventory', manifest: r.manifest, bucket: r.bucket, placement };
    case 'pg': {
      for (const f of ['table', 'idColumn', 'wrappedKeyColumn', 'kekIdColumn', 'kekVersionColumn']) {
        if (!str(r[f])) throw new ConfigError(`${at}.${f}: expected a non-empty string`);
      }
      if (r.contextColumns !== undefined && (!Array.isArray(r.contextColumns) || !r.contextColumns.every(str))) {
        throw new ConfigError(`${at}.contextColumns: expected an array of column names`);
      }
      if (r.wrapAlg !== undefined && !PG_WRAP_ALGS.includes(r.wrapAlg as string)) {
        throw new ConfigError(`${at}.wrapAlg: expected "AES/GCM" or "kms+context" (or, with a pkcs11 provider, "AESWrap" or "AESWrapPad")`);
      }
      return r as unknown as SourceSpec;
    }
    default:
      throw new ConfigError(`${at}.type: expected "s3", "s3-manifest", "s3-inventory" or "pg"`);
  }
}
