/**
 * Issue 13 point 7: specs are validated strictly. Integers where a count is meant, upper bounds,
 * unknown fields refused with their path (and the name meant), and pg sources compared as tables:
 * `orders` and `public.orders` are one scope, for the overlap check in the ledger as within a spec.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCampaignSpec } from '../src/campaign/spec.ts';
import { parseScheduleSpec } from '../src/schedule/schedule-spec.ts';
import { admitCampaign } from '../src/campaign/create.ts';
import { CampaignConflictError, migrate } from '../src/ledger/index.ts';
import { runRewrap } from '../dev/services/processes.ts';
import { freshSchema, type TestSchema } from './harness/pg.ts';

const pgSource = (table: string) => ({ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' });
const base = (over: Record<string, unknown> = {}) => ({
  name: 'orders',
  sources: [pgSource('orders')],
  provider: { type: 'local', keyringFile: '/nonexistent/keyring.json' },
  from: 'o@1',
  to: 'o@2',
  ...over,
});
const refusal = (input: unknown): string => {
  try {
    parseCampaignSpec(input);
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
};

let db: TestSchema;
let dir: string;

beforeAll(async () => {
  db = await freshSchema('spec-validation');
  await migrate(db.pool);
  dir = await mkdtemp(join(tmpdir(), 'rewrap-spec-'));
});

afterAll(async () => {
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('strict spec validation (issue 13 point 7)', () => {
  it.each([
    [{ options: { batchsize: 100 } }, 'campaign spec.options.batchsize: unknown field; did you mean batchSize?'],
    [{ options: { kmsRequestPerSecond: 10 } }, 'campaign spec.options.kmsRequestPerSecond: unknown field; did you mean kmsRequestsPerSecond?'],
    [{ Sources: [] }, 'campaign spec.Sources: unknown field; did you mean sources?'],
    [{ provider: { type: 'local', keyringfile: 'k.json' } }, 'campaign spec.provider.keyringfile: unknown field; did you mean keyringFile?'],
    [{ sources: [{ ...pgSource('orders'), idColum: 'id' }] }, 'campaign spec.sources[0].idColum: unknown field; did you mean idColumn?'],
    [{ sources: [{ type: 's3', bucket: 'b', prefx: 'a/' }] }, 'campaign spec.sources[0].prefx: unknown field; did you mean prefix?'],
    [{ from: { id: 'o', verison: '1' } }, 'campaign spec.from.verison: unknown field; did you mean version?'],
    [{ options: { batchSize: 1.5 } }, 'campaign spec.options.batchSize: expected an integer from 1 to 10000'],
    [{ options: { batchSize: 1_000_000 } }, 'campaign spec.options.batchSize: expected an integer from 1 to 10000'],
    [{ options: { concurrency: 2.5 } }, 'campaign spec.options.concurrency: expected an integer from 1 to 1024'],
    [{ options: { concurrency: 100_000 } }, 'campaign spec.options.concurrency: expected an integer from 1 to 1024'],
    [{ options: { multipartThresholdBytes: 6 * 1024 ** 3 } }, 'campaign spec.options.multipartThresholdBytes: expected an integer from 1 to 5368709120'],
    [{ options: { kmsRequestsPerSecond: 1e9 } }, 'campaign spec.options.kmsRequestsPerSecond: expected a number from 0 to 100000'],
    [{ options: { maxFailures: 0.5 } }, 'campaign spec.options.maxFailures: expected an integer'],
    [{ options: { maxFailureRatio: 2 } }, 'campaign spec.options.maxFailureRatio: expected a number from 0 to 1'],
    [{ options: { batchSize: '100' } }, 'campaign spec.options.batchSize: expected an integer from 1 to 10000 (items per batch), got string'],
    [{ sources: [pgSource('orders'), pgSource('public.orders')] }, 'campaign spec.sources[1]: covers the same items as sources[0] (pg:orders)'],
  ])('refuses %j naming the field', (over, message) => {
    expect(refusal(base(over))).toContain(message);
  });

  it('accepts a spec at the bounds', () => {
    const spec = parseCampaignSpec(base({ options: { batchSize: 10_000, concurrency: 1024, multipartThresholdBytes: 5 * 1024 ** 3, kmsRequestsPerSecond: 0.5 } }));
    expect(spec.options).toMatchObject({ batchSize: 10_000, concurrency: 1024, kmsRequestsPerSecond: 0.5 });
  });

  it('refuses unknown fields of a schedule spec with their path', () => {
    const doc = { name: 's', cron: '0 3 1 * *', kek: 'o', campaign: { sources: [pgSource('orders')], provider: { type: 'local', keyringFile: 'k.json' } } };
    expect(() => parseScheduleSpec({ ...doc, timezon: 'UTC' }, new Date())).toThrow('schedule spec.timezon: unknown field; did you mean timezone?');
    expect(() => parseScheduleSpec({ ...doc, campaign: { ...doc.campaign, option: {} } }, new Date())).toThrow('schedule spec.campaign.option: unknown field; did you mean options?');
    expect(() => parseScheduleSpec({ ...doc, campaign: { ...doc.campaign, options: { batchsize: 5 } } }, new Date())).toThrow('schedule spec.campaign.options.batchsize: unknown field; did you mean batchSize?');
    expect(() => parseScheduleSpec({ ...doc, windows: [{ from: '18:00', to: '08:00', timezone: 'UTC' }] }, new Date())).toThrow('schedule spec.windows[0].timezone: unknown field');
  });

  it('pg:orders and pg:public.orders are one scope: the ledger refuses the second campaign as overlapping', async () => {
    await admitCampaign(db.pool, parseCampaignSpec(base({ name: 'first' })));
    await expect(admitCampaign(db.pool, parseCampaignSpec(base({ name: 'second', sources: [pgSource('public.orders')] })))).rejects.toBeInstanceOf(CampaignConflictError);
    // Another schema's table of the same name is another scope.
    await admitCampaign(db.pool, parseCampaignSpec(base({ name: 'third', sources: [pgSource('billing.orders')] })));
  });

  it('the CLI refuses a misspelt option with its path and exit code 2', async () => {
    const file = join(dir, 'spec.json');
    await writeFile(file, JSON.stringify(base({ options: { batchsize: 100 } })));
    const r = await runRewrap(['campaign', 'create', '--spec', file], { DATABASE_URL: db.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('options.batchsize: unknown field; did you mean batchSize?');
  });
});
