/**
 * `rewrap kek retire` for a KMS key (the real CLI, the local KMS server over HTTP): refused while
 * rows remain under it, then DisableKey once they moved and a sample decrypts under the new key;
 * the old key then refuses to decrypt the original blobs, and every row still decrypts under the
 * new one. One key material cannot be retired, and --delete is refused: both say what to do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateKeyCommand, DecryptCommand, DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { setCampaignState } from '../src/ledger/index.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { expectKmsRowsUnder, KMS_CONTEXT, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';

const ROWS = 120;
let pipe: Pipeline;
let kms: KMSClient;
let oldKey: string;
let newKey: string;
let deks: Map<string, Buffer>;
let originals: Map<string, Buffer>;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire-kms', workers: 1 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  [oldKey, newKey] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  ({ deks, blobs: originals } = await kmsRowTable(pipe.db.pool, kms, 'kvault', ROWS, oldKey));
}, 120_000);

afterAll(async () => {
  kms?.destroy();
  await pipe?.stop();
});

interface RetireJson {
  retired: boolean;
  action: string | null;
  blockers: string[];
  sample: { checked: number; failed: unknown[] };
}

const retire = async (...args: string[]) => {
  const r = await rewrapCli(pipe, ['kek', 'retire', ...args]);
  return { ...r, json: args.includes('--json') ? jsonOf<RetireJson>(r) : undefined };
};

describe('kek retire, KMS key', () => {
  it('refuses while rows remain, then disables the whole key: originals no longer decrypt, every row does under the new key', async () => {
    const c = await pipe.create(
      {
        name: 'drain the old KMS key',
        sources: [kmsRowSource('kvault')],
        provider: { type: 'kms' },
        from: oldKey,
        to: newKey,
        options: { batchSize: 40 },
      },
      false,
    );
    await pipe.waitFor(c.id, 'planned', (p) => p.planned === ROWS && p.planDone, 60_000);
    const early = await retire(oldKey, '--grace', '0', '--json');
    expect(early.code, early.stderr).toBe(3);
    expect(early.json!.blockers).toContain(`pg:kvault: ${ROWS} planned item(s) not moved yet`);

    await setCampaignState(pipe.db.pool, c.id, ['planning'], 'running');
    const done = await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(done).toMatchObject({ rewrapped: ROWS, failed: 0 });

    const r = await retire(oldKey, '--grace', '0', '--sample', '30', '--json');
    expect(r.code, r.stderr).toBe(0);
    /* Per item, any 30 of the 120 moved rows; in the batch form any 30 of the 40 + 32 + 22 the 3
       batches of 40 kept (batch n keeps 64/n: README, "The batch ledger form"). None may fail, and
       every row is checked under the new key below. */
    expect(r.json).toMatchObject({ retired: true, action: 'kms-disabled', blockers: [], sample: { asked: 30, checked: 30, failed: [] } });
    const described = await kms.send(new DescribeKeyCommand({ KeyId: oldKey }));
    expect(described.KeyMetadata).toMatchObject({ Enabled: false, KeyState: 'Disabled' });
    await expect(kms.send(new DecryptCommand({ CiphertextBlob: originals.get('1'), KeyId: oldKey, EncryptionContext: KMS_CONTEXT }))).rejects.toMatchObject({
      name: 'DisabledException',
    });

    expect(await expectKmsRowsUnder(pipe.db.pool, kms, 'kvault', newKey, deks)).toBe(ROWS);
  }, 240_000);

  // Runs after the drain above: the key has a campaign from it, so the KMS rules apply.
  it('refuses one key material and --delete, saying what to do instead', async () => {
    const material = await retire(`${oldKey}@0123456789abcdef`, '--grace', '0');
    expect(material.code).not.toBe(0);
    expect(material.stderr).toMatch(/KMS cannot disable one key material; retire the whole key/);
    const del = await retire(oldKey, '--grace', '0', '--delete');
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(/--delete: not supported for KMS keys/);
  });
});
