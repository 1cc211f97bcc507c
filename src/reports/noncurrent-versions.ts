/**
 * Invariant 7 for versioned buckets: every rewrite of an object in a versioned (or
 * versioning-suspended) bucket leaves the previous version behind, and its DEK stays wrapped
 * under the KEK it had. After a compromise those versions are exposed until someone deletes
 * them, so the exposure report lists each noncurrent version that is (or may be) under the
 * compromised KEK. The envelope is read as rewrap reads a current one: from the version's
 * metadata, or from the body of a noncurrent `<key>.instruction` version. "Cannot tell" counts
 * as exposed.
 */
import { GetBucketVersioningCommand, GetObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import type { CampaignSpec } from '../core/campaign-spec.ts';
import { scopesOf, sourceKeksOf } from '../core/campaign-spec.ts';
import { kmsKeyPart } from '../kek/kek-map.ts';
import type { KekProvider } from '../kek/kek-provider.ts';
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';
import { mayBeUnder } from '../core/kms-material.ts';
import { INSTRUCTION_SUFFIX, parseStringMap, parseV2 } from '../envelope/s3ec-v2.ts';
import { kekOfUnreadable } from '../rewrap/unreadable-kek.ts';
import { UNDER_NO_KEK_REASONS } from '../core/reasons.ts';
import { isNotFound } from '../stores/s3-errors.ts';
import { parseStoreId, s3StoreId, s3Url } from '../core/store-id.ts';

/** HEADs in flight: well under the client's sockets, whose queue time counts against its connect timeout. */
const HEADS_AT_ONCE = 16;
/** An instruction file is a small JSON object; anything larger is not one (cannot tell: exposed). */
const INSTRUCTION_MAX_BYTES = 64 * 1024;

export interface NoncurrentVersion {
  storeId: string;
  key: string;
  versionId: string;
  /** The KEK the version names, when it can be told. */
  kek: KekVersionRef | undefined;
}

export interface NoncurrentContext {
  /** The client for requests to a bucket (as requester where a source says requesterPays: Resources.s3ClientFor). */
  s3: (bucket: string) => S3Client;
  /** The campaign's provider (a keyring tells its KEKs by matdesc); undefined: cannot tell any AES/GCM KEK. */
  provider: Pick<KekProvider, 'kind' | 'identify'> | undefined;
}

/** Per bucket in scope, the prefixes to list ('' = the whole bucket), none inside another. */
export function versionScopes(spec: CampaignSpec): Map<string, string[]> {
  const byBucket = new Map<string, string[]>();
  for (const s of scopesOf(spec)) {
    const store = parseStoreId(s.storeId);
    if (store?.kind !== 's3') continue; // a manifest names its buckets line by line: not listed here
    const bucket = store.bucket;
    byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), s.prefix ?? '']);
  }
  for (const [bucket, prefixes] of byBucket) {
    const uniq = [...new Set(prefixes)].sort();
    byBucket.set(bucket, uniq.filter((p) => !uniq.some((q) => q !== p && p.startsWith(q))));
  }
  return byBucket;
}

/** Whether a version's envelope fields (lower-case keys) may be under `from`; null when it holds no envelope. */
/**
 * The KEK(s) a walk looks for: one, or the source KEKs of a key map (a version under any of them
 * is under the campaign's sources).
 */
export type KekScope = KekSelector | readonly KekSelector[];
const scopeList = (s: KekScope): readonly KekSelector[] => (Array.isArray(s) ? s : [s as KekSelector]);
const sameKmsKeyPart = (a: string, b: string) => {
  const p = kmsKeyPart(a);
  return p !== undefined && p === kmsKeyPart(b);
};
const firstOf = (s: KekScope): KekSelector => scopeList(s)[0]!;

