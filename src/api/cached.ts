/** A value recomputed at most once per `ttlMs`; concurrent callers share one computation. */
export function cached<T>(ttlMs: number, compute: () => Promise<T>): () => Promise<T> {
  let at = -Infinity;
  let value: Promise<T> | undefined;
  return () => {
    if (value && performance.now() - at < ttlMs) return value;
    at = performance.now();
    const p = compute();
    value = p;
    // A failure is not cached: the next caller tries again.
    p.catch(() => {
      if (value === p) value = undefined;
    });
    return p;
  };
}
