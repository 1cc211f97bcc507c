/** Decorators that count provider and store calls into the process metrics. */
import { performance } from 'node:perf_hooks';
import { ItemError } from '../core/errors.ts';
import type { KekProvider, RewrapResult } from '../kek/kek-provider.ts';
import type { KekSelector, WrappedDek } from '../core/kek-ref.ts';
import { NotUnderSourceError } from '../kek/kek-provider.ts';
import { isBatchStore, isWritten, LandedWriteError, type BatchEnvelopeStore, type EnvelopeStore } from '../stores/envelope-store.ts';
import type { ProcessMetrics } from './process-metrics.ts';
import { ForwardingKekProvider } from '../kek/forwarding-kek-provider.ts';
import { storeKind as storeIdKind } from '../core/store-id.ts';

export class InstrumentedKekProvider extends ForwardingKekProvider {
  /* Label-bound children, made once: prom-client hashes a label object on every inc/observe, and
     this runs once per KEK call (issue 17, point 2). */
  private readonly requests = new Map<string, { inc(): void }>();
  private latency?: { observe(v: number): void };

  constructor(
    inner: KekProvider,
    private readonly m: ProcessMetrics,
    private readonly campaignKind: 'routine' | 'incident',
  ) {
    super(inner);
  }

  override async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    const t = performance.now();
    let outcome = 'ok';
    try {
      return await this.inner.rewrap(dek, from, to, signal);
    } catch (err) {
      outcome = err instanceof ItemError && err.reason === 'throttled' ? 'throttled' : err instanceof NotUnderSourceError ? 'ok' : 'error';
      throw err;
    } finally {
      this.requestsCounter(outcome).inc();
      this.latency ??= this.m.kekLatency.labels({ provider: this.inner.kind, operation: this.operation() });
      this.latency.observe((performance.now() - t) / 1000);
    }
  }

  private operation(): string {
    return this.inner.kind === 'kms' ? 'ReEncrypt' : 'rewrap';
  }

  private requestsCounter(outcome: string): { inc(): void } {
    let c = this.requests.get(outcome);
    if (!c) {
      c = this.m.kekRequests.labels({ provider: this.inner.kind, operation: this.operation(), outcome, campaign_kind: this.campaignKind });
      this.requests.set(outcome, c);
    }
    return c;
  }
}

export function storeKind(store: EnvelopeStore): string {
  return storeIdKind(store.id) ?? 'other';
}

export function instrumentStore(inner: EnvelopeStore, m: ProcessMetrics): EnvelopeStore {
  const store_kind = storeKind(inner);
  const count = (operation: string, outcome: string, n = 1) => m.storeOps.inc({ store_kind, operation, outcome }, n);
  const guard = async <T>(operation: string, fn: () => Promise<T>, n = 1): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      // A LandedWriteError is a write that landed (a follow-up of it failed): counted as one.
      count(operation, err instanceof LandedWriteError ? 'ok' : 'error', n);
      throw err;
    }
  };
  const base: EnvelopeStore = {
    id: inner.id,
    casLevel: (item, signal) => inner.casLevel(item, signal),
    ...(inner.contentDecrypts ? { contentDecrypts: inner.contentDecrypts.bind(inner) } : {}),
    read: (item, signal) => guard('read', async () => {
      const r = await inner.read(item, signal);
      count('read', 'ok');
      return r;
    }),
    writeIfUnchanged: (item, token, next, signal, fence) => guard('write', async () => {
      const r = await inner.writeIfUnchanged(item, token, next, signal, fence);
      count('write', isWritten(r) ? 'ok' : 'conflict');
      return r;
    }),
  };
  if (!isBatchStore(inner)) return base;
  const batch: BatchEnvelopeStore = {
    ...base,
    readMany: (items, signal) => guard('read', async () => {
      const r = await inner.readMany(items, signal);
      count('read', 'ok', items.length);
      return r;
    }, items.length),
    writeManyIfUnchanged: (writes, signal, fence) => guard('write', async () => {
      const r = await inner.writeManyIfUnchanged(writes, signal, fence);
      let ok = 0;
      for (const v of r.values()) if (isWritten(v)) ok++;
      if (ok) count('write', 'ok', ok);
      if (r.size - ok) count('write', 'conflict', r.size - ok);
      return r;
    }, writes.length),
  };
  const readSelected = inner.readSelected?.bind(inner);
  if (readSelected) {
    batch.readSelected = (query, signal) => guard('read', async () => {
      const r = await readSelected(query, signal);
      if (r.keys.length) count('read', 'ok', r.keys.length);
      return r;
    });
  }
  return batch;
}
