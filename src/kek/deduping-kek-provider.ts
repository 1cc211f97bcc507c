/**
 * Many items often share one wrapped DEK (per-window or per-tenant DEKs). Within a campaign,
 * each distinct wrapped DEK (with its encryption context) is rewrapped once and the result is
 * reused: the new wrapped key is ciphertext, safe to keep in memory and to reuse.
 */
import { createHash } from 'node:crypto';
import type { KekProvider, KekSelector, RewrapResult, WrappedDek } from './kek-provider.ts';
import { ForwardingKekProvider } from './forwarding-kek-provider.ts';

export class DedupingKekProvider extends ForwardingKekProvider {
  private readonly cache = new Map<string, Promise<RewrapResult>>();

  constructor(
    inner: KekProvider,
    private readonly maxEntries = 100_000,
  ) {
    super(inner);
  }

  override rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    const key = cacheKey(dek, from, to);
    const hit = this.cache.get(key);
    if (hit) return hit;
    const p = this.inner.rewrap(dek, from, to, signal);
    this.cache.set(key, p);
    // Only successes are reused: a throttle or a transient failure must be retried for real.
    p.catch(() => this.cache.delete(key));
    if (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    return p;
  }

  override close(): void {
    this.cache.clear();
    super.close();
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
