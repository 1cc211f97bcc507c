/**
 * Changes to the local keyring file (src/kek/keyring-file.ts): a new version with fresh random
 * material, a version's state, or removing a version's material. Every change rewrites the file
 * atomically (a temporary file in the same directory, mode 0600, fsynced, then renamed over the
 * old one, then the directory fsynced so the rename itself survives a power loss): a crash leaves
 * either the old or the new keyring, never a torn one. Edits take the file's advisory lock
 * (keyring-file-lock.ts): two edits at the same moment both land. Unknown fields of
 * the document are kept. Invariant 5: material is never logged or put in an error message.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../core/errors.ts';
import { parseKeyring, readKeyringDocument, type KekState } from './keyring-file.ts';
import { withKeyringLock } from './keyring-file-lock.ts';

type RawEntry = Record<string, unknown> & { id: string; version: string | number };
type RawDoc = Record<string, unknown> & { keks: RawEntry[] };

async function readDoc(path: string): Promise<RawDoc> {
  const doc = readKeyringDocument(path);
  validate(doc, path);
  return doc as RawDoc;
}

/** parseKeyring's checks (32-byte material, unique names and matdescs); the parsed copy is zeroed. */
function validate(doc: unknown, path: string): void {
  for (const e of parseKeyring(doc, `keyring file ${path}`)) e.material.fill(0);
}

async function writeDoc(path: string, doc: RawDoc): Promise<void> {
  validate(doc, path);
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(doc, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new Error(`keyring file ${path}: could not replace it with the updated keyring`, { cause: err });
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

const sameEntry = (e: RawEntry, id: string, version: string) => e.id === id && String(e.version) === version;

/** Versions of `id`, oldest first (numeric order). */
export function numericVersions(entries: { id: string; version: string | number }[], id: string, path: string): number[] {
  const vs = entries.filter((e) => e.id === id).map((e) => String(e.version));
  const bad = vs.find((v) => !/^\d+$/.test(v));
  if (bad !== undefined) throw new ConfigError(`keyring file ${path}: KEK ${id} has version ${JSON.stringify(bad)}; scheduled rotation needs numeric versions`);
  return vs.map(Number).sort((a, b) => a - b);
}

/**
 * Appends `id@<newest+1>` with fresh random material, state enabled. Returns the newest version
 * before (the one to drain) and the new one.
 */
export function appendKeyringVersion(path: string, id: string): Promise<{ previous: string; created: string }> {
  return withKeyringLock(path, async () => {
    const doc = await readDoc(path);
    const versions = numericVersions(doc.keks, id, path);
    if (versions.length === 0) throw new ConfigError(`keyring file ${path}: no KEK ${id} to rotate; add its first version by hand`);
    const previous = String(versions[versions.length - 1]);
    const created = String(versions[versions.length - 1]! + 1);
    const material = randomBytes(32);
    doc.keks.push({ id, version: created, material: material.toString('base64'), matdesc: { kek: `${id}@${created}` }, state: 'enabled' });
    material.fill(0);
    await writeDoc(path, doc);
    return { previous, created };
  });
}

/** Sets a version's state; returns the state it had. */
export function setKeyringState(path: string, id: string, version: string, state: KekState): Promise<string> {
  return withKeyringLock(path, async () => {
    const doc = await readDoc(path);
    const e = doc.keks.find((k) => sameEntry(k, id, version));
    if (!e) throw new ConfigError(`keyring file ${path}: no KEK ${id}@${version}`);
    const before = String(e.state ?? 'enabled');
    e.state = state;
    await writeDoc(path, doc);
    return before;
  });
}

/** Removes a version and its material from the file: irreversible once backups are gone. */
export function removeKeyringVersion(path: string, id: string, version: string): Promise<void> {
  return withKeyringLock(path, async () => {
    const doc = await readDoc(path);
    const i = doc.keks.findIndex((k) => sameEntry(k, id, version));
    if (i < 0) throw new ConfigError(`keyring file ${path}: no KEK ${id}@${version}`);
    doc.keks.splice(i, 1);
    await writeDoc(path, doc);
  });
}
