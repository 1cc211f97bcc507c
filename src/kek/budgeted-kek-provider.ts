/** Puts a provider behind the shared KMS budget: one token per call, throttles slow everyone. */
import { ItemError } from '../errors.ts';
import type { KmsBudget } from '../queue/kms-budget.ts';
import type { KekProvider, KekSelector, RewrapResult, WrappedDek } from './kek-provider.ts';

export class BudgetedKekProvider implements KekProvider {
  constructor(
    private readonly inner: KekProvider,
    private readonly budget: KmsBudget,
  ) {}

  get kind(): KekProvider['kind'] {
    return this.inner.kind;
  }

  identify(dek: WrappedDek) {
    return this.inner.identify(dek);
  }

  withUnwrapped<T>(dek: WrappedDek, kek: KekSelector, fn: (plaintextDek: Buffer) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.inner.withUnwrapped(dek, kek, fn, signal);
  }

  close(): void {
    (this.inner as { close?: () => void }).close?.();
  }

  async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    await this.budget.take(signal);
    try {
      return await this.inner.rewrap(dek, from, to, signal);
    } catch (err) {
      if (err instanceof ItemError && err.reason === 'throttled') await this.budget.throttled();
      throw err;
    }
  }
}
