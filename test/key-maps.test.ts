/**
 * Issue 19, point 2 (key maps): 1,000 tenants x 20 Postgres rows, each tenant under its own
 * keyring KEK, rotated by ONE campaign created from the rule "tenant-*@current-1" ->
 * "tenant-*@current" (resolved at create), through real scheduler and worker processes. Every
 * row decrypts under its own tenant's new KEK by independent code (dev/reference/), the ledger's
 * per-KEK counts match the table, rows of a tenant outside the map are untouched, and
 * `kek retire` (the real CLI) retires one tenant's old KEK while a tenant with an unreadable row
 * stays blocked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { getCampaign } from '../src/ledger/index.ts';
import { keyMapCounts } from '../src/metrics/key-map-counts.ts';
import { renderStatus } from '../src/cli/status-view.ts';
import { campaignDetail } from '../src/api/campaign-view.ts';
import { registerBacklogMetrics } from '../src/metrics/backlog-metrics.ts';
import { Registry } from 'prom-client';
import { campaignProgress, failureCountsByReason } from '../src/ledger/index.ts';
import { aesUnwrap, aesWrap, encryptPayload } from '../dev/reference/s3ec-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { lastCommitAt } from './support/ledger-commits.ts';

const TENANTS = 1000;
const ROWS = 20;
/** Tenant 7 has one row whose wrapped DEK is garbage (it cannot move); "other" is a tenant outside the map. */
const BROKEN_TENANT = 7;
const BROKEN_ROW = String(BROKEN_TENANT * ROWS + 5);

interface Kek {
  id: string;
  version: string;
  material: Buffer;
}
const tenantId = (t: number) => `tenant-${String(t).padStart(4, '0')}`;
const keks: Kek[] = [];
for (let t = 0; t < TENANTS; t++) for (const version of ['1', '2']) keks.push({ id: tenantId(t), version, material: randomBytes(32) });
const other: Kek[] = [
  { id: 'other', version: '1', material: randomBytes(32) },
  { id: 'other', version: '2', material: randomBytes(32) },
];
const materialOf = new Map([...keks, ...other].map((k) => [`${k.id}@${k.version}`, k.material]));
const guard = new LeakGuard();

let pipe: Pipeline;
let keyringFile: string;
const rowDek = new Map<string, Buffer>();
let otherBefore: { id: string; wrapped_dek: Buffer }[];

