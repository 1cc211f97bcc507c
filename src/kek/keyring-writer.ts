/**
 * Changes to the local keyring file, written atomically (temp file + rename, mode 0600) so a
 * reader never sees half a keyring and a crash never loses one.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { parseKeyring, type KekState } from './keyring-file.ts';

interface RawKeyring {
  keks: Record<string, unknown>[];
}

export function updateKeyringFile(path: string, mutate: (doc: RawKeyring) => void): void {
  const doc = JSON.parse(readFileSync(path, 'utf8')) as RawKeyring;
  mutate(doc);
  parseKeyring(doc, path); // never write a keyring we could not load back
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

export function setKekState(path: string, id: string, version: string, state: KekState): void {
  updateKeyringFile(path, (doc) => {
    const e = doc.keks.find((k) => k.id === id && String(k.version) === version);
    if (!e) throw new ConfigError(`keyring ${path}: no KEK ${id}@${version}`);
    e.state = state;
  });
}
