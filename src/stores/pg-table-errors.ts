/**
 * Sorts Postgres failures into "retry later" (a transient ItemError 'store-unavailable') and
 * everything else (a plain Error: a permission, schema or data problem that retrying won't fix).
 */
import { transient } from '../core/errors.ts';

/** Socket-level failures of the connection to the server. */
const NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'EAI_AGAIN']);

/** SQLSTATEs worth retrying: https://www.postgresql.org/docs/current/errcodes-appendix.html */
const SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout)
  '57014', // query_canceled (statement_timeout)
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);
const SQLSTATE_CLASSES = ['08', '53']; // connection_exception, insufficient_resources

/** node-postgres reports these without a code; matched on its fixed message text. */
const DRIVER_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Client has encountered a connection error',
  'timeout expired',
];

export function isTransientPgError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if (err instanceof AggregateError && err.errors.some(isTransientPgError)) return true;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (NODE_CODES.has(code) || SQLSTATES.has(code)) return true;
    if (code.length === 5 && SQLSTATE_CLASSES.includes(code.slice(0, 2))) return true;
  }
  return typeof message === 'string' && DRIVER_MESSAGES.some((m) => message.startsWith(m));
}

/** The error to throw for a failed statement; `what` says which one and for how many items. */
export function storeFailure(storeId: string, what: string, err: unknown): Error {
  if (isTransientPgError(err)) return transient('store-unavailable', `${storeId}: ${what} failed; the database is unavailable or busy, retry later`, err);
  return new Error(`${storeId}: ${what} failed`, { cause: err });
}
