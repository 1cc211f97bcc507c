/**
 * Key maps (issue 19, point 2): one campaign moves many KEKs, each source KEK to its own
 * destination. Spec forms, validated here once, at the edge:
 *   - "keyMap": { "tenant-a@1": "tenant-a@2", ... }             (keyring, PKCS#11 names)
 *   - "keyMap": [ { "from": "arn:...:key/a", "to": "arn:...:key/b" }, ... ]   (any provider)
 *   - a rule, "from": "tenant-*@current-1", "to": "tenant-*@current": resolved against the
 *     keyring when the campaign is created (key-map-rule.ts), so the stored spec holds the
 *     explicit map and the plan is deterministic.
 */
import { ConfigError } from '../core/errors.ts';
import { formatKek, type KekSelector } from '../core/kek-ref.ts';
import { MAX_KEY_MAP_ENTRIES, type KekPattern, type KeyMapEntry, type KeyMapRule, type ProviderSpec } from '../core/campaign-spec.ts';

export type { KekPattern, KeyMapRule };

export const isRuleText = (v: unknown): v is string => typeof v === 'string' && v.includes('*');

export function parsePattern(text: string, at: string): KekPattern {
  const m = /^([^@*]*)\*([^@*]*)@([^@*]+)$/.exec(text);
  if (!m) {
    throw new ConfigError(`${at}: ${JSON.stringify(text)} is not a key map rule; expected one "*" in the KEK id and a version, e.g. "tenant-*@current-1" (versions: a literal, "current" or "current-<n>")`);
  }
  const v = m[3]!;
  const back = /^current(?:-(\d+))?$/.exec(v);
  return { prefix: m[1]!, suffix: m[2]!, version: back ? { back: Number(back[1] ?? 0) } : { literal: v } };
}

export function parseKeyMapRule(from: string, to: unknown, provider: ProviderSpec): KeyMapRule {
  if (!isRuleText(to)) throw new ConfigError(`campaign spec.to: "from" is a key map rule (${from}); "to" must be one too, with one "*", e.g. "tenant-*@current"`);
  if (provider.type !== 'local') {
    throw new ConfigError(
      `campaign spec.from: a key map rule (${from}) is resolved against a local keyring file; for a ${provider.type} provider give an explicit "keyMap" (KMS: a list of { "from": <key ARN>, "to": <key ARN> })`,
    );
  }
  const rule = { from: parsePattern(from, 'campaign spec.from'), to: parsePattern(to, 'campaign spec.to'), text: { from, to } };
  if (rule.from.prefix === rule.to.prefix && rule.from.suffix === rule.to.suffix && JSON.stringify(rule.from.version) === JSON.stringify(rule.to.version)) {
    throw new ConfigError(`campaign spec: the rule maps ${from} to itself`);
  }
  return rule;
}

function parseName(v: unknown, at: string): KekSelector {
  if (typeof v === 'string' && v) {
    const i = v.lastIndexOf('@');
    if (i === 0 || i === v.length - 1) throw new ConfigError(`${at}: ${JSON.stringify(v)}: expected "<kek id>[@<version>]"`);
    return i > 0 ? { id: v.slice(0, i), version: v.slice(i + 1) } : { id: v };
  }
  const r = v as Record<string, unknown> | null;
  if (typeof r === 'object' && r !== null && typeof r.id === 'string' && r.id && (r.version === undefined || (typeof r.version === 'string' && r.version))) {
    const extra = Object.keys(r).find((k) => k !== 'id' && k !== 'version');
    if (extra) throw new ConfigError(`${at}.${extra}: unknown field; expected "id" and optionally "version"`);
    return r.version === undefined ? { id: r.id } : { id: r.id, version: r.version as string };
  }
  throw new ConfigError(`${at}: expected "<kek id>[@<version>]" or { "id": ..., "version"?: ... }`);
}

