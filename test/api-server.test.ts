/**
 * The API server against a real ledger (a fresh schema for this file) over real HTTP: read-only
 * JSON endpoints, mutating ones behind the bearer token, /metrics accepted by promtool, and the
 * token never reaching a log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { campaignProgress, getCampaign, migrate, type ItemOutcomeRecord } from '../src/ledger/index.ts';
import type { LedgerForm } from '../src/ledger/types.ts';
import { startApiServer, type ApiServer } from '../src/api/server.ts';
import { eventually } from './support/eventually.ts';
import { planKeys, workBatch } from './support/ledger-worker.ts';

const TOKEN = randomBytes(24).toString('hex');
const READ_TOKEN = randomBytes(24).toString('hex');
/** What this file's API-created campaigns may name (REWRAP_API_POLICY). */
const POLICY = {
  keyringFiles: ['/etc/rewrap/keyring.json'],
  kmsEndpoints: ['http://AKIDEXAMPLE:s3cr3t-in-url@127.0.0.1:4599'],
  keys: ['*'],
  tables: ['*'],
  buckets: ['*'],
};
let policyDir: string;
const PROMTOOL = '/usr/bin/promtool';
let db: TestSchema;
let api: ApiServer;
const logLines: string[] = [];

beforeAll(async () => {
  db = await freshSchema('api');
  await migrate(db.pool);
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  policyDir = mkdtempSync(join(tmpdir(), 'rewrap-api-policy-'));
  writeFileSync(join(policyDir, 'policy.json'), JSON.stringify(POLICY));
  // Tokens and policy come from the environment through loadConfig, as in `rewrap api`.
  const config = loadConfig({ DATABASE_URL: db.url, REWRAP_API_TOKEN: TOKEN, REWRAP_API_READ_TOKEN: READ_TOKEN, REWRAP_API_POLICY: join(policyDir, 'policy.json') });
  api = await startApiServer({ pool: db.pool, config, log: createLogger({ level: 'trace', destination: sink }), port: 0 });
});

afterAll(async () => {
  await api?.close();
  await db?.drop();
  if (policyDir) rmSync(policyDir, { recursive: true, force: true });
});

