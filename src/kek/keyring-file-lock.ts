/**
 * An advisory lock around a keyring file's read-modify-write (keyring-file-edit.ts). Without it a
 * scheduled new version (scheduler process) and an incident's decrypt-only edit (CLI) that meet
 * both read the old file and the second rename drops the first edit: a lost state change, or a
 * lost key. The lock is `<file>.lock`, created with O_EXCL and holding "<pid>@<host>".
 *
 * A holder that died on this host leaves a stale lock, which the next editor removes, but only
 * while it holds `<file>.lock.break` (O_EXCL too) and after reading the lock again under it.
 * Without that, two editors that both saw the dead holder's lock could both remove "it": the first
 * removes the stale lock and takes its own, the second then removes that fresh lock, and both edit
 * at once (one edit lost). Under the break lock the second reads the first's live lock and leaves
 * it. A break lock is held for one read and one unlink; one left behind (its holder died in that
 * instant) is never removed automatically (that would reopen the race one level up): the error
 * names it, and deleting it by hand is safe once no rewrap process is editing the keyring.
 * A holder is "<pid>@<host> pidns=<its PID namespace> boot=<boot id>", and is judged dead only
 * when all three say it ran beside us (same host name, same PID namespace, same boot) and its pid
 * is gone. Anything else is waited for, never judged: another host, another container of the same
 * pod (one host name, its own PID namespace: its pid means nothing here), a lock written before a
 * reboot, a lock of an older rewrap without the namespace, a system without /proc.
 */
import { hostname } from 'node:os';
import { readFileSync, readlinkSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { ConfigError } from '../core/errors.ts';

const WAIT_MS = 10_000;
const POLL_MS = 20;

const code = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** Creates `file` with O_EXCL holding `content`: true when created, false when it exists. */
async function createExclusive(file: string, content: string, path: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'wx', 0o600);
  } catch (err) {
    if (code(err) === 'EEXIST') return false;
    throw new ConfigError(`keyring file ${path}: cannot create its lock file ${file} (${code(err)})`);
  }
  try {
    await fh.writeFile(content);
  } catch (err) {
    /* An empty lock is never judged stale: left behind, it would hold every later editor off. */
    await fh.close().catch(() => undefined);
    await unlink(file).catch(() => undefined);
    throw new ConfigError(`keyring file ${path}: cannot write its lock file ${file} (${code(err)})`);
  }
  await fh.close();
  return true;
}

/** Where this process runs, as a lock records it; undefined parts where /proc does not tell. */
function processPlace(): string {
  const read = (f: () => string) => {
    try {
      return f().trim();
    } catch {
      return 'unknown';
    }
  };
  return `${hostname()} pidns=${read(() => readlinkSync('/proc/self/ns/pid'))} boot=${read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'))}`;
}

export async function withKeyringLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${path}.lock`;
  const me = `${process.pid}@${processPlace()}`;
  const deadline = Date.now() + WAIT_MS;
  while (!(await createExclusive(lock, me, path))) {
    const waitingFor = await breakIfStale(lock, me, path);
    if (waitingFor === 'broken') continue;
    if (Date.now() > deadline) {
      throw new ConfigError(
        waitingFor === 'breaker'
          ? `keyring file ${path}: ${lock}.break has been there for over ${WAIT_MS / 1000} s (an editor died while removing a dead editor's lock); if no rewrap process is editing the keyring, delete ${lock}.break`
          : `keyring file ${path}: another edit holds ${lock} for over ${WAIT_MS / 1000} s; if no rewrap process is editing the keyring, delete ${lock}`,
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/**
 * Removes the lock when its holder is a process of this host that no longer exists, under the
 * break lock. 'holder': it is live (or being written, or another host's); 'breaker': another
 * editor holds the break lock; 'broken': the lock was stale and is gone, or already went.
 */
async function breakIfStale(lock: string, me: string, path: string): Promise<'broken' | 'holder' | 'breaker'> {
  const seen = await readHolder(lock, path);
  if (seen === undefined) return 'broken'; // released meanwhile: try again at once
  if (!isStale(seen)) return 'holder';
  const breakLock = `${lock}.break`;
  if (!(await createExclusive(breakLock, me, path))) return 'breaker';
  try {
    // Read again under the break lock: another editor may have removed the stale lock and taken its own.
    const holder = await readHolder(lock, path);
    if (holder === undefined) return 'broken';
    if (!isStale(holder)) return 'holder';
    await unlink(lock).catch((err) => {
      if (code(err) !== 'ENOENT') throw new ConfigError(`keyring file ${path}: cannot remove the stale lock file ${lock} (${code(err)})`);
    });
    return 'broken';
  } finally {
    await unlink(breakLock).catch(() => undefined);
  }
}

/** The lock's content; undefined when there is no lock file. */
async function readHolder(lock: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(lock, 'utf8');
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    throw new ConfigError(`keyring file ${path}: cannot read its lock file ${lock} (${code(err)})`);
  }
}

/** A holder of this host, PID namespace and boot whose process no longer exists. Empty (being written), or anywhere else: not stale. */
function isStale(holder: string | undefined): boolean {
  const m = holder === undefined ? null : /^(\d+)@(.*)$/.exec(holder);
  const here = processPlace();
  if (!m || m[2] !== here || here.includes('=unknown')) return false;
  try {
    process.kill(Number(m[1]), 0);
    return false;
  } catch (err) {
    return code(err) === 'ESRCH';
  }
}
