/**
 * The KEK retirement gate (`rewrap kek retire`). A KEK version may be disabled only when
 *   - the ledger's inventory shows no item under it in any store it knows, no campaign draining it
 *     is still active and none of its planned items is still unmoved;
 *   - a grace period has passed since the last item moved away from it;
 *   - a random sample of moved items, re-read from the stores through the EnvelopeStore port,
 *     decrypts under the KEK that wraps it now (and not under the one being retired).
 * Irreversible steps (removing material) also need a full pass: every item in scope re-read from
 * the stores themselves, not from the ledger (for a campaign planned from a report, whole buckets:
 * fullPassSources). Anything that blocks is said in `blockers`.
 * Invariant 7: an item rewrap could not read or does not rewrap (S3EC V1/V3, unknown algorithms,
 * malformed fields) blocks, in the ledger and in the full pass alike, unless what it still names
 * (matdesc, KMS key id, KEK columns: unreadable-kek.ts) is another KEK; only a missing item or
 * one without any envelope (UNDER_NO_KEK_REASONS) is under no KEK.
 */
import type { Campaign } from '../ledger/types.ts';
import { ACTIVE_STATES } from '../ledger/types.ts';
import { campaignsFromKek, kekUsage, listCampaigns, sampleMovedItems } from '../ledger/index.ts';
import { formatKek, type KekSelector } from '../core/kek-ref.ts';
import type { Resources } from '../runtime/resources.ts';
import { UNDER_NO_KEK_REASONS } from '../core/reasons.ts';
import { kekOfUnreadable } from '../rewrap/unreadable-kek.ts';
import { mayBeUnder } from '../core/kms-material.ts';
import type { KekVerifier } from '../kek/kek-admin.ts';
import { storeIdOf, type CampaignSpec } from '../core/campaign-spec.ts';
import { noncurrentVersionUse, type NoncurrentUse } from './versioned-buckets.ts';
import { otherNameBlockers } from './other-key-names.ts';
import { S3ListSource } from '../sources/s3-list-source.ts';
import type { Source } from '../sources/source.ts';
import { parseStoreId } from '../core/store-id.ts';

export interface RetirementOptions {
  /** The injectable clock. */
  now: Date;
  graceMs: number;
  sampleSize: number;
  /** Re-read every item in scope from the stores (required before anything irreversible). */
  fullPass: boolean;
  /** Local keyring file; default: the one of the newest campaign that drained the KEK. */
  keyringFile?: string;
  /**
   * The operator accepts that noncurrent object versions under the KEK become undecryptable:
   * they are still counted and listed (`noncurrent`), and do not block.
   */
  allowNoncurrentVersions?: boolean;
}

export interface ItemProblem {
  storeId: string;
  itemKey: string;
  problem: string;
}

/** Items that may be under the KEK, counted by store and reason code (failures, unreadable envelopes). */
export interface ItemsByReason {
  storeId: string;
  reason: string;
  items: number;
}

export interface RetirementCheck {
  kek: string;
  provider: 'local' | 'kms' | 'pkcs11' | null;
  keyringFile?: string;
  ok: boolean;
  /** Human sentences, one per thing that blocks; empty when ok. */
  blockers: string[];
  stores: { storeId: string; underKek: number; notYetMoved: number; failedNotMoved: number }[];
  /** The ledger's `failedNotMoved` by store and reason. */
  failedByReason: ItemsByReason[];
  activeCampaigns: { id: string; name: string; state: string }[];
  lastMovedAt: Date | null;
  graceLeftMs: number;
  /**
   * Moved items re-read and unwrapped under their target: `checked` of the `asked` (--sample),
   * fewer only when the campaigns kept fewer: they moved fewer items, or a batch-form campaign of
   * many small batches (each keeps 64/n per source KEK, at least one: batch-samples.ts);
   * `kek retire --full` re-reads every item.
   */
  sample: { asked: number; checked: number; failed: ItemProblem[] };
  /** Noncurrent versions under the KEK per versioned bucket in scope, counted from the buckets (versioned-buckets.ts). */
  noncurrent: NoncurrentUse[];
  /**
   * `mayBeUnderKek`: items the stores hold that rewrap cannot read and that name this KEK or none
   * that can be decided (they block); `underOtherKek`: unreadable items naming another KEK.
   */
  fullPass?: { checked: number; underKek: Record<string, number>; failed: ItemProblem[]; mayBeUnderKek: ItemsByReason[]; underOtherKek: number };
}