let tableSeq = 0;
/** A valid spec over a table no other test of this file uses (so scopes never overlap by accident). */
function spec(overrides: Record<string, unknown> = {}, table = `public.api_rows_${++tableSeq}`): Record<string, unknown> {
  return {
    name: `rows ${table}`,
    sources: [{ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
    provider: { type: 'local', keyringFile: '/etc/rewrap/keyring.json' },
    from: 'orders@1',
    to: 'orders@2',
    options: { batchSize: 4 },
    ...overrides,
  };
}

/** `base`: another server of this file (default: `api`). */
async function call(method: string, path: string, o: { token?: string | null; body?: unknown; raw?: string; base?: string } = {}) {
  const headers: Record<string, string> = {};
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (o.raw !== undefined || o.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = o.raw ?? JSON.stringify(o.body);
  }
  const res = await fetch((o.base ?? api.url) + path, { method, headers, body });
  const text = await res.text();
  const json = res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined;
  return { status: res.status, headers: res.headers, text, json };
}

async function createCampaign(s: Record<string, unknown>, query = '', base?: string): Promise<string> {
  const r = await call('POST', `/api/campaigns${query}`, { body: s, base });
  expect(r.status, r.text).toBe(201);
  return r.json.id as string;
}

describe('mutating calls need the bearer token', () => {
  it('without the token: 401 and nothing is created', async () => {
    const r = await call('POST', '/api/campaigns', { token: null, body: spec() });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer');
    expect(r.json.error).toMatch(/Authorization: Bearer/);
    expect((await call('GET', '/api/campaigns', { token: READ_TOKEN })).json.campaigns).toEqual([]);
  });

  it('with a wrong token (same length, shorter, or not Bearer): 401 and nothing changes', async () => {
    const id = await createCampaign(spec());
    const wrong = [TOKEN.slice(0, -1) + (TOKEN.endsWith('0') ? '1' : '0'), TOKEN.slice(0, 10), `${TOKEN}x`];
    for (const token of wrong) {
      expect((await call('POST', '/api/campaigns', { token, body: spec() })).status).toBe(401);
      expect((await call('POST', `/api/campaigns/${id}/start`, { token })).status).toBe(401);
    }
    const basic = await fetch(`${api.url}/api/campaigns/${id}/cancel`, { method: 'POST', headers: { authorization: `Basic ${TOKEN}` } });
    expect(basic.status).toBe(401);
    const after = await call('GET', '/api/campaigns');
    expect(after.json.campaigns.map((c: { id: string }) => c.id)).toEqual([id]);
    expect(after.json.campaigns[0].state).toBe('planning');
  });

  it('a server started without a token refuses every mutation (403), and reads too unless --public-reads', async () => {
    const config = loadConfig({ DATABASE_URL: db.url });
    const ro = await startApiServer({ pool: db.pool, config, log: createLogger({ level: 'silent' }), port: 0 });
    const pub = await startApiServer({ pool: db.pool, config, log: createLogger({ level: 'silent' }), port: 0, publicReads: true });
    try {
      const r = await fetch(`${ro.url}/api/campaigns`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(spec()) });
      expect(r.status).toBe(403);
      expect(((await r.json()) as { error: string }).error).toMatch(/REWRAP_API_TOKEN/);
      const read = await fetch(`${ro.url}/api/campaigns`);
      expect(read.status).toBe(403);
      expect(((await read.json()) as { error: string }).error).toMatch(/REWRAP_API_READ_TOKEN.*--public-reads/);
      expect((await fetch(`${pub.url}/api/campaigns`)).status).toBe(200);
    } finally {
      await ro.close();
      await pub.close();
    }
  });

  it('REWRAP_API_TOKEN shorter than 16 characters is refused at start, without echoing it', () => {
    expect(() => loadConfig({ REWRAP_API_TOKEN: 'short-secret' })).toThrow(/REWRAP_API_TOKEN: expected at least 16 characters/);
    try {
      loadConfig({ REWRAP_API_TOKEN: 'short-secret' });
    } catch (err) {
      expect((err as Error).message).not.toContain('short-secret');
    }
  });
});

describe('campaigns through the API', () => {
  it('POST /api/campaigns with the token: 201 with the id; GET lists it with progress and shows its spec', async () => {
    const s = spec({ name: 'orders rotation', deadline: '2030-01-01T00:00:00Z' });
    const r = await call('POST', '/api/campaigns', { body: s });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ name: 'orders rotation', state: 'planning' });
    expect(r.json.id).toMatch(/^c[a-z2-7]{10}$/);
    expect(r.headers.get('location')).toBe(`/api/campaigns/${r.json.id}`);

    const list = await call('GET', '/api/campaigns', { token: READ_TOKEN });
    const mine = list.json.campaigns.find((c: { id: string }) => c.id === r.json.id);
    expect(mine).toMatchObject({ name: 'orders rotation', kind: 'routine', from: 'orders@1', to: 'orders@2', progress: { planned: 0, remaining: 0, state: 'planning' } });

    const d = await call('GET', `/api/campaigns/${r.json.id}`, { token: READ_TOKEN });
    expect(d.status).toBe(200);
    expect(d.json).toMatchObject({ id: r.json.id, state: 'planning', deadline: '2030-01-01T00:00:00Z', failuresByReason: [], kekVersions: [] });
    expect(d.json.spec.sources[0].table).toBe((s.sources as { table: string }[])[0]!.table);
    expect(d.json.spec.options.batchSize).toBe(4);
  });

  it('?start=true creates it running; start/pause/resume/cancel move it as the CLI does; refused transitions are 409', async () => {
    const id = await createCampaign(spec(), '?start=true');
    expect((await call('GET', `/api/campaigns/${id}`)).json.state).toBe('running');
    expect((await call('POST', `/api/campaigns/${id}/start`)).status).toBe(409);
    const p = await call('POST', `/api/campaigns/${id}/pause`);
    expect(p.json).toEqual({ id, state: 'paused' });
    expect((await call('GET', `/api/campaigns/${id}`)).json.pauseReason).toBe('paused by operator (API)');
    expect((await call('POST', `/api/campaigns/${id}/resume`)).json).toEqual({ id, state: 'running' });
    expect((await call('POST', `/api/campaigns/${id}/cancel`)).json).toEqual({ id, state: 'cancelled' });
    const again = await call('POST', `/api/campaigns/${id}/resume`);
    expect(again.status).toBe(409);
    expect(again.json.error).toBe(`campaign ${id} is cancelled; resume needs paused`);
    expect((await call('POST', '/api/campaigns/cnotthere22/start')).status).toBe(404);
  });

  it('a bad spec is 400 with a message naming the field; bad JSON and a wrong content type too', async () => {
    const bad = await call('POST', '/api/campaigns', { body: spec({ options: { batchSize: -1 } }) });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('campaign spec.options.batchSize: expected an integer from 1 to 10000 (items per batch), got -1');
    const noProvider = await call('POST', '/api/campaigns', { body: { ...spec(), provider: undefined } });
    expect(noProvider.status).toBe(400);
    expect(noProvider.json.error).toMatch(/^campaign spec.provider: expected/);
    const src = await call('POST', '/api/campaigns', { body: spec({ sources: [{ type: 'pg', table: 't' }] }) });
    expect(src.json.error).toBe('campaign spec.sources[0].idColumn: expected a non-empty string');
    const kmsTarget = await call('POST', '/api/campaigns', { body: spec({ provider: { type: 'kms' }, from: 'arn:k1', to: `arn:k2@${'c'.repeat(64)}` }) });
    expect(kmsTarget.status).toBe(400);
    expect(kmsTarget.json.error).toMatch(/^campaign spec.to: "arn:k2@c{64}" names a key material, but KMS always encrypts under a key's current material/);
    const notJson = await call('POST', '/api/campaigns', { raw: '{"name": ' });
    expect(notJson.status).toBe(400);
    expect(notJson.json.error).toMatch(/^request body: not valid JSON/);
    const text = await fetch(`${api.url}/api/campaigns`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'text/plain' }, body: '{}' });
    expect(text.status).toBe(415);
  });

  it('a campaign overlapping one that may still write is 409 with the conflict message', async () => {
    const table = 'public.api_overlap';
    const first = await createCampaign(spec({}, table));
    const r = await call('POST', '/api/campaigns', { body: spec({ name: 'second' }, table) });
    expect(r.status).toBe(409);
    expect(r.json.error).toContain(first);
    expect(r.json.error).toContain(`pg:${table}`);
    expect(r.json).toMatchObject({ otherCampaignId: first, otherState: 'planning' });
  });

  it('the detail never shows secrets a spec may carry by mistake (invariant 5)', async () => {
    const s = spec({ provider: { type: 'kms', endpoint: 'http://AKIDEXAMPLE:s3cr3t-in-url@127.0.0.1:4599' }, to: 'orders' });
    // A field the spec does not know is refused (issue 13 point 7), naming the field, not its value.
    (s.sources as Record<string, unknown>[])[0]!.password = 'hunter2-in-the-spec';
    const refused = await call('POST', '/api/campaigns', { body: s });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('sources[0].password: unknown field');
    expect(refused.text).not.toContain('hunter2-in-the-spec');
    delete (s.sources as Record<string, unknown>[])[0]!.password;
    const id = await createCampaign(s);
    const d = await call('GET', `/api/campaigns/${id}`);
    expect(d.text).not.toContain('hunter2-in-the-spec');
    expect(d.text).not.toContain('s3cr3t-in-url');
    expect(d.text).not.toContain('AKIDEXAMPLE');
    expect(d.json.spec.provider.endpoint).toBe('http://127.0.0.1:4599/');
  });

  it('unknown ids are 404, unknown endpoints 404, wrong methods 405', async () => {
    expect((await call('GET', '/api/campaigns/cnotthere22')).status).toBe(404);
    expect((await call('GET', '/api/campaigns/cnotthere22/failures')).status).toBe(404);
    expect((await call('GET', '/api/campaigns/cnotthere22/history')).status).toBe(404);
    expect((await call('GET', '/api/nothing')).status).toBe(404);
    const m = await call('DELETE', '/api/campaigns');
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET, POST');
  });
});

