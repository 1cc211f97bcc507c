/** Key maps (issue 19, point 2): spec forms, validation, rule resolution, per-item routing, dedupe isolation. */
import { describe, expect, it } from 'vitest';
import { parseCampaignSpec } from '../../src/campaign/spec.ts';
import { parseKeyMapRule, parseKeyMap } from '../../src/campaign/key-map-spec.ts';
import { resolveKeyMap, resolveRule } from '../../src/campaign/key-map-rule.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { keyMapOf, MAX_KEY_MAP_ENTRIES, type ProviderSpec } from '../../src/core/campaign-spec.ts';
import { KekMap } from '../../src/kek/kek-map.ts';
import { classifyInMap } from '../../src/rewrap/classify.ts';
import { rewrapItem } from '../../src/rewrap/rewrap-item.ts';
import { DedupingKekProvider } from '../../src/kek/deduping-kek-provider.ts';
import { countsByEntry } from '../../src/metrics/key-map-counts.ts';
import { envelope, fakeProvider, fakeStore, kek } from './fakes.ts';

const local: ProviderSpec = { type: 'local', keyringFile: '/tmp/keyring.json' };
const kmsProvider: ProviderSpec = { type: 'kms' };
const base = { name: 'tenants', sources: [{ type: 'pg', table: 't', idColumn: 'id', wrappedKeyColumn: 'w', kekIdColumn: 'k', kekVersionColumn: 'v' }], provider: local };
const spec = (extra: Record<string, unknown>) => parseCampaignSpec({ ...base, ...extra });

describe('key map spec forms', () => {
  it('an object map, a list map and today\'s from/to all read as one list of entries (a one-entry map for from/to)', () => {
    expect(keyMapOf(spec({ keyMap: { 'tenant-a@1': 'tenant-a@2', 'tenant-b@1': 'tenant-b@2' } }))).toEqual([
      { from: kek('tenant-a@1'), to: kek('tenant-a@2') },
      { from: kek('tenant-b@1'), to: kek('tenant-b@2') },
    ]);
    expect(keyMapOf(spec({ keyMap: [{ from: 'tenant-a@1', to: { id: 'tenant-a', version: '2' } }] }))).toEqual([{ from: kek('tenant-a@1'), to: kek('tenant-a@2') }]);
    const single = spec({ from: 'rows@1', to: 'rows@2' });
    expect(single.keyMap).toBeUndefined();
    expect(keyMapOf(single)).toEqual([{ from: kek('rows@1'), to: kek('rows@2') }]);
  });

  it('KMS: a list of key ARNs with their destinations; destinations and (with several entries) sources are whole keys', () => {
    const arn = (k: string) => `arn:aws:kms:eu-west-1:111122223333:key/${k}`;
    const s = parseCampaignSpec({ ...base, provider: kmsProvider, keyMap: [{ from: arn('a-old'), to: arn('a-new') }, { from: arn('b-old'), to: arn('b-new') }] });
    expect(s.keyMap).toHaveLength(2);
    expect(() => parseKeyMap([{ from: arn('a-old'), to: `${arn('a-new')}@m1` }], kmsProvider)).toThrow(/current material; give the destination key id or ARN alone/);
    expect(() => parseKeyMap([{ from: `${arn('a')}@${'a'.repeat(64)}`, to: arn('a') }, { from: arn('b'), to: arn('c') }], kmsProvider)).toThrow(/moves whole keys/);
  });

  it('exactly one of from/to or keyMap', () => {
    expect(() => spec({ from: 'a@1', to: 'a@2', keyMap: { 'b@1': 'b@2' } })).toThrow(/either "from" and "to", or "keyMap", not both/);
    expect(() => spec({})).toThrow(/expected "from" and "to".*or "keyMap"/);
  });

  it('refuses a bad map with a message naming the entry: empty, a source mapped twice, a chain, an entry onto itself, over the bound', () => {
    expect(() => spec({ keyMap: {} })).toThrow(/campaign spec.keyMap: empty/);
    expect(() => spec({ keyMap: [{ from: 'a@1', to: 'a@2' }, { from: 'a@1', to: 'x@1' }] })).toThrow(/source KEK "a@1" is mapped twice/);
    expect(() => spec({ keyMap: [{ from: 'a', to: 'x@1' }, { from: 'a@3', to: 'y@1' }] })).toThrow(/source KEK "a@3" is mapped twice/);
    expect(() => spec({ keyMap: { 'a@1': 'b@1', 'b@1': 'c@1' } })).toThrow(/destination "b@1" of "a@1" -> "b@1" is also a source.*chains are not allowed/);
    expect(() => spec({ keyMap: { 'a@1': 'a@1' } })).toThrow(/"a@1" -> "a@1" does not move anything/);
    expect(() => spec({ keyMap: { 'a@1': { id: 'a', version: '2', extra: 1 } } })).toThrow(/keyMap\["a@1"\]\.extra: unknown field/);
    const big = Object.fromEntries(Array.from({ length: MAX_KEY_MAP_ENTRIES + 1 }, (_, i) => [`t${i}@1`, `t${i}@2`]));
    expect(() => spec({ keyMap: big })).toThrow(/100,001 entries; at most 100,000/);
  });
});

