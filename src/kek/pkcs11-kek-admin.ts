/**
 * KEK admin (kek-admin.ts) over a PKCS#11 token, for scheduled rotation and retirement: which
 * version is current (the newest `<id>@<n>` label), create the next one (C_GenerateKey inside the
 * token: sensitive, never extractable), disable one (CKA_WRAP / CKA_UNWRAP false), destroy one
 * (C_DestroyObject), and prove that a wrapped DEK unwraps under the KEK it names without the DEK
 * leaving the token (C_UnwrapKey into a session object, destroyed at once).
 * The gate that decides whether a KEK may be disabled or destroyed is the caller's
 * (src/retirement/kek-retirement.ts): nothing here checks whether items still need a KEK.
 */
import pkcs11js from 'pkcs11js';
import { ConfigError } from '../core/errors.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrappedDek } from '../core/kek-ref.ts';
import type { KekAdmin, KekLifecycleOptions, KekVerifier, UnwrapVerdict } from './kek-admin.ts';
import { matchesSelector } from './kek-selector.ts';
import { ckrName, ckrOf, classifyPkcs11Error } from './pkcs11-errors.ts';
import { compareVersions, listVersions, Pkcs11KekProvider } from './pkcs11-kek-provider.ts';
import type { Pkcs11KekNames } from './pkcs11-kek-names.ts';
import { sessionDekTemplate, type Handle, type Pkcs11Token } from './pkcs11-token.ts';

export type Pkcs11KekState = 'enabled' | 'decrypt-only' | 'disabled';

export class Pkcs11KekAdmin implements KekAdmin {
  readonly kind = 'pkcs11' as const;

  constructor(
    private readonly token: Pkcs11Token,
    private readonly names: Pkcs11KekNames,
  ) {}

  /** The newest version of `kekId` in the token (numeric order where versions are numbers). */
  async currentVersion(kekId: string, o?: KekLifecycleOptions): Promise<KekSelector> {
    const version = (await this.versions(kekId)).at(-1);
    if (version === undefined) throw new ConfigError(`${o?.requester ?? 'pkcs11'}: token ${this.token.name} has no KEK ${kekId} (labels ${kekId}@<version>)`);
    return { id: kekId, version };
  }

  /** All versions of `kekId` in the token, oldest first. */
  async versions(kekId: string): Promise<string[]> {
    return this.token.withSession((s) => listVersions(this.token, s, this.names, kekId).sort(compareVersions));
  }