/* Both ledger forms, the same answers: this file's server creates table campaigns in the default
   (batch) form; one started with REWRAP_LEDGER_FORM=items a per-item one, as older campaigns are. */
describe.each([
  { form: 'batches' as LedgerForm, table: 'public.api_ran', name: 'ran' },
  { form: 'items' as LedgerForm, table: 'public.api_ran_items', name: 'ran items' },
])('progress, failures, history and inventory of a campaign that ran ($form form)', ({ form, table, name }) => {
  const FROM = { id: 'orders', version: '1' };
  const TO = { id: 'orders', version: '2' };
  const store = `pg:${table}`;
  let id: string;
  const outcome = (k: string, i: number): ItemOutcomeRecord =>
    i % 3 === 0
      ? { storeId: store, itemKey: k, outcome: 'failed', reason: i % 2 ? 'invalid-ciphertext' : 'unknown-kek', detail: `row ${k} failed`, currentKek: FROM }
      : { storeId: store, itemKey: k, outcome: 'rewrapped', from: FROM, to: TO };

  beforeAll(async () => {
    const s = spec({ name, options: { batchSize: 4, kmsRequestsPerSecond: 500 } }, table);
    const config = loadConfig({ DATABASE_URL: db.url, REWRAP_API_TOKEN: TOKEN, REWRAP_API_POLICY: join(policyDir, 'policy.json'), REWRAP_LEDGER_FORM: 'items' });
    const itemsApi = form === 'items' ? await startApiServer({ pool: db.pool, config, log: createLogger({ level: 'silent' }), port: 0 }) : undefined;
    id = await createCampaign(s, '?start=true', itemsApi?.url).finally(() => itemsApi?.close());
    expect((await getCampaign(db.pool, id))?.ledgerForm).toBe(form);
    const keys = Array.from({ length: 12 }, (_, i) => String(i + 1).padStart(3, '0'));
    // What a worker does: plan, claim, commit outcomes (only the first two of three batches).
    await planKeys(db.pool, form, id, store, keys, 4);
    for (const batchNo of [1, 2]) {
      const r = await workBatch(db.pool, id, batchNo, keys, (items) => items.map((k) => outcome(k, keys.indexOf(k))));
      expect(r.status).toBe('committed');
    }
  });

  it('GET /api/campaigns/:id matches the ledger: counters, failures by reason with descriptions, KEK versions', async () => {
    // The inventory (a GROUP BY over every item) is cached for a couple of seconds: poll.
    const d = await eventually('the detail to show KEK versions', async () => {
      const r = await call('GET', `/api/campaigns/${id}`);
      return r.json.kekVersions.length ? r : undefined;
    });
    const p = await campaignProgress(db.pool, id);
    expect(d.json.progress).toEqual({ ...p, doneRatePerSec: d.json.progress.doneRatePerSec, etaSeconds: d.json.progress.etaSeconds });
    expect(d.json.progress).toMatchObject({ planned: 12, rewrapped: 5, failed: 3, remaining: 4 });
    expect(d.json.failuresByReason).toEqual([
      { reason: 'unknown-kek', items: 2, description: 'no KEK known to the provider matches the item' },
      { reason: 'invalid-ciphertext', items: 1, description: 'the wrapped key does not decrypt (corrupt, or wrong encryption context)' },
    ]);
    expect(d.json.kekVersions).toEqual([
      { storeId: store, kekId: 'orders', kekVersion: '1', materialId: null, items: 3 },
      { storeId: store, kekId: 'orders', kekVersion: '2', materialId: null, items: 5 },
    ]);
  });

  it('GET /api/campaigns/:id/failures pages through every failed item with `next`', async () => {
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const r = await call('GET', `/api/campaigns/${id}/failures?limit=2${next ? `&after=${encodeURIComponent(next)}` : ''}`, { token: READ_TOKEN });
      expect(r.status).toBe(200);
      for (const f of r.json.items) {
        expect(f).toMatchObject({ storeId: store, detail: `row ${f.itemKey} failed`, from: null });
        seen.push(f.itemKey);
      }
      next = r.json.next;
    } while (next);
    expect(seen).toEqual(['001', '004', '007']);
    expect((await call('GET', `/api/campaigns/${id}/failures?limit=0`)).json.error).toBe('query parameter limit="0": expected an integer from 1 to 1000');
    expect((await call('GET', `/api/campaigns/${id}/failures?after=garbage`)).status).toBe(400);
  });

  it('GET /api/campaigns/:id/history burns down from planned to what remains now', async () => {
    const r = await call('GET', `/api/campaigns/${id}/history`);
    const pts = r.json.points as { t: number; remaining: number }[];
    expect(pts.length).toBeGreaterThanOrEqual(2);
    expect(pts[0]!.remaining).toBe(12);
    expect(pts[pts.length - 1]!.remaining).toBe(4);
    for (let i = 1; i < pts.length; i++) {
      expect(pts[i]!.t).toBeGreaterThan(pts[i - 1]!.t);
      expect(pts[i]!.remaining).toBeLessThanOrEqual(pts[i - 1]!.remaining);
    }
    expect(Math.abs(pts[pts.length - 1]!.t - Date.now() / 1000)).toBeLessThan(5);
  });

  it('GET /api/inventory counts items by store, KEK id and version', async () => {
    const mine = await eventually('the inventory to show the committed items', async () => {
      const r = await call('GET', '/api/inventory', { token: READ_TOKEN });
      const rows = (r.json.items as { storeId: string }[]).filter((x) => x.storeId === store);
      return rows.length ? rows : undefined;
    });
    expect(mine).toEqual([
      { storeId: store, kekId: 'orders', kekVersion: '1', materialId: null, items: 3 },
      { storeId: store, kekId: 'orders', kekVersion: '2', materialId: null, items: 5 },
    ]);
  });
});

