/**
 * `rewrap api`: the read-mostly HTTP server. JSON API over the ledger, the live dashboard, and
 * /metrics (this process's metrics plus the backlog gauges, exported once per deployment here,
 * never per worker). Mutating calls need `Authorization: Bearer <REWRAP_API_TOKEN>`, reads the read
 * or the write token (unless --public-reads); every request must name an allowed Host (auth.ts,
 * host-check.ts). Campaigns created here are held to the operator's policy (spec-policy.ts).
 * Invariant 5: request logs carry method, route name, status and duration only: never headers
 * (the token), never bodies. A 500 answers a request id only; the error goes to the log.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { Counter, Histogram } from 'prom-client';
import type { ProcessConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { ProcessMetrics } from '../metrics/process-metrics.ts';
import { registerBacklogMetrics } from '../metrics/backlog-metrics.ts';
import { CampaignNotFoundError } from '../ledger/index.ts';
import { randomUUID } from 'node:crypto';
import { bearerTokenCheck, readTokenCheck } from './auth.ts';
import { hostCheck } from './host-check.ts';
import { loadSpecPolicy, type SpecPolicy } from './spec-policy.ts';
import { HttpError, sendJson } from './http-io.ts';
import { matchRoute, type Route } from './router.ts';
import { readRoutes } from './read-routes.ts';
import { writeRoutes } from './write-routes.ts';
import { staticRoutes } from './static-routes.ts';
import { ledgerCheck, serveHealth } from '../metrics/health.ts';


export interface ApiServerOptions {
  /** The ledger pool, created once by the caller (and closed by it). */
  pool: pg.Pool;
  config: ProcessConfig;
  log: Logger;
  /** 0 picks a free port. */
  port: number;
  /** Default 127.0.0.1: expose it deliberately. */
  host?: string;
  /** Required for mutating calls; default config.apiToken. Unset: every mutation is refused (403). */
  token?: string;
  /** Accepted for reads beside `token`; default config.apiReadToken. */
  readToken?: string;
  /** Serve reads without a token (`--public-reads`: a dashboard on a trusted network). Default false. */
  publicReads?: boolean;
  /** Host names served beside the bound address and localhost; default config.apiAllowedHosts. */
  allowedHosts?: string[];
  /** What API-created campaigns may name; default: loaded from config.apiPolicyFile. None: creation is refused (403). */
  policy?: SpecPolicy;
}

