/**
 * The KEK retirement gate (`rewrap kek retire`, the real CLI) against a real deployment: it refuses
 * while items remain under the version (naming the count per store) and during the grace period,
 * succeeds after the drain, and afterwards the ORIGINAL wrapped DEK no longer unwraps (kek-disabled);
 * campaigns still at work on r (any version, or moving items to r@1) and one cancelled before its
 * plan was done block it too (invariant 7);
 * --delete removes the material after a full pass over the store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { setCampaignState } from '../src/ledger/index.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import type { WrappedDek } from '../src/core/kek-ref.ts';
import { ItemError } from '../src/core/errors.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { rowSource, rowTable, rowsAt } from './support/row-fixture.ts';
import { insertRows } from '../dev/reference/row-client.ts';
import { LeakGuard } from './support/leak-guard.ts';

const r1 = { id: 'r', version: '1', material: randomBytes(32) };
const r2 = { id: 'r', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(r1.material, r2.material);
let pipe: Pipeline;
let keyringFile: string;
let original: WrappedDek;

interface RetireJson {
  retired: boolean;
  action: string | null;
  blockers: string[];
  stores: { storeId: string; underKek: number; notYetMoved: number; failedNotMoved: number }[];
  graceLeftMs: number;
  sample: { checked: number; failed: unknown[] };
  fullPass?: { checked: number };
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire', workers: 1 });
  keyringFile = await pipe.keyringFile([r1, r2]);
  await rowTable(pipe.db.pool, 'vault', 200, r1);
  // A copy of one original envelope, taken before the rotation.
  const { rows } = await pipe.db.pool.query<{ wrapped_dek: Buffer }>('SELECT wrapped_dek FROM vault WHERE id = 7');
  original = { wrapAlg: 'AES/GCM', cekAlg: 'AES/GCM/NoPadding', wrapped: rows[0]!.wrapped_dek, matdesc: {}, kek: { id: 'r', version: '1' } };
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

async function retire(...args: string[]): Promise<{ code: number; json: RetireJson }> {
  const r = await rewrapCli(pipe, ['kek', 'retire', 'r@1', '--json', ...args]);
  guard.text(r.stdout, r.stderr);
  return { code: r.code, json: jsonOf<RetireJson>(r) };
}

function unwrapOriginal(): unknown {
  const provider = new LocalKeyringProvider(loadKeyringFile(keyringFile));
  return provider.rewrap(original, { id: 'r', version: '1' }, { id: 'r', version: '2' }).then(
    () => 'unwrapped',
    (err: unknown) => err,
  );
}

describe('kek retire', () => {
  it('refuses while items remain under the version, naming the count per store, and during the grace period; succeeds after the drain', async () => {
    const c = await pipe.create(
      { name: 'drain r@1', sources: [rowSource('vault')], provider: { type: 'local', keyringFile }, from: 'r@1', to: 'r@2', options: { batchSize: 50 } },
      false,
    );
    await pipe.waitFor(c.id, 'planned', (p) => p.planned === 200 && p.planDone, 60_000);
    const planned = await retire('--grace', '0');
    expect(planned.code).toBe(3);
    expect(planned.json.retired).toBe(false);
    expect(planned.json.stores).toContainEqual({ storeId: 'pg:vault', underKek: 0, notYetMoved: 200, failedNotMoved: 0 });
    expect(planned.json.blockers).toContain('pg:vault: 200 planned item(s) not moved yet');
    expect(planned.json.blockers.some((b) => b.startsWith(`campaign ${c.id}`))).toBe(true);

    await setCampaignState(pipe.db.pool, c.id, ['planning'], 'running');
    await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(await rowsAt(pipe.db.pool, 'vault', 'r', '1')).toBe(0);

    /* Campaigns the gate must also see (the scheduler is stopped meanwhile, so none of them is planned):
       one cancelled before its plan was done, one draining r at any version, one moving items to r@1. */
    const withQ = await pipe.keyringFile([r1, r2, { id: 'q', version: '1', material: randomBytes(32) }]);
    await rowTable(pipe.db.pool, 'vault_b', 1, r2); // active campaigns may not share a scope
    const spec = (name: string, from: string, to: string, table = 'vault') => ({ name, sources: [rowSource(table)], provider: { type: 'local', keyringFile: to === 'q@1' ? withQ : keyringFile }, from, to });
    pipe.scheduler.child.kill('SIGSTOP');
    let others: string[];
    try {
      const cancelled = await pipe.create(spec('cancelled early', 'r@1', 'r@2'), false);
      await setCampaignState(pipe.db.pool, cancelled.id, ['planning'], 'cancelled');
      const anyVersion = await pipe.create(spec('any version', 'r', 'q@1'), false);
      const back = await pipe.create(spec('back to r@1', 'r@2', 'r@1', 'vault_b'), false);
      const blocked = await retire('--grace', '0');
      expect(blocked.code).toBe(3);
      expect(blocked.json.blockers).toEqual(
        expect.arrayContaining([
          `campaign ${cancelled.id} (cancelled early) was cancelled before its plan was done: items it never listed may still be under r@1; run a campaign from r@1 over its scope to completion`,
          `campaign ${anyVersion.id} (any version) draining r@1 is still planning`,
          `campaign ${back.id} (back to r@1) moving items to r@1 is still planning`,
        ]),
      );
      others = [anyVersion.id, back.id];
      for (const id of others) await setCampaignState(pipe.db.pool, id, ['planning'], 'cancelled');
    } finally {
      pipe.scheduler.child.kill('SIGCONT');
    }
    // A later campaign from r@1 over the same scope, completed, covers what the cancelled one never listed.
    const again = await pipe.create(spec('drain r@1 again', 'r@1', 'r@2'));
    await pipe.waitFor(again.id, 'completed', (p) => p.state === 'completed', 120_000);

    const inGrace = await retire(); // default grace: 24 h since the last item moved
    expect(inGrace.code).toBe(3);
    expect(inGrace.json.graceLeftMs).toBeGreaterThan(23 * 3_600_000);
    expect(inGrace.json.blockers).toEqual([expect.stringMatching(/^grace period: the last item moved at .*; 2\d\.\d h left/)]);
    expect(await unwrapOriginal()).toBe('unwrapped'); // nothing was disabled yet

    const done = await retire('--grace', '0', '--sample', '40');
    expect(done.code).toBe(0);
    /* The sample re-reads what the ledger kept of the moves: per item, any 40 of the 200; in the batch
       form, of the 50 + 32 + 22 + 16 moved items the 4 batches of 50 kept (batch n keeps 64/n: README,
       "The batch ledger form"), where one per batch offered 4. As many as asked in either form, and
       none may fail; the counts above decide what is left under r@1. */
    expect(done.json).toMatchObject({ retired: true, action: 'disabled', blockers: [], sample: { asked: 40, checked: 40, failed: [] } });
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}:${e.state}`)).toEqual(['r@1:disabled', 'r@2:enabled']);

    // The original envelope, from before the rotation, no longer unwraps through the provider.
    const err = await unwrapOriginal();
    expect(err).toBeInstanceOf(ItemError);
    expect((err as ItemError).reason).toBe('kek-disabled');
  }, 240_000);

  it('--delete re-reads the store in full, then removes the version and its material from the keyring file', async () => {
    // Rows under r@1 whose KEK columns record no KEK (a NULL id, a NULL version): the plan never selected them; the full pass does, and they block.
    // A row with no wrapped key and no KEK holds no secret: not selected, no blocker.
    await insertRows(pipe.db.pool, 'vault', 3, r1, 201);
    await pipe.db.pool.query(`UPDATE vault SET kek_id = NULL WHERE id = 201; UPDATE vault SET kek_version = NULL WHERE id = 202; UPDATE vault SET kek_id = NULL, wrapped_dek = NULL WHERE id = 203`);
    const unrecorded = await retire('--grace', '0', '--delete');
    expect(unrecorded.code, JSON.stringify(unrecorded.json)).toBe(3);
    expect(unrecorded.json.fullPass).toMatchObject({ checked: 2 });
    expect(unrecorded.json.blockers).toEqual(
      expect.arrayContaining([expect.stringMatching(/^pg:vault: 1 item\(s\) that rewrap cannot read may be under r@1.*malformed-envelope/), expect.stringMatching(/^pg:vault 202: /)]),
    );
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}`)).toEqual(['r@1', 'r@2']);
    await pipe.db.pool.query('DELETE FROM vault WHERE id > 200');

    const r = await retire('--grace', '0', '--delete');
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ action: 'deleted', fullPass: { checked: 0 } }); // no row of the table is under r@1 any more
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}`)).toEqual(['r@2']);
    expect(((await unwrapOriginal()) as ItemError).reason).toBe('unknown-kek');
  }, 60_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
