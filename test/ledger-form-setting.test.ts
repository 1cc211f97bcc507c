/**
 * REWRAP_LEDGER_FORM is read by every path that creates a campaign (`campaign create`, the API,
 * schedules, `incident start`), and `auto` takes the batch ledger form where the spec allows it
 * (Postgres table sources, with or without a canary) and the per-item form otherwise, instead of
 * refusing. Through real scheduler and worker processes, the real CLI and the real API server:
 * each batch-form campaign moves every row (each unwraps under the new KEK to its original DEK)
 * and leaves no per-item ledger row. Unset, the variable means `auto`; `items` keeps the per-item
 * form for every campaign.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { unwrapAll, type RowKek } from '../dev/reference/row-client.ts';
import { loadConfig } from '../src/config.ts';
import { Resources } from '../src/runtime/resources.ts';
import { startApiServer, type ApiServer } from '../src/api/server.ts';
import { createLogger } from '../src/log.ts';
import { createSchedule, getCampaign, listCampaigns } from '../src/ledger/index.ts';
import { parseScheduleSpec } from '../src/schedule/schedule-spec.ts';
import { runDueSchedules } from '../src/schedule/run-due-schedules.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowTable } from './support/row-fixture.ts';
import { jsonOf, rewrapCli, specFile } from './support/cli.ts';
import { runRewrap } from '../dev/services/processes.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';

const keks = Object.fromEntries(
  ['a@1', 'a@2', 'i@1', 'i@2', 'p@1', 'p@2', 'm@1', 'm@2', 'n@1', 'n@2', 'k@1', 'k@2', 's@1', 'd@1', 'd@2', 'o@1', 'o@2'].map((name) => {
    const [id, version] = name.split('@') as [string, string];
    return [name, { id, version, material: randomBytes(32) } satisfies RowKek];
  }),
) as Record<string, RowKek>;

let pipe: Pipeline;
let keyringFile: string;
let res: Resources;
const guard = new LeakGuard();
guard.secret(...Object.values(keks).map((k) => k.material));

const spec = (name: string, table: string, kek: Record<string, unknown>, options: Record<string, unknown> = {}) => ({
  name,
  sources: [rowSource(table)],
  provider: { type: 'local', keyringFile },
  ...kek,
  options: { batchSize: 40, concurrency: 4, ...options },
});

async function form(campaignId: string): Promise<{ form: string; items: number; batches: number }> {
  const { rows } = await pipe.db.pool.query(
    `SELECT ledger_form AS form,
            (SELECT count(*) FROM rewrap_campaign_items WHERE campaign_id = $1)::int AS items,
            (SELECT count(*) FROM rewrap_batches WHERE campaign_id = $1)::int AS batches
       FROM rewrap_campaigns WHERE id = $1`,
    [campaignId],
  );
  return rows[0];
}

/** The campaign completes, every row of the table is under `to` with its original DEK, and the ledger holds batch rows only. */
async function movedInBatchForm(campaignId: string, table: string, deks: Map<string, Buffer>, to: RowKek): Promise<void> {
  await pipe.waitFor(campaignId, 'completed', (p) => p.state === 'completed', 60_000);
  const rows = await unwrapAll(pipe.db.pool, table, Object.values(keks));
  expect(rows.size).toBe(deks.size);
  for (const [id, dek] of deks) {
    expect(rows.get(id)?.kek, `row ${id}`).toBe(`${to.id}@${to.version}`);
    expect(rows.get(id)!.dek.equals(dek), `row ${id} keeps its DEK`).toBe(true);
  }
  const f = await form(campaignId);
  expect(f).toMatchObject({ form: 'batches', items: 0 });
  expect(f.batches).toBeGreaterThan(0);
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'ledgerform', workers: 2, env: { REWRAP_LEDGER_FORM: 'auto' } });
  keyringFile = await pipe.keyringFile(Object.values(keks));
  res = new Resources(loadConfig(pipe.env));
}, 120_000);

afterAll(async () => {
  await res?.close();
  await pipe?.stop();
});

