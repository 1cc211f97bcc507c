/**
 * Many items often share one wrapped DEK (per-window or per-tenant DEKs). Within a campaign,
 * each distinct wrapped DEK (with its encryption context) is rewrapped once and the result is
 * reused: the new wrapped key is ciphertext, safe to keep in memory and to reuse.
 *
 * When DEKs do not repeat (one per item, B1), remembering every result is pure cost: a Map insert,
 * a kept promise and result the GC must trace. After `missRunBeforeSampling` lookups in a row
 * without a hit, only one miss in SAMPLE_EVERY is remembered; every item is still looked up, and
 * the first hit remembers everything again. Sampling can cost KMS calls (a DEK that starts
 * repeating is found after ~SAMPLE_EVERY of its uses), never correctness: a result is only ever
 * reused for the exact same wrapped DEK, context and KEK pair.
 */
import { NotUnderSourceError, type KekProvider, type RewrapResult } from './kek-provider.ts';
import type { KekSelector, WrappedDek } from '../core/kek-ref.ts';
import { ForwardingKekProvider } from './forwarding-kek-provider.ts';
import { WriteFencedError } from '../core/errors.ts';

export class DedupingKekProvider extends ForwardingKekProvider {
  /*
   * Two generations instead of one Map trimmed from its front: deleting a Map's oldest key leaves
   * a hole that every later keys().next() walks over until the table is rebuilt, which cost 40 to
   * 140 us per insert once the cache was full (half a B1 worker's CPU). When `recent` holds half
   * the entries it becomes `older` and the previous `older` is dropped: O(1), at most
   * `maxEntries` results kept, and a key used in either generation moves to `recent`.
   */
  private recent = new Map<string, Promise<RewrapResult>>();
  private older = new Map<string, Promise<RewrapResult>>();
  private readonly generationSize: number;
  private readonly missRunBeforeSampling: number;
  private missRun = 0;

  constructor(
    inner: KekProvider,
    maxEntries = 100_000,
    opts: { missRunBeforeSampling?: number } = {},
  ) {
    super(inner);
    this.generationSize = Math.max(1, Math.floor(maxEntries / 2));
    this.missRunBeforeSampling = opts.missRunBeforeSampling ?? DEFAULT_MISS_RUN_BEFORE_SAMPLING;
  }

  /** Results kept for reuse (for tests and diagnostics). */
  get size(): number {
    return this.recent.size + this.older.size;
  }

  override rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    const key = cacheKey(dek, from, to);
    const recent = this.recent.get(key);
    if (recent) {
      this.missRun = 0;
      return this.join(key, recent, dek, from, to, signal);
    }
    const older = this.older.get(key);
    if (older) {
      this.missRun = 0;
      this.older.delete(key);
      this.remember(key, older);
      return this.join(key, older, dek, from, to, signal);
    }
    const p = this.inner.rewrap(dek, from, to, signal);
    this.missRun++;
    if (this.missRun >= this.missRunBeforeSampling && this.missRun % SAMPLE_EVERY !== 0) return p;
    this.remember(key, p);
    /*
     * Reused: results, and NotUnderSourceError, the provider's answer about this DEK (with the
     * result KMS produced anyway, see kms-material.ts). Never a throttle, a transient or a
     * permanent item failure: those must be tried again for real.
     */
    p.catch((err) => {
      if (!(err instanceof NotUnderSourceError)) this.forget(key, p);
    });
    return p;
  }

  override close(): void {
    this.recent.clear();
    this.older.clear();
    super.close();
  }

  /**
   * A result computed for another caller. It runs under that caller's signal: when that caller
   * stops (its lease lost, its job aborted), this one was not interrupted, and gets a rewrap of
   * its own instead of the other's interruption (which would stop its batch as if fenced, or
   * count a batch failure). The interrupted promise is already forgotten (its catch, attached
   * first, runs first), so the retry is a new call or joins a newer one.
   */
  private join(key: string, p: Promise<RewrapResult>, dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    return p.catch((err: unknown) => {
      const interruption = err instanceof WriteFencedError || (err as { name?: unknown } | null)?.name === 'AbortError';
      if (!interruption || signal?.aborted || this.recent.get(key) === p || this.older.get(key) === p) throw err;
      return this.rewrap(dek, from, to, signal);
    });
  }

  private remember(key: string, p: Promise<RewrapResult>): void {
    if (this.recent.size >= this.generationSize) {
      this.older = this.recent;
      this.recent = new Map();
    }
    this.recent.set(key, p);
  }

  private forget(key: string, p: Promise<RewrapResult>): void {
    if (this.recent.get(key) === p) this.recent.delete(key);
    if (this.older.get(key) === p) this.older.delete(key);
  }
}

const DEFAULT_MISS_RUN_BEFORE_SAMPLING = 20_000;
const SAMPLE_EVERY = 16;

/**
 * Everything a result depends on, as one string. Not a digest: SHA-256 here was ~4 % of a B1
 * worker's CPU. Every field is length-prefixed (or `-` when absent), in a fixed order, so the
 * encoding is injective: two different (DEK, context, KEK pair) inputs can never share a key, and
 * a result is never reused for another item's DEK. The wrapped bytes go in as latin1 (one
 * character per byte, a one-byte string in V8).
 */
export function cacheKey(dek: WrappedDek, from: KekSelector, to: KekSelector): string {
  let k = field(dek.wrapped.toString('latin1')) + field(dek.wrapAlg) + field(dek.cekAlg);
  const names = Object.keys(dek.matdesc);
  if (names.length > 1) names.sort();
  k += names.length + '#';
  for (const n of names) k += field(n) + field(dek.matdesc[n]);
  return k + field(from.id) + field(from.version) + field(to.id) + field(to.version) + field(dek.kek?.id) + field(dek.kek?.version);
}

const field = (s: string | undefined): string => (s === undefined ? '-' : `${s.length}:${s}`);
