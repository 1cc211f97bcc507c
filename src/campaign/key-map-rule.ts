/**
 * Resolving a key map rule (`"from": "tenant-*@current-1", "to": "tenant-*@current"`) against
 * the KEKs a keyring holds, once, when the campaign is created: the stored spec holds the
 * explicit map, so what the campaign drains does not change when a version is added later.
 */
import { ConfigError } from '../core/errors.ts';
import type { CampaignSpec, KeyMapEntry } from '../core/campaign-spec.ts';
import { keyringPath } from '../kek/local-keyring-admin.ts';
import { loadKeyringFile } from '../kek/keyring-file.ts';
import { checkKeyMap, type KekPattern, type KeyMapRule } from './key-map-spec.ts';

/** The part the `*` stood for, or undefined when `id` does not fit the pattern. */
function starOf(p: KekPattern, id: string): string | undefined {
  if (id.length <= p.prefix.length + p.suffix.length || !id.startsWith(p.prefix) || !id.endsWith(p.suffix)) return undefined;
  return id.slice(p.prefix.length, id.length - p.suffix.length);
}

/** A version of `versions` (all numeric, ascending when `back` is used) the pattern names. */
function versionOf(p: KekPattern, versions: string[]): string | undefined {
  if ('literal' in p.version) return versions.includes(p.version.literal) ? p.version.literal : undefined;
  return versions[versions.length - 1 - p.version.back];
}

/**
 * Each keyring id matching the source pattern gives one entry, when both its source version and
 * the destination (id and version) exist; ids with too few versions are left out (nothing to
 * drain). A keyring whose matching ids hold non-numeric versions cannot say which is "current".
 */
export function resolveRule(rule: KeyMapRule, keks: readonly { id: string; version: string }[], where: string): KeyMapEntry[] {
  const versions = new Map<string, string[]>();
  for (const k of keks) versions.set(k.id, [...(versions.get(k.id) ?? []), k.version]);
  const sorted = (id: string): string[] => {
    const vs = versions.get(id) ?? [];
    const bad = vs.find((v) => !/^\d+$/.test(v));
    if (bad !== undefined && ('back' in rule.from.version || 'back' in rule.to.version)) {
      throw new ConfigError(`${where}: KEK ${id} has version ${JSON.stringify(bad)}; "current" in a key map rule needs numeric versions (or name the versions literally)`);
    }
    return [...vs].sort((a, b) => Number(a) - Number(b));
  };
  const entries: KeyMapEntry[] = [];
  /* "tenant-*" -> "tenant-*-v2": the destinations fit the source pattern too; they are destinations, not sources. */
  const idMoves = rule.from.prefix !== rule.to.prefix || rule.from.suffix !== rule.to.suffix;
  for (const id of [...versions.keys()].sort()) {
    const star = starOf(rule.from, id);
    if (star === undefined) continue;
    if (idMoves && starOf(rule.to, id) !== undefined) continue;
    const fromVersion = versionOf(rule.from, sorted(id));
    const toId = `${rule.to.prefix}${star}${rule.to.suffix}`;
    if (fromVersion === undefined) continue;
    const toVersion = versions.has(toId) ? versionOf(rule.to, sorted(toId)) : undefined;
    if (toVersion === undefined) {
      throw new ConfigError(`${where}: rule ${rule.text.from} -> ${rule.text.to}: ${id}@${fromVersion} maps to ${toId}@${formatVersion(rule.to)}, which the keyring does not hold; add it first`);
    }
    if (toId === id && toVersion === fromVersion) continue; // only one version so far: nothing to move
    entries.push({ from: { id, version: fromVersion }, to: { id: toId, version: toVersion } });
  }
  if (entries.length === 0) throw new ConfigError(`${where}: rule ${rule.text.from} -> ${rule.text.to} matches no KEK with a version to drain; the key map would be empty`);
  return entries;
}

const formatVersion = (p: KekPattern) => ('literal' in p.version ? p.version.literal : p.version.back === 0 ? 'current' : `current-${p.version.back}`);

/**
 * The spec as it is stored: a rule resolved into `keyMap` against the campaign's keyring, and for
 * a local keyring, every destination of an explicit map checked to exist (and be there to wrap
 * under) before anything is planned. Material is zeroed once read.
 */
export function resolveKeyMap(spec: CampaignSpec): CampaignSpec {
  if (!spec.keyMapRule && !spec.keyMap) return spec;
  if (spec.provider.type !== 'local') {
    if (spec.keyMapRule) throw new ConfigError('campaign spec.from: a key map rule needs a local keyring provider; give an explicit "keyMap"');
    return spec;
  }
  const file = keyringPath(spec.provider.keyringFile);
  const keyring = loadKeyringFile(file);
  try {
    const where = `keyring file ${file}`;
    const names = new Map(keyring.map((k) => [`${k.id}@${k.version}`, k.state]));
    let keyMap = spec.keyMap;
    if (spec.keyMapRule) keyMap = resolveRule(spec.keyMapRule, keyring, where);
    checkKeyMap(keyMap!, spec.provider);
    for (const e of keyMap!) {
      const state = e.to.version === undefined ? undefined : names.get(`${e.to.id}@${e.to.version}`);
      if (state === undefined) throw new ConfigError(`campaign spec.keyMap: destination "${e.to.id}@${e.to.version ?? '?'}" of "${e.from.id}@${e.from.version ?? ''}" is not in ${where}; add it first (a keyring destination needs a version)`);
      if (state !== 'enabled') throw new ConfigError(`campaign spec.keyMap: destination "${e.to.id}@${e.to.version}" is ${state} in ${where}; a destination must be enabled to wrap under it`);
    }
    const { keyMapRule: _rule, ...rest } = spec;
    return { ...rest, keyMap };
  } finally {
    for (const k of keyring) k.material.fill(0);
  }
}
