/**
 * Scheduled rotation of a KMS key (the local KMS server over HTTP, a real scheduler and worker):
 * "new-key" creates a successor key and a campaign that drains the old one, and the schedule
 * follows the new key next time. "rotate-on-demand" over items with no recorded key material
 * refuses plainly instead of rotating the material and moving nothing (README, Known limits).
 * The schedules run on a test clock (their due times lie in 2100).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateKeyCommand, DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { loadConfig } from '../src/config.ts';
import { Resources } from '../src/runtime/resources.ts';
import { createSchedule, deleteSchedule, listCampaigns, listScheduleRuns, listSchedules } from '../src/ledger/index.ts';
import { parseScheduleSpec } from '../src/schedule/schedule-spec.ts';
import { runDueSchedules } from '../src/schedule/run-due-schedules.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { expectKmsRowsUnder, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';

const ROWS = 100;
let pipe: Pipeline;
let res: Resources;
let kms: KMSClient;
const guard = new LeakGuard();
const at = (iso: string) => new Date(iso);

beforeAll(async () => {
  pipe = await startPipeline({ label: 'sched-kms', workers: 1 });
  res = new Resources(loadConfig(pipe.env));
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
}, 120_000);

afterAll(async () => {
  kms?.destroy();
  await res?.close();
  await pipe?.stop();
});

function scheduleDoc(name: string, table: string, kek: string, kmsRotation: string) {
  return {
    name,
    cron: '0 0 * * *',
    kek,
    kmsRotation,
    campaign: {
      sources: [kmsRowSource(table)],
      provider: { type: 'kms' },
      options: { batchSize: 25 },
    },
  };
}

describe('scheduled rotation of a KMS key', () => {
  it('"new-key": a successor key is created, the campaign drains the old key into it, and the schedule follows the new key', async () => {
    const oldKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const { deks } = await kmsRowTable(pipe.db.pool, kms, 'kms_new_key', ROWS, oldKey);
    await createSchedule(pipe.db.pool, parseScheduleSpec(scheduleDoc('kms-new-key', 'kms_new_key', oldKey, 'new-key'), at('2100-03-01T12:00:00Z')));

    const [run] = await runDueSchedules(res, guard.logger, at('2100-03-02T00:00:00Z'));
    expect(run).toMatchObject({ schedule: 'kms-new-key', outcome: 'campaign-started', from: oldKey });
    const newKey = run!.to!;
    expect(newKey).not.toBe(oldKey);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: newKey }))).KeyMetadata).toMatchObject({ Enabled: true, Description: expect.stringContaining('kms-new-key') });

    const p = await pipe.waitFor(run!.campaignId!, 'completed', (x) => x.state === 'completed', 120_000);
    expect(p).toMatchObject({ planned: ROWS, rewrapped: ROWS, failed: 0 });
    expect(await expectKmsRowsUnder(pipe.db.pool, kms, 'kms_new_key', newKey, deks)).toBe(ROWS);
    const [s] = await listSchedules(pipe.db.pool, 'kms-new-key');
    expect(s!.kekId).toBe(newKey);
    expect(await deleteSchedule(pipe.db.pool, 'kms-new-key')).toBe(true);
  }, 180_000);

  it('"rotate-on-demand" over rows with no recorded key material: the run fails naming why, no material is rotated, no campaign is created', async () => {
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const material = (await kms.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata!.CurrentKeyMaterialId;
    await kmsRowTable(pipe.db.pool, kms, 'kms_unrecorded', ROWS, key);
    await createSchedule(pipe.db.pool, parseScheduleSpec(scheduleDoc('kms-rotate', 'kms_unrecorded', key, 'rotate-on-demand'), at('2100-04-01T12:00:00Z')));
    const campaignsBefore = (await listCampaigns(pipe.db.pool)).length;

    const [run] = await runDueSchedules(res, guard.logger, at('2100-04-02T00:00:00Z'));
    expect(run).toMatchObject({ schedule: 'kms-rotate', outcome: 'failed', from: `${key}@${material}` });
    expect(run!.detail).toMatch(/pg:kms_unrecorded holds items under the key with no recorded material.*"kmsRotation": "new-key"/);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata!.CurrentKeyMaterialId).toBe(material);
    expect((await listCampaigns(pipe.db.pool)).length).toBe(campaignsBefore);
    expect((await listScheduleRuns(pipe.db.pool, 'kms-rotate')).map((r) => r.outcome)).toEqual(['failed']);
  });
});