export function noncurrentKek(meta: Record<string, string>, where: string, provider: NoncurrentContext['provider'], from: KekScope): { kek: KekVersionRef | undefined; under: boolean } | null {
  const parsed = parseV2(meta, where);
  let kek: KekVersionRef | undefined;
  if (parsed.kind === 'invalid') {
    if ((UNDER_NO_KEK_REASONS as readonly string[]).includes(parsed.reason)) return null;
    kek = provider && kekOfUnreadable(parsed.kekReference, provider, firstOf(from));
  } else {
    const { dek, stamp } = parsed.envelope;
    // A KMS blob is never under a keyring KEK, and a raw-AES-wrapped key never under a KMS key (classify.ts).
    if (provider && (provider.kind === 'kms') !== (dek.wrapAlg === 'kms+context')) return { kek: stamp ?? dek.kek, under: false };
    kek = provider?.identify(dek) ?? stamp ?? dek.kek ?? (provider && kekOfUnreadable({ matdesc: dek.matdesc }, provider, firstOf(from)));
  }
  /* A KMS key named as an id in one place and an ARN in the other is the same key (a key map's later entries too). */
  const kms = provider?.kind === 'kms';
  return { kek, under: kek === undefined || scopeList(from).some((f) => mayBeUnder(kek, f) || (kms && sameKmsKeyPart(kek.id, f.id))) };
}

/** Object lock on one version, as its HEAD (or GET) reports it. */
export interface VersionLock {
  mode: 'GOVERNANCE' | 'COMPLIANCE' | undefined;
  retainUntil: Date | undefined;
  legalHold: boolean;
}

/** Where a walk over the noncurrent versions of a campaign's scope is: persisted, so names in full. */
export interface NoncurrentCursor {
  /** Index into versionScopes(spec) (a fixed order for a fixed spec). */
  bucketIndex: number;
  prefixIndex: number;
  keyMarker?: string;
  versionIdMarker?: string;
}

export interface NoncurrentPage {
  /** Noncurrent versions (delete markers aside) that are or may be under `from`, with their lock. */
  versions: (NoncurrentVersion & { lock: VersionLock })[];
  /** Buckets that could not be checked (a message each): never an all-clear for them. */
  unchecked: string[];
  cursor: NoncurrentCursor;
  done: boolean;
}

/**
 * One step of a walk over the noncurrent versions in the versioned buckets of the campaign's
 * scope: one ListObjectVersions page (or one bucket found unversioned or unreadable), each
 * noncurrent version's envelope read (HEAD, or GET of an `.instruction` version). Resumable from
 * the returned cursor.
 */
export async function noncurrentPage(ctx: NoncurrentContext, spec: CampaignSpec, from: KekScope, cursor: NoncurrentCursor | null, signal?: AbortSignal): Promise<NoncurrentPage> {
  const scopes = [...versionScopes(spec)];
  const at: NoncurrentCursor = cursor ?? { bucketIndex: 0, prefixIndex: 0 };
  const nextBucket = (): NoncurrentCursor => ({ bucketIndex: at.bucketIndex + 1, prefixIndex: 0 });
  const page = (versions: NoncurrentPage['versions'], unchecked: string[], next: NoncurrentCursor): NoncurrentPage => ({ versions, unchecked, cursor: next, done: next.bucketIndex >= scopes.length });
  if (at.bucketIndex >= scopes.length) return page([], [], at);
  const [bucket, prefixes] = scopes[at.bucketIndex]!;
  const storeId = s3StoreId(bucket);
  if (at.keyMarker === undefined && at.prefixIndex === 0) {
    let status: string | undefined;
    try {
      status = (await ctx.s3(bucket).send(new GetBucketVersioningCommand({ Bucket: bucket }), { abortSignal: signal })).Status;
    } catch (err) {
      if (signal?.aborted) throw err;
      return page([], [`${storeId}: cannot tell whether the bucket keeps noncurrent versions (GetBucketVersioning: ${(err as { name?: string }).name ?? 'error'}); grant s3:GetBucketVersioning (a requester-pays bucket: set "requesterPays": true on its s3 source)`], nextBucket());
    }
    if (status !== 'Enabled' && status !== 'Suspended') return page([], [], nextBucket());
  }
  const prefix = prefixes[at.prefixIndex] ?? '';
  const listed = await ctx.s3(bucket).send(
    new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix || undefined, KeyMarker: at.keyMarker, VersionIdMarker: at.versionIdMarker }),
    { abortSignal: signal },
  );
  const limit = pLimit(HEADS_AT_ONCE);
  const noncurrent = (listed.Versions ?? []).filter((v) => v.IsLatest === false && v.Key !== undefined && v.VersionId !== undefined);
  const read = await Promise.all(noncurrent.map((v) => limit(() => readNoncurrentVersion(ctx, from, bucket, v.Key!, v.VersionId!, signal))));
  const versions: NoncurrentPage['versions'] = [];
  for (let i = 0; i < noncurrent.length; i++) {
    const r = read[i];
    if (r && r.under) versions.push({ storeId, key: noncurrent[i]!.Key!, versionId: noncurrent[i]!.VersionId!, kek: r.kek, lock: r.lock });
  }
  let next: NoncurrentCursor;
  if (listed.IsTruncated) next = { bucketIndex: at.bucketIndex, prefixIndex: at.prefixIndex, keyMarker: listed.NextKeyMarker, versionIdMarker: listed.NextVersionIdMarker };
  else if (at.prefixIndex + 1 < prefixes.length) next = { bucketIndex: at.bucketIndex, prefixIndex: at.prefixIndex + 1 };
  else next = nextBucket();
  return page(versions, [], next);
}

