/**
 * KEK admin (kek-admin.ts) over the local keyring file. The next version is a new `<id>@<n+1>`
 * entry with fresh random material, written atomically (keyring-file-edit.ts); disabling sets its
 * state to "disabled"; destroying removes the version and its material from the file.
 * Verification unwraps in memory with the KEK that wraps the DEK now (withUnwrapped, which zeroes
 * the plaintext), with the keyring as loaded when the verifier was made.
 */
import { isAbsolute, resolve } from 'node:path';
import { ConfigError, ItemError } from '../core/errors.ts';
import type { KekAdmin, KekLifecycleOptions, KekVerifier, UnwrapVerdict } from './kek-admin.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrappedDek } from '../core/kek-ref.ts';
import { matchesSelector } from './kek-selector.ts';
import { loadKeyringFile } from './keyring-file.ts';
import { appendKeyringVersion, numericVersions, removeKeyringVersion, setKeyringState } from './keyring-file-edit.ts';
import { LocalKeyringProvider } from './local-keyring-provider.ts';

export function keyringPath(file: string): string {
  return isAbsolute(file) ? file : resolve(file);
}

export class LocalKeyringAdmin implements KekAdmin {
  readonly kind = 'local' as const;
  readonly keyringFile: string;
  constructor(keyringFile: string) {
    this.keyringFile = keyringPath(keyringFile);
  }

  async currentVersion(kekId: string, o: KekLifecycleOptions): Promise<KekSelector> {
    const path = this.keyringFile;
    const entries = loadKeyringFile(path);
    try {
      const versions = numericVersions(entries, kekId, path);
      if (versions.length === 0) throw new ConfigError(`${o.requester}: keyring file ${path} has no KEK ${kekId}`);
      return { id: kekId, version: String(versions[versions.length - 1]) };
    } finally {
      for (const e of entries) e.material.fill(0);
    }
  }

  async createNextVersion(kekId: string, from: KekSelector, o: KekLifecycleOptions): Promise<{ to: KekSelector; nextKekId: string }> {
    const { previous, created } = await appendKeyringVersion(this.keyringFile, kekId);
    if (previous !== from.version) {
      // Someone added a version between our look and our write: drain theirs too, next run.
      throw new Error(`${o.requester}: keyring KEK ${kekId} changed during the run (newest was ${from.version}, then ${previous}); created ${created}, the next run drains ${previous}`);
    }
    return { to: { id: kekId, version: created }, nextKekId: kekId };
  }

  assertRetirable(kek: KekSelector): void {
    if (kek.version === undefined) throw new ConfigError(`kek retire ${kek.id}: a keyring KEK is retired one version at a time; expected ${kek.id}@<version>`);
  }

  async disable(kek: KekSelector): Promise<void> {
    this.assertRetirable(kek);
    await setKeyringState(this.keyringFile, kek.id, kek.version!, 'disabled');
  }

  async destroy(kek: KekSelector): Promise<void> {
    this.assertRetirable(kek);
    await removeKeyringVersion(this.keyringFile, kek.id, kek.version!);
  }

  /** The keyring as it is now, loaded once for the whole verification. */
  verifier(): KekVerifier {
    return new LocalKeyringVerifier(new LocalKeyringProvider(loadKeyringFile(this.keyringFile)));
  }
}

class LocalKeyringVerifier implements KekVerifier {
  readonly kind = 'local' as const;
  readonly #keyring: LocalKeyringProvider;

  constructor(keyring: LocalKeyringProvider) {
    this.#keyring = keyring;
  }

  identify(dek: WrappedDek): KekVersionRef | undefined {
    return this.#keyring.identify(dek);
  }

  async verifyUnwrap(dek: WrappedDek, retiring: KekSelector): Promise<UnwrapVerdict> {
    const keyring = this.#keyring;
    const ref = keyring.identify(dek);
    if (!ref) return { ok: false, underRetiring: false, problem: `no keyring KEK matches its ${dek.kek ? `KEK columns (${formatKek(dek.kek)})` : 'matdesc'}` };
    if (matchesSelector(ref, retiring)) return { ok: false, underRetiring: true, problem: `still under ${formatKek(ref)}` };
    try {
      await keyring.withUnwrapped(dek, ref, async () => undefined);
      return { ok: true, kek: formatKek(ref) };
    } catch (err) {
      if (!(err instanceof ItemError)) throw err;
      if (err.reason === 'unknown-kek') return { ok: false, underRetiring: false, problem: `under ${formatKek(ref)}, which is not in the keyring` };
      if (err.reason === 'kek-disabled') return { ok: false, underRetiring: false, problem: `under ${formatKek(ref)}, which is disabled` };
      return { ok: false, underRetiring: false, problem: `does not authenticate under ${formatKek(ref)} (corrupt)` };
    }
  }

  close(): void {
    this.#keyring.close();
  }
}
