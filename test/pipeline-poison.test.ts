/**
 * Poisoned items (malformed envelopes) never stop a campaign, never get modified, and are all
 * reported: a table with 1% poisoned rows completes for the rest, and `rewrap campaign report`
 * (the real CLI) lists every poisoned row with its reason, in JSONL and in CSV. A second
 * campaign whose poisoned share exceeds its maxFailureRatio auto-pauses, says why, and
 * `rewrap campaign status` shows it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { aesUnwrap } from '../dev/reference/s3ec-client.ts';
import type { RowKek } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsAt, rowTable, rowWriteStats } from './support/row-fixture.ts';
import { getCampaign } from '../src/ledger/index.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const ROWS = 3_000;
const v1: RowKek = { id: 'k', version: '1', material: randomBytes(32) };
const v2: RowKek = { id: 'k', version: '2', material: randomBytes(32) };

/** One row in a hundred is poisoned, in three different ways. */
const POISON: Record<string, { reason: string; sql: string }> = {};
for (let id = 7, i = 0; id <= ROWS; id += 100, i++) {
  const kind = i % 3;
  POISON[String(id)] =
    kind === 0
      ? { reason: 'malformed-wrapped-key', sql: `UPDATE mixed SET wrapped_dek = '\\x${randomBytes(33).toString('hex')}' WHERE id = ${id}` }
      : kind === 1
        ? { reason: 'invalid-ciphertext', sql: `UPDATE mixed SET wrapped_dek = '\\x${randomBytes(60).toString('hex')}' WHERE id = ${id}` }
        : { reason: 'malformed-envelope', sql: `UPDATE mixed SET wrapped_dek = NULL WHERE id = ${id}` };
}
const POISONED = Object.keys(POISON).length;

let pipe: Pipeline;
let deks: Map<string, Buffer>;
let keyringFile: string;
const guard = new LeakGuard();
guard.secret(v1.material, v2.material);

/** Every row as stored: KEK columns and wrapped key (hex). */
async function snapshot(table: string): Promise<Map<string, { kek: string; wrapped: string | null }>> {
  const { rows } = await pipe.db.pool.query<{ id: string; kek: string; wrapped: string | null }>(
    `SELECT id::text, kek_id || '@' || kek_version AS kek, encode(wrapped_dek, 'hex') AS wrapped FROM ${table}`,
  );
  return new Map(rows.map((r) => [r.id, { kek: r.kek, wrapped: r.wrapped }]));
}

