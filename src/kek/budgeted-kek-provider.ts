/** Puts a provider behind the shared KMS budget: one token per call, throttles slow everyone. */
import { ItemError } from '../errors.ts';
import type { KmsBudget } from '../queue/kms-budget.ts';
import type { KekProvider, KekSelector, RewrapResult, WrappedDek } from './kek-provider.ts';
import { ForwardingKekProvider } from './forwarding-kek-provider.ts';

export class BudgetedKekProvider extends ForwardingKekProvider {
  constructor(
    inner: KekProvider,
    private readonly budget: KmsBudget,
  ) {
    super(inner);
  }

  override async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    await this.budget.take(signal);
    try {
      return await this.inner.rewrap(dek, from, to, signal);
    } catch (err) {
      if (err instanceof ItemError && err.reason === 'throttled') await this.budget.throttled();
      throw err;
    }
  }
}
