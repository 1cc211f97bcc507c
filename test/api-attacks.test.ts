/**
 * Issue 15, replayed as an attacker against a running `rewrap api` (a real OS process, its policy
 * and tokens from the environment): every attack gets a clear 4xx, and nothing is read, sent or
 * written. The API holds credentials for every store and KMS key in scope, so a spec posted to it
 * must not name files or endpoints on its host, and its reads must not be open to any page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { startRewrapProcess, type RewrapProcess } from '../dev/services/processes.ts';

const TOKEN = randomBytes(24).toString('hex');
const READ_TOKEN = randomBytes(24).toString('hex');
const SECRET_LINE = `s3cret-${randomBytes(6).toString('hex')}`;
let db: TestSchema;
let dir: string;
let api: RewrapProcess;
let url: string;
/** Stands in for http://169.254.169.254/latest/: counts every request anything sends it. */
let metadata: Server;
let metadataUrl: string;
let metadataHits = 0;
let allowedManifest: string;
let secretFile: string;

const ALLOWED_TABLES = Array.from({ length: 6 }, (_, i) => `public.allowed_${i}`);

beforeAll(async () => {
  db = await freshSchema('api_attacks');
  dir = mkdtempSync(join(tmpdir(), 'rewrap-api-attacks-'));
  // A mode-0600 file on the API's host whose first CSV column must never come back over HTTP.
  secretFile = join(dir, 'secret.csv');
  writeFileSync(secretFile, `${SECRET_LINE},k1\n${SECRET_LINE}-2,k2\n`, { mode: 0o600 });
  // A manifest the operator allows, naming a bucket the operator does not.
  allowedManifest = join(dir, 'allowed-manifest.csv');
  writeFileSync(allowedManifest, 'forbidden-bucket,k1\n');
  metadata = createServer((_req, res) => {
    metadataHits++;
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' }).end('{"CiphertextBlob":"AAAA","KeyId":"x"}');
  });
  await new Promise<void>((r) => metadata.listen(0, '127.0.0.1', () => r()));
  metadataUrl = `http://127.0.0.1:${(metadata.address() as AddressInfo).port}/latest/`;
  const policy = { tables: ALLOWED_TABLES, buckets: ['allowed-bucket'], keys: ['orders', 'orders-next'], keyringFiles: [], manifestFiles: [allowedManifest], kmsEndpoints: [] };
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy));
  api = startRewrapProcess('api', ['api', '--port', '0'], {
    DATABASE_URL: db.url,
    REWRAP_API_TOKEN: TOKEN,
    REWRAP_API_READ_TOKEN: READ_TOKEN,
    REWRAP_API_POLICY: join(dir, 'policy.json'),
    LOG_LEVEL: 'info',
  });
  url = /dashboard at (http:\/\/\S+?)\/$/.exec(await api.waitForLine(/dashboard at http/, 60_000))![1]!;
}, 90_000);

