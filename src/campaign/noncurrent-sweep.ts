/**
 * The noncurrent sweep: the last step of a campaign over versioned S3 buckets, run by the
 * scheduler once every current item is done and the final delta pass found nothing new, before
 * the campaign is marked completed. Each rewrite of a current version (a self-copy, a PUT of an
 * instruction file) left the previous version behind with its DEK under the source KEK, and so
 * did the application's own overwrites; the sweep lists the noncurrent versions under the source
 * KEK (noncurrent-versions.ts, the same reader as the exposure report) and, by the campaign's
 * `noncurrentVersions` option, records them (report), records that the user keeps them (keep),
 * or deletes them by version id (delete). Every version it saw is recorded in the ledger
 * (rewrap_noncurrent_versions) with its state and reason; every delete and every refusal is in
 * the audit log.
 *
 * Why a scheduler step and not the worker's write: a worker's batch ends with the ledger commit
 * of its current items (invariant 1: write, then commit), and only after the last commit is it
 * true of every key that its current version has left the source KEK. Pre-existing noncurrent
 * versions of keys that were never planned (the current version already under another KEK) are
 * found the same way. One page per call with the cursor saved alongside the page's records, so a
 * restarted scheduler resumes, and every step is safe to repeat (invariant 2).
 *
 * Invariant 7 (nothing irreversible while anything may still need the key), for each version:
 *   - deleted only if the key's CURRENT version is not (or may not be) under the source KEK, read
 *     from S3 just before (a current version still under it, or one rewritten by the application
 *     under it since, keeps its history: 'exposed', reason current-under-source);
 *   - the version itself is re-read just before the delete: only a version whose envelope is (or
 *     may be) under the source KEK is deleted; a delete marker holds no envelope and is never one;
 *   - a version with id "null" only while the bucket's versioning is Enabled, read just before:
 *     in a Suspended bucket any PUT of the key (the application's) becomes its null version and
 *     current, and a delete by id "null" would then delete that new current object (measured on
 *     Ceph RGW: the key reverted to the older version). It stays: 'exposed', reason
 *     null-version-suspended (or versioning-unknown when it cannot be read);
 *   - a version under legal hold or COMPLIANCE retention is never deleted; GOVERNANCE retention
 *     only with `bypassGovernanceRetention`; an AccessDenied on the delete (the server's lock, or
 *     no s3:DeleteObjectVersion) is recorded as 'locked' (delete-refused), not a crash.
 */
