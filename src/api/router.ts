/** A tiny method + path router: `/api/campaigns/:id` patterns, matched in order. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
}

export interface Route {
  method: 'GET' | 'POST';
  /** Segments; `:name` captures one segment (URL-decoded). */
  path: string;
  /** Shown in logs and metrics instead of the concrete path (no ids: low cardinality). */
  name: string;
  /** Needs the write token. */
  mutating?: boolean;
  /** Served without a token (the dashboard's own files, /metrics); every other route needs the read token. */
  public?: boolean;
  handle(ctx: RouteContext): Promise<void>;
}

export type RouteMatch = { route: Route; params: Record<string, string> } | { allowed: string[] } | undefined;

export function matchRoute(routes: Route[], method: string, pathname: string): RouteMatch {
  const parts = pathname.split('/').filter(Boolean);
  const allowed: string[] = [];
  for (const route of routes) {
    const params = matchPath(route.path, parts);
    if (!params) continue;
    if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
    allowed.push(route.method);
  }
  return allowed.length ? { allowed } : undefined;
}

function matchPath(pattern: string, parts: string[]): Record<string, string> | undefined {
  const want = pattern.split('/').filter(Boolean);
  if (want.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (w.startsWith(':')) {
      try {
        params[w.slice(1)] = decodeURIComponent(parts[i]!);
      } catch {
        return undefined;
      }
    } else if (w !== parts[i]) return undefined;
  }
  return params;
}
