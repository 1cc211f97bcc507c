/**
 * Dedupe across processes (issue 17, point 3): a wrapped DEK shared by items in different batches
 * is rewrapped once per campaign, not once per worker. Every rewrap first asks a store shared by
 * all workers of the campaign (the ledger's rewrap_dek_rewraps, migration 000007) for the result
 * of this (campaign, source KEK, destination KEK, wrapped DEK); only the worker that claims it
 * calls the provider, stores the result, and everyone else uses that stored result.
 *
 * Why the ledger and not Redis: the result must be durable before any store write uses it
 * ("written before use"). Worker A computes R1, stores it, writes item 1; worker B must then use
 * R1 for item 2, never compute R2, even after a crash of A, of B or of Redis. Postgres is the
 * durable source of truth; Redis is allowed to lose everything (invariant 4) and holds only a
 * bounded window of batch ids, while this cache grows with the distinct DEKs of a campaign
 * (bounded memory in Redis would mean evicting results that items already use).
 *
 * Cost, per distinct wrapped DEK and campaign: one row (~250 bytes: a 32-byte digest and the new
 * wrapped key as JSON), one claim statement and one store statement on the worker that computes
 * it; per distinct DEK and worker process that meets it later, one claim statement that reads the
 * result. The in-process DedupingKekProvider sits in front, so items sharing a DEK inside one
 * process cost nothing more. A campaign where every item has its own DEK pays two statements and
 * a row per item (beside its batch commit): the price of "exactly once per campaign". The rows of
 * a terminal campaign are deleted by `rewrap ledger prune`.
 *
 * Races: two workers that meet a new DEK at once both try to claim it (INSERT ... ON CONFLICT):
 * one wins and calls the provider, the other polls until the result is there. A claim lives
 * `claimMs`; a worker that died holding one is replaced after that (at worst one more provider
 * call; the store is first-writer-wins, so every item still gets the one stored result).
 *
 * Invariant 5: the stored result is ciphertext (the DEK wrapped under the destination KEK) with
 * KEK ids and material ids; the digest is a SHA-256 of ciphertext and names. No plaintext.
 * Failures are never shared (a throttle, a transient error, an item error, NotUnderSourceError):
 * the claim is released and the next worker that needs the DEK tries for real.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KekProvider, RewrapResult } from './kek-provider.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrapAlgorithm, type WrappedDek } from '../core/kek-ref.ts';
import { ForwardingKekProvider } from './forwarding-kek-provider.ts';
import { transient } from '../core/errors.ts';

export type SharedRewrapClaim = { kind: 'result'; result: unknown } | { kind: 'claimed' } | { kind: 'busy' };

/** The campaign's shared results (the ledger's claimDekRewrap / storeDekRewrap / releaseDekRewrap). */
export interface SharedRewrapStore {
  claim(digest: Buffer, owner: string, claimMs: number): Promise<SharedRewrapClaim>;
  /** Stores `result` unless one is there already; returns the stored one (first writer wins). */
  store(digest: Buffer, result: unknown): Promise<unknown>;
  release(digest: Buffer, owner: string): Promise<void>;
}

export interface SharedDedupeOptions {
  /** Names the claims of this process (a random suffix is added). */
  workerId: string;
  /** How long a claim keeps others waiting before they take it over (default 15 s, the batch lease). */
  claimMs?: number;
  /** Longest pause between two looks at a claim another worker holds (default 250 ms). */
  maxPollMs?: number;
}

/** What rewrap_dek_rewraps.result holds: the result, and the destination it was made for. */
interface StoredResult {
  for: string;
  wrapAlg: WrapAlgorithm;
  wrapped: string;
  matdesc: Record<string, string>;
  from: KekVersionRef;
  to: KekVersionRef;
  requestId?: string;
}

export class SharedDedupingKekProvider extends ForwardingKekProvider {
  private readonly owner: string;
  private readonly claimMs: number;
  private readonly maxPollMs: number;

