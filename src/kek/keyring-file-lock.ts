/**
 * An advisory lock around a keyring file's read-modify-write (keyring-file-edit.ts). Without it a
 * scheduled new version (scheduler process) and an incident's decrypt-only edit (CLI) that meet
 * both read the old file and the second rename drops the first edit: a lost state change, or a
 * lost key. The lock is `<file>.lock`, created with O_EXCL and holding "<pid>@<host>"; a holder
 * that died on this host leaves a stale lock, which the next editor removes.
 */
import { hostname } from 'node:os';
import { open, readFile, unlink } from 'node:fs/promises';
import { ConfigError } from '../core/errors.ts';

const WAIT_MS = 10_000;
const POLL_MS = 20;

export async function withKeyringLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`;
  const me = `${process.pid}@${hostname()}`;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(me);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ConfigError(`keyring file ${path}: cannot create its lock file ${lock} (${(err as NodeJS.ErrnoException).code})`);
      if (await removeIfStale(lock)) continue;
      if (Date.now() > deadline) {
        throw new ConfigError(`keyring file ${path}: another edit holds ${lock} for over ${WAIT_MS / 1000} s; if no rewrap process is editing the keyring, delete ${lock}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/** True when the lock's holder is a process of this host that no longer exists (and it was removed). */
async function removeIfStale(lock: string): Promise<boolean> {
  const holder = await readFile(lock, 'utf8').catch(() => '');
  const m = /^(\d+)@(.*)$/.exec(holder);
  if (!m || m[2] !== hostname()) return false; // being written, or another host's: wait
  try {
    process.kill(Number(m[1]), 0);
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') return false;
  }
  await unlink(lock).catch(() => undefined);
  return true;
}
