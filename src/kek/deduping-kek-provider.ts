/**
 * Many items often share one wrapped DEK (per-window or per-tenant DEKs). Within a campaign,
 * each distinct wrapped DEK (with its encryption context) is rewrapped once and the result is
 * reused: the new wrapped key is ciphertext, safe to keep in memory and to reuse.
 */
import { createHash } from 'node:crypto';
import { NotUnderSourceError, type KekProvider, type RewrapResult } from './kek-provider.ts';
import type { KekSelector, WrappedDek } from '../core/kek-ref.ts';
import { ForwardingKekProvider } from './forwarding-kek-provider.ts';

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

  constructor(
    inner: KekProvider,
    maxEntries = 100_000,
  ) {
    super(inner);
    this.generationSize = Math.max(1, Math.floor(maxEntries / 2));
  }

  /** Results kept for reuse (for tests and diagnostics). */
  get size(): number {
    return this.recent.size + this.older.size;
  }

  override rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    const key = cacheKey(dek, from, to);
    const recent = this.recent.get(key);
    if (recent) return recent;
    const older = this.older.get(key);
    if (older) {
      this.older.delete(key);
      this.remember(key, older);
      return older;
    }
    const p = this.inner.rewrap(dek, from, to, signal);
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

function cacheKey(dek: WrappedDek, from: KekSelector, to: KekSelector): string {
  const h = createHash('sha256');
  h.update(dek.wrapped);
  h.update('\0' + dek.wrapAlg + '\0' + dek.cekAlg + '\0');
  h.update(JSON.stringify(Object.keys(dek.matdesc).sort().map((k) => [k, dek.matdesc[k]])));
  h.update('\0' + JSON.stringify([from.id, from.version ?? null, to.id, to.version ?? null, dek.kek?.id ?? null, dek.kek?.version ?? null]));
  return h.digest('base64');
}
