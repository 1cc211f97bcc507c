/**
 * Fault injection and request statistics of the local KMS: a throttle ratio, a token-bucket
 * requests-per-second limit, added latency, an outage window and per-key access denial.
 * Settable at start and at run time (in process, or from another process over
 * `POST /__admin/faults`).
 */
import { KmsError } from './protocol.ts';

export interface FaultOptions {
  /** Fraction (0..1) of requests answered ThrottlingException at random. Default 0. */
  throttleRatio?: number;
  /** Requests per second above which requests are throttled (token bucket). Default: no limit. */
  rpsLimit?: number;
  /** Bucket size for rpsLimit: how many requests may arrive at once. Default: rpsLimit (1 s worth). */
  burst?: number;
  /** Added to every KMS request before it is answered. Default 0. */
  latencyMs?: number;
  /** Every KMS request fails until this time (epoch ms). */
  outageUntilMs?: number;
  /** Shorthand for outageUntilMs = now + outageForMs; converted when the faults are set. */
  outageForMs?: number;
  /** Status of outage answers: 500 KMSInternalException (default) or 503 ServiceUnavailableException. */
  outageStatus?: 500 | 503;
  /** Key ids (uuid) whose use is refused with AccessDeniedException, as a key policy would. */
  deniedKeyIds?: string[];
}

export interface KmsStats {
  /** KMS requests received (admin requests not counted), including refused ones. */
  requestsTotal: number;
  /** Requests per operation name, e.g. { ReEncrypt: 10 }. */
  requests: Record<string, number>;
  /** Requests answered ThrottlingException (by ratio or by the rps limit). */
  throttled: number;
  throttledByOp: Record<string, number>;
  /** Requests failed because of an outage window. */
  outageFailures: number;
  /** Error answers by error type (throttling and outages included). */
  errors: Record<string, number>;
  startedAt: string;
}

const FAULT_FIELDS = ['throttleRatio', 'rpsLimit', 'burst', 'latencyMs', 'outageUntilMs', 'outageForMs', 'outageStatus', 'deniedKeyIds'] as const;

/** Validates fault options from any source; messages name the field and what was expected. */
export function validateFaults(input: unknown): FaultOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new Error('faults must be a JSON object');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(FAULT_FIELDS as readonly string[]).includes(k)) throw new Error(`unknown fault option ${JSON.stringify(k)}; expected one of ${FAULT_FIELDS.join(', ')}`);
  }
  const num = (field: string, min: number, max = Infinity): number | undefined => {
    const v = o[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new Error(`fault option ${field} must be a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const out: FaultOptions = {
    throttleRatio: num('throttleRatio', 0, 1),
    rpsLimit: num('rpsLimit', Number.MIN_VALUE),
    burst: num('burst', 1),
    latencyMs: num('latencyMs', 0, 600_000),
    outageUntilMs: num('outageUntilMs', 0),
    outageForMs: num('outageForMs', 0),
  };
  if (o.outageStatus !== undefined && o.outageStatus !== 500 && o.outageStatus !== 503) {
    throw new Error(`fault option outageStatus must be 500 or 503, got ${JSON.stringify(o.outageStatus)}`);
  }
  out.outageStatus = o.outageStatus as 500 | 503 | undefined;
  if (o.deniedKeyIds !== undefined && (!Array.isArray(o.deniedKeyIds) || o.deniedKeyIds.some((x) => typeof x !== 'string'))) {
    throw new Error('fault option deniedKeyIds must be an array of key ids (strings)');
  }
  out.deniedKeyIds = o.deniedKeyIds as string[] | undefined;
  for (const k of FAULT_FIELDS) if (out[k] === undefined) delete out[k];
  return out;
}

export class FaultController {
  #faults: FaultOptions = {};
  #tokens = 0;
  #lastRefillMs = 0;
  #stats: KmsStats = emptyStats();

  constructor(faults: FaultOptions = {}) {
    this.set(faults);
  }

  /** Replaces all faults (an empty object clears them). */
  set(input: FaultOptions): void {
    const f = validateFaults(input);
    if (f.outageForMs !== undefined) {
      f.outageUntilMs = Date.now() + f.outageForMs;
      delete f.outageForMs;
    }
    this.#faults = f;
    this.#tokens = this.#capacity();
    this.#lastRefillMs = performance.now();
  }

  get(): FaultOptions {
    return { ...this.#faults };
  }

  isDenied(keyId: string): boolean {
    return this.#faults.deniedKeyIds?.includes(keyId) ?? false;
  }

  get latencyMs(): number {
    return this.#faults.latencyMs ?? 0;
  }

  stats(): KmsStats {
    return structuredClone(this.#stats);
  }

  resetStats(): void {
    this.#stats = emptyStats();
  }

  /** Counts a KMS request and returns the fault to answer with, if any. */
  admit(op: string): KmsError | undefined {
    const s = this.#stats;
    s.requestsTotal++;
    s.requests[op] = (s.requests[op] ?? 0) + 1;
    const f = this.#faults;
    if (f.outageUntilMs !== undefined && Date.now() < f.outageUntilMs) {
      s.outageFailures++;
      return f.outageStatus === 503
        ? new KmsError('ServiceUnavailableException', 'Service unavailable (injected outage)', 503)
        : new KmsError('KMSInternalException', 'Internal error (injected outage)', 500);
    }
    if (this.#overRate() || (f.throttleRatio !== undefined && Math.random() < f.throttleRatio)) {
      s.throttled++;
      s.throttledByOp[op] = (s.throttledByOp[op] ?? 0) + 1;
      return new KmsError('ThrottlingException', 'Rate exceeded');
    }
    return undefined;
  }

  /** Records an error answer by type (faults and operation errors alike). */
  countError(type: string): void {
    this.#stats.errors[type] = (this.#stats.errors[type] ?? 0) + 1;
  }

  #capacity(): number {
    const f = this.#faults;
    return f.rpsLimit === undefined ? 0 : Math.max(1, f.burst ?? f.rpsLimit);
  }

  #overRate(): boolean {
    const rps = this.#faults.rpsLimit;
    if (rps === undefined) return false;
    const now = performance.now();
    this.#tokens = Math.min(this.#capacity(), this.#tokens + ((now - this.#lastRefillMs) / 1000) * rps);
    this.#lastRefillMs = now;
    if (this.#tokens < 1) return true;
    this.#tokens -= 1;
    return false;
  }
}

function emptyStats(): KmsStats {
  return { requestsTotal: 0, requests: {}, throttled: 0, throttledByOp: {}, outageFailures: 0, errors: {}, startedAt: new Date().toISOString() };
}
