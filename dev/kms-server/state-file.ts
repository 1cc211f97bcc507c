/**
 * Optional persistence of the local KMS state, so a restarted server keeps its keys. This file
 * is the only place key material ever leaves memory: written with mode 0600, atomically
 * (temporary file + rename), after every change. The temporary file has a random name and is
 * created exclusively (O_EXCL: never through a symlink or into a file someone planted), and is
 * fsynced before the rename, its directory after, so a crash leaves the old state or the new one.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { KeyStore, type KmsKey } from './keystore.ts';
import { SecretBytes } from './secret.ts';

interface StateV1 {
  format: 'rewrap-local-kms/1';
  region: string;
  keys: {
    keyId: string;
    description: string;
    createdAtMs: number;
    enabled: boolean;
    currentMaterialId: string;
    materials: { id: string; keyBase64: string; createdAtMs: number }[];
  }[];
  aliases: { name: string; targetKeyId: string; createdAtMs: number }[];
}

export function saveState(path: string, store: KeyStore): void {
  const state: StateV1 = {
    format: 'rewrap-local-kms/1',
    region: store.region,
    keys: [...store.keys.values()].map((k) => ({
      keyId: k.keyId,
      description: k.description,
      createdAtMs: k.createdAtMs,
      enabled: k.enabled,
      currentMaterialId: k.currentMaterialId,
      materials: [...k.materials.values()].map((m) => ({
        id: m.id,
        keyBase64: m.secret.reveal().toString('base64'),
        createdAtMs: m.createdAtMs,
      })),
    })),
    aliases: [...store.aliases.values()],
  };
  const tmp = `${path}.${randomBytes(8).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(state, null, 1));
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Loads the state file into an empty store; a missing file is an empty state. */
export function loadState(path: string, store: KeyStore): void {
  if (!existsSync(path)) return;
  let state: StateV1;
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as StateV1;
  } catch (err) {
    throw new Error(`local KMS state file ${path} is not valid JSON`, { cause: err });
  }
  if (state.format !== 'rewrap-local-kms/1') {
    throw new Error(`local KMS state file ${path}: format is ${JSON.stringify(state.format)}; expected "rewrap-local-kms/1"`);
  }
  if (state.region !== store.region) {
    throw new Error(`local KMS state file ${path} holds keys of region ${state.region}; the server was started for ${store.region}`);
  }
  for (const k of state.keys) {
    const key: KmsKey = {
      keyId: k.keyId,
      arn: store.keyArn(k.keyId),
      description: k.description,
      createdAtMs: k.createdAtMs,
      enabled: k.enabled,
      currentMaterialId: k.currentMaterialId,
      materials: new Map(
        k.materials.map((m) => [m.id, { id: m.id, secret: new SecretBytes(Buffer.from(m.keyBase64, 'base64')), createdAtMs: m.createdAtMs }]),
      ),
    };
    if (!key.materials.has(key.currentMaterialId) || [...key.materials.values()].some((m) => m.secret.length !== 32)) {
      throw new Error(`local KMS state file ${path}: key ${k.keyId} has a missing current material or a material that is not 32 bytes`);
    }
    store.keys.set(key.keyId, key);
  }
  for (const a of state.aliases) store.aliases.set(a.name, { ...a });
}