/** "3 unsupported-v1, 1 malformed-iv" for one store. */
const byReason = (list: ItemsByReason[], storeId: string) =>
  list.filter((u) => u.storeId === storeId).map((u) => `${u.items} ${u.reason}`).join(', ');

const minutes = (ms: number) => (ms >= 3_600_000 ? `${(ms / 3_600_000).toFixed(1)} h` : `${Math.ceil(ms / 60_000)} min`);

export async function checkRetirement(res: Resources, kek: KekSelector, o: RetirementOptions, signal?: AbortSignal): Promise<RetirementCheck> {
  const name = formatKek(kek);
  const campaigns = await campaignsFromKek(res.ledger, kek);
  const usage = await kekUsage(res.ledger, kek, campaigns.map((c) => c.id), UNDER_NO_KEK_REASONS);
  const blockers: string[] = [];
  const report = campaigns[0] ? `rewrap campaign report ${campaigns[0].id} --kind failures` : 'rewrap campaign report <id> --kind failures';
  for (const s of usage.stores) {
    if (s.underKek > 0) blockers.push(`${s.storeId}: ${s.underKek} item(s) still under ${name} (ledger inventory)`);
    if (s.notYetMoved > 0) blockers.push(`${s.storeId}: ${s.notYetMoved} planned item(s) not moved yet`);
    if (s.failedNotMoved > 0) {
      // Named (the first few by key): the ledger keeps failed items even after `rewrap ledger prune`.
      const named = usage.failedExamples.filter((e) => e.storeId === s.storeId).map((e) => e.itemKey);
      const eg = named.length ? `; ${named.length < s.failedNotMoved ? 'e.g. ' : ''}${named.map((k) => JSON.stringify(k)).join(', ')}` : '';
      blockers.push(`${s.storeId}: ${s.failedNotMoved} item(s) failed to move and may still be under ${name} (${byReason(usage.failed, s.storeId)}${eg}; ${report})`);
    }
  }
  const active = campaigns.filter((c) => ACTIVE_STATES.includes(c.state)).map((c) => ({ id: c.id, name: c.name, state: c.state }));
  for (const c of active) blockers.push(`campaign ${c.id} (${c.name}) draining ${name} is still ${c.state}`);
  /* Invariant 7, campaigns campaignsFromKek does not return: one at work that drains the KEK's id
     with no version (any version, this one included), or that moves items TO it (a batch in flight
     wraps under the material about to go). */
  for (const c of await listCampaigns(res.ledger, { states: [...ACTIVE_STATES] })) {
    if (active.some((a) => a.id === c.id)) continue;
    const role = roleOf(c.spec, kek);
    if (role) blockers.push(`campaign ${c.id} (${c.name}) ${role} ${name} is still ${c.state}`);
  }
  /* A campaign cancelled before its plan was done never listed part of its scope: items there may
     still be under the KEK, and nothing in the ledger shows them. One with an `s3` source cancelled
     before a delta pass was fully planned never checked its `.instruction` names (S3ListSource: the
     plan leaves them to the delta pass), and an unmarked one is an item. Until a later campaign
     from the KEK completes over that scope, "cannot tell" counts as "still needs it". */
  for (const c of campaigns) {
    if (c.state !== 'cancelled' || coveredLater(c, campaigns)) continue;
    if (!c.planDone) {
      blockers.push(`campaign ${c.id} (${c.name}) was cancelled before its plan was done: items it never listed may still be under ${name}; run a campaign from ${name} over its scope to completion`);
    } else if (c.deltaPasses === 0 && c.spec.sources.some((s) => s.type === 's3')) {
      blockers.push(`campaign ${c.id} (${c.name}) was cancelled before its delta pass: objects named <key>.instruction that are not instruction files (items) were never checked and may still be under ${name}; run a campaign from ${name} over its scope to completion`);
    }
  }
  const graceLeftMs = usage.lastMovedAt ? Math.max(0, usage.lastMovedAt.getTime() + o.graceMs - o.now.getTime()) : 0;
  if (graceLeftMs > 0) blockers.push(`grace period: the last item moved at ${usage.lastMovedAt!.toISOString()}; ${minutes(graceLeftMs)} left (--grace)`);

  const base = { kek: name, stores: usage.stores, failedByReason: usage.failed, activeCampaigns: active, lastMovedAt: usage.lastMovedAt, graceLeftMs };
  const newest = campaigns[0];
  if (!newest) {
    blockers.push(`no campaign ever drained ${name}: nothing shows it unused (run a campaign from it first)`);
    return { ...base, provider: null, ok: false, blockers, sample: { asked: o.sampleSize, checked: 0, failed: [] }, noncurrent: [] };
  }
  const provider = newest.spec.provider;
  const admin = res.kekAdmin(newest.spec, { keyringFile: o.keyringFile });
  const keyringFile = admin.keyringFile;
  const checker = admin.verifier();
  try {
    /* Invariant 7: items and rows that record the key by another of its names (KMS aliases, ARNs). */
    blockers.push(...(await otherNameBlockers(res, admin, kek, name, campaigns, signal)));
    /* Invariant 7: noncurrent versions under the KEK, counted from the versioned buckets in scope. */
    const storeIds = [...usage.stores.map((s) => s.storeId), ...campaigns.flatMap((c) => c.spec.sources.flatMap(storeIdOf))];
    const specs = campaigns.map((c) => c.spec);
    const noncurrent = await noncurrentVersionUse({ s3: (bucket) => res.s3ClientFor(bucket, specs), provider: checker }, campaigns, storeIds, kek, name, { now: o.now, allowNoncurrentVersions: o.allowNoncurrentVersions === true }, signal);
    blockers.push(...noncurrent.blockers);
    const sample = await checkSample(res, campaigns, checker, kek, o.sampleSize, signal);
    if (sample.checked === 0) blockers.push(`no item moved away from ${name} to sample`);
    for (const f of sample.failed) blockers.push(`sample ${f.storeId} ${f.itemKey}: ${f.problem}`);
    let fullPass: RetirementCheck['fullPass'];
    if (o.fullPass) {
      fullPass = await verifyEveryItem(res, campaigns, kek, checker, signal);
      for (const [storeId, n] of Object.entries(fullPass.underKek)) blockers.push(`${storeId}: ${n} item(s) under ${name} found re-reading the store`);
      for (const storeId of new Set(fullPass.mayBeUnderKek.map((u) => u.storeId))) {
        const n = fullPass.mayBeUnderKek.filter((u) => u.storeId === storeId).reduce((a, u) => a + u.items, 0);
        blockers.push(`${storeId}: ${n} item(s) that rewrap cannot read may be under ${name}, found re-reading the store (${byReason(fullPass.mayBeUnderKek, storeId)})`);
      }
      for (const f of fullPass.failed.slice(0, 20)) blockers.push(`${f.storeId} ${f.itemKey}: ${f.problem}`);
      if (fullPass.failed.length > 20) blockers.push(`... and ${fullPass.failed.length - 20} more item(s) that do not decrypt`);
    }
    return { ...base, provider: provider.type, keyringFile, ok: blockers.length === 0, blockers, sample, noncurrent: noncurrent.uses, ...(fullPass ? { fullPass } : {}) };
  } finally {
    checker.close();
  }
}