/** The two spec forms of an explicit map, as entries in spec order. */
export function parseKeyMap(v: unknown, provider: ProviderSpec): KeyMapEntry[] {
  const at = 'campaign spec.keyMap';
  let entries: KeyMapEntry[];
  if (Array.isArray(v)) {
    if (v.length > MAX_KEY_MAP_ENTRIES) throw tooMany(v.length);
    entries = v.map((e, i) => {
      const r = e as Record<string, unknown> | null;
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new ConfigError(`${at}[${i}]: expected { "from": <source KEK>, "to": <destination KEK> }`);
      const extra = Object.keys(r).find((k) => k !== 'from' && k !== 'to');
      if (extra) throw new ConfigError(`${at}[${i}].${extra}: unknown field; expected "from" and "to"`);
      return { from: parseName(r.from, `${at}[${i}].from`), to: parseName(r.to, `${at}[${i}].to`) };
    });
  } else if (typeof v === 'object' && v !== null) {
    const pairs = Object.entries(v as Record<string, unknown>);
    if (pairs.length > MAX_KEY_MAP_ENTRIES) throw tooMany(pairs.length);
    entries = pairs.map(([k, d]) => ({ from: parseName(k, `${at} key ${JSON.stringify(k)}`), to: parseName(d, `${at}[${JSON.stringify(k)}]`) }));
  } else {
    throw new ConfigError(`${at}: expected an object { "<source id>@<version>": "<destination id>@<version>", ... } or a list [{ "from": ..., "to": ... }]`);
  }
  checkKeyMap(entries, provider);
  return entries;
}

const tooMany = (n: number) =>
  new ConfigError(`campaign spec.keyMap: ${n.toLocaleString('en-US')} entries; at most ${MAX_KEY_MAP_ENTRIES.toLocaleString('en-US')} in one campaign (split the tenants over several campaigns)`);

/** Names an entry in messages: `"tenant-a@1" -> "tenant-a@2"`. */
export const entryText = (e: KeyMapEntry) => `"${formatKek(e.from)}" -> "${formatKek(e.to)}"`;

/**
 * The rules of a map, whatever form it came in (a resolved rule too): not empty, bounded, each
 * source once (a source without a version covers every version of its id), no destination that
 * is also a source (a chain would move an item twice, or back), no entry onto itself, KMS
 * destinations as whole keys, and KMS sources as whole keys where the map has several entries.
 */
export function checkKeyMap(entries: KeyMapEntry[], provider: ProviderSpec): void {
  const at = 'campaign spec.keyMap';
  if (entries.length === 0) throw new ConfigError(`${at}: empty; expected at least one source KEK and its destination`);
  if (entries.length > MAX_KEY_MAP_ENTRIES) throw tooMany(entries.length);
  const byId = new Map<string, KeyMapEntry[]>();
  for (const e of entries) {
    if (e.from.id === e.to.id && (e.from.version === undefined || e.from.version === e.to.version)) {
      throw new ConfigError(`${at}: entry ${entryText(e)} does not move anything; give the source version, and a destination other than the source`);
    }
    if (provider.type === 'kms' && e.to.version !== undefined) {
      throw new ConfigError(`${at}: entry ${entryText(e)}: KMS always encrypts under a key's current material; give the destination key id or ARN alone`);
    }
    if (provider.type === 'kms' && entries.length > 1 && e.from.version !== undefined) {
      throw new ConfigError(`${at}: entry ${entryText(e)}: a KMS key map moves whole keys; drain one key material with a campaign of its own ("from": "<key>@<material id>")`);
    }
    const same = byId.get(e.from.id) ?? [];
    const dup = same.find((o) => o.from.version === undefined || e.from.version === undefined || o.from.version === e.from.version);
    if (dup) throw new ConfigError(`${at}: source KEK "${formatKek(e.from)}" is mapped twice (${entryText(dup)} and ${entryText(e)}); each source KEK has one destination`);
    same.push(e);
    byId.set(e.from.id, same);
  }
  for (const e of entries) {
    const chained = (byId.get(e.to.id) ?? []).find((o) => o.from.version === undefined || e.to.version === undefined || o.from.version === e.to.version);
    if (chained && !(chained === e && e.from.version !== undefined)) {
      throw new ConfigError(`${at}: destination "${formatKek(e.to)}" of ${entryText(e)} is also a source (${entryText(chained)}); chains are not allowed: map each source straight to its final KEK`);
    }
  }
}