describe('REWRAP_LEDGER_FORM on every path that creates a campaign', () => {
  it('campaign create, auto: a table campaign is recorded per batch and moves every row; a canary campaign too, the canary moves counted once', async () => {
    const deks = await rowTable(pipe.db.pool, 'cli_rows', 300, keks['a@1']!);
    const r = await rewrapCli(pipe, ['campaign', 'create', '--json', '--start', '--spec', await specFile(pipe, spec('cli auto', 'cli_rows', { from: 'a@1', to: 'a@2' }))]);
    guard.text(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    await movedInBatchForm(jsonOf<{ id: string }>(r).id, 'cli_rows', deks, keks['a@2']!);

    const canaryDeks = await rowTable(pipe.db.pool, 'cli_map', 100, keks['k@1']!);
    const map = await rewrapCli(pipe, ['campaign', 'create', '--json', '--start', '--spec', await specFile(pipe, spec('cli canary', 'cli_map', { from: 'k@1', to: 'k@2' }, { canaryFraction: 0.1 }))]);
    guard.text(map.stdout, map.stderr);
    expect(map.code, map.stderr).toBe(0);
    const canaryId = jsonOf<{ id: string }>(map).id;
    await movedInBatchForm(canaryId, 'cli_map', canaryDeks, keks['k@2']!);
    /* The canary moved 10 rows of the first ranges before any batch ran; the batches did the other 90, and each row counts once. */
    expect(await pipe.progress(canaryId)).toMatchObject({ planned: 100, rewrapped: 100, skipped: 0, failed: 0 });
    expect((await getCampaign(pipe.db.pool, canaryId))!.canaryState).toBe('passed');
  });

  it('the API, auto: a table campaign is recorded per batch and moves every row; a canary campaign too', async () => {
    const deks = await rowTable(pipe.db.pool, 'api_rows', 200, keks['p@1']!);
    const policy = { keyringFiles: [keyringFile], kmsEndpoints: [], kmsRegions: [], keys: ['*'], manifestFiles: [], buckets: [], tables: ['*'] };
    const token = randomBytes(16).toString('hex');
    const api: ApiServer = await startApiServer({ pool: pipe.db.pool, config: loadConfig(pipe.env), log: createLogger({ level: 'silent' }), port: 0, token, policy });
    try {
      const post = (body: unknown) =>
        fetch(`${api.url}/api/campaigns?start=true`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const r = await post(spec('api auto', 'api_rows', { from: 'p@1', to: 'p@2' }));
      const created = (await r.json()) as { id: string };
      expect(r.status, JSON.stringify(created)).toBe(201);
      await movedInBatchForm(created.id, 'api_rows', deks, keks['p@2']!);

      await rowTable(pipe.db.pool, 'api_canary', 20, keks['n@1']!);
      const canary = await post(spec('api canary', 'api_canary', { from: 'n@1', to: 'n@2' }, { canaryFraction: 0.1 }));
      const c = (await canary.json()) as { id: string };
      expect(canary.status, JSON.stringify(c)).toBe(201);
      expect(await form(c.id)).toMatchObject({ form: 'batches', items: 0 });
    } finally {
      await api.close();
    }
  });

  it('incident start, auto: the incident campaign is recorded per batch and moves every row', async () => {
    const deks = await rowTable(pipe.db.pool, 'incident_rows', 200, keks['i@1']!);
    const r = await rewrapCli(pipe, ['incident', 'start', '--kek', 'i@1', '--to', 'i@2', '--json', '--spec', await specFile(pipe, spec('incident auto', 'incident_rows', { from: 'i@1', to: 'i@2' }))]);
    guard.text(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    await movedInBatchForm(jsonOf<{ id: string }>(r).id, 'incident_rows', deks, keks['i@2']!);
  });

  it('a schedule, auto: the campaign it starts is recorded per batch and moves every row to the new keyring version', async () => {
    const s1 = keks['s@1']!;
    const scheduleKeyring = await pipe.keyringFile([s1]);
    const deks = await rowTable(pipe.db.pool, 'sched_rows', 150, s1);
    const doc = { name: 'auto-form', cron: '* * * * *', kek: 's', campaign: { sources: [rowSource('sched_rows')], provider: { type: 'local', keyringFile: scheduleKeyring }, options: { batchSize: 40 } } };
    await createSchedule(pipe.db.pool, parseScheduleSpec(doc, new Date('2100-03-01T00:00:00Z')));
    const [run] = await runDueSchedules(res, guard.logger, new Date('2100-03-01T00:01:00Z'));
    expect(run).toMatchObject({ schedule: 'auto-form', outcome: 'campaign-started', from: 's@1', to: 's@2' });
    const campaign = (await listCampaigns(pipe.db.pool)).find((c) => c.id === run!.campaignId)!;
    await pipe.waitFor(campaign.id, 'completed', (p) => p.state === 'completed', 60_000);
    const rows = await unwrapAll(pipe.db.pool, 'sched_rows', newVersions(scheduleKeyring));
    for (const [id, dek] of deks) {
      expect(rows.get(id)?.kek, `row ${id}`).toBe('s@2');
      expect(rows.get(id)!.dek.equals(dek)).toBe(true);
    }
    expect(await form(campaign.id)).toMatchObject({ form: 'batches', items: 0 });
  });

  it('unset, the default is auto: a table campaign is recorded per batch; REWRAP_LEDGER_FORM=items keeps one row per item', async () => {
    const deks = await rowTable(pipe.db.pool, 'default_rows', 120, keks['d@1']!);
    const r = await runRewrap(['campaign', 'create', '--json', '--start', '--spec', await specFile(pipe, spec('default form', 'default_rows', { from: 'd@1', to: 'd@2' }))], { ...pipe.env, REWRAP_LEDGER_FORM: '' });
    guard.text(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(0);
    await movedInBatchForm(jsonOf<{ id: string }>(r).id, 'default_rows', deks, keks['d@2']!);

    await rowTable(pipe.db.pool, 'items_rows', 120, keks['o@1']!);
    const items = await runRewrap(['campaign', 'create', '--json', '--start', '--spec', await specFile(pipe, spec('items form', 'items_rows', { from: 'o@1', to: 'o@2' }))], { ...pipe.env, REWRAP_LEDGER_FORM: 'items' });
    guard.text(items.stdout, items.stderr);
    expect(items.code, items.stderr).toBe(0);
    const id = jsonOf<{ id: string }>(items).id;
    await pipe.waitFor(id, 'completed', (p) => p.state === 'completed', 60_000);
    expect(await form(id)).toMatchObject({ form: 'items', items: 120 });
    expect(await pipe.progress(id)).toMatchObject({ planned: 120, rewrapped: 120, failed: 0 });
  });

  it('a value that is not a form is refused, naming the variable and the three it takes', async () => {
    const r = await runRewrap(['campaign', 'create', '--json', '--spec', await specFile(pipe, spec('bad form', 'cli_rows', { from: 'a@2', to: 'a@1' }))], { ...pipe.env, REWRAP_LEDGER_FORM: 'rows' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('REWRAP_LEDGER_FORM');
    for (const v of ['"items"', '"batches"', '"auto"', '"rows"']) expect(r.stderr).toContain(v);
  });

  it('no DEK or KEK bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});

/** Every version in the keyring file (the schedule appended one), with its material (for the independent unwrap). */
function newVersions(file: string): RowKek[] {
  return loadKeyringFile(file).map((e) => ({ id: e.id, version: e.version, material: e.material }));
}