async function checkSample(res: Resources, campaigns: Campaign[], checker: KekVerifier, kek: KekSelector, size: number, signal?: AbortSignal) {
  const byId = new Map(campaigns.map((c) => [c.id, c]));
  /* Key map campaigns move many KEKs: the sample is of items moved away from this one. */
  const mapped = campaigns.some((c) => c.spec.keyMap !== undefined);
  const items = await sampleMovedItems(res.ledger, [...byId.keys()], size, mapped ? kek : undefined);
  const failed: ItemProblem[] = [];
  for (const it of items) {
    const store = res.store(byId.get(it.campaignId)!.spec, it.storeId);
    const read = await store.read({ key: it.itemKey }, signal);
    if (read.kind !== 'envelope') {
      failed.push({ storeId: it.storeId, itemKey: it.itemKey, problem: `cannot be read back: ${read.reason}` });
      continue;
    }
    const v = await checker.verifyUnwrap(read.envelope.dek, kek, it.to.id, signal);
    if (!v.ok) failed.push({ storeId: it.storeId, itemKey: it.itemKey, problem: v.problem });
  }
  return { asked: size, checked: items.length, failed };
}

/** The spec with its key map cut to the entries whose source may be `kek` (a spec without a map as it is). */
function narrowedTo(spec: CampaignSpec, kek: KekSelector): CampaignSpec {
  if (!spec.keyMap) return spec;
  const keep = spec.keyMap.filter((e) => e.from.id === kek.id && (e.from.version === undefined || kek.version === undefined || e.from.version === kek.version));
  return keep.length > 0 ? { ...spec, keyMap: keep } : spec;
}