describe('history of a batch-form campaign whose ranges read other rows than the plan counted', () => {
  it('burns down from what was planned: a range\'s planned count corrected at its last commit is not lost from the curve', async () => {
    const table = 'public.api_ran_shrunk';
    const store = `pg:${table}`;
    const id = await createCampaign(spec({ name: 'shrunk' }, table), '?start=true');
    expect((await getCampaign(db.pool, id))?.ledgerForm).toBe('batches');
    await planKeys(db.pool, 'batches', id, store, Array.from({ length: 8 }, (_, i) => String(i + 1).padStart(3, '0')), 4);
    /* Between plan and run the application moved rows 004 to 008 away from the source KEK: batch 1 reads 3 rows, batch 2 none. */
    const moved = (items: string[]): ItemOutcomeRecord[] => items.map((k) => ({ storeId: store, itemKey: k, outcome: 'rewrapped', from: { id: 'orders', version: '1' }, to: { id: 'orders', version: '2' } }));
    for (const batchNo of [1, 2]) expect((await workBatch(db.pool, id, batchNo, ['001', '002', '003'], moved)).status).toBe('committed');
    expect(await campaignProgress(db.pool, id)).toMatchObject({ planned: 3, rewrapped: 3, remaining: 0 });
    const pts = (await call('GET', `/api/campaigns/${id}/history`)).json.points as { t: number; remaining: number }[];
    expect(pts[0]!.remaining).toBe(8);
    expect(pts[pts.length - 1]!.remaining).toBe(0);
    for (let i = 1; i < pts.length; i++) expect(pts[i]!.remaining).toBeLessThanOrEqual(pts[i - 1]!.remaining);
  });
});

