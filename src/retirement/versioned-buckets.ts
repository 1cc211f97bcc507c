/**
 * Invariant 7 for versioned buckets: every rewrite of an object in a versioned (or
 * versioning-suspended) bucket leaves the previous version behind, its DEK still wrapped under
 * the old KEK, and so do the application's own overwrites. The retirement gate counts them live
 * from the buckets (the same reader as the exposure report and the noncurrent sweep: one
 * ListObjectVersions page at a time, one HEAD, or GET of an `.instruction` version, per
 * noncurrent version) and decides by the `noncurrentVersions` option of the newest campaign from
 * the KEK whose scope holds the version's key (its bucket, and a prefix of the key: a newer
 * campaign over `a/` says nothing of `b/`):
 *   - report: every noncurrent version under the KEK blocks;
 *   - delete: the sweep deleted what it could; what is left (locked by object lock, refused, or
 *     written since) blocks;
 *   - keep: listed, does not block (the user accepted losing them when creating the campaign).
 * A bucket whose versioning or versions cannot be read blocks ("cannot tell" = "still needs it").
 * `--allow-noncurrent-versions` stays as the operator's explicit override at retirement time: the
 * versions are listed, and do not block.
 */
import type { Campaign } from '../ledger/types.ts';
import { bucketOf, parseStoreId } from '../core/store-id.ts';
import type { CampaignSpec, NoncurrentVersionsMode, SourceSpec } from '../core/campaign-spec.ts';
import { noncurrentModeOf } from '../core/campaign-spec.ts';
import type { KekSelector } from '../core/kek-ref.ts';
import { forEachNoncurrentExposed, versionScopes, type NoncurrentContext } from '../reports/noncurrent-versions.ts';
import { lockReason } from '../campaign/noncurrent-sweep.ts';

export const ALLOW_NONCURRENT_FLAG = '--allow-noncurrent-versions';

/** The buckets among store ids (`s3://<bucket>`), each once. */
export function bucketsOf(storeIds: Iterable<string>): string[] {
  const buckets = new Set<string>();
  for (const id of storeIds) {
    const store = parseStoreId(id);
    if (store?.kind === 's3') buckets.add(store.bucket);
  }
  return [...buckets].sort();
}

/** Noncurrent versions under the KEK found in one bucket, and whether they block retirement. */
export interface NoncurrentUse {
  storeId: string;
  /** The option of the newest campaign whose scope holds these versions' keys ('report' where none lists them, e.g. a manifest's bucket); one entry per bucket and mode. */
  mode: NoncurrentVersionsMode;
  versions: number;
  /** Of those, versions object lock keeps (legal hold, COMPLIANCE or GOVERNANCE retention), by reason. */
  lockedByReason: Record<string, number>;
  blocking: boolean;
}

/** A campaign's scope in one bucket (its prefixes, '' for the whole bucket) and its option. */
interface ScopeMode {
  bucket: string;
  prefixes: string[];
  mode: NoncurrentVersionsMode;
}

/**
 * Every bucket in scope of the campaigns that drained the KEK, plus `storeIds` the ledger saw
 * (a manifest's buckets), and the campaigns' scopes with their modes, newest first.
 */
function bucketsInScope(campaigns: Campaign[], storeIds: string[]): { spec: CampaignSpec; buckets: Set<string>; scopes: ScopeMode[] } {
  const buckets = new Set<string>();
  const scopes: ScopeMode[] = [];
  const sources: SourceSpec[] = [];
  for (const c of campaigns) {
    for (const [bucket, prefixes] of versionScopes(c.spec)) {
      buckets.add(bucket);
      scopes.push({ bucket, prefixes, mode: noncurrentModeOf(c.spec) });
    }
    for (const s of c.spec.sources) if (s.type === 's3' || s.type === 's3-inventory') sources.push(s);
  }
  for (const bucket of bucketsOf(storeIds)) {
    if (!buckets.has(bucket)) {
      buckets.add(bucket);
      sources.push({ type: 's3', bucket });
    }
  }
  return { spec: { sources } as CampaignSpec, buckets, scopes };
}

/** The mode of the newest campaign whose scope holds `key`; 'report' where none does. */
function modeFor(scopes: ScopeMode[], bucket: string, key: string): NoncurrentVersionsMode {
  return scopes.find((s) => s.bucket === bucket && s.prefixes.some((p) => key.startsWith(p)))?.mode ?? 'report';
}

export async function noncurrentVersionUse(
  ctx: NoncurrentContext,
  campaigns: Campaign[],
  storeIds: string[],
  kek: KekSelector,
  kekName: string,
  o: { now: Date; allowNoncurrentVersions: boolean },
  signal?: AbortSignal,
): Promise<{ uses: NoncurrentUse[]; blockers: string[] }> {
  const { spec, buckets, scopes } = bucketsInScope(campaigns, storeIds);
  if (buckets.size === 0) return { uses: [], blockers: [] };
  const found = new Map<string, NoncurrentUse>();
  const unchecked = await forEachNoncurrentExposed(
    ctx,
    spec,
    async (v) => {
      const mode = modeFor(scopes, bucketOf(v.storeId), v.key);
      const id = `${v.storeId}\u0000${mode}`;
      const u = found.get(id) ?? { storeId: v.storeId, mode, versions: 0, lockedByReason: {}, blocking: mode !== 'keep' && !o.allowNoncurrentVersions };
      u.versions++;
      const locked = lockReason(v.lock, o.now, false);
      if (locked) u.lockedByReason[locked] = (u.lockedByReason[locked] ?? 0) + 1;
      found.set(id, u);
    },
    kek,
    signal,
  );
  const blockers = unchecked.map((u) => `${u}; or ${ALLOW_NONCURRENT_FLAG} if you know it keeps none under ${kekName}`);
  const uses = [...found.values()].sort((a, b) => (a.storeId + a.mode < b.storeId + b.mode ? -1 : 1));
  for (const u of uses) {
    if (!u.blocking) continue;
    const locked = Object.entries(u.lockedByReason).sort(([a], [b]) => (a < b ? -1 : 1));
    const lockedText = locked.length ? ` (${locked.reduce((n, [, k]) => n + k, 0)} under object lock: ${locked.map(([r, n]) => `${n} ${r}`).join(', ')})` : '';
    const what =
      u.mode === 'delete'
        ? 'left after the noncurrent sweep of a campaign with "noncurrentVersions": "delete"; versions under object lock stay until their retention ends or the legal hold is lifted, then run a campaign from it again'
        : 'the newest campaign over their keys reports them ("noncurrentVersions": "report"); run a campaign from it with "noncurrentVersions": "delete", delete those versions yourself,';
    blockers.push(`${u.storeId}: ${u.versions} noncurrent version(s) still under ${kekName}${lockedText}: ${what} or accept losing them with ${ALLOW_NONCURRENT_FLAG}`);
  }
  return { uses, blockers };
}


