/**
 * SharedDedupingKekProvider over the real ledger (rewrap_dek_rewraps) and a real keyring: four
 * providers stand for four worker processes (each its own pool, as processes have). A DEK shared
 * by all of them costs one keyring call per campaign; every result is the one stored first; a
 * result for another destination KEK or another campaign is never used; failures are not shared;
 * a claim whose worker died is taken over; the ledger holds no plaintext DEK bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { DEFAULT_OPTIONS, type CampaignSpec } from '../src/core/campaign-spec.ts';
import { claimDekRewrap, createCampaign, migrate, releaseDekRewrap, storeDekRewrap } from '../src/ledger/index.ts';
import { LocalKeyringProvider } from '../src/kek/local-keyring-provider.ts';
import { ForwardingKekProvider } from '../src/kek/forwarding-kek-provider.ts';
import { SharedDedupingKekProvider, sharedRewrapDigest, type SharedRewrapStore } from '../src/kek/shared-deduping-kek-provider.ts';
import { parseKeyring } from '../src/kek/keyring-file.ts';
import type { RewrapResult } from '../src/kek/kek-provider.ts';
import type { KekSelector, WrappedDek } from '../src/core/kek-ref.ts';
import { aesUnwrap, aesWrap, CEK } from '../dev/reference/s3ec-client.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { ItemError } from '../src/core/errors.ts';

const m1 = randomBytes(32);
const m2 = randomBytes(32);
const m3 = randomBytes(32);
const from = { id: 'orders', version: '1' };
const to = { id: 'orders', version: '2' };
const to3 = { id: 'orders', version: '3' };
const guard = new LeakGuard();
guard.secret(m1, m2, m3);

let db: TestSchema;
const pools: pg.Pool[] = [];

/** Counts the calls that reach the keyring: what a KMS quota would be charged. */
class CallCount extends ForwardingKekProvider {
  calls = 0;
  override async rewrap(dek: WrappedDek, f: KekSelector, t: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    this.calls++;
    await new Promise((r) => setImmediate(r)); // let the other "processes" race for the claim
    return super.rewrap(dek, f, t, signal);
  }
}

const ring = () =>
  new LocalKeyringProvider(
    parseKeyring({ keks: [1, 2, 3].map((v) => ({ id: 'orders', version: String(v), material: [m1, m2, m3][v - 1]!.toString('base64') })) }),
  );

function ledgerStore(pool: pg.Pool, campaignId: string): SharedRewrapStore {
  return {
    claim: (d, o, ms) => claimDekRewrap(pool, campaignId, d, o, ms),
    store: (d, r) => storeDekRewrap(pool, campaignId, d, r),
    release: (d, o) => releaseDekRewrap(pool, campaignId, d, o),
  };
}

/** n providers of one campaign, each with its own pool and keyring, all counted by one counter. */
function workers(campaignId: string, n: number, claimMs = 10_000) {
  const counted = new CallCount(ring());
  const list = Array.from({ length: n }, (_, i) => {
    const pool = new pg.Pool({ connectionString: db.url, max: 4 });
    pools.push(pool);
    return new SharedDedupingKekProvider(counted, ledgerStore(pool, campaignId), { workerId: `w${i + 1}`, claimMs, maxPollMs: 20 });
  });
  return { counted, list };
}

let seq = 0;
async function campaign(): Promise<string> {
  const name = `shared-${++seq}`;
  const spec: CampaignSpec = {
    name,
    kind: 'routine',
    sources: [{ type: 's3', bucket: `shared-dedupe-${seq}` }],
    provider: { type: 'local', keyringFile: '/etc/rewrap/keyring.json' },
    from,
    to,
    options: { ...DEFAULT_OPTIONS },
  };
  return (await createCampaign(db.pool, { name, kind: 'routine', spec, scopes: [{ storeId: `s3://shared-dedupe-${seq}` }] })).id;
}

const wrapUnder1 = (dek: Buffer): WrappedDek => ({ wrapAlg: 'AES/GCM', cekAlg: CEK, wrapped: aesWrap(m1, dek), matdesc: { kek: 'orders@1' } });

beforeAll(async () => {
  db = await freshSchema('shared_dedupe');
  await migrate(db.pool);
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await db?.drop();
});

