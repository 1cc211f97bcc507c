/**
 * Completion and exposure reports (`rewrap campaign report`, the real CLI) of an incident campaign
 * over S3 objects and Postgres rows, reconciled row by row with an independent scan: every item is
 * decrypted with the reference client (dev/reference/), using only the KEKs given to it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted, aesUnwrap } from '../dev/reference/s3ec-client.ts';
import { insertRows } from '../dev/reference/row-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { rowSource, rowTable } from './support/row-fixture.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const o1 = { id: 'o', version: '1', material: randomBytes(32) };
const OBJECTS = 60;
const ROWS = 100;
const CORRUPT = ['1', '2', '3'];
const guard = new LeakGuard();
guard.secret(k1.material, k2.material, o1.material);

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
let campaignId: string;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'reports', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'reports');
  for (let i = 0; i < OBJECTS; i += 20) {
    await Promise.all(
      Array.from({ length: 20 }, (_, j) =>
        putEncrypted(s3, tb.bucket, `obj/${i + j}`, randomBytes(100), { placement: 'metadata', wrap: { kind: 'aes', material: k1.material, matdesc: { kek: 'k@1' } } }),
      ),
    );
  }
  // Two objects without any envelope (not-encrypted), two under another KEK (not-under-source),
  // 100 rows under k@1 of which 3 are corrupt (invalid-ciphertext: they stay exposed), and 5 rows
  // under another KEK (out of scope: a pg source plans only rows whose KEK columns say k@1).
  for (const key of ['plain/a', 'plain/b']) await s3.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: 'hello' }));
  for (const key of ['other/a', 'other/b']) {
    await putEncrypted(s3, tb.bucket, key, randomBytes(10), { placement: 'metadata', wrap: { kind: 'aes', material: o1.material, matdesc: { kek: 'o@1' } } });
  }
  await rowTable(pipe.db.pool, 'accounts', ROWS, k1);
  await insertRows(pipe.db.pool, 'accounts', 5, o1, ROWS + 1);
  await pipe.db.pool.query(`UPDATE accounts SET wrapped_dek = set_byte(wrapped_dek, 20, (get_byte(wrapped_dek, 20) + 1) % 256) WHERE id = ANY($1::bigint[])`, [CORRUPT]);
  const keyringFile = await pipe.keyringFile([k1, k2, o1]);
  const c = await pipe.create({
    name: 'incident k@1',
    kind: 'incident',
    sources: [{ type: 's3', bucket: tb.bucket }, rowSource('accounts')],
    provider: { type: 'local', keyringFile },
    from: 'k@1',
    to: 'k@2',
    options: { batchSize: 40 },
  });
  campaignId = c.id;
  await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
}, 240_000);

afterAll(async () => {
  await pipe?.stop();
  await tb?.cleanup();
});

/** What the stores say, item by item, decrypting with the reference client and only the KEKs given. */
async function independentScan(): Promise<Map<string, { outcome: string; reason?: string; to?: string; underK1: boolean }>> {
  const scan = new Map<string, { outcome: string; reason?: string; to?: string; underK1: boolean }>();
  const aes = new Map([[matdescKey({ kek: 'k@2' }), k2.material]]);
  for (let i = 0; i < OBJECTS; i++) {
    const d = await getDecrypted(s3, tb.bucket, `obj/${i}`, { aes }); // throws unless under k@2
    expect(d.payload.length).toBe(100);
    scan.set(`s3://${tb.bucket}|obj/${i}`, { outcome: 'rewrapped', to: 'k@2', underK1: false });
  }
  for (const key of ['plain/a', 'plain/b']) scan.set(`s3://${tb.bucket}|${key}`, { outcome: 'failed', reason: 'not-encrypted', underK1: false });
  const other = new Map([[matdescKey({ kek: 'o@1' }), o1.material]]);
  for (const key of ['other/a', 'other/b']) {
    await getDecrypted(s3, tb.bucket, key, { aes: other }); // still under o@1, untouched
    scan.set(`s3://${tb.bucket}|${key}`, { outcome: 'skipped', reason: 'not-under-source', underK1: false });
  }
  const keks = new Map([['k@1', k1.material], ['k@2', k2.material], ['o@1', o1.material]]);
  const { rows } = await pipe.db.pool.query<{ id: string; wrapped_dek: Buffer; kek: string }>(`SELECT id::text, wrapped_dek, kek_id || '@' || kek_version AS kek FROM accounts`);
  for (const r of rows) {
    let ok = true;
    try {
      aesUnwrap(keks.get(r.kek)!, r.wrapped_dek).fill(0);
    } catch {
      ok = false;
    }
    const key = `pg:accounts|${r.id}`;
    if (r.kek === 'k@2' && ok) scan.set(key, { outcome: 'rewrapped', to: 'k@2', underK1: false });
    else if (r.kek === 'o@1' && ok) continue; // never planned: not in the campaign's scope
    else if (r.kek === 'k@1' && !ok) scan.set(key, { outcome: 'failed', reason: 'invalid-ciphertext', underK1: true });
    else throw new Error(`row ${r.id}: unexpected state ${r.kek} (decrypts: ${ok})`);
  }
  return scan;
}

