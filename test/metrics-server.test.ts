/**
 * Issue 15: the /metrics server of workers and the scheduler binds loopback unless the operator
 * says otherwise (REWRAP_METRICS_HOST): checked by dialling this machine's own non-loopback address.
 */
import { expect, it } from 'vitest';
import { networkInterfaces } from 'node:os';
import { Registry } from 'prom-client';
import { serveMetrics } from '../src/metrics/metrics-server.ts';
import { loadConfig } from '../src/config.ts';

const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

async function reachable(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(3000) })).status === 200;
  } catch {
    return false;
  }
}

it('binds 127.0.0.1 by default: not reachable on the host\'s other addresses; REWRAP_METRICS_HOST widens it (issue 15)', async () => {
  if (!external) throw new Error('this test needs a non-loopback IPv4 address on the machine');
  expect(loadConfig({}).metricsHost).toBe('127.0.0.1');
  expect(loadConfig({ REWRAP_METRICS_HOST: '0.0.0.0' }).metricsHost).toBe('0.0.0.0');
  const registry = new Registry();
  const dflt = await serveMetrics(registry, 0);
  try {
    const port = new URL(dflt.url).port;
    expect(await reachable(dflt.url)).toBe(true);
    expect(await reachable(`http://${external}:${port}/metrics`)).toBe(false);
  } finally {
    await dflt.close();
  }
  const wide = await serveMetrics(registry, 0, loadConfig({ REWRAP_METRICS_HOST: '0.0.0.0' }).metricsHost);
  try {
    expect(await reachable(`http://${external}:${new URL(wide.url).port}/metrics`)).toBe(true);
  } finally {
    await wide.close();
  }
});
