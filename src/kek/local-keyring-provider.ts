/**
 * KEK provider over a local keyring of AES-256 KEKs. Unwraps and re-wraps in memory and zeroes
 * the plaintext DEK right after. Invariant 5: no key bytes leave this file except wrapped.
 */
import { permanent } from '../core/errors.ts';
import { gcmUnwrap, gcmWrap } from './aes-gcm-wrap.ts';
import { canonicalMatdesc, type KeyringEntry } from './keyring-file.ts';
import { NotUnderSourceError, type KekProvider, type RewrapResult, zeroAfter } from './kek-provider.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrappedDek } from '../core/kek-ref.ts';

export class LocalKeyringProvider implements KekProvider {
  readonly kind = 'local' as const;
  private byName = new Map<string, KeyringEntry>();
  private byMatdesc = new Map<string, KeyringEntry>();
  private entries: KeyringEntry[] = [];

  constructor(entries: KeyringEntry[]) {
    this.replace(entries);
  }

  /**
   * Takes a newly loaded keyring (keyring-file-watch.ts) and zeroes the old one's material. Safe
   * with rewraps in flight: every use of an entry (lookup, unwrap, wrap) runs without an await
   * in between, so a call sees either the old keyring or the new one, never zeroed material.
   */
  replace(entries: KeyringEntry[]): void {
    const old = this.entries;
    const byName = new Map<string, KeyringEntry>();
    const byMatdesc = new Map<string, KeyringEntry>();
    for (const e of entries) {
      byName.set(`${e.id}@${e.version}`, e);
      byMatdesc.set(canonicalMatdesc(e.matdesc), e);
    }
    this.entries = entries;
    this.byName = byName;
    this.byMatdesc = byMatdesc;
    for (const e of old) e.material.fill(0);
  }

  identify(dek: WrappedDek): KekVersionRef | undefined {
    const e = this.entryFor(dek);
    return e && { id: e.id, version: e.version };
  }

  /** The newest version of `id` (numeric order where versions are numbers). */
  latest(id: string): KeyringEntry | undefined {
    const versions = this.entries.filter((e) => e.id === id);
    return versions.sort((a, b) => compareVersions(b.version, a.version))[0];
  }

  entry(sel: KekSelector): KeyringEntry | undefined {
    return sel.version === undefined ? this.latest(sel.id) : this.byName.get(`${sel.id}@${sel.version}`);
  }

  async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector): Promise<RewrapResult> {
    if (dek.wrapAlg !== 'AES/GCM') {
      throw permanent('unknown-kek', `wrap algorithm ${dek.wrapAlg} needs a KMS provider, not the local keyring`);
    }
    const src = this.entryFor(dek);
    if (!src) {
      throw permanent('unknown-kek', `no keyring KEK matches ${dek.kek ? formatKek(dek.kek) : `matdesc ${JSON.stringify(dek.matdesc)}`}`);
    }
    if (src.id !== from.id || (from.version !== undefined && src.version !== from.version)) {
      throw new NotUnderSourceError(`wrapped by ${src.id}@${src.version}, not ${formatKek(from)}`, { id: src.id, version: src.version });
    }
    if (src.state === 'disabled') throw permanent('kek-disabled', `source KEK ${src.id}@${src.version} is disabled`);
    const dst = this.entry(to);
    if (!dst) throw permanent('unknown-kek', `target KEK ${formatKek(to)} is not in the keyring`);
    if (dst.state !== 'enabled') throw permanent('kek-disabled', `target KEK ${dst.id}@${dst.version} is ${dst.state}`);

    const plain = gcmUnwrap(src.material, dek.wrapped, dek.cekAlg);
    if (!plain) {
      throw permanent('invalid-ciphertext', `wrapped key does not authenticate under ${src.id}@${src.version} (corrupt, or wrong KEK)`);
    }
    try {
      const wrapped = gcmWrap(dst.material, plain, dek.cekAlg);
      return {
        wrapAlg: 'AES/GCM',
        wrapped,
        matdesc: { ...dst.matdesc },
        from: { id: src.id, version: src.version },
        to: { id: dst.id, version: dst.version },
      };
    } finally {
      /* Postcondition: the plaintext DEK does not outlive this call. */
      plain.fill(0);
    }
  }

  async withUnwrapped<T>(dek: WrappedDek, kek: KekSelector, fn: (plaintextDek: Buffer) => Promise<T>): Promise<T> {
    const e = this.entry(kek);
    if (!e) throw permanent('unknown-kek', `KEK ${formatKek(kek)} is not in the keyring`);
    if (e.state === 'disabled') throw permanent('kek-disabled', `KEK ${e.id}@${e.version} is disabled`);
    const plain = gcmUnwrap(e.material, dek.wrapped, dek.cekAlg);
    if (!plain) throw permanent('invalid-ciphertext', `wrapped key does not authenticate under ${e.id}@${e.version}`);
    return zeroAfter(plain, fn);
  }

  /** Zeroes all key material; the provider is unusable afterwards. */
  close(): void {
    for (const e of this.entries) e.material.fill(0);
  }

  private entryFor(dek: WrappedDek): KeyringEntry | undefined {
    if (dek.kek?.version !== undefined) return this.byName.get(`${dek.kek.id}@${dek.kek.version}`);
    return this.byMatdesc.get(canonicalMatdesc(dek.matdesc));
  }
}

function compareVersions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