export interface ApiServer {
  /** e.g. http://127.0.0.1:4600 (no trailing slash). */
  url: string;
  /** Stops accepting connections, ends open ones within `timeoutMs`; idempotent. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const host = opts.host ?? '127.0.0.1';
  const log = opts.log.child({ component: 'api' });
  const checkToken = bearerTokenCheck(opts.token ?? opts.config.apiToken);
  const checkRead = readTokenCheck({ readToken: opts.readToken ?? opts.config.apiReadToken, writeToken: opts.token ?? opts.config.apiToken, publicReads: opts.publicReads ?? false });
  const checkHost = hostCheck(host, opts.allowedHosts ?? opts.config.apiAllowedHosts);
  const policy = opts.policy ?? (opts.config.apiPolicyFile ? loadSpecPolicy(opts.config.apiPolicyFile) : undefined);
  const metrics = new ProcessMetrics('api');
  registerBacklogMetrics(metrics.registry, opts.pool);
  const requests = new Counter({ name: 'rewrap_api_requests_total', help: 'API requests by route name and status code.', labelNames: ['route', 'status'], registers: [metrics.registry] });
  const latency = new Histogram({
    name: 'rewrap_api_request_duration_seconds',
    help: 'API request latency by route name.',
    labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [metrics.registry],
  });

  const metricsRoute: Route = {
    method: 'GET',
    path: '/metrics',
    name: 'metrics',
    public: true,
    async handle({ res }) {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' }).end(text);
    },
  };
  const routes = [...readRoutes(opts.pool), ...writeRoutes(opts.pool, policy, opts.config.ledgerForm), ...staticRoutes(), metricsRoute];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<string> {
    checkHost(req);
    const url = requestUrl(req);
    if (!url) throw new HttpError(400, `request path ${JSON.stringify(req.url)} is not a URL path: expected /api/... or /`);
    const m = matchRoute(routes, req.method ?? 'GET', url.pathname);
    if (!m) throw new HttpError(404, `no such endpoint: ${req.method} ${url.pathname}`);
    if (!('route' in m)) {
      res.setHeader('allow', m.allowed.join(', '));
      throw new HttpError(405, `${req.method} ${url.pathname}: expected ${m.allowed.join(' or ')}`);
    }
    if (m.route.mutating) checkToken(req);
    else if (!m.route.public) checkRead(req);
    await m.route.handle({ req, res, url, params: m.params });
    return m.route.name;
  }

  const health = [ledgerCheck(opts.pool)];
  const server = createServer((req, res) => {
    // Probes (kubelet, a container HEALTHCHECK) send the pod's address as Host: no Host check, no token, no request metrics.
    if (serveHealth(req, res, 'api', health)) return;
    const t0 = performance.now();
    let route = 'unmatched';
    handle(req, res)
      .then((name) => {
        route = name;
      })
      .catch((err: unknown) => {
        route = routeName(routes, req) ?? route;
        const status = err instanceof HttpError ? err.status : err instanceof CampaignNotFoundError ? 404 : 500;
        // A 500's message may be a database's or a library's own words: it goes to the log, the client gets an id to quote.
        const requestId = randomUUID();
        if (status === 500) log.error({ err, requestId, method: req.method, route }, 'api request failed');
        if (status === 401) res.setHeader('www-authenticate', 'Bearer');
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (status === 500) {
          res.setHeader('x-request-id', requestId);
          sendJson(res, 500, { error: `internal error; the API log has the details under requestId ${requestId}`, requestId });
          return;
        }
        sendJson(res, status, { error: (err as Error).message, ...(err instanceof HttpError ? err.extra : {}) });
      })
      .finally(() => {
        const seconds = (performance.now() - t0) / 1000;
        requests.inc({ route, status: String(res.statusCode) });
        latency.observe({ route }, seconds);
        log.debug({ method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1000) }, 'api request');
      })
      /* Nothing above may end the process: a throw in the handlers is one broken request. */
      .catch((err: unknown) => {
        log.error({ err, method: req.method }, 'api request handling failed');
        res.destroy();
      });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  /*
   * Idle keep-alive connections stay open longer than clients and load balancers keep theirs
   * (Node's 5 s default closes them while a client may be sending its next request on one:
   * ECONNRESET, seen from a dashboard test under load).
   */
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}`;
  log.info(
    {
      url,
      mutations: opts.token ?? opts.config.apiToken ? 'token required' : 'disabled (no REWRAP_API_TOKEN)',
      reads: opts.publicReads ? 'public (--public-reads)' : 'token required',
      campaignCreation: policy ? 'limited by REWRAP_API_POLICY' : 'disabled (no REWRAP_API_POLICY)',
    },
    'api listening',
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    close(timeoutMs = 5000) {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** The route name of a request that failed before its route was known (for logs and metrics). */
function routeName(routes: Route[], req: IncomingMessage): string | undefined {
  const url = requestUrl(req);
  const m = url && matchRoute(routes, req.method ?? 'GET', url.pathname);
  return m && 'route' in m ? m.route.name : undefined;
}

/**
 * The request's URL: an origin-form path (`/api/...`), or an absolute-form target
 * (`http://host/api/...`, which HTTP/1.1 servers must accept; the Host header is what checkHost
 * judges). Undefined when the target is neither (`//`, `/\`, `//a:b` would parse as a host; `*`).
 */
function requestUrl(req: IncomingMessage): URL | undefined {
  const target = req.url ?? '/';
  const absolute = /^https?:\/\//i.test(target);
  if (!absolute && (!target.startsWith('/') || target.startsWith('//') || target.startsWith('/\\'))) return undefined;
  try {
    return absolute ? new URL(target) : new URL(target, 'http://api.invalid');
  } catch {
    return undefined;
  }
}
