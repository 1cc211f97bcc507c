/** Puts a provider behind the shared KMS budget: one token per call, throttles slow everyone. */
import { ItemError } from '../core/errors.ts';
import type { KekProvider, RewrapResult } from './kek-provider.ts';
import type { KekSelector, WrappedDek } from '../core/kek-ref.ts';
import { ForwardingKekProvider } from './forwarding-kek-provider.ts';

/** The budget as this provider uses it (the shared one is queue/kms-budget.ts, in Redis). */
export interface RequestBudget {
  /** Waits for one request token. */
  take(signal?: AbortSignal): Promise<void>;
  /** The provider throttled a request: slow every process down. */
  throttled(): Promise<void>;
}

export class BudgetedKekProvider extends ForwardingKekProvider {
  constructor(
    inner: KekProvider,
    private readonly budget: RequestBudget,
  ) {
    super(inner);
  }

  override async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    await this.budget.take(signal);
    try {
      return await this.inner.rewrap(dek, from, to, signal);
    } catch (err) {
      /* The item's own error is what counts (transient: retried); telling the budget is best effort. */
      if (err instanceof ItemError && err.reason === 'throttled') await this.budget.throttled().catch(() => undefined);
      throw err;
    }
  }
}
