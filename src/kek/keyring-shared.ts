/**
 * A local keyring shared by processes on many hosts. Each process reads its own copy of the file;
 * a scheduled rotation that appends a version to the scheduler's copy leaves every other host's
 * workers without it, and they fail `unknown-kek` once the campaign targets it. The safe shape is
 * one source mounted read-only everywhere (a Kubernetes Secret; workers reload it on change,
 * keyring-file-watch.ts) and new versions made at that source, or KMS / an HSM. So the scheduler
 * refuses to append to a keyring it cannot, or must not, write: the operator is told what, why
 * and how to fix it, and the schedule run ends `failed` with that message, nothing created.
 */
import { accessSync, constants, lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import { ConfigError } from '../core/errors.ts';

/**
 * Why the keyring at `path` must not be changed by this process, or undefined when it may be.
 * - `declaredReadOnly`: REWRAP_KEYRING_READ_ONLY=true (the deployment says the file is shared).
 * - a Kubernetes Secret or ConfigMap volume: the file is a symlink into the volume's `..data`
 *   directory; the kubelet replaces it on every update of the Secret, so a change made here would
 *   be lost and seen by no other pod (and the volume is mounted read-only anyway).
 * - the file or its directory is not writable (a read-only mount: EROFS even for root; or the
 *   permission bits, which stop every user but root).
 */
export function keyringReadOnlyReason(path: string, declaredReadOnly: boolean): string | undefined {
  if (declaredReadOnly) return 'REWRAP_KEYRING_READ_ONLY=true says this keyring is shared read-only by every host';
  if (isKubernetesProjection(path)) return 'it is a Kubernetes Secret/ConfigMap volume (a symlink into ..data), which the kubelet rewrites from the Secret';
  for (const [what, target] of [['file', path], ['directory', dirname(path)]] as const) {
    try {
      accessSync(target, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return `its ${what} is not writable by this process (${code}${code === 'EROFS' ? ': a read-only mount' : ''})`;
    }
  }
  return undefined;
}

/** The file is a symlink into a Kubernetes Secret/ConfigMap volume's `..data` (or timestamped `..2026_...`) directory. */
export function isKubernetesProjection(path: string): boolean {
  try {
    if (!lstatSync(path).isSymbolicLink()) return false;
    if (readlinkSync(path).split(/[\\/]/).includes('..data')) return true;
    return realpathSync(path).split(sep).some((part) => part.startsWith('..') && part.length > 2);
  } catch {
    return false;
  }
}

/** Throws before a scheduled rotation appends a version to a keyring it must not change. */
export function assertKeyringWritableByScheduler(path: string, declaredReadOnly: boolean, requester: string): void {
  const reason = keyringReadOnlyReason(path, declaredReadOnly);
  if (reason === undefined) return;
  throw new ConfigError(
    `${requester}: refusing to add a KEK version to keyring file ${path}: ${reason}. ` +
      'Workers on other hosts read their own copy and would fail unknown-kek for the new version. ' +
      'Fix: for workers on many hosts use a KMS or HSM provider (the schedule then rotates the key there); ' +
      'or create the version at the keyring\'s source (e.g. update the Kubernetes Secret), wait until every worker has reloaded it, ' +
      'and start the campaign with `rewrap campaign create`; a keyring only one host uses may stay writable (unset REWRAP_KEYRING_READ_ONLY).',
  );
}
