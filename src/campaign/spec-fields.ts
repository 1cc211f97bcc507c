/**
 * Strict checks shared by campaign and schedule specs (issue 13 point 7): unknown fields are
 * refused with their path and the nearest known name, numbers must be integers where a count is
 * meant and stay within bounds that the pipeline can honour.
 */
import { ConfigError } from '../core/errors.ts';

/** ConfigError naming the first field of `obj` not in `known`, e.g. "options.batchsize: unknown field; did you mean batchSize?". */
export function rejectUnknownFields(obj: object, known: readonly string[], at: string): void {
  for (const k of Object.keys(obj)) {
    if (known.includes(k)) continue;
    const near = nearest(k, known);
    throw new ConfigError(`${at}.${k}: unknown field; ${near ? `did you mean ${near}?` : `known: ${known.join(', ')}`}`);
  }
}

function nearest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = k.toLowerCase() === lower ? 0 : distance(lower, k.toLowerCase());
    if (!best || d < best.d) best = { k, d };
  }
  return best && best.d <= Math.max(2, Math.floor(name.length / 4)) ? best.k : undefined;
}

/** Levenshtein distance (names are short). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

export interface NumberRule {
  integer?: boolean;
  min: number;
  max: number;
  /** What the value means, for the message, e.g. "items per batch". */
  what: string;
}

export function checkNumber(v: unknown, rule: NumberRule, at: string): number {
  const kind = rule.integer ? 'an integer' : 'a number';
  if (typeof v !== 'number' || !Number.isFinite(v) || (rule.integer && !Number.isInteger(v)) || v < rule.min || v > rule.max) {
    throw new ConfigError(`${at}: expected ${kind} from ${rule.min} to ${rule.max} (${rule.what}), got ${typeof v === 'number' ? v : typeof v}`);
  }
  return v;
}
