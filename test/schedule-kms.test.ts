/**
 * Scheduled rotation of a KMS key (the local KMS server over HTTP, a real scheduler and worker):
 * "new-key" creates a successor key and a campaign that drains the old one, and the schedule
 * follows the new key next time. "rotate-on-demand" rotates the key material and drains the
 * previous one, including rows whose application never recorded a material (kms-material.ts).
 * The schedules run on a test clock (their due times lie in 2100).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, DescribeKeyCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { loadConfig } from '../src/config.ts';
import { Resources } from '../src/runtime/resources.ts';
import { createSchedule, deleteSchedule, listCampaigns, listScheduleRuns, listSchedules } from '../src/ledger/index.ts';
import { parseScheduleSpec } from '../src/schedule/schedule-spec.ts';
import { runDueSchedules } from '../src/schedule/run-due-schedules.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { itemException } from './support/ledger-commits.ts';
import { expectKmsRowsUnder, KMS_CONTEXT, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';

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

  it('"rotate-on-demand" over rows with no recorded key material: the material rotates, every row moves to it and records it; the next run drains that material, and a row left under the first one moves too', async () => {
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const m1 = await currentMaterial(key);
    const { deks } = await kmsRowTable(pipe.db.pool, kms, 'kms_rotate', ROWS, key);
    const restored = await encryptDek(key); // kept aside under m1, as in an old backup
    await createSchedule(pipe.db.pool, parseScheduleSpec(scheduleDoc('kms-rotate', 'kms_rotate', key, 'rotate-on-demand'), at('2100-04-01T12:00:00Z')));

    const [first] = await runDueSchedules(res, guard.logger, at('2100-04-02T00:00:00Z'));
    expect(first).toMatchObject({ schedule: 'kms-rotate', outcome: 'campaign-started', from: `${key}@${m1}`, to: key });
    const m2 = await currentMaterial(key);
    expect(m2).not.toBe(m1);
    expect(await pipe.waitFor(first!.campaignId!, 'completed', (x) => x.state === 'completed', 120_000)).toMatchObject({ planned: ROWS, rewrapped: ROWS, failed: 0 });
    expect(await expectKmsRowsUnder(pipe.db.pool, kms, 'kms_rotate', key, deks, m2)).toBe(ROWS);

    /* The application adds a row under m2, and restores one from the backup, still under m1; neither records a material. */
    const fresh = await encryptDek(key);
    for (const [id, d] of [[ROWS + 1, restored], [ROWS + 2, fresh]] as const) {
      deks.set(String(id), d.dek);
      await pipe.db.pool.query('INSERT INTO kms_rotate (id, wrapped_dek, kek_id, kek_version) VALUES ($1, $2, $3, NULL)', [id, d.blob, key]);
    }
    const [second] = await runDueSchedules(res, guard.logger, at('2100-04-03T00:00:00Z'));
    expect(second).toMatchObject({ schedule: 'kms-rotate', outcome: 'campaign-started', from: `${key}@${m2}`, to: key });
    const m3 = await currentMaterial(key);
    expect(new Set([m1, m2, m3]).size).toBe(3);
    expect(await pipe.waitFor(second!.campaignId!, 'completed', (x) => x.state === 'completed', 120_000)).toMatchObject({ planned: ROWS + 2, rewrapped: ROWS + 2, failed: 0 });
    expect(await expectKmsRowsUnder(pipe.db.pool, kms, 'kms_rotate', key, deks, m3)).toBe(ROWS + 2);
    expect((await listScheduleRuns(pipe.db.pool, 'kms-rotate')).map((r) => r.outcome)).toEqual(['campaign-started', 'campaign-started']);
    expect(await deleteSchedule(pipe.db.pool, 'kms-rotate')).toBe(true);
  }, 240_000);
});