describe('SharedDedupingKekProvider (ledger-backed, across processes)', () => {
  it('4 workers, 400 items sharing 10 wrapped DEKs: exactly 10 keyring calls, every item of a DEK gets the same stored wrapping, which unwraps to its DEK under orders@2', async () => {
    const id = await campaign();
    const { counted, list } = workers(id, 4);
    const deks = Array.from({ length: 10 }, () => randomBytes(32));
    guard.secret(...deks);
    const wrapped = deks.map(wrapUnder1);
    // Item i goes to worker i % 4 and uses DEK i % 10: every DEK meets every worker, at once.
    const results = await Promise.all(Array.from({ length: 400 }, (_, i) => list[i % 4]!.rewrap(wrapped[i % 10]!, from, to)));
    expect(counted.calls).toBe(10);
    results.forEach((r, i) => {
      expect(r.wrapped.equals(results[i % 10]!.wrapped), `item ${i}: one wrapping per DEK`).toBe(true);
      expect(aesUnwrap(m2, r.wrapped).equals(deks[i % 10]!), `item ${i}`).toBe(true);
      expect(r.to).toMatchObject({ id: 'orders', version: '2' });
    });
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n, count(result)::int AS stored, count(claimed_by)::int AS claims FROM rewrap_dek_rewraps WHERE campaign_id = $1`, [id]);
    expect(rows[0]).toEqual({ n: 10, stored: 10, claims: 0 });
  });

  it('written before use: a worker that meets the DEK after another stored R1 uses R1 and calls nothing, even from a new process', async () => {
    const id = await campaign();
    const a = workers(id, 1);
    const dek = randomBytes(32);
    guard.secret(dek);
    const w = wrapUnder1(dek);
    const r1 = await a.list[0]!.rewrap(w, from, to);
    const b = workers(id, 1);
    const r2 = await b.list[0]!.rewrap(w, from, to);
    expect(b.counted.calls).toBe(0);
    expect(r2.wrapped.equals(r1.wrapped)).toBe(true);
  });

  it('a result for a different destination KEK or of an older campaign is never used', async () => {
    const older = await campaign();
    const dek = randomBytes(32);
    guard.secret(dek);
    const w = wrapUnder1(dek);
    const o = workers(older, 1);
    await o.list[0]!.rewrap(w, from, to);
    // Same DEK, same campaign, another destination: its own call, under orders@3.
    const r3 = await o.list[0]!.rewrap(w, from, to3);
    expect(o.counted.calls).toBe(2);
    expect(aesUnwrap(m3, r3.wrapped).equals(dek)).toBe(true);
    // A newer campaign moving the same DEK again: its own call, not the older campaign's result.
    const newer = await campaign();
    const n = workers(newer, 1);
    const rn = await n.list[0]!.rewrap(w, from, to);
    expect(n.counted.calls).toBe(1);
    expect(aesUnwrap(m2, rn.wrapped).equals(dek)).toBe(true);
    // A row planted under the right digest but made for another destination is refused, not used.
    const planted = await campaign();
    await storeDekRewrap(db.pool, planted, sharedRewrapDigest(w, from, to), { for: 'orders@3', wrapAlg: 'AES/GCM', wrapped: r3.wrapped.toString('base64'), matdesc: {}, from, to: to3 });
    const p = workers(planted, 1);
    await expect(p.list[0]!.rewrap(w, from, to)).rejects.toThrow(/stored for orders@3, expected one for orders@2/);
  });

  it('a failure is not shared: a wrapped key that does not authenticate is tried for real by each worker, and leaves no claim', async () => {
    const id = await campaign();
    const { counted, list } = workers(id, 2);
    const bad = { ...wrapUnder1(randomBytes(32)), wrapped: randomBytes(60) };
    await expect(list[0]!.rewrap(bad, from, to)).rejects.toThrow();
    await expect(list[1]!.rewrap(bad, from, to)).rejects.toThrow();
    expect(counted.calls).toBe(2);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM rewrap_dek_rewraps WHERE campaign_id = $1`, [id]);
    expect(rows[0]!.n).toBe(0);
  });

  it('a claim whose worker died is taken over once it runs out, and the DEK is rewrapped once more', async () => {
    const id = await campaign();
    const dek = randomBytes(32);
    guard.secret(dek);
    const w = wrapUnder1(dek);
    // The dead worker claimed it for 300 ms and never stored a result.
    expect(await claimDekRewrap(db.pool, id, sharedRewrapDigest(w, from, to), 'dead-worker', 300)).toEqual({ kind: 'claimed' });
    const { counted, list } = workers(id, 1);
    const started = Date.now();
    const r = await list[0]!.rewrap(w, from, to);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(counted.calls).toBe(1);
    expect(aesUnwrap(m2, r.wrapped).equals(dek)).toBe(true);
  });

  it('waiting for a claim another worker holds ends when the batch is aborted', async () => {
    const id = await campaign();
    const w = wrapUnder1(randomBytes(32));
    await claimDekRewrap(db.pool, id, sharedRewrapDigest(w, from, to), 'slow-worker', 60_000);
    const { counted, list } = workers(id, 1);
    const ac = new AbortController();
    const p = list[0]!.rewrap(w, from, to, ac.signal);
    setTimeout(() => ac.abort(new Error('batch aborted')), 100);
    await expect(p).rejects.toThrow(/batch aborted/);
    expect(counted.calls).toBe(0);
  });

  it('a ledger that does not answer makes the rewrap transient (provider-unavailable, retried), never the item\'s own failure', async () => {
    const id = await campaign();
    const closed = new pg.Pool({ connectionString: db.url, max: 1 });
    await closed.end();
    const counted = new CallCount(ring());
    const p = new SharedDedupingKekProvider(counted, ledgerStore(closed, id), { workerId: 'w-down' });
    const err = await p.rewrap(wrapUnder1(randomBytes(32)), from, to).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ItemError);
    expect((err as ItemError).reason).toBe('provider-unavailable');
    expect(counted.calls).toBe(0);
  });

  it('the ledger holds no plaintext DEK or KEK bytes: every rewrap_dek_rewraps row is ciphertext, ids and a digest (invariant 5)', async () => {
    const { rows } = await db.pool.query(`SELECT campaign_id, encode(digest, 'hex') AS digest, claimed_by, result::text AS result FROM rewrap_dek_rewraps`);
    expect(rows.length).toBeGreaterThan(10);
    guard.text(...rows.map((r) => JSON.stringify(r)));
    expect(guard.findLeaks()).toEqual([]);
  });
});