/** How a campaign at work may still use `kek` beyond what campaignsFromKek finds: draining its id at any version, or moving items to it. */
function roleOf(spec: CampaignSpec, kek: KekSelector): string | undefined {
  const may = (sel: KekSelector | undefined) => sel !== undefined && sel.id === kek.id && (sel.version === undefined || kek.version === undefined || sel.version === kek.version);
  const pairs = spec.keyMap ?? [{ from: spec.from, to: spec.to }];
  if (pairs.some((p) => may(p.from))) return 'draining';
  if (pairs.some((p) => may(p.to))) return 'moving items to';
  return undefined;
}

/** A completed campaign from the KEK, newer than `c`, whose scopes cover each of `c`'s (same store, a prefix of its prefix). */
function coveredLater(c: Campaign, campaigns: Campaign[]): boolean {
  return campaigns.some(
    (d) =>
      d.state === 'completed' &&
      d.planDone &&
      d.createdAt > c.createdAt &&
      c.scopes.every((s) => d.scopes.some((t) => t.storeId === s.storeId && (s.prefix ?? '').startsWith(t.prefix ?? ''))),
  );
}

/**
 * The spec with no S3 source read as metadata-only: the full pass looks for objects outside the
 * campaign's plan (written since, or never in its report), and the campaign's placement says
 * nothing of where their envelopes are. Under "metadata" an object whose envelope is in
 * `<key>.instruction` reads as not encrypted, under no KEK, and --delete would take the material it
 * needs. "auto" reads the metadata first, then the instruction file; "instruction" (missing file:
 * a blocker) stays, being stricter still.
 */
function readingEveryPlacement(spec: CampaignSpec): CampaignSpec {
  if (!spec.sources.some((s) => s.type !== 'pg' && s.placement === 'metadata')) return spec;
  return { ...spec, sources: spec.sources.map((s) => (s.type !== 'pg' && s.placement === 'metadata' ? { ...s, placement: 'auto' } : s)) };
}

/**
 * What the full pass enumerates for a campaign: its `s3` and `pg` sources as they plan, but for a
 * report (`s3-manifest`, `s3-inventory`) the whole buckets it may write (its S3 scopes), listed
 * with ListObjectsV2. A report is a snapshot: an object written under the KEK after it was taken,
 * or never in it, is in none of the campaign's batches, and the empty delta pass of a fixed list
 * did not look for it. Removing the KEK's material must not take it on trust.
 */