/** A minimal RFC 4180 reader: quoted fields may hold commas, quotes ("") and newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  const endField = () => {
    row.push(field);
    field = '';
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted && ch === '"' && text[i + 1] === '"') {
      field += '"';
      i++;
    } else if (ch === '"') {
      quoted = !quoted;
    } else if (!quoted && ch === ',') {
      endField();
    } else if (!quoted && ch === '\n') {
      endField();
      rows.push(row);
      row = [];
    } else {
      field += ch;
    }
  }
  if (field !== '' || row.length > 0) {
    endField();
    rows.push(row);
  }
  return rows;
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'poison', workers: 2 });
  deks = await rowTable(pipe.db.pool, 'mixed', ROWS, v1);
  for (const p of Object.values(POISON)) await pipe.db.pool.query(p.sql);
  await pipe.db.pool.query('TRUNCATE mixed_writes');
  keyringFile = await pipe.keyringFile([v1, v2]);
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

describe('poisoned items', () => {
  it('1% poisoned rows: the campaign completes for the rest and leaves every poisoned row untouched', async () => {
    const before = await snapshot('mixed');
    const c = await pipe.create({
      name: 'one percent poison',
      sources: [rowSource('mixed')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 100, concurrency: 8, maxFailureRatio: 0.05 },
    });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);
    expect(p).toMatchObject({ planned: ROWS, rewrapped: ROWS - POISONED, skipped: 0, failed: POISONED, remaining: 0, pauseReason: null });

    // The store: every good row is under k@2 and unwraps (with k@2) to its original DEK; every
    // poisoned row is byte for byte what it was.
    const after = await snapshot('mixed');
    expect(await rowsAt(pipe.db.pool, 'mixed', 'k', '2')).toBe(ROWS - POISONED);
    for (const [id, row] of after) {
      if (POISON[id]) {
        expect(row, `poisoned row ${id}`).toEqual(before.get(id));
      } else {
        expect(row.kek, `row ${id}`).toBe('k@2');
        expect(aesUnwrap(v2.material, Buffer.from(row.wrapped!, 'hex')).equals(deks.get(id)!), `row ${id}`).toBe(true);
      }
    }

    // The report lists exactly the poisoned rows, each with its reason: JSONL on stdout ...
    const jsonl = await rewrapCli(pipe, ['campaign', 'report', c.id, '--format', 'jsonl']);
    expect(jsonl.code, jsonl.stderr).toBe(0);
    const lines = jsonl.stdout.trim().split('\n').map((l) => JSON.parse(l) as { store: string; item: string; outcome: string; reason: string; detail: string });
    expect(lines).toHaveLength(POISONED);
    expect(new Map(lines.map((l) => [l.item, l.reason]))).toEqual(new Map(Object.entries(POISON).map(([id, x]) => [id, x.reason])));
    for (const l of lines) {
      expect(l).toMatchObject({ store: 'pg:mixed', outcome: 'failed' });
      expect(l.detail, `detail names the item: ${l.detail}`).toContain(l.item);
    }
    // ... and CSV to a file.
    const out = join(pipe.dir, 'failures.csv');
    const csv = await rewrapCli(pipe, ['campaign', 'report', c.id, '--format', 'csv', '--out', out]);
    expect(csv.code, csv.stderr).toBe(0);
    const [header, ...records] = parseCsv(await readFile(out, 'utf8'));
    expect(header).toEqual(['store', 'item', 'reason', 'detail', 'from_kek', 'at']);
    expect(records).toHaveLength(POISONED);
    expect(new Map(records.map((r) => [r[1], r[2]]))).toEqual(new Map(Object.entries(POISON).map(([id, x]) => [id, x.reason])));
    for (const r of records) expect(r[0]).toBe('pg:mixed');

    const status = await rewrapCli(pipe, ['campaign', 'status', c.id, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const s = jsonOf<{ state: string; failuresByReason: { reason: string; items: number }[] }>(status);
    expect(s.state).toBe('completed');
    expect(Object.fromEntries(s.failuresByReason.map((r) => [r.reason, r.items]))).toEqual({
      'malformed-wrapped-key': 10,
      'invalid-ciphertext': 10,
      'malformed-envelope': 10,
    });
    guard.text(jsonl.stdout, jsonl.stderr, csv.stderr, status.stdout, await readFile(out, 'utf8'));
  }, 240_000);

  it('a campaign whose poisoned share exceeds maxFailureRatio auto-pauses, says why, and status shows it', async () => {
    const N = 2_000;
    await rowTable(pipe.db.pool, 'worse', N, v1);
    // 10% poisoned (33-byte wrapped keys), against a threshold of 2%.
    await pipe.db.pool.query(`UPDATE worse SET wrapped_dek = '\\x${randomBytes(33).toString('hex')}' WHERE id % 10 = 3`);
    const c = await pipe.create({
      name: 'ten percent poison',
      sources: [rowSource('worse')],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 50, concurrency: 4, maxFailureRatio: 0.02, minItemsForRatio: 100, kmsRequestsPerSecond: 300 },
    });
    const p = await pipe.waitFor(c.id, 'auto-paused', (x) => x.state !== 'running' && x.state !== 'planning', 120_000);
    expect(p.state).toBe('paused');
    expect(p.pauseReason).toMatch(/^auto-paused: failure ratio 0\.\d+ \(\d+ of \d+ done\) exceeds maxFailureRatio 0\.02; top reasons: malformed-wrapped-key \d+/);
    expect(p.remaining).toBeGreaterThan(0); // it stopped, it did not run to the end

    // Paused means paused: no store write lands later than the lease after the pause (a batch in
    // hand stops at its next lease renewal or, at the latest, when its lease runs out).
    const LEASE_MS = Number(pipe.env.REWRAP_LEASE_MS);
    const pausedAt = (await getCampaign(pipe.db.pool, c.id))!.updatedAt;
    await new Promise((r) => setTimeout(r, LEASE_MS + 2_000)); // waiting for something NOT to happen
    const writes = await rowWriteStats(pipe.db.pool, 'worse');
    expect(writes.lastAt!.getTime()).toBeLessThanOrEqual(pausedAt.getTime() + LEASE_MS);
    expect(writes.writes).toBeLessThan(N - N / 10);
    expect((await pipe.progress(c.id)).state).toBe('paused');

    const status = await rewrapCli(pipe, ['campaign', 'status', c.id, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const s = jsonOf<{ state: string; pauseReason: string; failuresByReason: { reason: string; items: number }[] }>(status);
    expect(s.state).toBe('paused');
    expect(s.pauseReason).toBe(p.pauseReason);
    expect(s.failuresByReason.map((r) => r.reason)).toEqual(['malformed-wrapped-key']);
    const human = await rewrapCli(pipe, ['campaign', 'status', c.id]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`paused (${p.pauseReason})`);
  }, 180_000);

  it('no DEK or KEK bytes in any process log or CLI output (invariant 5)', () => {
    for (const d of deks.values()) guard.secret(d);
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