import type pg from 'pg';
import { DeleteObjectCommand, GetBucketVersioningCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { bucketOf } from '../core/store-id.ts';
import type { Logger } from '../log.ts';
import type { Campaign, NoncurrentCount, NoncurrentState, NoncurrentVersionRecord } from '../ledger/types.ts';
import { recordNoncurrentSweep } from '../ledger/index.ts';
import { noncurrentModeOf, sourceKeksOf } from '../core/campaign-spec.ts';
import {
  noncurrentPage,
  readNoncurrentVersion,
  versionScopes,
  type NoncurrentContext,
  type NoncurrentCursor,
  type NoncurrentVersion,
  type VersionLock,
} from '../reports/noncurrent-versions.ts';
import { httpStatus, isAccessDenied, isNotFound, isTransientS3Error } from '../stores/s3-errors.ts';

/** Deletes in flight: each is two reads and one delete. */
const DELETES_AT_ONCE = 8;

/** Reason codes of versions the sweep could not delete (rewrap_noncurrent_versions.reason). */
export const LOCK_REASONS = ['legal-hold', 'retention-compliance', 'retention-governance', 'delete-refused'] as const;

/** Why object lock forbids deleting this version now; undefined when nothing does. */
export function lockReason(lock: VersionLock, now: Date, bypassGovernance: boolean): (typeof LOCK_REASONS)[number] | undefined {
  if (lock.legalHold) return 'legal-hold';
  const retained = lock.mode !== undefined && (lock.retainUntil === undefined || lock.retainUntil.getTime() > now.getTime());
  if (retained && lock.mode === 'COMPLIANCE') return 'retention-compliance';
  if (retained && lock.mode === 'GOVERNANCE' && !bypassGovernance) return 'retention-governance';
  return undefined;
}

const governanceActive = (lock: VersionLock, now: Date) => lock.mode === 'GOVERNANCE' && (lock.retainUntil === undefined || lock.retainUntil.getTime() > now.getTime());

/** Does the campaign have a sweep to run at all (an S3 bucket in scope)? */
export const hasNoncurrentScope = (c: Campaign) => versionScopes(c.spec).size > 0;

/**
 * One page of the sweep. Returns true once the sweep is done (recorded in the ledger: the
 * campaign may complete). Transient S3 errors throw: the page is read again next tick.
 */
export async function noncurrentSweepStep(pool: pg.Pool, ctx: NoncurrentContext, c: Campaign, log: Logger, now: () => Date, signal?: AbortSignal): Promise<boolean> {
  if (c.noncurrentSweptAt) return true;
  const mode = noncurrentModeOf(c.spec);
  const page = await noncurrentPage(ctx, c.spec, sourceKeksOf(c.spec), (c.noncurrentCursor as NoncurrentCursor | null) ?? null, signal);
  for (const u of page.unchecked) log.warn({ problem: u }, 'noncurrent sweep: bucket not checked; kek retire will refuse over it');
  const limit = pLimit(DELETES_AT_ONCE);
  const records = (
    await Promise.all(
      page.versions.map((v) =>
        limit(async (): Promise<NoncurrentVersionRecord | undefined> => {
          if (mode === 'report') return record(v, 'exposed', null);
          if (mode === 'keep') return record(v, 'kept', null);
          return deleteVersion(ctx, c, v, log, now(), signal);
        }),
      ),
    )
  ).filter((r): r is NoncurrentVersionRecord => r !== undefined);
  await recordNoncurrentSweep(pool, c.id, records, page.cursor, page.done);
  if (page.done) log.info({ mode }, 'noncurrent sweep done');
  return page.done;
}

function record(v: NoncurrentVersion, state: NoncurrentState, reason: string | null): NoncurrentVersionRecord {
  return { storeId: v.storeId, itemKey: v.key, versionId: v.versionId, kekId: v.kek?.id ?? null, kekVersion: v.kek?.version ?? v.kek?.materialId ?? null, state, reason };
}

async function deleteVersion(ctx: NoncurrentContext, c: Campaign, v: NoncurrentVersion, log: Logger, now: Date, signal?: AbortSignal): Promise<NoncurrentVersionRecord | undefined> {
  const bucket = bucketOf(v.storeId);
  const audit = { store: v.storeId, item: v.key, versionId: v.versionId, kekRef: v.kek, campaignId: c.id };
  /* Precondition: the key's current version has left the source KEK (or is gone: a delete marker
     or no object). A current version that may still be under it keeps its history. */
  const current = await readNoncurrentVersion(ctx, sourceKeksOf(c.spec), bucket, v.key, undefined, signal);
  if (current?.under) return record(v, 'exposed', 'current-under-source');
  /* Precondition: re-read just before the delete, the version is still there and under the source KEK. */
  const again = await readNoncurrentVersion(ctx, sourceKeksOf(c.spec), bucket, v.key, v.versionId, signal);
  if (!again?.under) return undefined; // gone since it was listed (or holds no envelope): nothing to delete
  /* Deleting needs to know: a version whose KEK cannot be told (a keyring that cannot be loaded,
     an envelope naming none) may be under another KEK; it stays, counted as exposed. */
  if (again.kek === undefined) return record(v, 'exposed', 'kek-unknown');
  const bypass = c.spec.options.bypassGovernanceRetention === true;
  const locked = lockReason(again.lock, now, bypass);
  if (locked) {
    log.info({ event: 'version.locked', ...audit, reason: locked }, 'audit');
    return record(v, 'locked', locked);
  }
  if (v.versionId === 'null') {
    const held = await nullVersionHeld(ctx, bucket, signal);
    if (held) {
      log.info({ event: 'version.kept', ...audit, reason: held }, 'audit');
      return record(v, 'exposed', held);
    }
  }
  try {
    await ctx.s3(bucket).send(
      new DeleteObjectCommand({ Bucket: bucket, Key: v.key, VersionId: v.versionId, ...(bypass && governanceActive(again.lock, now) ? { BypassGovernanceRetention: true } : {}) }),
      { abortSignal: signal },
    );
  } catch (err) {
    /* AccessDenied (the server's object lock, or no s3:DeleteObjectVersion) or any other refusal
       of this one request: the version stays, counted, and blocks retirement. */
    const status = httpStatus(err);
    if (isAccessDenied(err) || (status !== undefined && status >= 400 && status < 500 && !isNotFound(err) && !isTransientS3Error(err))) {
      log.warn({ event: 'version.delete-refused', ...audit, reason: 'delete-refused', err }, 'audit');
      return record(v, 'locked', 'delete-refused');
    }
    if (!isNotFound(err)) throw err; // transient or unknown: the page is read again next tick
  }
  log.info({ event: 'version.deleted', ...audit, bypassGovernanceRetention: bypass && governanceActive(again.lock, now) }, 'audit');
  return record(v, 'deleted', null);
}

/**
 * Why a null version must not be deleted now, or undefined when versioning is Enabled (read now,
 * not from the page: it can be suspended at any time). In a Suspended bucket the id "null" names
 * whatever the key's latest write was, possibly the current object.
 */
async function nullVersionHeld(ctx: NoncurrentContext, bucket: string, signal?: AbortSignal): Promise<'null-version-suspended' | 'versioning-unknown' | undefined> {
  try {
    const { Status } = await ctx.s3(bucket).send(new GetBucketVersioningCommand({ Bucket: bucket }), { abortSignal: signal });
    return Status === 'Enabled' ? undefined : 'null-version-suspended';
  } catch (err) {
    if (signal?.aborted || isTransientS3Error(err)) throw err; // the page is read again next tick
    return 'versioning-unknown';
  }
}

/** For status and the API: the campaign's noncurrent-version option, where its sweep is, and what it counted, by store. */
export function noncurrentStatus(c: Campaign, counts: NoncurrentCount[]) {
  const byStore: Record<string, Record<string, number>> = {};
  for (const n of counts) {
    const k = n.reason ? `${n.state} (${n.reason})` : n.state;
    byStore[n.storeId] = { ...byStore[n.storeId], [k]: (byStore[n.storeId]?.[k] ?? 0) + n.versions };
  }
  return {
    mode: noncurrentModeOf(c.spec),
    bypassGovernanceRetention: c.spec.options.bypassGovernanceRetention === true,
    sweptAt: c.noncurrentSweptAt,
    byStore,
  };
}

