import { isTransient, type PermanentReason, type TransientReason } from './reasons.ts';

/**
 * An item-level failure with a reason code. Transient reasons are retried with backoff;
 * permanent ones are recorded in the ledger and the item is left untouched.
 * Invariant 5: messages never carry key bytes, only names, ids and lengths.
 */
export class ItemError extends Error {
  readonly reason: PermanentReason | TransientReason;
  /** Decided by the reason code alone (TRANSIENT_REASONS), never set beside it; kept for logs. */
  readonly transient: boolean;
  constructor(reason: PermanentReason | TransientReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ItemError';
    this.reason = reason;
    this.transient = isTransient(reason);
  }
}

export function permanent(reason: PermanentReason, message: string, cause?: unknown): ItemError {
  return new ItemError(reason, message, cause === undefined ? undefined : { cause });
}

export function transient(reason: TransientReason, message: string, cause?: unknown): ItemError {
  return new ItemError(reason, message, cause === undefined ? undefined : { cause });
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

/**
 * Thrown by a store's WriteFence (invariant 8): the request was not sent. Stores never wrap or
 * swallow it. Here, at the bottom, because the KEK providers' dedupe must tell it apart as well.
 */
export class WriteFencedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WriteFencedError';
  }
}