describe('GET /metrics', () => {
  it('serves process and backlog metrics that promtool accepts, with the inventory of KMS items by key material', async () => {
    if (!existsSync(PROMTOOL)) {
      throw new Error(`${PROMTOOL} is missing: install it with \`apt-get install -y --no-install-recommends prometheus\` (it provides promtool)`);
    }
    /* KMS items: no version, a key material each (or none recorded); one series per material. */
    const [m0, m1] = ['0'.repeat(64), 'f'.repeat(64)];
    await db.pool.query(
      `INSERT INTO rewrap_inventory (store_id, item_key, kek_id, kek_version, material_id)
       SELECT 's3://api-kms', 'o' || n, 'kms-key', NULL, CASE WHEN n <= 2 THEN $1 WHEN n = 3 THEN $2 END FROM generate_series(1, 4) n`,
      [m0, m1],
    );
    const { r, text } = await eventually('the KMS inventory in /metrics', async () => {
      const r = await fetch(`${api.url}/metrics`);
      const text = await r.text();
      return text.includes('store="s3://api-kms"') ? { r, text } : undefined;
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toMatch(new RegExp(`^rewrap_inventory_items\\{store="s3://api-kms",kek_id="kms-key",kek_version="${m0}",version="current"\\} 2$`, 'm'));
    expect(text).toMatch(new RegExp(`^rewrap_inventory_items\\{store="s3://api-kms",kek_id="kms-key",kek_version="${m1}",version="current"\\} 1$`, 'm'));
    expect(text).toMatch(/^rewrap_inventory_items\{store="s3:\/\/api-kms",kek_id="kms-key",kek_version="",version="current"\} 1$/m);
    expect(text).toMatch(/^rewrap_up\{role="api"\} 1$/m);
    // The campaigns that ran, one per ledger form (batch form: "ran", per item: "ran items").
    for (const [name, table] of [['ran', 'api_ran'], ['ran items', 'api_ran_items']]) {
      expect(text).toMatch(new RegExp(`^rewrap_campaign_items_remaining\\{campaign="c[a-z2-7]{10}",name="${name}",kind="routine"\\} 4$`, 'm'));
      expect(text).toMatch(new RegExp(`^rewrap_campaign_kms_budget_requests_per_second\\{campaign="c[a-z2-7]{10}",name="${name}",kind="routine"\\} 500$`, 'm'));
      expect(text).toMatch(new RegExp(`^rewrap_inventory_items\\{store="pg:public\\.${table}",kek_id="orders",kek_version="2",version="current"\\} 5$`, 'm'));
      expect(text).toMatch(new RegExp(`^rewrap_inventory_items\\{store="pg:public\\.${table}",kek_id="orders",kek_version="1",version="current"\\} 3$`, 'm'));
    }
    expect(text).toMatch(/^rewrap_api_requests_total\{route="campaigns\.get",status="200"\} \d+$/m);
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(`${check.stdout}${check.stderr}`.trim()).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('the dashboard is served from the package', () => {
  it('GET / and its assets (uPlot from node_modules); nothing else from the disk', async () => {
    const page = await fetch(`${api.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('<script src="/assets/uPlot.iife.min.js">');
    expect(html).not.toMatch(/https?:\/\//);
    const lib = await fetch(`${api.url}/assets/uPlot.iife.min.js`);
    expect(lib.status).toBe(200);
    expect(await lib.text()).toContain('uPlot');
    for (const path of ['/assets/package.json', '/assets/..%2F..%2F..%2Fpackage.json', '/assets/%2e%2e%2fserver.ts']) {
      expect((await fetch(api.url + path)).status, path).toBe(404);
    }
  });
});

describe('invariant 5: the API token never reaches a log line', () => {
  it('no log line holds the token or an Authorization header, though requests were logged', () => {
    expect(logLines.filter((l) => l.includes('"api request"')).length).toBeGreaterThan(20);
    for (const line of logLines) {
      expect(line).not.toContain(TOKEN);
      expect(line).not.toContain(TOKEN.slice(0, 16));
      expect(line).not.toContain(READ_TOKEN);
      expect(line.toLowerCase()).not.toContain('bearer');
    }
  });
});