/** Only the fields that are set. */
function clean(o: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as Record<string, string>;
}

/** Parses RFC 4180 CSV (quoted fields may hold commas, quotes and newlines). */
function parseCsv(text: string): Record<string, string>[] {
  const records: string[][] = [];
  let field = '';
  let rec: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') rec.push(field), (field = '');
    else if (ch === '\n') rec.push(field), records.push(rec), (rec = []), (field = '');
    else field += ch;
  }
  const [header, ...rest] = records;
  return rest.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i] ?? ''])));
}

describe('campaign reports', () => {
  it('the completion report (CSV, written to S3) has one row per item and agrees exactly with an independent scan', async () => {
    const cli = await rewrapCli(pipe, ['campaign', 'report', campaignId, '--kind', 'completion', '--format', 'csv', '--out', `s3://${tb.bucket}/reports/completion.csv`, '--json']);
    guard.text(cli.stdout, cli.stderr);
    expect(cli.code, cli.stderr).toBe(0);
    expect(jsonOf(cli)).toMatchObject({ kind: 'completion', items: OBJECTS + 4 + ROWS, byOutcome: { rewrapped: OBJECTS + ROWS - 3, skipped: 2, failed: 5 } });
    const obj = await s3.send(new GetObjectCommand({ Bucket: tb.bucket, Key: 'reports/completion.csv' }));
    const rows = parseCsv(await obj.Body!.transformToString());
    const report = new Map(rows.map((r) => [`${r.store}|${r.item}`, clean({ outcome: r.outcome!, reason: r.reason, to: r.to_kek })]));
    expect(report.size).toBe(rows.length); // one row per item
    const scan = await independentScan();
    expect(report).toEqual(new Map([...scan].map(([k, s]) => [k, clean({ outcome: s.outcome, reason: s.reason, to: s.to })])));
    for (const r of rows.filter((x) => x.outcome !== 'pending')) expect(Number.isFinite(Date.parse(r.at!)), `${r.item} at`).toBe(true);
    expect(rows.filter((r) => r.outcome === 'rewrapped').every((r) => r.from_kek === 'k@1')).toBe(true);
  }, 60_000);

  it('the exposure report (JSONL) lists exactly the items that were under the compromised KEK: moved when, or still exposed; totals and timeline add up', async () => {
    const out = join(pipe.dir, 'exposure.jsonl');
    const cli = await rewrapCli(pipe, ['campaign', 'report', campaignId, '--kind', 'exposure', '--out', out, '--json']);
    guard.text(cli.stdout, cli.stderr);
    expect(cli.code, cli.stderr).toBe(0);
    const summary = jsonOf<{ totals: Record<string, number>; exposedByStore: Record<string, number>; stillUnderKekByStore: Record<string, number>; timeline: { minute: string; moved: number }[] }>(cli);
    const lines = (await readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { store: string; item: string; status: string; moved_at: string | null; to_kek: string | null });

    // Independent: moved = every item created under k@1 that now decrypts under k@2; exposed = what still only k@1 names.
    const scan = await independentScan();
    const moved = [...scan].filter(([, s]) => s.outcome === 'rewrapped').map(([k]) => k).sort();
    const exposed = [...scan].filter(([, s]) => s.underK1).map(([k]) => k).sort();
    expect(lines.filter((l) => l.status === 'moved').map((l) => `${l.store}|${l.item}`).sort()).toEqual(moved);
    expect(lines.filter((l) => l.status === 'exposed').map((l) => `${l.store}|${l.item}`).sort()).toEqual(exposed);
    expect(exposed).toEqual(CORRUPT.map((id) => `pg:accounts|${id}`).sort());
    for (const l of lines.filter((x) => x.status === 'moved')) {
      expect(l.to_kek).toBe('k@2');
      expect(Number.isFinite(Date.parse(l.moved_at!))).toBe(true);
    }
    expect(summary.totals).toEqual({ underKek: moved.length + exposed.length, moved: moved.length, movedUnconfirmed: 0, exposed: exposed.length, neverUnderKek: 2, noEnvelope: 2, noncurrentExposed: 0 });
    expect(summary.exposedByStore).toEqual({ 'pg:accounts': 3 });
    expect(summary.stillUnderKekByStore).toEqual({ 'pg:accounts': 3 });
    expect(summary.timeline.reduce((a, t) => a + t.moved, 0)).toBe(moved.length);
  }, 60_000);

  it('kek retire refuses the compromised KEK while items that failed to move may still be under it', async () => {
    const cli = await rewrapCli(pipe, ['kek', 'retire', 'k@1', '--grace', '0', '--json']);
    guard.text(cli.stdout, cli.stderr);
    expect(cli.code, cli.stderr).toBe(3);
    const r = jsonOf<{ retired: boolean; blockers: string[] }>(cli);
    expect(r.retired).toBe(false);
    // The failed items are in the inventory under k@1 (a failure records the KEK that wraps the item).
    expect(r.blockers).toEqual([expect.stringMatching(/^pg:accounts: 3 item\(s\) still under k@1|^pg:accounts: 3 item\(s\) failed to move and may still be under k@1/)]);
  }, 60_000);

  it('no key bytes in any process log or report output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
