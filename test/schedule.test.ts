/**
 * Scheduled rotation against a real deployment (scheduler + worker processes, test/support/pipeline.ts).
 * The schedules under test run on a test clock passed to runDueSchedules; their due times lie in
 * 2100, so the real scheduler process (real clock) never runs them itself. The missed-runs case
 * uses the real scheduler process and a schedule whose due times lie in the past.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { loadConfig } from '../src/config.ts';
import { Resources } from '../src/runtime/resources.ts';
import { createSchedule, deleteSchedule, listCampaigns, listScheduleRuns, listSchedules } from '../src/ledger/index.ts';
import { parseScheduleSpec } from '../src/schedule/schedule-spec.ts';
import { runDueSchedules } from '../src/schedule/run-due-schedules.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { unwrapAll } from '../dev/reference/row-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowTable, rowsAt } from './support/row-fixture.ts';
import { LeakGuard } from './support/leak-guard.ts';

let pipe: Pipeline;
let res: Resources;
const guard = new LeakGuard();
const at = (iso: string) => new Date(iso);

beforeAll(async () => {
  pipe = await startPipeline({ label: 'sched', workers: 1 });
  res = new Resources(loadConfig(pipe.env));
}, 120_000);

afterAll(async () => {
  await res?.close();
  await pipe?.stop();
});

function scheduleDoc(name: string, cron: string, table: string, keyringFile: string, kek: string) {
  return { name, cron, kek, campaign: { sources: [rowSource(table)], provider: { type: 'local', keyringFile }, options: { batchSize: 50 } } };
}

/** Every version in the keyring file, with its material (for the independent unwrap). */
async function keyringVersions(file: string) {
  return loadKeyringFile(file).map((e) => ({ id: e.id, version: e.version, material: e.material, state: e.state }));
}