  constructor(
    inner: KekProvider,
    private readonly shared: SharedRewrapStore,
    o: SharedDedupeOptions,
  ) {
    super(inner);
    this.owner = `${o.workerId}-${randomBytes(4).toString('hex')}`;
    this.claimMs = o.claimMs ?? 15_000;
    this.maxPollMs = o.maxPollMs ?? 250;
  }

  override async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    const digest = sharedRewrapDigest(dek, from, to);
    for (let pause = 5; ; pause = Math.min(this.maxPollMs, pause * 2)) {
      signal?.throwIfAborted();
      const c = await ledgerCall(() => this.shared.claim(digest, this.owner, this.claimMs));
      if (c.kind === 'result') return decode(c.result, to);
      if (c.kind === 'claimed') return this.computeAndStore(digest, dek, from, to, signal);
      await sleep(pause, undefined, { signal }).catch((err: unknown) => {
        signal?.throwIfAborted(); // the batch's own reason, not a bare AbortError
        throw err;
      });
    }
  }

  private async computeAndStore(digest: Buffer, dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    let r: RewrapResult;
    try {
      r = await this.inner.rewrap(dek, from, to, signal);
    } catch (err) {
      // Never shared: the next worker that needs this DEK claims it and tries for real.
      await this.shared.release(digest, this.owner).catch(() => undefined);
      throw err;
    }
    /* Postcondition: the result every item uses is committed before it is returned (written before use). */
    return decode(await ledgerCall(() => this.shared.store(digest, encode(r, to))), to);
  }
}

/**
 * A ledger that does not answer (a restart, a failover, a statement timeout) is no fault of the
 * item: it is retried like a provider outage, never recorded as the item's failure.
 */
async function ledgerCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw transient('provider-unavailable', `the shared rewrap results (ledger) did not answer: ${(err as Error).message ?? String(err)}`, err);
  }
}

/**
 * The campaign-wide identity of one rewrap: the wrapped DEK with its algorithms and material
 * description, the KEK the store says wraps it, the source and the destination. A different
 * destination (or source) is another digest, so its result is never reused across them.
 */
export function sharedRewrapDigest(dek: WrappedDek, from: KekSelector, to: KekSelector): Buffer {
  const h = createHash('sha256');
  h.update('rewrap-dek-v1\0');
  h.update(JSON.stringify([from.id, from.version ?? null, to.id, to.version ?? null, dek.kek?.id ?? null, dek.kek?.version ?? null, dek.kek?.materialId ?? null]));
  h.update('\0' + dek.wrapAlg + '\0' + dek.cekAlg + '\0');
  h.update(JSON.stringify(Object.keys(dek.matdesc).sort().map((k) => [k, dek.matdesc[k]])));
  h.update('\0');
  h.update(dek.wrapped);
  return h.digest();
}

function encode(r: RewrapResult, to: KekSelector): StoredResult {
  return {
    for: formatKek(to),
    wrapAlg: r.wrapAlg,
    wrapped: r.wrapped.toString('base64'),
    matdesc: r.matdesc,
    from: r.from,
    to: r.to,
    ...(r.requestId !== undefined ? { requestId: r.requestId } : {}),
  };
}

function decode(stored: unknown, to: KekSelector): RewrapResult {
  const s = stored as Partial<StoredResult> | null;
  /* A result made for another destination is never used (the digest already separates them). */
  if (!s || s.for !== formatKek(to) || typeof s.wrapped !== 'string' || typeof s.wrapAlg !== 'string' || !s.to || !s.from) {
    throw new Error(`shared rewrap result: stored for ${typeof s?.for === 'string' ? s.for : 'an unknown KEK'}, expected one for ${formatKek(to)}; refusing to use it`);
  }
  return { wrapAlg: s.wrapAlg, wrapped: Buffer.from(s.wrapped, 'base64'), matdesc: s.matdesc ?? {}, from: s.from, to: s.to, ...(s.requestId !== undefined ? { requestId: s.requestId } : {}) };
}
