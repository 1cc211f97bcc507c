/**
 * Issue 17, point 4: `rewrap ledger prune` (the real CLI) against a real deployment. A table of
 * 300 rows under r@1, one of them with a wrapped DEK that does not authenticate, rotated to r@2:
 *   - --dry-run changes nothing (no row, no archive) and prints what would be deleted and kept;
 *   - a prune archives the completion report to a file (every item, the failure included), reads
 *     it back, then deletes the per-item rows in bounded steps: the campaign, its counters, its
 *     failure counts and a summary with the exposure totals stay (campaign status / list show them);
 *   - the retirement gate is not weakened (invariant 7): r@1 is still refused because of the
 *     failed item, named in the refusal and in the failures report, and the grace period still
 *     starts at the last move;
 *   - a second prune is harmless: nothing archived again, nothing more deleted;
 *   - campaigns that are not finished, or finished after the cutoff, are never touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { rowSource, rowTable } from './support/row-fixture.ts';
import { LeakGuard } from './support/leak-guard.ts';

const r1 = { id: 'r', version: '1', material: randomBytes(32) };
const r2 = { id: 'r', version: '2', material: randomBytes(32) };
/* Another KEK pair, for a batch-form campaign that prune skips (the r@1 gate stays this file's per-item campaign's). */
const q1 = { id: 'q', version: '1', material: randomBytes(32) };
const q2 = { id: 'q', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(r1.material, r2.material, q1.material, q2.material);
let pipe: Pipeline;
let keyringFile: string;
let archiveDir: string;
let campaignId: string;
let lastMovedAt: Date;
let batchFormId: string;

interface PruneJson {
  cutoff: string;
  dryRun: boolean;
  dekRewraps: number;
  skipped: { id: string; name: string; state: string; finishedAt: string; reason: string }[];
  campaigns: {
    id: string;
    prunedBefore: boolean;
    archive: { location: string; bytes: number } | null;
    deleted: { items: number; batches: number; progress: number; noncurrentVersions: number };
    kept: { failed: number; pending: number; movedSample: number };
  }[];
}

interface RetireJson {
  retired: boolean;
  blockers: string[];
  lastMovedAt: string | null;
  sample: { checked: number; failed: unknown[] };
}

async function cli(...args: string[]) {
  const r = await rewrapCli(pipe, args);
  guard.text(r.stdout, r.stderr);
  return r;
}

async function prune(...args: string[]): Promise<PruneJson> {
  const r = await cli('ledger', 'prune', '--json', ...args);
  expect(r.code, r.stderr).toBe(0);
  return jsonOf<PruneJson>(r);
}

async function ledgerRows(id: string): Promise<Record<string, number>> {
  const { rows } = await pipe.db.pool.query(
    `SELECT (SELECT count(*)::int FROM rewrap_campaign_items WHERE campaign_id = $1) AS items,
            (SELECT count(*)::int FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'failed') AS failed,
            (SELECT count(*)::int FROM rewrap_batches WHERE campaign_id = $1) AS batches,
            (SELECT count(*)::int FROM rewrap_progress WHERE campaign_id = $1) AS progress,
            (SELECT count(*)::int FROM rewrap_inventory) AS inventory,
            (SELECT count(*)::int FROM rewrap_campaign_summaries WHERE campaign_id = $1) AS summaries`,
    [id],
  );
  return rows[0];
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'prune', workers: 1 });
  keyringFile = await pipe.keyringFile([r1, r2, q1, q2]);
  await rowTable(pipe.db.pool, 'vault', 300, r1);
  await rowTable(pipe.db.pool, 'later', 10, r1);
  // Row 7's wrapped DEK does not authenticate under r@1: it fails and may still be under r@1.
  await pipe.db.pool.query(`UPDATE vault SET wrapped_dek = $1 WHERE id = 7`, [randomBytes(60)]);
  archiveDir = join(pipe.dir, 'archive');
  await mkdir(archiveDir);
  // Per-item form: prune archives and deletes per-item detail; batch-form campaigns are not pruned yet (README, "The batch ledger form").
  const c = await pipe.create({ name: 'drain r@1', sources: [rowSource('vault')], provider: { type: 'local', keyringFile }, from: 'r@1', to: 'r@2', options: { batchSize: 25 } }, true, 'items');
  campaignId = c.id;
  const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);
  expect(p).toMatchObject({ planned: 300, rewrapped: 299, failed: 1, skipped: 0 });
  const { rows } = await pipe.db.pool.query<{ at: Date }>(`SELECT max(done_at) AS at FROM rewrap_campaign_items WHERE campaign_id = $1 AND outcome = 'rewrapped'`, [c.id]);
  lastMovedAt = rows[0]!.at;
  // A batch-form campaign (the default for a table) that completed: listed as skipped, never pruned.
  await rowTable(pipe.db.pool, 'perbatch', 30, q1);
  const bf = await pipe.create({ name: 'drain q@1', sources: [rowSource('perbatch')], provider: { type: 'local', keyringFile }, from: 'q@1', to: 'q@2', options: { batchSize: 10 } });
  batchFormId = bf.id;
  expect(bf.ledgerForm).toBe('batches');
  await pipe.waitFor(bf.id, 'completed', (x) => x.state === 'completed', 120_000);
  // A campaign still planning (another table) must never be pruned, whatever its age.
  await pipe.create({ name: 'not started', sources: [rowSource('later')], provider: { type: 'local', keyringFile }, from: 'r@1', to: 'r@2' }, false);
}, 240_000);

