/**
 * Serves a registry at /metrics on its own port (workers and the scheduler), with /healthz and
 * /readyz beside it (src/metrics/health.ts); loopback unless REWRAP_METRICS_HOST says otherwise
 * (in a container, set 0.0.0.0 so that probes and Prometheus reach it).
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { serveHealth, type ReadinessCheck } from './health.ts';

export interface HealthOptions {
  role: string;
  checks: ReadinessCheck[];
}

export async function serveMetrics(registry: Registry, port: number, host = '127.0.0.1', health?: HealthOptions): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (health && serveHealth(req, res, health.role, health.checks)) return;
    if (req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end(health ? 'see /metrics, /healthz, /readyz\n' : 'see /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(`metrics failed: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${actual}/metrics`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
