/** Validating a campaign spec (its shape: core/campaign-spec.ts) once, at the edge. */
import { ConfigError } from '../core/errors.ts';
import type { KekSelector } from '../core/kek-ref.ts';
import { DEFAULT_OPTIONS, NONCURRENT_MODES, scopesOf, type NoncurrentVersionsMode, type CampaignOptions, type CampaignSpec, type ProviderSpec, type SourceSpec } from '../core/campaign-spec.ts';
import { parseS3Url } from '../core/store-id.ts';
import { formatScope, scopesOverlap } from '../ledger/scopes.ts';
import { checkNumber, rejectUnknownFields, type NumberRule } from './spec-fields.ts';
import { isRuleText, parseKeyMap, parseKeyMapRule } from './key-map-spec.ts';

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
  const kekFields = parseKekFields(r, provider);
  const options = parseOptions(r.options ?? {});
  if (provider.type === 'pkcs11' && options.canaryFraction > 0) {
    throw new ConfigError('campaign spec.options.canaryFraction: the canary decrypts content with the plaintext DEK, which a pkcs11 provider never exports; set it to 0');
  }
  let deadline: string | undefined;
  if (r.deadline !== undefined) {
    if (typeof r.deadline !== 'string' || !Number.isFinite(Date.parse(r.deadline))) throw new ConfigError('campaign spec.deadline: expected an ISO 8601 time, e.g. "2026-12-31T00:00:00Z"');
    deadline = r.deadline;
  }
  return { name: r.name, kind, sources, provider, ...kekFields, options, ...(deadline ? { deadline } : {}) };
}

const PG_WRAP_ALGS: readonly string[] = ['AES/GCM', 'kms+context', 'AESWrap', 'AESWrapPad'];
const SPEC_FIELDS = ['name', 'kind', 'sources', 'provider', 'from', 'to', 'keyMap', 'options', 'deadline'];
const GiB = 1024 ** 3;
const COUNT = Number.MAX_SAFE_INTEGER;
const OPTION_RULES: Record<Exclude<keyof CampaignOptions, 'allowUnconditionalWrites' | 'noncurrentVersions' | 'bypassGovernanceRetention' | 'dedupeAcrossWorkers'>, NumberRule> = {
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
  if (o.noncurrentVersions !== undefined) {
    if (!NONCURRENT_MODES.includes(o.noncurrentVersions as NoncurrentVersionsMode)) {
      throw new ConfigError(
        `campaign spec.options.noncurrentVersions: expected one of ${NONCURRENT_MODES.map((m) => `"${m}"`).join(', ')} (what happens to noncurrent versions under the source KEK in versioned buckets), got ${JSON.stringify(o.noncurrentVersions)}`,
      );
    }
    options.noncurrentVersions = o.noncurrentVersions as NoncurrentVersionsMode;
  }
  if (o.bypassGovernanceRetention !== undefined) {
    if (typeof o.bypassGovernanceRetention !== 'boolean') throw new ConfigError('campaign spec.options.bypassGovernanceRetention: expected true or false (true: delete noncurrent versions under GOVERNANCE retention too)');
    options.bypassGovernanceRetention = o.bypassGovernanceRetention;
  }
  if (o.dedupeAcrossWorkers !== undefined) {
    if (typeof o.dedupeAcrossWorkers !== 'boolean') throw new ConfigError('campaign spec.options.dedupeAcrossWorkers: expected true or false (true: a DEK shared by items in different batches is rewrapped once per campaign, at two ledger statements per distinct DEK)');
    options.dedupeAcrossWorkers = o.dedupeAcrossWorkers;
  }
  if (options.bypassGovernanceRetention && options.noncurrentVersions !== 'delete') {
    throw new ConfigError('campaign spec.options.bypassGovernanceRetention: only with "noncurrentVersions": "delete" (it lets the noncurrent sweep delete versions under GOVERNANCE retention)');
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

/**
 * Exactly one of: `from` and `to` (one KEK), a rule in them (`tenant-*@current-1`, resolved at
 * create: key-map-rule.ts), or `keyMap` (key-map-spec.ts).
 */
function parseKekFields(r: Record<string, unknown>, provider: ProviderSpec): Pick<CampaignSpec, 'from' | 'to' | 'keyMap' | 'keyMapRule'> {
  if (r.keyMap !== undefined) {
    if (r.from !== undefined || r.to !== undefined) throw new ConfigError('campaign spec: give either "from" and "to", or "keyMap", not both');
    return { keyMap: parseKeyMap(r.keyMap, provider) };
  }
  if (r.from === undefined && r.to === undefined) throw new ConfigError('campaign spec: expected "from" and "to" (the KEK to drain and its destination), or "keyMap" (many KEKs at once)');
  if (isRuleText(r.from) || isRuleText(r.to)) {
    if (!isRuleText(r.from)) throw new ConfigError(`campaign spec.from: "to" is a key map rule (${String(r.to)}); "from" must be one too, e.g. "tenant-*@current-1"`);
    return { keyMapRule: parseKeyMapRule(r.from, r.to, provider) };
  }
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
  return { from, to };
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
    labelsOneToOne(l as Record<string, string>, `${at}.labels`);
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

/**
 * Two KEK names on one token object: retiring one would disable or destroy what the other's items
 * need, and the gate checks only items recorded under the name it is given. A label is the
 * name's own by default, so a label that is another KEK name not in the map is taken too.
 */
function labelsOneToOne(labels: Record<string, string>, at: string): void {
  const owner = new Map<string, string>();
  for (const [name, label] of Object.entries(labels)) {
    const other = owner.get(label);
    if (other !== undefined) throw new ConfigError(`${at}: "${other}" and "${name}" both name the token object labelled "${label}"; each KEK version needs its own object (retiring one would take the other's)`);
    owner.set(label, name);
  }
  for (const [name, label] of Object.entries(labels)) {
    if (label !== name && /.@./.test(label) && !(label in labels)) {
      throw new ConfigError(`${at}: "${name}" is mapped to the label "${label}", which is also the default label of the KEK version ${label}; map ${label} to its own label too, or choose another for ${name}`);
    }
  }
}

const PLACEMENTS = ['auto', 'metadata', 'instruction'];

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
