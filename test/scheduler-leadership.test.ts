/**
 * Issue 13, point 9, the scheduler's side: its leadership lock lives on a dedicated connection.
 * When the server ends that session alone (pg_terminate_backend, as a failover or an operator
 * would), the leader stops leading, reconnects and takes the lock again (or the standby does),
 * and every process lives on. The canary stops on SIGTERM instead of running to its end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { getCampaign } from '../src/ledger/index.ts';
import { LOCK_NAMESPACE } from '../src/ledger/lock-keys.ts';
import { unwrapAll } from '../dev/reference/row-client.ts';
import { startRewrapProcess, type RewrapProcess } from '../dev/services/processes.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { rowSource, rowsWrittenTwice, rowTable } from './support/row-fixture.ts';
import { expectKmsRowsUnder, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';
import { eventually } from './support/eventually.ts';

let pipe: Pipeline;
let kms: KMSClient;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'leadership', workers: 1 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  const standby = startRewrapProcess('scheduler-2', ['scheduler'], pipe.env);
  pipe.all.push(standby);
  await standby.waitForLine(/standing by/, 30_000);
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

const schedulers = (): RewrapProcess[] => pipe.all.filter((x) => x.name.startsWith('scheduler'));
const alive = (x: RewrapProcess) => x.child.exitCode === null && x.child.signalCode === null;
const count = (x: RewrapProcess, re: RegExp) => x.lines.filter((l) => re.test(l)).length;

/** Backend pids holding this ledger's scheduler lock (the schema is part of the key). */
async function lockHolders(): Promise<number[]> {
  const { rows } = await pipe.db.pool.query<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
        AND classid = $1::bigint::oid AND objid = hashtext($2 || ':scheduler')::oid`,
    [LOCK_NAMESPACE, pipe.db.schema],
  );
  return rows.map((r) => r.pid);
}

describe('scheduler leadership on a dedicated connection', () => {
  it('a leader whose lock connection is terminated stops leading, the lock is taken again on a new connection, and the campaign completes; no process dies', async () => {
    const v1 = { id: 'lk', version: '1', material: randomBytes(32) };
    const v2 = { id: 'lk', version: '2', material: randomBytes(32) };
    const deks = await rowTable(pipe.db.pool, 'lockrows', 20_000, v1);
    const c = await pipe.create({ name: 'lock loss', sources: [rowSource('lockrows')], provider: { type: 'local', keyringFile: await pipe.keyringFile([v1, v2]) }, from: 'lk@1', to: 'lk@2' });
    await pipe.waitFor(c.id, 'moving', (p) => p.rewrapped > 0, 60_000);
    const [holder] = await lockHolders();
    expect(holder).toBeDefined();
    await pipe.db.pool.query('SELECT pg_terminate_backend($1)', [holder]);

    // Some scheduler holds the lock again, on a new session; none died on the way.
    const after = await eventually(
      'the lock held again on a new session',
      async () => {
        const dead = pipe.all.filter((x) => !alive(x));
        if (dead.length > 0) throw new Error(`died: ${dead.map((x) => `${x.name}: ${x.lines.filter((l) => /Unhandled|^\w*[Ee]rror:/.test(l)).slice(0, 3).join(' | ')}`).join('; ')}`);
        const h = await lockHolders();
        return h.length > 0 && !h.includes(holder!) ? h : undefined;
      },
      30_000,
      100,
    );
    expect(after).toHaveLength(1);

    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);
    expect(pipe.all.filter((x) => !alive(x)).map((x) => `${x.name}: ${x.lines.filter((l) => /Unhandled|^\w*[Ee]rror:/.test(l)).slice(0, 3).join(' | ')}`)).toEqual([]);
    // The leader noticed and stepped down (it logs it) instead of acting on without its lock.
    expect(schedulers().some((s) => count(s, /scheduler lock connection lost/) > 0)).toBe(true);
    expect(p).toMatchObject({ planned: 20_000, failed: 0 });
    expect(p.rewrapped + p.skipped).toBe(20_000);
    const rows = await unwrapAll(pipe.db.pool, 'lockrows', [v2]);
    expect(rows.size).toBe(20_000);
    for (const [id, r] of rows) if (!r.dek.equals(deks.get(id)!)) expect.fail(`row ${id}: wrong DEK under lk@2`);
    expect(await rowsWrittenTwice(pipe.db.pool, 'lockrows')).toEqual([]);
  }, 300_000);

  it('the canary stops on SIGTERM: the scheduler exits within seconds, no verdict is recorded, and the canary runs again under the next leader', async () => {
    const [a, b] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
    const { deks } = await kmsRowTable(pipe.db.pool, kms, 'canaryrows', 40, a);
    /* 40 canary items at 500 ms of KMS latency each: 20 s, unless SIGTERM stops it. */
    pipe.kms.setFaults({ latencyMs: 500 });
    const c = await pipe.create({ name: 'slow canary', sources: [kmsRowSource('canaryrows')], provider: { type: 'kms' }, from: a, to: b, options: { canaryFraction: 1 } });
    const canaryWrote = (s: RewrapProcess) => s.lines.some((l) => l.includes('"canary":true') && l.includes(c.id));
    const leader = await eventually('a canary write', async () => schedulers().find((s) => alive(s) && canaryWrote(s)), 60_000, 100);
    const t0 = Date.now();
    const code = await leader.stop('SIGTERM', 60_000);
    const stopMs = Date.now() - t0;
    expect(code).toBe(0);
    expect(stopMs, 'SIGTERM stops the canary instead of waiting for its 40 items').toBeLessThan(5_000);
    const after = await getCampaign(pipe.db.pool, c.id);
    expect(after!.state).toBe('running');
    expect(after!.canaryState).not.toBe('failed');

    // The other scheduler takes over, runs the canary again, and the campaign completes.
    pipe.kms.setFaults({ latencyMs: 0 });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed' || x.state === 'paused', 120_000);
    expect(p).toMatchObject({ state: 'completed', planned: 40, failed: 0 });
    expect((await getCampaign(pipe.db.pool, c.id))!.canaryState).toBe('passed');
    await expectKmsRowsUnder(pipe.db.pool, kms, 'canaryrows', b, deks);
  }, 300_000);
});