describe('rows whose KEK columns do not tell the truth', () => {
  it('a row that names the source key but whose DEK is under another key is skipped as not under the source, checked once, and the campaign still completes', async () => {
    const [source, other, target] = await Promise.all([0, 1, 2].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
    const { deks } = await kmsRowTable(pipe.db.pool, kms, 'kms_liar', 20, source);
    const elsewhere = await encryptDek(other);
    await pipe.db.pool.query(`UPDATE kms_liar SET wrapped_dek = $1, kek_version = NULL WHERE id = 7`, [elsewhere.blob]);
    for (const [name, from] of [['whole key', source], ['one material', `${source}@${await currentMaterial(source)}`]] as const) {
      /* Row 7 is the only DEK KMS refuses as not under the key asked for (IncorrectKeyException): the
         count of those answers is its provider calls, in either ledger form. */
      const refusedBefore = pipe.kms.stats().errors.IncorrectKeyException ?? 0;
      const c = await pipe.create({ name: `liar ${name}`, sources: [kmsRowSource('kms_liar')], provider: { type: 'kms' }, from, to: target, options: { batchSize: 5 } });
      const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 60_000);
      expect(p, name).toMatchObject({ failed: 0 });
      expect(p.skipped, name).toBeGreaterThanOrEqual(1);
      // Its item row (per-item form) or its exception row (batch form).
      expect(await itemException(pipe.db.pool, c.id, '7'), name).toMatchObject({ outcome: 'skipped', reason: 'not-under-source' });
      expect((pipe.kms.stats().errors.IncorrectKeyException ?? 0) - refusedBefore, `${name}: one provider call for row 7, not one per delta pass`).toBe(1);
      if (c.ledgerForm === 'items') {
        const { rows: checks } = await pipe.db.pool.query<{ attempts: number }>(`SELECT attempts FROM rewrap_campaign_items WHERE campaign_id = $1 AND item_key = '7'`, [c.id]);
        expect(checks[0]!.attempts, `${name}: row 7 claimed once, not once per delta pass`).toBe(1);
      }
      const { rows } = await pipe.db.pool.query<{ kek_id: string; wrapped_dek: Buffer }>('SELECT kek_id, wrapped_dek FROM kms_liar WHERE id = 7');
      expect(rows[0]!.kek_id).toBe(source);
      expect(rows[0]!.wrapped_dek.equals(elsewhere.blob), 'the row is left as it was').toBe(true);
    }
    deks.delete('7');
    await pipe.db.pool.query('DELETE FROM kms_liar WHERE id = 7');
    expect(await expectKmsRowsUnder(pipe.db.pool, kms, 'kms_liar', target, deks)).toBe(19);
  }, 180_000);
});

describe('a table that cannot hold key material ids', () => {
  it('a material drain over an integer version column pauses the campaign with a reason naming the column, instead of retrying forever', async () => {
    const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    await pipe.db.pool.query('CREATE TABLE kms_int_version (id bigint PRIMARY KEY, wrapped_dek bytea, kek_id text, kek_version integer)');
    const c = await pipe.create({ name: 'int version', sources: [kmsRowSource('kms_int_version')], provider: { type: 'kms' }, from: `${key}@${await currentMaterial(key)}`, to: key });
    const p = await pipe.waitFor(c.id, 'paused', (x) => x.state === 'paused', 60_000);
    expect(p.pauseReason).toMatch(/draining KMS key material [0-9a-f]{64} needs kekVersionColumn "kek_version" to hold 64-character material ids .*; it is integer\. Change the column type, wait a minute .*, then resume the campaign$/);
  }, 90_000);
});

async function currentMaterial(key: string): Promise<string> {
  return (await kms.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata!.CurrentKeyMaterialId!;
}

/** A DEK as the application encrypts it: under the key's current material, with the rows' context. */
async function encryptDek(key: string): Promise<{ dek: Buffer; blob: Buffer }> {
  const dek = randomBytes(32);
  const out = await kms.send(new EncryptCommand({ KeyId: key, Plaintext: dek, EncryptionContext: KMS_CONTEXT }));
  return { dek, blob: Buffer.from(out.CiphertextBlob!) };
}