const SOURCE = { type: 'pg', table: 'tenant_rows', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' };

/** Rows as an application writes them: a DEK per row, wrapped under its tenant's KEK. */
async function insertTenantRows(): Promise<void> {
  const ids: string[] = [];
  const payloads: Buffer[] = [];
  const ivs: Buffer[] = [];
  const wrapped: Buffer[] = [];
  const kekIds: string[] = [];
  const add = (id: string, k: Kek, w?: Buffer) => {
    const dek = randomBytes(32);
    const { iv, body } = encryptPayload(dek, Buffer.from(`row ${id} of ${k.id}`));
    rowDek.set(id, dek);
    ids.push(id);
    payloads.push(body);
    ivs.push(iv);
    wrapped.push(w ?? aesWrap(k.material, dek));
    kekIds.push(k.id);
  };
  for (let t = 0; t < TENANTS; t++) {
    for (let r = 0; r < ROWS; r++) {
      const id = String(t * ROWS + r);
      add(id, keks[t * 2]!, id === BROKEN_ROW ? randomBytes(60) : undefined);
    }
  }
  for (let r = 0; r < ROWS; r++) add(String(TENANTS * ROWS + r), other[0]!);
  await pipe.db.pool.query(
    `INSERT INTO tenant_rows (id, payload, iv, wrapped_dek, kek_id, kek_version)
     SELECT id, p, iv, w, k, '1' FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::text[]) AS u(id, p, iv, w, k)`,
    [ids, payloads, ivs, wrapped, kekIds],
  );
}

beforeAll(async () => {
  guard.secret(...materialOf.values());
  pipe = await startPipeline({ label: 'key-maps', workers: 1 });
  keyringFile = await pipe.keyringFile([...keks, ...other]);
  await createEnvelopeTable(pipe.db.pool, 'tenant_rows');
  await insertTenantRows();
  for (const d of rowDek.values()) guard.secret(d);
  otherBefore = (await pipe.db.pool.query(`SELECT id::text, wrapped_dek FROM tenant_rows WHERE kek_id = 'other' ORDER BY id`)).rows;
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
});

async function retire(kek: string): Promise<{ code: number; json: { retired: boolean; blockers: string[]; failedByReason: { storeId: string; reason: string; items: number }[] } }> {
  const r = await rewrapCli(pipe, ['kek', 'retire', kek, '--grace', '1s', '--json']);
  guard.text(r.stdout, r.stderr);
  return { code: r.code, json: jsonOf(r) };
}

describe('key maps: many tenant KEKs in one campaign', () => {
  let campaignId: string;

  it('one campaign from the rule tenant-*@current-1 -> tenant-*@current moves 1,000 tenants x 20 rows, each row to its own tenant\'s new KEK (checked by independent code)', async () => {
    const c = await pipe.create({
      name: 'all tenants',
      sources: [SOURCE],
      provider: { type: 'local', keyringFile },
      from: 'tenant-*@current-1',
      to: 'tenant-*@current',
      options: { batchSize: 500, concurrency: 16 },
    });
    campaignId = c.id;
    // Resolved at create: the stored spec holds the explicit map, one entry per tenant, "other" not in it.
    expect(c.spec.keyMapRule).toBeUndefined();
    expect(c.spec.keyMap).toHaveLength(TENANTS);
    expect(c.spec.keyMap![BROKEN_TENANT]).toEqual({ from: { id: tenantId(BROKEN_TENANT), version: '1' }, to: { id: tenantId(BROKEN_TENANT), version: '2' } });
    expect(c.spec.keyMap!.some((e) => e.from.id === 'other')).toBe(false);

    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 150_000);
    // One plan, one backlog: every tenant row planned once; the "other" rows are not under any source.
    expect(p).toMatchObject({ planned: TENANTS * ROWS, rewrapped: TENANTS * ROWS - 1, skipped: 0, failed: 1 });

    // Independent check (dev/reference): each row's KEK columns name its own tenant's v2, and its DEK unwraps under that material only.
    const { rows } = await pipe.db.pool.query<{ id: string; payload: Buffer; iv: Buffer; wrapped_dek: Buffer; kek_id: string; kek_version: string }>(
      `SELECT id::text, payload, iv, wrapped_dek, kek_id, kek_version FROM tenant_rows WHERE kek_id <> 'other'`,
    );
    expect(rows).toHaveLength(TENANTS * ROWS);
    for (const r of rows) {
      const owner = tenantId(Math.floor(Number(r.id) / ROWS));
      expect(r.kek_id, `row ${r.id}`).toBe(owner);
      if (r.id === BROKEN_ROW) {
        expect(r.kek_version).toBe('1'); // left where it was, failed
        continue;
      }
      expect(r.kek_version, `row ${r.id}`).toBe('2');
      const dek = aesUnwrap(materialOf.get(`${owner}@2`)!, r.wrapped_dek);
      expect(dek.equals(rowDek.get(r.id)!), `row ${r.id}`).toBe(true);
      const d = createDecipheriv('aes-256-gcm', dek, r.iv);
      d.setAuthTag(r.payload.subarray(r.payload.length - 16));
      expect(Buffer.concat([d.update(r.payload.subarray(0, r.payload.length - 16)), d.final()]).toString()).toBe(`row ${r.id} of ${owner}`);
    }
    // A tenant outside the map: untouched, byte for byte.
    const after = (await pipe.db.pool.query(`SELECT id::text, wrapped_dek FROM tenant_rows WHERE kek_id = 'other' ORDER BY id`)).rows;
    expect(after).toEqual(otherBefore);
  }, 240_000);

  it('the ledger\'s per-KEK counters (moved, remaining, failed) match the table, tenant by tenant', async () => {
    const c = (await getCampaign(pipe.db.pool, campaignId))!;
    const counts = await keyMapCounts(pipe.db.pool, campaignId, c.spec);
    const { rows } = await pipe.db.pool.query<{ kek_id: string; kek_version: string; n: string }>(
      `SELECT kek_id, kek_version, count(*) AS n FROM tenant_rows WHERE kek_id <> 'other' GROUP BY 1, 2`,
    );
    const inTable = new Map(rows.map((r) => [`${r.kek_id}@${r.kek_version}`, Number(r.n)]));
    expect(counts.entries).toBe(TENANTS);
    for (const k of counts.keks) {
      // Moved away from the source = rows now under the destination; remaining = rows still under the source.
      expect({ kek: k.from, moved: k.moved, remaining: k.remaining }).toEqual({ kek: k.from, moved: inTable.get(k.to) ?? 0, remaining: inTable.get(k.from) ?? 0 });
    }
    const broken = counts.keks.find((k) => k.from === `${tenantId(BROKEN_TENANT)}@1`)!;
    expect(broken).toEqual({ from: `${tenantId(BROKEN_TENANT)}@1`, to: `${tenantId(BROKEN_TENANT)}@2`, moved: ROWS - 1, remaining: 1, failed: 1 });
    expect(counts.keks.filter((k) => k.failed > 0)).toHaveLength(1);
    expect(counts.outsideMap).toEqual({ moved: 0, remaining: 0, failed: 0 });
    // The status view of a map this large lists the entries with something left, not 1,000 lines.
    const text = renderStatus(c, await campaignProgress(pipe.db.pool, campaignId), await failureCountsByReason(pipe.db.pool, campaignId), [], counts);
    expect(text).toContain('from key map of 1000 source KEKs');
    expect(text).toContain(`per KEK (1000 entries; 1 with items left`);
    expect(text).toContain(`${tenantId(BROKEN_TENANT)}@1 -> ${tenantId(BROKEN_TENANT)}@2: moved 19, remaining 1, failed 1`);
    expect(text.split('\n').length).toBeLessThan(40);
    // The API's campaign detail carries the same counters (1,000 entries: all of them, under API_KEK_ROWS).
    const detail = (await campaignDetail(pipe.db.pool, campaignId, async () => []))!;
    expect(detail.from).toBe('key map of 1000 source KEKs');
    expect(detail.keyMap).toMatchObject({ entries: TENANTS, truncated: false, outsideMap: { moved: 0, remaining: 0, failed: 0 } });
    expect(detail.keyMap!.keks).toContainEqual(broken);
    // Metrics (invariant 6): a map above 20 entries has no per-tenant series; its KEKs are summed per campaign and side.
    const registry = new Registry();
    registerBacklogMetrics(registry, pipe.db.pool, 0);
    const metrics = await registry.metrics();
    expect(metrics).not.toMatch(/tenant-\d{4}/);
    expect(metrics).not.toContain('rewrap_campaign_kek_items{');
    expect(metrics).toContain(`rewrap_inventory_items{store="pg:tenant_rows",kek_id="key map ${campaignId} destinations",kek_version="",version="current"} ${TENANTS * ROWS - 1}`);
    expect(metrics).toContain(`rewrap_inventory_items{store="pg:tenant_rows",kek_id="key map ${campaignId} sources",kek_version="",version="current"} 1`);
    // The report lists every entry (the real CLI): one CSV line per tenant.
    const r = await rewrapCli(pipe, ['campaign', 'report', campaignId, '--kind', 'keks', '--format', 'csv']);
    guard.text(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('from_kek,to_kek,moved,remaining,failed');
    expect(lines).toHaveLength(TENANTS + 1);
    expect(lines).toContain(`${tenantId(BROKEN_TENANT)}@1,${tenantId(BROKEN_TENANT)}@2,19,1,1`);
    expect(lines).toContain(`${tenantId(3)}@1,${tenantId(3)}@2,20,0,0`);
  }, 60_000);

  it('retirement per KEK: tenant 3\'s old KEK retires; tenant 7, with an unreadable row, stays blocked (invariant 7)', async () => {
    // The last commit in either ledger form (batch form: no item rows; its last done batch).
    const last = await lastCommitAt(pipe.db.pool, campaignId);
    expect(last).not.toBeNull();
    const wait = last!.getTime() + 1500 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));

    const blocked = await retire(`${tenantId(BROKEN_TENANT)}@1`);
    expect(blocked.code, JSON.stringify(blocked.json)).toBe(3);
    expect(blocked.json.failedByReason).toEqual([{ storeId: 'pg:tenant_rows', reason: expect.any(String), items: 1 }]);
    expect(blocked.json.blockers).toContainEqual(expect.stringMatching(/^pg:tenant_rows: 1 item\(s\) failed to move and may still be under tenant-0007@1/));

    const ok = await retire(`${tenantId(3)}@1`);
    expect(ok.code, JSON.stringify(ok.json)).toBe(0);
    expect(ok.json.retired).toBe(true);
    const states = new Map(loadKeyringFile(keyringFile).map((e) => [`${e.id}@${e.version}`, e.state]));
    expect(states.get(`${tenantId(3)}@1`)).toBe('disabled');
    expect(states.get(`${tenantId(BROKEN_TENANT)}@1`)).toBe('enabled');
    expect(states.get(`${tenantId(4)}@1`)).toBe('enabled'); // only the KEK asked for
  }, 180_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