afterAll(async () => {
  await pipe?.stop();
  expect(guard.findLeaks()).toEqual([]);
});

describe('rewrap ledger prune (issue 17, point 4)', () => {
  it('refuses without --older-than, or without --archive / --no-archive, saying what to give; --help says what is kept and deleted', async () => {
    const none = await cli('ledger', 'prune', '--archive', pathToFileURL(archiveDir).href);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--older-than is required/);
    const noArchive = await cli('ledger', 'prune', '--older-than', '90d');
    expect(noArchive.code).toBe(2);
    expect(noArchive.stderr).toMatch(/give --archive file:\/\/\/dir or --archive s3:\/\/bucket\/prefix \(or --no-archive/);
    const badUrl = await cli('ledger', 'prune', '--older-than', '90d', '--archive', '/tmp/x');
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/expected file:\/\/\/absolute\/directory or s3:\/\/bucket\/prefix/);
    const help = await cli('ledger', 'prune', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Kept: the campaign, its counters and failure-reason counts/);
    expect(help.stdout).toMatch(/deletes, in statements of at most --step-rows rows/);
  });

  it('a campaign that finished after the cutoff is not pruned (--older-than 90d)', async () => {
    const r = await prune('--older-than', '90d', '--archive', pathToFileURL(archiveDir).href);
    expect(r.campaigns).toEqual([]);
    expect((await ledgerRows(campaignId)).items).toBe(300);
  });

  it('--dry-run changes nothing and prints the counts it would delete and keep', async () => {
    const before = await ledgerRows(campaignId);
    const r = await prune('--older-than', '0s', '--archive', pathToFileURL(archiveDir).href, '--dry-run');
    expect(r.dryRun).toBe(true);
    expect(r.campaigns).toHaveLength(1);
    const c = r.campaigns[0]!;
    expect(c.id).toBe(campaignId);
    expect(c.kept).toEqual({ failed: 1, pending: 0, movedSample: expect.any(Number) });
    expect(c.kept.movedSample).toBeGreaterThanOrEqual(100);
    expect(c.deleted).toEqual({ items: 299 - c.kept.movedSample, batches: 12, progress: expect.any(Number), noncurrentVersions: 0 });
    expect(await ledgerRows(campaignId)).toEqual(before);
    await expect(stat(join(archiveDir, `${campaignId}.completion.jsonl`))).rejects.toThrow(/ENOENT/);
    const human = await cli('ledger', 'prune', '--older-than', '0s', '--archive', pathToFileURL(archiveDir).href, '--dry-run');
    expect(human.stdout).toMatch(new RegExp(`dry run: 1 campaign\\(s\\)[^]*${campaignId}[^]*would delete ${c.deleted.items} item row\\(s\\), 12 batch row\\(s\\)[^]*kept 1 failed`));
    // The batch-form campaign is named as skipped, and why.
    expect(r.skipped).toEqual([{ id: batchFormId, name: 'drain q@1', state: 'completed', finishedAt: expect.any(String), reason: 'batch-ledger-form' }]);
    expect(human.stdout).toMatch(new RegExp(`skipped ${batchFormId} "drain q@1" \\(completed [^)]+\\): batch ledger form`));
  });

  it('a prune archives the completion report to a file (every item, the failure included), then deletes the per-item rows in bounded steps; counters, failure counts and the summary stay', async () => {
    const before = await ledgerRows(campaignId);
    const r = await prune('--older-than', '0s', '--archive', pathToFileURL(archiveDir).href, '--step-rows', '40');
    const c = r.campaigns[0]!;
    const file = join(archiveDir, `${campaignId}.completion.jsonl`);
    expect(c.archive).toEqual({ location: pathToFileURL(file).href, bytes: (await stat(file)).size });
    const lines = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { item: string; outcome: string; reason: string | null; to_kek: string | null });
    expect(lines).toHaveLength(300);
    expect(lines.filter((l) => l.outcome === 'rewrapped' && l.to_kek === 'r@2')).toHaveLength(299);
    expect(lines.find((l) => l.item === '7')).toMatchObject({ outcome: 'failed', reason: expect.any(String) });

    const after = await ledgerRows(campaignId);
    expect(after).toEqual({ ...before, items: 1 + c.kept.movedSample, failed: 1, batches: 0, progress: 0, summaries: 1 });
    expect(c.deleted.items).toBe(299 - c.kept.movedSample);

    const status = jsonOf<{ state: string; planned: number; rewrapped: number; failed: number; failuresByReason: unknown[]; pruned: { rowsDeleted: number; archive: unknown; exposure: { totals: Record<string, number> } } }>(
      await cli('campaign', 'status', campaignId, '--json'),
    );
    expect(status).toMatchObject({ state: 'completed', planned: 300, rewrapped: 299, failed: 1 });
    expect(status.failuresByReason).toHaveLength(1);
    expect(status.pruned.archive).toEqual(c.archive);
    expect(status.pruned.rowsDeleted).toBe(c.deleted.items + c.deleted.batches + c.deleted.progress);
    expect(status.pruned.exposure.totals).toMatchObject({ underKek: 300, moved: 299, exposed: 1 });
    const human = await cli('campaign', 'status', campaignId);
    expect(human.stdout).toMatch(/pruned .*per-item row\(s\) deleted; archive file:\/\/.*completion\.jsonl/);
    expect(human.stdout).toMatch(/exposure totals: under source 300, moved 299, moved-unconfirmed 0, exposed 1/);
    const list = jsonOf<{ id: string; planned: number; rewrapped: number }[]>(await cli('campaign', 'list', '--json'));
    expect(list.find((x) => x.id === campaignId)).toMatchObject({ planned: 300, rewrapped: 299 });
  });

  it('after the prune, kek retire r@1 is still refused for the failed item, which the refusal and the failures report name; the grace period still starts at the last move (invariant 7)', async () => {
    const r = await cli('kek', 'retire', 'r@1', '--json', '--grace', '1s', '--full');
    expect(r.code, r.stderr).toBe(3);
    const j = jsonOf<RetireJson>(r);
    expect(j.retired).toBe(false);
    expect(j.blockers).toContainEqual(expect.stringMatching(/^pg:vault: 1 item\(s\) failed to move and may still be under r@1 \(1 invalid-ciphertext; "7"; rewrap campaign report/));
    // The full pass re-reads the store itself: row 7 is still there, under r@1.
    expect(j.blockers).toContain('pg:vault: 1 item(s) under r@1 found re-reading the store');
    expect(new Date(j.lastMovedAt!).getTime()).toBe(lastMovedAt.getTime());
    expect(j.sample.checked).toBeGreaterThan(0);
    expect(j.sample.failed).toEqual([]);
    const failures = await cli('campaign', 'report', campaignId, '--kind', 'failures');
    expect(failures.code).toBe(0);
    expect(failures.stdout).toMatch(/"item":"7"/);
    expect(failures.stderr).toMatch(/per-item detail pruned at .*; the full completion report is in file:\/\//);
  });

  it('running prune again is harmless: not archived again, nothing more deleted, the archive unchanged; the unstarted campaign is untouched', async () => {
    const file = join(archiveDir, `${campaignId}.completion.jsonl`);
    const st = await stat(file);
    const before = await ledgerRows(campaignId);
    const r = await prune('--older-than', '0s', '--archive', pathToFileURL(archiveDir).href);
    expect(r.campaigns).toHaveLength(1);
    expect(r.campaigns[0]).toMatchObject({ id: campaignId, prunedBefore: true, deleted: { items: 0, batches: 0, progress: 0, noncurrentVersions: 0 } });
    expect(await ledgerRows(campaignId)).toEqual(before);
    const again = await stat(file);
    expect([again.size, again.mtimeMs]).toEqual([st.size, st.mtimeMs]);
    const { rows } = await pipe.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM rewrap_campaigns WHERE state = 'planning'`);
    expect(rows[0]!.n).toBe(1);
  });
});
