/**
 * The live dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core):
 * a scheduler and a worker process rotate a few thousand Postgres rows while the page is open;
 * the numbers on the page move while it runs and finally equal the ledger's. Leaves
 * test-artifacts/dashboard.png (and, with REWRAP_UPDATE_DOCS=1, docs/dashboard.png for the README).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { insertRows } from '../dev/reference/row-client.ts';
import { campaignProgress, failureCountsByReason } from '../src/ledger/index.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startApiServer, type ApiServer } from '../src/api/server.ts';
import { parseSpecPolicy } from '../src/api/spec-policy.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROWS = 3000;
const CORRUPT = 25; // rows whose wrapped DEK does not decrypt: they fail with invalid-ciphertext
const TOKEN = randomBytes(24).toString('hex');
const READ_TOKEN = randomBytes(24).toString('hex');
const v1 = { id: 'orders', version: '1', material: randomBytes(32) };
const v2 = { id: 'orders', version: '2', material: randomBytes(32) };

let pipe: Pipeline;
let api: ApiServer;
let context: BrowserContext;
let page: Page;
let profileDir: string;
let keyringFile: string;
const pageProblems: string[] = [];
const foreignRequests: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install -y --no-install-recommends chromium\``);
  }
  pipe = await startPipeline({ label: 'dashboard', workers: 1 });
  await createEnvelopeTable(pipe.db.pool, 'dash_rows');
  await insertRows(pipe.db.pool, 'dash_rows', ROWS, v1);
  await pipe.db.pool.query(`UPDATE dash_rows SET wrapped_dek = gen_random_bytes(length(wrapped_dek)) WHERE id <= $1`, [CORRUPT]).catch(async () => {
    // pgcrypto may be absent: flip the bytes instead (still the right length, no longer decrypts).
    await pipe.db.pool.query(`UPDATE dash_rows SET wrapped_dek = decode(md5(id::text) || md5(id::text || 'x'), 'hex') || substr(wrapped_dek, 33) WHERE id <= $1`, [CORRUPT]);
  });
  keyringFile = await pipe.keyringFile([v1, v2]);
  const config = loadConfig({ DATABASE_URL: pipe.db.url, REWRAP_API_TOKEN: TOKEN, REWRAP_API_READ_TOKEN: READ_TOKEN });
  // What the campaign below may name (REWRAP_API_POLICY in `rewrap api`).
  const policy = parseSpecPolicy({ keyringFiles: [keyringFile], keys: ['orders'], tables: ['dash_rows'] }, 'test policy');
  api = await startApiServer({ pool: pipe.db.pool, config, log: createLogger({ level: 'warn', name: 'api' }), port: 0, policy });

  profileDir = await mkdtemp(join(tmpdir(), 'rewrap-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 1400, height: 900 },
    deviceScaleFactor: 1,
  });
  context.on('request', (r) => {
    if (!r.url().startsWith(api.url + '/')) foreignRequests.push(r.url());
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') pageProblems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageProblems.push(`page error: ${e.message}`));
}, 180_000);

afterAll(async () => {
  await context?.close();
  if (profileDir) await rm(profileDir, { recursive: true, force: true });
  await api?.close();
  await pipe?.stop();
});

const statValue = (name: string) => page.getAttribute(`[data-stat="${name}"]`, 'data-value');

/** Polls what the page shows until it equals `expected` (the page redraws every second). */
async function pageShows(what: string, read: () => Promise<string | null>, expected: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | null = null;
  while ((last = await read()) !== expected) {
    if (Date.now() > deadline) throw new Error(`the page shows ${what} = ${JSON.stringify(last)}, expected ${JSON.stringify(expected)} within ${timeoutMs} ms`);
    await page.waitForTimeout(100);
  }
}

