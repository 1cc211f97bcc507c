/**
 * Structured JSON logs (pino). Invariant 5, by construction: any Buffer or typed array that
 * reaches a log call is replaced by its length, and fields named like key material are censored,
 * so key bytes cannot be logged even by mistake.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

const SECRET_FIELDS = ['material', 'plaintext', 'dek', 'kek', 'wrapped', 'token', 'authorization', 'password', 'secretAccessKey'];

export function createLogger(opts: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'rewrap',
      level: opts.level ?? 'info',
      redact: { paths: SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]), censor: '[redacted]' },
      formatters: { log: (o) => scrubBytes(o, 0) as Record<string, unknown> },
      serializers: { err: serializeError },
    },
    opts.destination,
  );
}

function scrubBytes(v: unknown, depth: number): unknown {
  if (v instanceof Uint8Array) return `[${v.length} bytes]`;
  if (depth > 4 || typeof v !== 'object' || v === null) return v;
  if (v instanceof Error) return serializeError(v);
  if (Array.isArray(v)) return v.map((x) => scrubBytes(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = scrubBytes(x, depth + 1);
  return out;
}

/** Errors as type, message and cause chain; no enumerable extras (SDK errors carry request data). */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) {
    // Some libraries emit plain objects as errors; keep their shape, with bytes scrubbed.
    return typeof err === 'object' && err !== null ? { message: JSON.stringify(scrubBytes(err, 1)) } : { message: String(err) };
  }
  const out: Record<string, unknown> = { type: err.name, message: err.message };
  const code = (err as { reason?: unknown; Code?: unknown }).reason ?? (err as { Code?: unknown }).Code;
  if (typeof code === 'string') out.code = code;
  if (err.cause !== undefined) out.cause = serializeError(err.cause);
  return out;
}
