/**
 * What a campaign created through the API may touch: decided by the operator (a JSON file named by
 * REWRAP_API_POLICY), never by the caller. The API process holds credentials for every store and
 * KMS key in its environment, so a spec posted over HTTP must not be able to name a file on the
 * API's host (a manifest or keyring is read by the API and the workers: its lines would come back
 * in the campaign's scopes), a KMS endpoint (workers would send signed requests there and write
 * whatever came back into every item), or a bucket, table or key the operator did not list.
 *
 * Every list is an allowlist; a missing list allows nothing of its kind. `"*"` allows any bucket,
 * table, key or region (never any file or endpoint: those must be named one by one).
 * The CLI (the operator on the host) is not constrained by this policy.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.ts';
import { parseS3Url, parseStoreId } from '../core/store-id.ts';
import type { CampaignSpec } from '../core/campaign-spec.ts';
import type { Scope } from '../ledger/types.ts';

export interface SpecPolicy {
  /** KMS endpoints a spec may name in provider.endpoint (exact URLs). */
  kmsEndpoints: string[];
  /** KMS regions a spec may name in provider.region. */
  kmsRegions: string[];
  /** KEK ids (KMS key ARNs, key ids, aliases, or keyring KEK ids) a spec may name in from/to. */
  keys: string[];
  /** Keyring files (absolute paths on the API's and workers' hosts) a local provider may name. */
  keyringFiles: string[];
  /** Manifest files (absolute paths) an s3-manifest source may name; their buckets must be allowed too. */
  manifestFiles: string[];
  buckets: string[];
  /** pg tables, as written in the spec (e.g. public.orders). */
  tables: string[];
}

const LISTS: (keyof SpecPolicy)[] = ['kmsEndpoints', 'kmsRegions', 'keys', 'keyringFiles', 'manifestFiles', 'buckets', 'tables'];
/** Lists where "*" would hand the caller the host: files and endpoints are named one by one. */
const NO_WILDCARD = new Set<keyof SpecPolicy>(['kmsEndpoints', 'keyringFiles', 'manifestFiles']);

/** Validates a policy document; messages name the file, the field and how to fix it. */
export function parseSpecPolicy(doc: unknown, source: string): SpecPolicy {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError(`API policy ${source}: expected a JSON object with lists ${LISTS.join(', ')}`);
  const r = doc as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!LISTS.includes(k as keyof SpecPolicy)) throw new ConfigError(`API policy ${source}: unknown field ${JSON.stringify(k)}; known: ${LISTS.join(', ')}`);
  }
  const out = {} as SpecPolicy;
  for (const k of LISTS) {
    const v = r[k] ?? [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0)) throw new ConfigError(`API policy ${source}.${k}: expected an array of non-empty strings`);
    if (NO_WILDCARD.has(k) && v.includes('*')) throw new ConfigError(`API policy ${source}.${k}: "*" is not allowed here; name each ${k === 'kmsEndpoints' ? 'endpoint URL' : 'absolute path'}`);
    out[k] = v as string[];
  }
  return out;
}

export function loadSpecPolicy(path: string): SpecPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`REWRAP_API_POLICY=${path}: cannot read the file`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`REWRAP_API_POLICY=${path}: not valid JSON`, { cause: err });
  }
  return parseSpecPolicy(doc, path);
}

/** A spec field the policy refuses: the API answers 403 with this message. */
export class PolicyRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyRefusal';
  }
}

const allowed = (list: string[], v: string) => list.includes(v) || list.includes('*');

function refuse(field: string, value: string, list: keyof SpecPolicy): never {
  throw new PolicyRefusal(
    `campaign spec ${field} ${JSON.stringify(value)} is not allowed for campaigns created through the API; ` +
      `the operator lists what is allowed in ${list} of the REWRAP_API_POLICY file (or creates this campaign with the rewrap CLI on the host)`,
  );
}

/**
 * Precondition of every API-created campaign, checked before anything named by the spec is read
 * or contacted (files are checked by name, not opened).
 */
export function checkSpecAgainstPolicy(spec: CampaignSpec, policy: SpecPolicy): void {
  const p = spec.provider;
  if (p.type === 'local') {
    if (!policy.keyringFiles.includes(p.keyringFile)) refuse('provider.keyringFile', p.keyringFile, 'keyringFiles');
  } else if (p.type === 'pkcs11') {
    /* A module path is code every worker loads, and pinEnv picks an environment variable to read:
       neither is for an API caller to choose. */
    throw new PolicyRefusal('campaign spec provider.type "pkcs11" is not allowed for campaigns created through the API; create it with the rewrap CLI on the host');
  } else {
    if (p.endpoint !== undefined && !policy.kmsEndpoints.includes(p.endpoint)) refuse('provider.endpoint', p.endpoint, 'kmsEndpoints');
    if (p.region !== undefined && !allowed(policy.kmsRegions, p.region)) refuse('provider.region', p.region, 'kmsRegions');
  }
  if (spec.keyMap) {
    spec.keyMap.forEach((e, i) => {
      if (!allowed(policy.keys, e.from.id)) refuse(`keyMap[${i}].from`, e.from.id, 'keys');
      if (!allowed(policy.keys, e.to.id)) refuse(`keyMap[${i}].to`, e.to.id, 'keys');
    });
  } else if (spec.from && spec.to) {
    if (!allowed(policy.keys, spec.from.id)) refuse('from', spec.from.id, 'keys');
    if (!allowed(policy.keys, spec.to.id)) refuse('to', spec.to.id, 'keys');
  }
  /* A rule (not resolved yet) names its KEKs only once resolved: the caller checks the resolved map again. */
  spec.sources.forEach((s, i) => {
    if (s.type === 's3' && !allowed(policy.buckets, s.bucket)) refuse(`sources[${i}].bucket`, s.bucket, 'buckets');
    if (s.type === 'pg' && !allowed(policy.tables, s.table)) refuse(`sources[${i}].table`, s.table, 'tables');
    if (s.type === 's3-inventory') {
      // Both are read with the scheduler's credentials: the bucket whose objects move, and the one holding the report.
      if (!allowed(policy.buckets, s.bucket)) refuse(`sources[${i}].bucket`, s.bucket, 'buckets');
      const manifestBucket = parseS3Url(s.manifest)!.bucket;
      if (!allowed(policy.buckets, manifestBucket)) refuse(`sources[${i}].manifest bucket`, manifestBucket, 'buckets');
    }
    if (s.type === 's3-manifest' && !policy.manifestFiles.includes(s.manifestFile)) refuse(`sources[${i}].manifestFile`, s.manifestFile, 'manifestFiles');
  });
}

/** After an allowed manifest was read: every bucket it names must be allowed too. */
export function checkScopesAgainstPolicy(scopes: Scope[], policy: SpecPolicy): void {
  for (const s of scopes) {
    const store = parseStoreId(s.storeId);
    if (store?.kind === 's3' && !allowed(policy.buckets, store.bucket)) refuse('manifest bucket', store.bucket, 'buckets');
  }
}
