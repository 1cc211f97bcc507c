/**
 * One KMS key, two names in one table: half the rows record the key by its alias, half by its
 * ARN (writers configured differently, or before and after a config change). A campaign from the
 * ARN moves the ARN rows only; the table source selects by the KEK column. Before this check,
 * `kek retire <ARN>` then exited 0 and disabled the key: the alias rows no longer decrypted.
 * Now the gate asks KMS for the key's other names (DescribeKey, ListAliases) and refuses, naming
 * the rows; once a campaign from the alias moved them too, the key is disabled and every row
 * decrypts under the new key. Retiring by the alias is refused before any check: DisableKey
 * takes no alias, and an alias can be pointed elsewhere. The real CLI, the local KMS server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateAliasCommand, CreateKeyCommand, DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { expectKmsRowsUnder, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';
import { LeakGuard } from './support/leak-guard.ts';

const ROWS = 40;
const TABLE = 'knames';
let pipe: Pipeline;
let kms: KMSClient;
let oldArn: string;
let newKey: string;
let alias: string;
let deks: Map<string, Buffer>;
const guard = new LeakGuard();

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire-kms-names', workers: 1 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  [oldArn, newKey] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  alias = `alias/rw-old-${randomBytes(4).toString('hex')}`;
  await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: oldArn }));
  ({ deks } = await kmsRowTable(pipe.db.pool, kms, TABLE, ROWS, alias));
  guard.secret(...deks.values());
  await pipe.db.pool.query(`UPDATE ${TABLE} SET kek_id = $1 WHERE id > $2`, [oldArn, ROWS / 2]);
}, 120_000);

afterAll(async () => {
  kms?.destroy();
  await pipe?.stop();
});

const retire = async (...args: string[]) => {
  const r = await rewrapCli(pipe, ['kek', 'retire', ...args, '--grace', '0', '--json']);
  guard.text(r.stdout, r.stderr);
  if (r.code === 1) throw new Error(r.stderr);
  return { ...r, json: jsonOf<{ retired: boolean; action: string | null; blockers: string[] }>(r) };
};

async function drain(from: string) {
  const c = await pipe.create({ name: `drain ${from}`, sources: [kmsRowSource(TABLE)], provider: { type: 'kms' }, from, to: newKey, options: { batchSize: 10 } });
  return pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
}

describe('kek retire, a KMS key the rows name two ways', () => {
  it('refuses to disable the key by its ARN while rows record it by its alias; the key stays enabled', async () => {
    expect(await drain(oldArn)).toMatchObject({ rewrapped: ROWS / 2, failed: 0 });
    const r = await retire(oldArn);
    expect(r.code, r.stderr).toBe(3);
    expect(r.json).toMatchObject({ retired: false });
    const rows = r.json.blockers.filter((b) => b.startsWith(`pg:${TABLE}: `));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toContain(`pg:${TABLE}: ${ROWS / 2} row(s) record ${oldArn} by another name (kek_id is one of `);
    expect(rows[0]).toContain(JSON.stringify(alias));
    expect(rows[0]).toContain(`no campaign from ${oldArn} selects them, and they would not decrypt once the key is disabled`);
    const described = await kms.send(new DescribeKeyCommand({ KeyId: oldArn }));
    expect(described.KeyMetadata).toMatchObject({ Enabled: true });
  }, 240_000);

  it('once a campaign from the alias moved the rest, retiring the key disables it (by its ARN: by the alias is refused) and every row decrypts under the new one', async () => {
    expect(await drain(alias)).toMatchObject({ rewrapped: ROWS / 2, failed: 0 });
    const byAlias = await rewrapCli(pipe, ['kek', 'retire', alias, '--grace', '0']);
    guard.text(byAlias.stdout, byAlias.stderr);
    expect(byAlias.code).not.toBe(0);
    expect(byAlias.stderr).toContain(`kek retire ${alias}: KMS disables a key by its key id or key ARN, not by an alias`);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: oldArn }))).KeyMetadata).toMatchObject({ Enabled: true });
    const r = await retire(oldArn);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ retired: true, action: 'kms-disabled', blockers: [] });
    expect((await kms.send(new DescribeKeyCommand({ KeyId: oldArn }))).KeyMetadata).toMatchObject({ Enabled: false });
    expect(await expectKmsRowsUnder(pipe.db.pool, kms, TABLE, newKey, deks)).toBe(ROWS);
  }, 240_000);

  it('no DEK bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