/**
 * Calls `emit` for every noncurrent version (delete markers aside) under `from` in the versioned
 * buckets of the campaign's scope, in listing order. Returns the buckets that could not be
 * checked (a message each): a report must not read as an all-clear for them.
 */
export async function forEachNoncurrentExposed(
  ctx: NoncurrentContext,
  spec: CampaignSpec,
  emit: (v: NoncurrentVersion & { lock: VersionLock }) => Promise<void>,
  from: KekScope = sourceKeksOf(spec),
  signal?: AbortSignal,
): Promise<string[]> {
  const unchecked: string[] = [];
  for (let cursor: NoncurrentCursor | null = null, done = false; !done; ) {
    const p = await noncurrentPage(ctx, spec, from, cursor, signal);
    unchecked.push(...p.unchecked);
    for (const v of p.versions) await emit(v);
    cursor = p.cursor;
    done = p.done;
  }
  return unchecked;
}

/**
 * A noncurrent (or, without `versionId`, the current) version's KEK and lock; null when it is
 * gone (deleted since it was listed: no longer exposed) or holds no envelope.
 */
export async function readNoncurrentVersion(ctx: NoncurrentContext, from: KekScope, bucket: string, key: string, versionId: string | undefined, signal?: AbortSignal) {
  try {
    return await readEnvelopeOf(ctx, from, bucket, key, versionId, signal);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

interface LockFields {
  ObjectLockMode?: string;
  ObjectLockRetainUntilDate?: Date;
  ObjectLockLegalHoldStatus?: string;
}

export function lockOf(out: LockFields): VersionLock {
  const mode = out.ObjectLockMode === 'GOVERNANCE' || out.ObjectLockMode === 'COMPLIANCE' ? out.ObjectLockMode : undefined;
  return { mode, retainUntil: out.ObjectLockRetainUntilDate, legalHold: out.ObjectLockLegalHoldStatus === 'ON' };
}

async function readEnvelopeOf(ctx: NoncurrentContext, from: KekScope, bucket: string, key: string, versionId: string | undefined, signal?: AbortSignal) {
  const where = `${s3Url(bucket, key)} version ${versionId ?? 'current'}`;
  if (key.endsWith(INSTRUCTION_SUFFIX)) {
    const out = await ctx.s3(bucket).send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }), { abortSignal: signal });
    const lock = lockOf(out);
    if ((out.ContentLength ?? 0) > INSTRUCTION_MAX_BYTES) {
      out.Body?.transformToWebStream().cancel().catch(() => {});
      return { kek: undefined, under: true, lock };
    }
    const json = parseStringMap((await out.Body?.transformToString()) ?? '');
    const r = json ? noncurrentKek(json, where, ctx.provider, from) : { kek: undefined, under: true };
    return r && { ...r, lock };
  }
  const head = await ctx.s3(bucket).send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }), { abortSignal: signal });
  const r = noncurrentKek(head.Metadata ?? {}, where, ctx.provider, from);
  return r && { ...r, lock: lockOf(head) };
}