afterAll(async () => {
  await api?.stop();
  await new Promise<void>((r) => (metadata ? metadata.close(() => r()) : r()));
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, o: { token?: string | null; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  const text = await res.text();
  return { status: res.status, text, json: res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined };
}

/** A request with a Host header of our choosing (fetch does not let one set it). */
function withHost(path: string, host: string, token: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path, headers: { host, authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

const campaignRows = async () => Number((await db.pool.query('SELECT count(*) AS n FROM rewrap_campaigns')).rows[0].n);

let seq = 0;
function spec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: `attack ${++seq}`,
    sources: [{ type: 'pg', table: ALLOWED_TABLES[0], idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
    provider: { type: 'kms' },
    from: 'orders@1',
    to: 'orders-next',
    ...overrides,
  };
}

describe('specs from the API are constrained by the operator, not the caller (issue 15)', () => {
  it('a manifestFile on the API host is refused (403) before it is read: its lines never come back', async () => {
    const before = await campaignRows();
    const r = await call('POST', '/api/campaigns', { body: spec({ sources: [{ type: 's3-manifest', manifestFile: secretFile }] }) });
    expect(r.status, r.text).toBe(403);
    expect(r.json.error).toMatch(/sources\[0\]\.manifestFile .* manifestFiles of the REWRAP_API_POLICY file/);
    expect(r.text).not.toContain(SECRET_LINE);
    expect(await campaignRows()).toBe(before);
    const list = await call('GET', '/api/campaigns', { token: READ_TOKEN });
    expect(list.text).not.toContain(SECRET_LINE);
  });

  it('provider.endpoint of a metadata service is refused (403): no campaign, no request ever reaches it', async () => {
    const before = await campaignRows();
    for (const endpoint of ['http://169.254.169.254/latest/', metadataUrl]) {
      const r = await call('POST', '/api/campaigns?start=true', { body: spec({ provider: { type: 'kms', endpoint } }) });
      expect(r.status, r.text).toBe(403);
      expect(r.json.error).toMatch(/provider\.endpoint .* kmsEndpoints/);
    }
    expect(await campaignRows()).toBe(before);
    expect(metadataHits).toBe(0);
  });

  it('a keyringFile on the API host is refused (403)', async () => {
    const r = await call('POST', '/api/campaigns', { body: spec({ provider: { type: 'local', keyringFile: secretFile } }) });
    expect(r.status, r.text).toBe(403);
    expect(r.json.error).toMatch(/provider\.keyringFile .* keyringFiles/);
    expect(r.text).not.toContain(SECRET_LINE);
  });

  it('a bucket, table, KMS region or key the policy does not list is refused (403), and so is a listed manifest naming an unlisted bucket', async () => {
    const before = await campaignRows();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ sources: [{ type: 's3', bucket: 'payroll' }] }, /sources\[0\]\.bucket "payroll"/],
      [{ sources: [{ type: 'pg', table: 'public.users', idColumn: 'id', wrappedKeyColumn: 'w', kekIdColumn: 'k', kekVersionColumn: 'v' }] }, /sources\[0\]\.table "public\.users"/],
      [{ to: 'arn:aws:kms:us-east-1:111122223333:key/attacker' }, /spec to "arn:aws:kms:us-east-1:111122223333:key\/attacker"/],
      [{ provider: { type: 'kms', region: 'eu-west-1' } }, /provider\.region "eu-west-1"/],
      [{ sources: [{ type: 's3-manifest', manifestFile: allowedManifest }] }, /manifest bucket "forbidden-bucket"/],
    ];
    for (const [o, message] of cases) {
      const r = await call('POST', '/api/campaigns', { body: spec(o) });
      expect(r.status, r.text).toBe(403);
      expect(r.json.error).toMatch(message);
    }
    expect(await campaignRows()).toBe(before);
  });

  it('what the policy lists is created as before (201)', async () => {
    const r = await call('POST', '/api/campaigns', { body: spec({ sources: [{ type: 's3', bucket: 'allowed-bucket' }] }) });
    expect(r.status, r.text).toBe(201);
  });
});

describe('reads need a token; the Host header is checked; errors say nothing of the database (issue 15)', () => {
  it('every read route without a token is 401 and shows nothing; the read token reads but cannot write', async () => {
    const id = (await call('POST', '/api/campaigns', { body: spec({ sources: [{ type: 'pg', table: ALLOWED_TABLES[1], idColumn: 'id', wrappedKeyColumn: 'w', kekIdColumn: 'k', kekVersionColumn: 'v' }] }) })).json.id as string;
    for (const path of ['/api/campaigns', `/api/campaigns/${id}`, `/api/campaigns/${id}/failures`, `/api/campaigns/${id}/history`, '/api/inventory']) {
      const anon = await call('GET', path, { token: null });
      expect(anon.status, path).toBe(401);
      expect(anon.text).not.toContain(ALLOWED_TABLES[1]);
      expect((await call('GET', path, { token: 'x'.repeat(48) })).status, path).toBe(401);
      expect((await call('GET', path, { token: READ_TOKEN })).status, path).toBe(200);
      expect((await call('GET', path, { token: TOKEN })).status, path).toBe(200);
    }
    expect((await call('POST', `/api/campaigns/${id}/cancel`, { token: READ_TOKEN })).status).toBe(401);
    expect((await call('GET', `/api/campaigns/${id}`, { token: READ_TOKEN })).json.state).toBe('planning');
  });

  it('a request naming another host (DNS rebinding) is 403, even with a token; the bound address and localhost are served', async () => {
    const port = new URL(url).port;
    for (const path of ['/api/campaigns', '/']) {
      const r = await withHost(path, `rebind.attacker.example:${port}`, READ_TOKEN);
      expect(r.status, path).toBe(403);
      expect(JSON.parse(r.text).error).toMatch(/Host "rebind\.attacker\.example:\d+" is not one this API answers to.*REWRAP_API_ALLOWED_HOSTS/);
    }
    expect((await withHost('/api/campaigns', `localhost:${port}`, READ_TOKEN)).status).toBe(200);
    expect((await withHost('/api/campaigns', `127.0.0.1:${port}`, READ_TOKEN)).status).toBe(200);
  });

  it('a request path that is no URL (//, /\\, //a:b) is refused (400, or 403 under a foreign Host), and the API keeps answering', async () => {
    const port = new URL(url).port;
    for (const path of ['//', '///', '/\\', '//a:b']) {
      for (const host of [`127.0.0.1:${port}`, 'evil.example']) {
        const r = await withHost(path, host, READ_TOKEN);
        expect(r.status, `${path} with Host ${host}`).toBe(host === 'evil.example' ? 403 : 400);
      }
    }
    expect(api.child.exitCode, api.lines.slice(-20).join('\n')).toBeNull();
    expect((await call('GET', '/api/campaigns', { token: READ_TOKEN })).status).toBe(200);
    // An absolute-form target (HTTP/1.1 servers must accept it) is routed by its path; the Host header is still what is checked.
    expect((await withHost(`http://127.0.0.1:${port}/api/campaigns`, `127.0.0.1:${port}`, READ_TOKEN)).status).toBe(200);
    expect((await withHost(`http://127.0.0.1:${port}/api/campaigns`, 'evil.example', READ_TOKEN)).status).toBe(403);
  });

  it('the campaign list is paged: ?limit= and `next` walk every campaign once, in the ledger order', async () => {
    for (const t of ALLOWED_TABLES.slice(2)) {
      const r = await call('POST', '/api/campaigns', { body: spec({ sources: [{ type: 'pg', table: t, idColumn: 'id', wrappedKeyColumn: 'w', kekIdColumn: 'k', kekVersionColumn: 'v' }] }) });
      expect(r.status, r.text).toBe(201);
    }
    const all = (await db.pool.query('SELECT id FROM rewrap_campaigns ORDER BY priority DESC, created_at, id')).rows.map((r) => r.id as string);
    expect(all.length).toBeGreaterThan(4);
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const r = await call('GET', `/api/campaigns?limit=2${next ? `&after=${next}` : ''}`, { token: READ_TOKEN });
      expect(r.json.campaigns.length).toBeLessThanOrEqual(2);
      seen.push(...r.json.campaigns.map((c: { id: string }) => c.id));
      next = r.json.next;
    } while (next);
    expect(seen).toEqual(all);
  });

  it('a 500 answers a request id, never the Postgres message; the log has the details under that id', async () => {
    await db.pool.query('ALTER TABLE rewrap_campaigns RENAME TO rewrap_campaigns_away');
    let r: Awaited<ReturnType<typeof call>>;
    try {
      r = await call('GET', '/api/campaigns', { token: READ_TOKEN });
    } finally {
      await db.pool.query('ALTER TABLE rewrap_campaigns_away RENAME TO rewrap_campaigns');
    }
    expect(r.status).toBe(500);
    expect(r.text).not.toMatch(/relation|rewrap_campaigns|postgres/i);
    expect(r.json.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const line = await api.waitForLine(new RegExp(r.json.requestId), 5000);
    expect(line).toMatch(/rewrap_campaigns/);
  });
});