  /**
   * Generates `<id>@<current + 1>` as an AES-256 token object: sensitive, never extractable,
   * usable only to wrap and unwrap. Throws when `from` is no longer the newest version.
   */
  async createNextVersion(kekId: string, from: KekSelector, o?: KekLifecycleOptions): Promise<{ to: KekSelector; nextKekId: string }> {
    const requester = o?.requester ?? 'pkcs11';
    if (o?.rotation === 'new-key') throw new ConfigError(`${requester}: a PKCS#11 KEK rotates to a new version (<id>@<n+1>), not to a new key`);
    const to = await this.token.withSession((s) => {
      const current = listVersions(this.token, s, this.names, kekId).sort(compareVersions).at(-1);
      if (current !== from.version) {
        throw new Error(`${requester}: token KEK ${kekId} changed during the run (newest was ${from.version}, now ${current}); the next run drains ${current}`);
      }
      if (current !== undefined && !/^\d+$/.test(current)) {
        throw new ConfigError(`${requester}: KEK ${kekId}@${current}: the next version of a non-numeric version cannot be chosen; create it in the token yourself`);
      }
      const next = { id: kekId, version: String(current === undefined ? 1 : Number(current) + 1) };
      try {
        this.token.lib.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_LABEL, value: this.names.label(next) },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_WRAP, value: true },
          { type: pkcs11js.CKA_UNWRAP, value: true },
          { type: pkcs11js.CKA_ENCRYPT, value: false },
          { type: pkcs11js.CKA_DECRYPT, value: false },
        ]);
      } catch (err) {
        throw classifyPkcs11Error(err, `C_GenerateKey ${formatKek(next)}`);
      }
      return next;
    });
    return { to, nextKekId: kekId };
  }

  assertRetirable(kek: KekSelector): void {
    if (kek.version === undefined) throw new ConfigError(`kek retire ${kek.id}: a token KEK is retired one version at a time; expected ${kek.id}@<version>`);
  }

  /** enabled: wrap and unwrap; decrypt-only: unwrap only (the source of a drain); disabled: neither. */
  async setState(kek: KekSelector, state: Pkcs11KekState): Promise<void> {
    await this.token.withSession((s) => {
      const h = this.#find(s, kek);
      try {
        this.token.lib.C_SetAttributeValue(s, h, [
          { type: pkcs11js.CKA_WRAP, value: state === 'enabled' },
          { type: pkcs11js.CKA_UNWRAP, value: state !== 'disabled' },
        ]);
      } catch (err) {
        throw new ConfigError(
          `KEK ${formatKek(kek)}: the token refused to change CKA_WRAP/CKA_UNWRAP (${ckrName(ckrOf(err) ?? -1)}); ` +
            'some HSMs make key usage attributes read-only: disable or destroy the key with the HSM vendor tool',
          { cause: err },
        );
      }
    });
  }

  disable(kek: KekSelector): Promise<void> {
    return this.setState(kek, 'disabled');
  }

  /** C_DestroyObject of the token object: the KEK is gone for good. */
  async destroy(kek: KekSelector): Promise<void> {
    await this.token.withSession((s) => {
      const h = this.#find(s, kek);
      try {
        this.token.lib.C_DestroyObject(s, h);
      } catch (err) {
        throw classifyPkcs11Error(err, `C_DestroyObject ${formatKek(kek)}`);
      } finally {
        this.token.forgetKeys();
      }
    });
  }

  verifier(): KekVerifier {
    return new Pkcs11KekVerifier(this.token, this.names);
  }

  /**
   * Whether `dek` unwraps under `kek` inside the token (AESWrap / AESWrapPad envelopes). The
   * unwrapped session object is destroyed before returning.
   */
  async unwrapsUnder(dek: WrappedDek, kek: KekSelector): Promise<{ ok: true } | { ok: false; problem: string }> {
    const mechanism = dek.wrapAlg === 'AESWrapPad' ? pkcs11js.CKM_AES_KEY_WRAP_PAD : dek.wrapAlg === 'AESWrap' ? pkcs11js.CKM_AES_KEY_WRAP : undefined;
    if (mechanism === undefined) return { ok: false, problem: `wrapped with ${dek.wrapAlg}; the token check covers AESWrap and AESWrapPad` };
    return this.token.withSession(async (s) => {
      const h = this.token.findKey(s, this.names.label(kek));
      if (!h) return { ok: false, problem: `token ${this.token.name} has no KEK ${formatKek(kek)}` };
      let obj: Handle | undefined;
      try {
        obj = await this.token.lib.C_UnwrapKeyAsync(s, { mechanism }, h, dek.wrapped, sessionDekTemplate());
        return { ok: true };
      } catch (err) {
        return { ok: false, problem: `C_UnwrapKey under ${formatKek(kek)}: ${ckrName(ckrOf(err) ?? -1)}` };
      } finally {
        if (obj) this.token.lib.C_DestroyObject(s, obj);
      }
    });
  }

  #find(s: Handle, kek: KekSelector): Handle {
    this.assertRetirable(kek);
    const h = this.token.findKey(s, this.names.label(kek));
    if (!h) throw new ConfigError(`token ${this.token.name} has no secret key labelled ${JSON.stringify(this.names.label(kek))} (KEK ${formatKek(kek)})`);
    return h;
  }
}

/** The retirement gate's check: the KEK the envelope names must unwrap it inside the token. */
class Pkcs11KekVerifier implements KekVerifier {
  readonly kind = 'pkcs11' as const;
  readonly #provider: Pkcs11KekProvider;
  readonly #admin: Pkcs11KekAdmin;

  constructor(token: Pkcs11Token, names: Pkcs11KekNames) {
    this.#provider = new Pkcs11KekProvider(token, names);
    this.#admin = new Pkcs11KekAdmin(token, names);
  }

  identify(dek: WrappedDek): KekVersionRef | undefined {
    return this.#provider.identify(dek);
  }

  async verifyUnwrap(dek: WrappedDek, retiring: KekSelector): Promise<UnwrapVerdict> {
    const ref = this.identify(dek);
    if (!ref) return { ok: false, underRetiring: false, problem: `names no token KEK (${dek.kek ? `KEK columns ${formatKek(dek.kek)}` : 'no "kek" in its matdesc'})` };
    if (matchesSelector(ref, retiring)) return { ok: false, underRetiring: true, problem: `still under ${formatKek(ref)}` };
    const r = await this.#admin.unwrapsUnder(dek, ref);
    return r.ok ? { ok: true, kek: formatKek(ref) } : { ok: false, underRetiring: false, problem: r.problem };
  }

  /** Nothing to zero: no key material is ever loaded here. */
  close(): void {}
}
