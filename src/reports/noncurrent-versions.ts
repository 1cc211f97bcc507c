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
import { scopesOf } from '../core/campaign-spec.ts';
import type { KekProvider } from '../kek/kek-provider.ts';
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';
import { mayBeUnder } from '../core/kms-material.ts';
import { INSTRUCTION_SUFFIX, parseStringMap, parseV2 } from '../envelope/s3ec-v2.ts';
import { kekOfUnreadable } from '../rewrap/unreadable-kek.ts';
import { UNDER_NO_KEK_REASONS } from '../core/reasons.ts';
import { isNotFound } from '../stores/s3-errors.ts';

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
  s3: S3Client;
  /** The campaign's provider (a keyring tells its KEKs by matdesc); undefined: cannot tell any AES/GCM KEK. */
  provider: Pick<KekProvider, 'kind' | 'identify'> | undefined;
}

/** Per bucket in scope, the prefixes to list ('' = the whole bucket), none inside another. */
export function versionScopes(spec: CampaignSpec): Map<string, string[]> {
  const byBucket = new Map<string, string[]>();
  for (const s of scopesOf(spec)) {
    if (!s.storeId.startsWith('s3://')) continue; // a manifest names its buckets line by line: not listed here
    const bucket = s.storeId.slice('s3://'.length);
    byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), s.prefix ?? '']);
  }
  for (const [bucket, prefixes] of byBucket) {
    const uniq = [...new Set(prefixes)].sort();
    byBucket.set(bucket, uniq.filter((p) => !uniq.some((q) => q !== p && p.startsWith(q))));
  }
  return byBucket;
}

/** Whether a version's envelope fields (lower-case keys) may be under `from`; null when it holds no envelope. */
export function noncurrentKek(meta: Record<string, string>, where: string, provider: NoncurrentContext['provider'], from: KekSelector): { kek: KekVersionRef | undefined; under: boolean } | null {
  const parsed = parseV2(meta, where);
  let kek: KekVersionRef | undefined;
  if (parsed.kind === 'invalid') {
    if ((UNDER_NO_KEK_REASONS as readonly string[]).includes(parsed.reason)) return null;
    kek = provider && kekOfUnreadable(parsed.kekReference, provider, from);
  } else {
    const { dek, stamp } = parsed.envelope;
    // A KMS blob is never under a keyring KEK, and a raw-AES-wrapped key never under a KMS key (classify.ts).
    if (provider && (provider.kind === 'kms') !== (dek.wrapAlg === 'kms+context')) return { kek: stamp ?? dek.kek, under: false };
    kek = provider?.identify(dek) ?? stamp ?? dek.kek ?? (provider && kekOfUnreadable({ matdesc: dek.matdesc }, provider, from));
  }
  return { kek, under: kek === undefined || mayBeUnder(kek, from) };
}

/**
 * Calls `emit` for every noncurrent version (delete markers aside) under `from` in the versioned
 * buckets of the campaign's scope, in listing order. Returns the buckets that could not be
 * checked (a message each): a report must not read as an all-clear for them.
 */
export async function forEachNoncurrentExposed(ctx: NoncurrentContext, spec: CampaignSpec, emit: (v: NoncurrentVersion) => Promise<void>): Promise<string[]> {
  const unchecked: string[] = [];
  const limit = pLimit(HEADS_AT_ONCE);
  for (const [bucket, prefixes] of versionScopes(spec)) {
    const storeId = `s3://${bucket}`;
    let status: string | undefined;
    try {
      status = (await ctx.s3.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status;
    } catch (err) {
      unchecked.push(`${storeId}: cannot tell whether the bucket keeps noncurrent versions (GetBucketVersioning: ${(err as { name?: string }).name ?? 'error'}); grant s3:GetBucketVersioning`);
      continue;
    }
    if (status !== 'Enabled' && status !== 'Suspended') continue;
    for (const prefix of prefixes) {
      let keyMarker: string | undefined;
      let versionIdMarker: string | undefined;
      for (;;) {
        const page = await ctx.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix || undefined, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }));
        const noncurrent = (page.Versions ?? []).filter((v) => v.IsLatest === false && v.Key !== undefined && v.VersionId !== undefined);
        const read = await Promise.all(noncurrent.map((v) => limit(() => readVersion(ctx, spec.from, bucket, v.Key!, v.VersionId!))));
        for (let i = 0; i < noncurrent.length; i++) {
          const r = read[i];
          if (r && r.under) await emit({ storeId, key: noncurrent[i]!.Key!, versionId: noncurrent[i]!.VersionId!, kek: r.kek });
        }
        if (!page.IsTruncated) break;
        keyMarker = page.NextKeyMarker;
        versionIdMarker = page.NextVersionIdMarker;
      }
    }
  }
  return unchecked;
}

/** A version deleted since it was listed is no longer exposed. */
async function readVersion(ctx: NoncurrentContext, from: KekSelector, bucket: string, key: string, versionId: string) {
  try {
    return await readEnvelopeOf(ctx, from, bucket, key, versionId);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

async function readEnvelopeOf(ctx: NoncurrentContext, from: KekSelector, bucket: string, key: string, versionId: string) {
  const where = `s3://${bucket}/${key} version ${versionId}`;
  if (key.endsWith(INSTRUCTION_SUFFIX)) {
    const out = await ctx.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    if ((out.ContentLength ?? 0) > INSTRUCTION_MAX_BYTES) {
      out.Body?.transformToWebStream().cancel().catch(() => {});
      return { kek: undefined, under: true };
    }
    const json = parseStringMap((await out.Body?.transformToString()) ?? '');
    return json ? noncurrentKek(json, where, ctx.provider, from) : { kek: undefined, under: true };
  }
  const head = await ctx.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  return noncurrentKek(head.Metadata ?? {}, where, ctx.provider, from);
}
