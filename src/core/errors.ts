import type { PermanentReason, TransientReason } from './reasons.ts';

/**
 * An item-level failure with a reason code. `transient` failures are retried with backoff;
 * permanent ones are recorded in the ledger and the item is left untouched.
 * Invariant 5: messages never carry key bytes, only names, ids and lengths.
 */
export class ItemError extends Error {
  readonly reason: PermanentReason | TransientReason;
  readonly transient: boolean;
  constructor(reason: PermanentReason | TransientReason, message: string, transient: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ItemError';
    this.reason = reason;
    this.transient = transient;
  }
}

export function permanent(reason: PermanentReason, message: string, cause?: unknown): ItemError {
  return new ItemError(reason, message, false, cause === undefined ? undefined : { cause });
}

export function transient(reason: TransientReason, message: string, cause?: unknown): ItemError {
  return new ItemError(reason, message, true, cause === undefined ? undefined : { cause });
}

/** Bad configuration or input, found at the edge: the message tells the user what to fix. */
export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}