describe('key map rules, resolved at campaign create', () => {
  const keyring = [
    ...['1', '2', '3'].map((version) => ({ id: 'tenant-a', version })),
    ...['1', '2'].map((version) => ({ id: 'tenant-b', version })),
    { id: 'tenant-c', version: '1' }, // one version: nothing to drain
    { id: 'orders', version: '1' },
    { id: 'orders', version: '2' },
  ];

  it('"tenant-*@current-1" -> "tenant-*@current" gives each matching KEK its own entry, sorted, and nothing for ids outside the pattern', () => {
    const rule = parseKeyMapRule('tenant-*@current-1', 'tenant-*@current', local);
    expect(resolveRule(rule, keyring, 'keyring')).toEqual([
      { from: kek('tenant-a@2'), to: kek('tenant-a@3') },
      { from: kek('tenant-b@1'), to: kek('tenant-b@2') },
    ]);
  });

  it('the star may move to another id (tenant-*@1 -> new-tenant-*@current); a missing destination is refused by name', () => {
    const ring = [...keyring, { id: 'new-tenant-a', version: '1' }];
    const rule = parseKeyMapRule('tenant-*@1', 'new-tenant-*@current', local);
    expect(() => resolveRule(rule, ring, 'keyring file k.json')).toThrow(/tenant-b@1 maps to new-tenant-b@current, which the keyring does not hold/);
    expect(resolveRule(rule, ring.filter((k) => k.id !== 'tenant-b' && k.id !== 'tenant-c'), 'k')).toEqual([{ from: kek('tenant-a@1'), to: kek('new-tenant-a@1') }]);
  });

  it('"tenant-*" -> "tenant-*-v2": ids that fit the destination pattern are destinations, never sources', () => {
    const ring = [{ id: 'tenant-a', version: '1' }, { id: 'tenant-a-v2', version: '1' }];
    expect(resolveRule(parseKeyMapRule('tenant-*@current', 'tenant-*-v2@current', local), ring, 'k')).toEqual([{ from: kek('tenant-a@1'), to: kek('tenant-a-v2@1') }]);
  });

  it('a rule that matches nothing, a rule on one side only, and a rule for a KMS provider are refused', () => {
    expect(() => resolveRule(parseKeyMapRule('nobody-*@current-1', 'nobody-*@current', local), keyring, 'k')).toThrow(/matches no KEK with a version to drain; the key map would be empty/);
    expect(() => spec({ from: 'tenant-*@current-1', to: 'tenant-a@2' })).toThrow(/"to" must be one too/);
    expect(() => parseCampaignSpec({ ...base, provider: kmsProvider, from: 'tenant-*@current-1', to: 'tenant-*@current' })).toThrow(/give an explicit "keyMap"/);
    expect(() => spec({ from: 'tenant-**@1', to: 'tenant-*@2' })).toThrow(/not a key map rule; expected one "\*"/);
  });

  it('at create, the rule is resolved against the keyring file into the stored map; an explicit map\'s destination must be in the keyring and enabled', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keymaps-'));
    const file = join(dir, 'keyring.json');
    const entry = (id: string, version: string, state = 'enabled') => ({ id, version, material: randomBytes(32).toString('base64'), state });
    writeFileSync(file, JSON.stringify({ keks: [entry('tenant-a', '1'), entry('tenant-a', '2'), entry('tenant-b', '1'), entry('tenant-b', '2', 'decrypt-only')] }), { mode: 0o600 });
    try {
      const withFile = (extra: Record<string, unknown>) => parseCampaignSpec({ ...base, provider: { type: 'local', keyringFile: file }, ...extra });
      expect(() => resolveKeyMap(withFile({ from: 'tenant-*@current-1', to: 'tenant-*@current' }))).toThrow(/destination "tenant-b@2" is decrypt-only/);
      const resolved = resolveKeyMap(withFile({ from: '*-a@current-1', to: '*-a@current' }));
      expect(resolved.keyMapRule).toBeUndefined();
      expect(resolved.keyMap).toEqual([{ from: kek('tenant-a@1'), to: kek('tenant-a@2') }]);
      expect(() => resolveKeyMap(withFile({ keyMap: { 'tenant-a@1': 'tenant-a@3' } }))).toThrow(/destination "tenant-a@3" of "tenant-a@1" is not in keyring file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the parsed spec holds the rule until create resolves it; keyMapOf refuses an unresolved rule', () => {
    const s = spec({ from: 'tenant-*@current-1', to: 'tenant-*@current' });
    expect(s.keyMapRule?.text).toEqual({ from: 'tenant-*@current-1', to: 'tenant-*@current' });
    expect(() => keyMapOf(s)).toThrow(/not resolved yet/);
  });
});

describe('routing an item by its own KEK', () => {
  const map = new KekMap([
    { from: kek('tenant-a@1'), to: kek('tenant-a@2') },
    { from: kek('tenant-b@1'), to: kek('tenant-b@2') },
  ]);
  const provider = fakeProvider('local');

  it('an item moves to the destination of the entry of its source KEK, never another entry\'s', async () => {
    expect(classifyInMap(envelope({ under: 'tenant-b@1' }), provider, map)).toMatchObject({ kind: 'rewrap', entry: { to: kek('tenant-b@2') } });
    const store = fakeStore({ a: envelope({ under: 'tenant-a@1' }), b: envelope({ under: 'tenant-b@1' }) });
    const a = await rewrapItem({ store, provider, keyMap: map }, { key: 'a' });
    const b = await rewrapItem({ store, provider, keyMap: map }, { key: 'b' });
    expect(a).toMatchObject({ status: 'rewrapped', from: kek('tenant-a@1'), to: kek('tenant-a@2') });
    expect(b).toMatchObject({ status: 'rewrapped', from: kek('tenant-b@1'), to: kek('tenant-b@2') });
  });

  it('an item under a KEK that is no source of the map is out of scope (skipped), one at a destination is already at target', () => {
    expect(classifyInMap(envelope({ under: 'tenant-z@1' }), provider, map)).toMatchObject({ kind: 'skip', reason: 'not-under-source' });
    expect(classifyInMap(envelope({ under: 'tenant-a@2' }), provider, map)).toMatchObject({ kind: 'skip', reason: 'already-at-target' });
  });

  it('KMS: a key named by id on the item and by ARN in the map is the same key; an item naming no key cannot be routed (unknown-kek, fails)', async () => {
    const kms = fakeProvider('kms');
    const arn = (k: string) => `arn:aws:kms:eu-west-1:111122223333:key/${k}`;
    const m = new KekMap([
      { from: { id: arn('a-old') }, to: { id: arn('a-new') } },
      { from: { id: arn('b-old') }, to: { id: arn('b-new') } },
    ]);
    expect(classifyInMap(envelope({ wrapAlg: 'kms+context', kek: { id: 'b-old' } }), kms, m)).toMatchObject({ kind: 'rewrap', entry: { to: { id: arn('b-new') } } });
    const store = fakeStore({ x: envelope({ wrapAlg: 'kms+context' }) });
    expect(await rewrapItem({ store, provider: kms, keyMap: m }, { key: 'x' })).toMatchObject({ status: 'failed', reason: 'unknown-kek' });
    expect(kms.calls).toBe(0);
  });

  it('the dedupe cache keys on the source KEK: two tenants\' equal wrapped DEKs never share a result', async () => {
    const inner = fakeProvider('local');
    const dedupe = new DedupingKekProvider(inner);
    const same = envelope({ under: 'shared' }).dek; // byte-identical ciphertext and matdesc
    const a = await dedupe.rewrap(same, kek('tenant-a@1'), kek('tenant-a@2'));
    const b = await dedupe.rewrap(same, kek('tenant-b@1'), kek('tenant-b@2'));
    expect(inner.calls).toBe(2);
    expect(a.to).toEqual(kek('tenant-a@2'));
    expect(b.to).toEqual(kek('tenant-b@2'));
    await dedupe.rewrap(same, kek('tenant-a@1'), kek('tenant-a@2'));
    expect(inner.calls).toBe(2); // the same tenant's repeat is reused
  });

  it('per-KEK counters attribute ledger rows to their entry; items at a destination are not "remaining"', () => {
    const s = spec({ keyMap: { 'tenant-a@1': 'tenant-a@2', 'tenant-b@1': 'tenant-b@2' } });
    const c = countsByEntry(s, [
      { kekId: 'tenant-a', kekVersion: '1', moved: 20, under: 0, failed: 0 },
      { kekId: 'tenant-b', kekVersion: '1', moved: 19, under: 1, failed: 1 },
      { kekId: 'tenant-b', kekVersion: '2', moved: 0, under: 3, failed: 0 },
      { kekId: null, kekVersion: null, moved: 0, under: 2, failed: 2 },
    ]);
    expect(c.keks).toEqual([
      { from: 'tenant-a@1', to: 'tenant-a@2', moved: 20, remaining: 0, failed: 0 },
      { from: 'tenant-b@1', to: 'tenant-b@2', moved: 19, remaining: 1, failed: 1 },
    ]);
    expect(c.outsideMap).toEqual({ moved: 0, remaining: 2, failed: 2 });
  });
});
