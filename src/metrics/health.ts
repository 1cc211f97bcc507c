/**
 * `/healthz` and `/readyz`, served by every long-running process (worker and scheduler on their
 * metrics server, `rewrap api` on its own port) for container HEALTHCHECKs and Kubernetes probes.
 *
 * - `/healthz` (liveness): the process answers. It checks no dependency on purpose: a Postgres or
 *   Redis outage must not get every pod restarted (each process rides out a database restart on
 *   its own; README "How it works").
 * - `/readyz` (readiness): the ledger answers, its migrations are the ones this build knows (all
 *   applied, none unknown), and Redis answers where the process uses it. 503 otherwise.
 *
 * The answers name each check and a short reason (an error code, never an error's text: these
 * routes need no token and skip the API's Host check, since probes come with the pod's address as
 * Host).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import type { Redis } from 'ioredis';
import { loadMigrations } from '../ledger/migrate.ts';

export const HEALTH_PATHS = { live: '/healthz', ready: '/readyz' } as const;

export interface ReadinessCheck {
  name: string;
  /** Resolves when healthy; rejects (or exceeds the timeout) when not. */
  run(): Promise<void>;
}

export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

/** Each check gets this long; a probe's own timeout should be longer (deploy/kubernetes uses 5 s). */
export const CHECK_TIMEOUT_MS = 2000;

class CheckFailed extends Error {}

let knownMigrations: Promise<number[]> | undefined;

/** The ledger answers and holds exactly the migrations this build ships. */
export function ledgerCheck(pool: pg.Pool): ReadinessCheck {
  return {
    name: 'ledger',
    async run() {
      knownMigrations ??= loadMigrations().then((ms) => ms.map((m) => m.id));
      const known = await knownMigrations;
      let applied: number[];
      try {
        applied = (await pool.query<{ id: number }>('SELECT id FROM rewrap_migrations')).rows.map((r) => r.id);
      } catch (err) {
        if ((err as { code?: string }).code === '42P01') throw new CheckFailed('migrations not applied');
        throw err;
      }
      const missing = known.filter((id) => !applied.includes(id));
      const unknown = applied.filter((id) => !known.includes(id));
      if (missing.length) throw new CheckFailed(`migrations pending: ${missing.join(', ')}`);
      if (unknown.length) throw new CheckFailed(`ledger has migrations this build does not know: ${unknown.join(', ')}`);
    },
  };
}

export function redisCheck(redis: Redis): ReadinessCheck {
  return {
    name: 'redis',
    async run() {
      await redis.ping();
    },
  };
}

function reason(err: unknown): string {
  if (err instanceof CheckFailed) return err.message;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,40}$/i.test(code) ? `error ${code}` : 'error';
}

export async function readiness(checks: ReadinessCheck[], timeoutMs = CHECK_TIMEOUT_MS): Promise<Readiness> {
  const results = await Promise.all(
    checks.map(async (c) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CheckFailed(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([c.run(), timeout]);
        return [c.name, 'ok'] as const;
      } catch (err) {
        return [c.name, reason(err)] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ready: results.every(([, r]) => r === 'ok'), checks: Object.fromEntries(results) };
}

/** Answers /healthz and /readyz; returns false for any other path (the caller routes it). */
export function serveHealth(req: IncomingMessage, res: ServerResponse, role: string, checks: ReadinessCheck[]): boolean {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== HEALTH_PATHS.live && path !== HEALTH_PATHS.ready) return false;
  const headers = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, allow: 'GET, HEAD' }).end('{"error":"GET only"}\n');
    return true;
  }
  if (path === HEALTH_PATHS.live) {
    res.writeHead(200, headers).end(`${JSON.stringify({ status: 'ok', role })}\n`);
    return true;
  }
  readiness(checks).then(
    (r) => res.writeHead(r.ready ? 200 : 503, headers).end(`${JSON.stringify({ status: r.ready ? 'ready' : 'not ready', role, checks: r.checks })}\n`),
    () => res.writeHead(503, headers).end('{"status":"not ready"}\n'),
  );
  return true;
}
