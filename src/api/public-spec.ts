/**
 * What the API shows of a campaign spec. Specs hold names and paths only by design (credentials come
 * from each process's environment), but a spec is user input stored as JSON: anything named like a
 * secret is dropped and credentials in URLs are removed, so a mistake in a spec file is not
 * republished over HTTP (invariant 5).
 */
const SECRET_NAME = /secret|password|passwd|token|credential|material|private|apikey|api_key|authorization/i;

export function publicSpec(spec: unknown): unknown {
  return scrub(spec, 0);
}

function scrub(v: unknown, depth: number): unknown {
  if (depth > 8) return '[omitted]';
  if (typeof v === 'string') return stripUrlCredentials(v);
  if (Array.isArray(v)) return v.map((x) => scrub(x, depth + 1));
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (SECRET_NAME.test(k)) continue;
    out[k] = scrub(x, depth + 1);
  }
  return out;
}

function stripUrlCredentials(s: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(s)) return s;
  try {
    const u = new URL(s);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return s.replace(/\/\/[^/]*@/, '//');
  }
}
