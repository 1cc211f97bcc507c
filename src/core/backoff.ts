/** Full jitter: a random wait up to min * 2^(n-1), capped at max, so many processes do not retry in step. */
export function backoffMs(failures: number, minMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(failures - 1, 20));
  return Math.max(minMs, Math.round(Math.random() * cap));
}