describe('the live dashboard in headless Chromium', () => {
  it('shows a running campaign move live, and ends on exactly the ledger numbers', async () => {
    // Reads need the read token: the page asks for it once and keeps it for this tab.
    await page.goto(`${api.url}/`);
    await page.waitForSelector('#token-form:not([hidden])', { timeout: 15_000 });
    await page.fill('#token-input', READ_TOKEN);
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('#live[data-state="ok"]', { timeout: 15_000 });
    expect(await page.isVisible('#token-form')).toBe(false);
    expect(await page.isVisible('#no-campaigns')).toBe(true);
    // The refused first poll is the only thing the console may have said.
    expect(pageProblems.every((p) => /status of 401/.test(p)), pageProblems.join('; ')).toBe(true);
    pageProblems.length = 0;

    const res = await fetch(`${api.url}/api/campaigns?start=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'orders KEK rotation',
        sources: [{ type: 'pg', table: 'dash_rows', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
        provider: { type: 'local', keyringFile },
        from: 'orders@1',
        to: 'orders@2',
        // A budget of 300 rewraps/s makes the run last ~10 s: long enough to watch it move.
        options: { batchSize: 100, concurrency: 8, kmsRequestsPerSecond: 300 },
      }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };

    // The page picks the campaign up by itself and its numbers change while the campaign runs.
    await page.waitForSelector(`li[data-campaign="${id}"]`, { timeout: 15_000 });
    const seen = new Set<string>();
    const deadline = Date.now() + 120_000;
    let midRunShot = false;
    for (;;) {
      const remaining = await statValue('remaining');
      const planned = (await campaignProgress(pipe.db.pool, id)).planned;
      if (remaining !== null && Number(remaining) > 0 && Number(remaining) < planned) {
        seen.add(remaining);
        if (!midRunShot && seen.size >= 2) {
          await mkdir('test-artifacts', { recursive: true });
          await page.screenshot({ path: 'test-artifacts/dashboard-running.png' });
          midRunShot = true;
        }
      }
      const state = await page.textContent('#d-state');
      if (state === 'completed') break;
      if (Date.now() > deadline) throw new Error(`the page never showed the campaign completed; saw remaining=${[...seen].join(',')}; ${pageProblems.join('; ')}`);
      await page.waitForTimeout(200); // sample the page as a person would glance at it
    }
    expect(seen.size, `distinct "remaining" values seen while running: ${[...seen].join(', ')}`).toBeGreaterThanOrEqual(3);

    // Final: every number on the page is the ledger's.
    const p = await campaignProgress(pipe.db.pool, id);
    expect(p).toMatchObject({ state: 'completed', planned: ROWS, remaining: 0, failed: CORRUPT, rewrapped: ROWS - CORRUPT });
    await pageShows('rewrapped', () => statValue('rewrapped'), String(p.rewrapped));
    expect(await statValue('remaining')).toBe(String(p.remaining));
    expect(await statValue('failed')).toBe(String(p.failed));
    expect(await statValue('skipped')).toBe(String(p.skipped));
    expect(await page.textContent('[data-stat="rewrapped"]')).toBe((ROWS - CORRUPT).toLocaleString('en-US'));
    // The list's progress is a summary cached for a couple of seconds by the API (one query per campaign per interval).
    await pageShows('the list remaining', () => page.getAttribute(`li[data-campaign="${id}"] .counts`, 'data-remaining'), '0');

    const reasons = await failureCountsByReason(pipe.db.pool, id);
    expect(reasons).toEqual([{ reason: 'invalid-ciphertext', items: CORRUPT }]);
    expect(await page.textContent('tr[data-reason="invalid-ciphertext"] td.num')).toBe(String(CORRUPT));

    // Per-KEK-version counts (the inventory is cached a couple of seconds by the API).
    await page.waitForSelector('tr[data-kek="orders@2"]', { timeout: 10_000 });
    await pageShows('items under orders@2', () => page.textContent('tr[data-kek="orders@2"] td.num'), (ROWS - CORRUPT).toLocaleString('en-US'));

    // The burn-down chart is a real uPlot canvas with the run's history in it.
    expect(await page.locator('#chart canvas').count()).toBe(1);
    expect(Number(await page.getAttribute('#chart', 'data-points'))).toBeGreaterThanOrEqual(4);

    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/dashboard.png' });
    await mkdir('docs', { recursive: true });
    // The README's picture changes only when asked: a test run must not dirty the checkout.
    if (process.env.REWRAP_UPDATE_DOCS === '1') await copyFile('test-artifacts/dashboard.png', 'docs/dashboard.png');

    // A new tab given the token in the URL (#token=) reads at once, and drops it from the address bar.
    const tab = await context.newPage();
    await tab.goto(`${api.url}/#token=${READ_TOKEN}`);
    await tab.waitForSelector(`li[data-campaign="${id}"]`, { timeout: 15_000 });
    expect(tab.url()).toBe(`${api.url}/`);
    expect(await tab.isVisible('#token-form')).toBe(false);
    await tab.close();

    expect(pageProblems).toEqual([]);
    expect(foreignRequests, 'the page fetched something from elsewhere than the API server').toEqual([]);
  }, 240_000);
});