describe('scheduled rotation', () => {
  it('a schedule due every minute creates a new keyring version and a campaign that drains the old one; ticks that are not due create nothing', async () => {
    const v1 = { id: 's', version: '1', material: randomBytes(32) };
    guard.secret(v1.material);
    const keyringFile = await pipe.keyringFile([v1]);
    const deks = await rowTable(pipe.db.pool, 'secrets', 300, v1);
    await createSchedule(pipe.db.pool, parseScheduleSpec(scheduleDoc('every-minute', '* * * * *', 'secrets', keyringFile, 's'), at('2100-01-04T00:00:10Z')));

    expect(await runDueSchedules(res, guard.logger, at('2100-01-04T00:00:59Z'))).toEqual([]);
    const [run] = await runDueSchedules(res, guard.logger, at('2100-01-04T00:01:00Z'));
    expect(run).toMatchObject({ schedule: 'every-minute', outcome: 'campaign-started', from: 's@1', to: 's@2' });
    // A second tick in the same minute: not due again, nothing created.
    expect(await runDueSchedules(res, guard.logger, at('2100-01-04T00:01:30Z'))).toEqual([]);
    expect((await listCampaigns(pipe.db.pool)).filter((c) => c.name.startsWith('every-minute'))).toHaveLength(1);

    // The keyring file: the new version appended with fresh material, still private to its owner.
    const keks = await keyringVersions(keyringFile);
    expect(keks.map((k) => `${k.id}@${k.version}:${k.state}`)).toEqual(['s@1:enabled', 's@2:enabled']);
    const v2 = keks[1]!;
    guard.secret(v2.material);
    expect(v2.material.equals(v1.material)).toBe(false);
    expect((await stat(keyringFile)).mode & 0o777).toBe(0o600);

    const p = await pipe.waitFor(run!.campaignId!, 'completed', (x) => x.state === 'completed', 120_000);
    expect(p).toMatchObject({ planned: 300, rewrapped: 300, failed: 0 });
    expect(await rowsAt(pipe.db.pool, 'secrets', 's', '1')).toBe(0);
    // Independent check: every row unwraps with s@2's material alone and gives back its DEK.
    const rows = await unwrapAll(pipe.db.pool, 'secrets', [v2]);
    expect(rows.size).toBe(300);
    for (const [id, r] of rows) expect(r.dek.equals(deks.get(id)!), `row ${id}`).toBe(true);
    const [s] = await listSchedules(pipe.db.pool, 'every-minute');
    expect(s!.nextRunAt.toISOString()).toBe('2100-01-04T00:02:00.000Z');
    expect(s!.lastRun).toMatchObject({ outcome: 'campaign-started', campaignId: run!.campaignId });
    expect(await deleteSchedule(pipe.db.pool, 'every-minute')).toBe(true); // the other tests' clocks are later
  }, 180_000);

  it('a due schedule with nothing under the current KEK creates no key version and no campaign', async () => {
    const e1 = { id: 'e', version: '1', material: randomBytes(32) };
    const keyringFile = await pipe.keyringFile([e1]);
    await rowTable(pipe.db.pool, 'nothing', 0, e1);
    await createSchedule(pipe.db.pool, parseScheduleSpec(scheduleDoc('empty-table', '* * * * *', 'nothing', keyringFile, 'e'), at('2100-02-01T00:00:00Z')));
    const before = await readFile(keyringFile, 'utf8');
    const campaignsBefore = (await listCampaigns(pipe.db.pool)).length;
    for (const tick of ['2100-02-01T00:01:00Z', '2100-02-01T00:02:00Z']) {
      const [run] = await runDueSchedules(res, guard.logger, at(tick));
      expect(run).toMatchObject({ schedule: 'empty-table', outcome: 'nothing-to-move', from: 'e@1' });
    }
    expect(await readFile(keyringFile, 'utf8')).toBe(before);
    expect((await listCampaigns(pipe.db.pool)).length).toBe(campaignsBefore);
    const runs = await listScheduleRuns(pipe.db.pool, 'empty-table');
    expect(runs.map((r) => r.outcome)).toEqual(['nothing-to-move', 'nothing-to-move']);
    expect(runs[0]!.detail).toMatch(/nothing in the sources is under e@1/);
  });

  it('a scheduler restarted after missing several due times runs the schedule once', async () => {
    const m1 = { id: 'm', version: '1', material: randomBytes(32) };
    guard.secret(m1.material);
    const keyringFile = await pipe.keyringFile([m1]);
    await rowTable(pipe.db.pool, 'missed', 120, m1);
    await pipe.scheduler.stop('SIGTERM', 10_000);
    // Created (on a test clock) in mid-2024, due every 1 January: 2025 and 2026 were missed.
    await createSchedule(pipe.db.pool, parseScheduleSpec(scheduleDoc('yearly', '0 0 1 1 *', 'missed', keyringFile, 'm'), at('2024-06-01T00:00:00Z')));
    await pipe.startScheduler();

    const deadline = Date.now() + 60_000;
    let runs = await listScheduleRuns(pipe.db.pool, 'yearly');
    while (!runs.some((r) => r.finishedAt) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      runs = await listScheduleRuns(pipe.db.pool, 'yearly');
    }
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ outcome: 'campaign-started', fromKek: 'm@1', toKek: 'm@2' });
    const [s] = await listSchedules(pipe.db.pool, 'yearly');
    expect(s!.nextRunAt.getTime()).toBeGreaterThan(Date.now()); // no missed run left to replay
    expect((await keyringVersions(keyringFile)).map((k) => `${k.id}@${k.version}`)).toEqual(['m@1', 'm@2']);
    await pipe.waitFor(runs[0]!.campaignId!, 'completed', (x) => x.state === 'completed', 120_000);
    expect(await rowsAt(pipe.db.pool, 'missed', 'm', '1')).toBe(0);
    expect(await rowsAt(pipe.db.pool, 'missed', 'm', '2')).toBe(120);
  }, 180_000);

  it('no key bytes in the scheduler\'s or the test\'s logs (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