function fullPassSources(res: Resources, c: Campaign, spec: CampaignSpec, specs: readonly CampaignSpec[]): { source: Source; what: string }[] {
  const out: { source: Source; what: string }[] = [];
  let reports = false;
  spec.sources.forEach((s, i) => {
    if (s.type === 's3-manifest' || s.type === 's3-inventory') reports = true;
    /* A pg source: the rows under the KEK by their columns, and those whose columns record none (they block). */
    else out.push({ source: res.source(spec, i, { unrecordedRows: true }), what: s.type === 's3' ? `s3|${s.bucket}|${s.prefix ?? ''}` : `pg|${s.table}` });
  });
  if (reports) {
    for (const scope of c.scopes) {
      const store = parseStoreId(scope.storeId);
      if (store?.kind !== 's3') continue;
      /* As requester where any campaign of the KEK says so: the listing is shared by them all (below). */
      out.push({ source: new S3ListSource(res.s3ClientFor(store.bucket, specs), store.bucket, scope.prefix), what: `s3|${store.bucket}|${scope.prefix ?? ''}` });
    }
  }
  return out;
}

/** Every item of every source of the campaigns that drained the KEK (whole buckets for reports), read from its store. */
async function verifyEveryItem(
  res: Resources,
  campaigns: Campaign[],
  kek: KekSelector,
  checker: KekVerifier,
  signal?: AbortSignal,
) {
  const seen = new Set<string>();
  const enumerated = new Set<string>();
  const underKek: Record<string, number> = {};
  const failed: ItemProblem[] = [];
  const unreadable = new Map<string, ItemsByReason>();
  let checked = 0;
  let underOtherKek = 0;
  for (const c of campaigns) {
    /* A key map campaign's sources narrowed to the entries of this KEK (a pg source then selects its rows only; a listing lists all). */
    const spec = narrowedTo(c.spec, kek);
    for (const { source, what } of fullPassSources(res, c, spec, campaigns.map((x) => x.spec))) {
      /* The same listing for several campaigns is read once (a pg source's rows depend on the spec's KEKs: not deduplicated). */
      if (what.startsWith('s3|')) {
        if (enumerated.has(what)) continue;
        enumerated.add(what);
      }
      for (let cursor: unknown = null, done = false; !done; ) {
        const page = await source.page(cursor, 1000, signal);
        for (const g of page.groups) {
          const store = res.store(readingEveryPlacement(c.spec), g.storeId);
          const keys = g.keys.filter((k) => !seen.has(`${g.storeId}\u0000${k}`));
          for (const k of keys) seen.add(`${g.storeId}\u0000${k}`);
          for (let j = 0; j < keys.length; j += 32) {
            await Promise.all(
              keys.slice(j, j + 32).map(async (key) => {
                const read = await store.read({ key }, signal);
                checked++;
                if (read.kind !== 'envelope') {
                  /* Invariant 7: "cannot tell" counts as "still needs it". */
                  if (UNDER_NO_KEK_REASONS.includes(read.reason)) return;
                  const named = kekOfUnreadable(read.kekReference, checker, kek);
                  if (named && !mayBeUnder(named, kek)) {
                    underOtherKek++;
                    return;
                  }
                  const id = `${g.storeId}\u0000${read.reason}`;
                  const u = unreadable.get(id) ?? { storeId: g.storeId, reason: read.reason, items: 0 };
                  u.items++;
                  unreadable.set(id, u);
                  return;
                }
                const v = await checker.verifyUnwrap(read.envelope.dek, kek, undefined, signal);
                if (v.ok) return;
                if (v.underRetiring) underKek[g.storeId] = (underKek[g.storeId] ?? 0) + 1;
                else failed.push({ storeId: g.storeId, itemKey: key, problem: v.problem });
              }),
            );
          }
        }
        cursor = page.cursor;
        done = page.done;
      }
    }
  }
  const mayBeUnderKek = [...unreadable.values()].sort((a, b) => (a.storeId + a.reason < b.storeId + b.reason ? -1 : 1));
  return { checked, underKek, failed, mayBeUnderKek, underOtherKek };
}
