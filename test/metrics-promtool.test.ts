/**
 * Issue acceptance (observability) 2: `promtool check metrics` accepts the /metrics output of a
 * worker, the scheduler and the API during a running campaign; and metric labels carry no item
 * keys (invariant 6) and no key bytes (invariant 5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { insertRows } from '../dev/reference/row-client.ts';
import { startApiServer, type ApiServer } from '../src/api/server.ts';
import { loadConfig } from '../src/config.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { LeakGuard } from './support/leak-guard.ts';

const PROMTOOL = '/usr/bin/promtool';
const v1 = { id: 'm', version: '1', material: randomBytes(32) };
const v2 = { id: 'm', version: '2', material: randomBytes(32) };
let pipe: Pipeline;
let api: ApiServer;
let deks: Map<string, Buffer>;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'metrics', workers: 1, env: { REWRAP_METRICS_PORT: '0' } });
  await createEnvelopeTable(pipe.db.pool, 'metered');
  deks = await insertRows(pipe.db.pool, 'metered', 20_000, v1, 7_000_001); // ids no label value could be by chance
  const guard = new LeakGuard();
  api = await startApiServer({ pool: pipe.db.pool, config: loadConfig({}), log: guard.logger, port: 0 });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await pipe?.stop();
});

function metricsUrl(lines: string[]): string {
  const l = lines.find((x) => x.includes('metrics served'));
  if (!l) throw new Error('process did not log its metrics url');
  return (JSON.parse(l) as { url: string }).url;
}

describe('/metrics of every role during a running campaign', () => {
  it('passes promtool check metrics, with low-cardinality labels and no key bytes; once done, its item and KEK-call counts equal the ledger', async () => {
    if (!existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} is missing: install it with apt-get install -y --no-install-recommends prometheus`);
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const c = await pipe.create({
      name: 'metered',
      sources: [{ type: 'pg', table: 'metered', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
      provider: { type: 'local', keyringFile },
      from: 'm@1',
      to: 'm@2',
      options: { batchSize: 100, concurrency: 4, kmsRequestsPerSecond: 4000 },
    });
    await pipe.waitFor(c.id, 'under way', (p) => p.rewrapped > 0 && p.remaining > 0, 120_000);
    const urls = { worker: metricsUrl(pipe.workers[0]!.lines), scheduler: metricsUrl(pipe.scheduler.lines), api: `${api.url}/metrics` };
    const guard = new LeakGuard();
    guard.secret(v1.material, v2.material, ...deks.values());
    for (const [role, url] of Object.entries(urls)) {
      const text = await (await fetch(url)).text();
      expect(text, role).toMatch(new RegExp(`^rewrap_up\\{role="${role}"\\} 1$`, 'm'));
      const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`.trim(), `${role}: promtool`).toBe('');
      expect(check.status, role).toBe(0);
      // Invariant 6: no row id (item key) appears as a label value.
      const labelValues = [...text.matchAll(/="([^"]*)"/g)].map((m) => m[1]!);
      expect(labelValues.filter((v) => deks.has(v)), `${role}: item keys as labels`).toEqual([]);
      guard.text(text);
    }
    const worker = await (await fetch(urls.worker)).text();
    expect(worker).toMatch(/^rewrap_items_total\{[^}]*result="rewrapped"[^}]*\} \d+$/m);
    expect(worker).toMatch(/^rewrap_kek_request_duration_seconds_bucket\{/m);
    expect(worker).toMatch(/^rewrap_kek_requests_total\{provider="local",operation="rewrap",outcome="ok",campaign_kind="routine"\} [1-9]\d*$/m);
    const apiText = await (await fetch(urls.api)).text();
    expect(apiText).toMatch(new RegExp(`^rewrap_campaign_items_remaining\\{campaign="${c.id}"`, 'm'));
    expect(guard.findLeaks()).toEqual([]);

    /* Counted once per (result, reason) per batch, and KEK calls through label-bound children
       (issue 17, point 2): the totals must still reconcile with the ledger, item for item. */
    const done = await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 180_000);
    expect(done.rewrapped).toBe(20_000);
    const after = await (await fetch(urls.worker)).text();
    const sum = (re: RegExp) => [...after.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
    expect(sum(/^rewrap_items_total\{[^}]*result="rewrapped"[^}]*\} (\d+)$/gm)).toBe(done.rewrapped);
    expect(sum(/^rewrap_kek_requests_total\{[^}]*outcome="ok"[^}]*\} (\d+)$/gm)).toBe(done.rewrapped);
    expect(sum(/^rewrap_kek_request_duration_seconds_count\{[^}]*\} (\d+)$/gm)).toBe(done.rewrapped);
  });
});
