/**
 * The local keyring file: a JSON document of AES-256 KEKs.
 *   { "keks": [ { "id": "orders", "version": "1", "material": "<base64 of 32 bytes>",
 *                 "matdesc": { "kek": "orders@1" }, "state": "enabled" } ] }
 * `state`: enabled (wrap and unwrap), decrypt-only (unwrap only: a KEK being drained after an
 * incident), disabled (nothing). `matdesc` defaults to { "kek": "<id>@<version>" }.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.ts';
import { parseJsonText } from '../json-text.ts';
import { decodeBase64Strict } from '../core/base64.ts';

export type KekState = 'enabled' | 'decrypt-only' | 'disabled';
const STATES: readonly string[] = ['enabled', 'decrypt-only', 'disabled'];

export interface KeyringEntry {
  id: string;
  version: string;
  /** 32 bytes of key material; never logged, zeroed when the keyring is closed. */
  material: Buffer;
  matdesc: Record<string, string>;
  state: KekState;
}

export function loadKeyringFile(path: string): KeyringEntry[] {
  return parseKeyring(readKeyringDocument(path), path);
}

/**
 * The keyring file's JSON document, unchecked; ConfigError when it cannot be read or parsed, or
 * when its group or others may read or write it (key material: like ssh refuses a private key).
 * Neither message quotes the file (invariant 5).
 */
export function readKeyringDocument(path: string): unknown {
  let text: string;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new ConfigError(`keyring file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    // The mode of the file actually opened, not of whatever the path names a moment later.
    const mode = fstatSync(fd).mode & 0o777;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      throw new ConfigError(
        `keyring file ${path} has mode ${mode.toString(8).padStart(4, '0')}: its group or others may read or change the key material in it; ` +
          `make it private to its owner: chmod 600 ${path}`,
      );
    }
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  return parseJsonText(text, `keyring file ${path}`);
}

export function parseKeyring(doc: unknown, where = 'keyring'): KeyringEntry[] {
  const keks = (doc as { keks?: unknown } | null)?.keks;
  if (!Array.isArray(keks)) throw new ConfigError(`${where}: expected an object with a "keks" array`);
  const seen = new Set<string>();
  const seenMatdesc = new Map<string, string>();
  return keks.map((raw, i) => {
    const at = `${where}: keks[${i}]`;
    if (typeof raw !== 'object' || raw === null) throw new ConfigError(`${at}: expected an object`);
    const r = raw as Record<string, unknown>;
    if (typeof r.id !== 'string' || r.id === '') throw new ConfigError(`${at}.id: expected a non-empty string`);
    const version = typeof r.version === 'number' ? String(r.version) : r.version;
    if (typeof version !== 'string' || version === '') throw new ConfigError(`${at}.version: expected a non-empty string`);
    const name = `${r.id}@${version}`;
    const material = typeof r.material === 'string' ? decodeBase64Strict(r.material) : undefined;
    if (!material || material.length !== 32) {
      throw new ConfigError(`${at} (${name}).material: expected base64 of exactly 32 bytes (AES-256)`);
    }
    const state = r.state ?? 'enabled';
    if (typeof state !== 'string' || !STATES.includes(state)) {
      throw new ConfigError(`${at} (${name}).state: expected one of ${STATES.join(', ')}`);
    }
    const matdesc = r.matdesc ?? { kek: name };
    if (typeof matdesc !== 'object' || matdesc === null || Array.isArray(matdesc) || Object.values(matdesc).some((v) => typeof v !== 'string')) {
      throw new ConfigError(`${at} (${name}).matdesc: expected an object of string values`);
    }
    if (seen.has(name)) throw new ConfigError(`${at}: ${name} appears twice`);
    seen.add(name);
    const md = canonicalMatdesc(matdesc as Record<string, string>);
    const other = seenMatdesc.get(md);
    if (other) throw new ConfigError(`${at} (${name}).matdesc: same as ${other}'s; each KEK needs its own`);
    seenMatdesc.set(md, name);
    return { id: r.id, version, material, matdesc: matdesc as Record<string, string>, state: state as KekState };
  });
}

export function canonicalMatdesc(m: Record<string, string>): string {
  return JSON.stringify(Object.keys(m).sort().map((k) => [k, m[k]]));
}
