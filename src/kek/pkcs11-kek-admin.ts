/**
 * KEK lifecycle in a PKCS#11 token, for scheduled rotation and retirement: which version is
 * current, create the next one (C_GenerateKey inside the token, never extractable), disable one
 * (CKA_WRAP / CKA_UNWRAP false), destroy one, and prove that a wrapped DEK unwraps under a KEK
 * without the DEK leaving the token (C_UnwrapKey into a session object, destroyed at once).
 * The gate that decides whether a KEK may be disabled or destroyed is the caller's
 * (src/schedule/kek-retirement.ts): nothing here checks whether items still need a KEK.
 */
import pkcs11js from 'pkcs11js';
import { ConfigError } from '../errors.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrappedDek } from './kek-provider.ts';
import { ckrName, ckrOf, classifyPkcs11Error } from './pkcs11-errors.ts';
import { compareVersions, listVersions } from './pkcs11-kek-provider.ts';
import type { Pkcs11KekNames } from './pkcs11-kek-names.ts';
import { sessionDekTemplate, type Handle, type Pkcs11Token } from './pkcs11-token.ts';

export type Pkcs11KekState = 'enabled' | 'decrypt-only' | 'disabled';

export type UnwrapVerdict = { ok: true; kek: string } | { ok: false; problem: string };

export class Pkcs11KekAdmin {
  constructor(
    private readonly token: Pkcs11Token,
    private readonly names: Pkcs11KekNames,
  ) {}

  /** The newest version of `id` in the token (numeric order where versions are numbers), if any. */
  async currentVersion(id: string): Promise<string | undefined> {
    return this.token.withSession((s) => listVersions(this.token, s, this.names, id).sort(compareVersions).at(-1));
  }

  /** All versions of `id` in the token, oldest first. */
  async versions(id: string): Promise<string[]> {
    return this.token.withSession((s) => listVersions(this.token, s, this.names, id).sort(compareVersions));
  }

  /**
   * Generates `<id>@<current + 1>` (or `<id>@1`) as an AES-256 token object: sensitive, never
   * extractable, usable only to wrap and unwrap. Refuses when the current version is not a number.
   */
  async createNextVersion(id: string): Promise<KekVersionRef> {
    return this.token.withSession((s) => {
      const versions = listVersions(this.token, s, this.names, id).sort(compareVersions);
      const current = versions.at(-1);
      if (current !== undefined && !/^\d+$/.test(current)) {
        throw new ConfigError(`KEK ${id}@${current}: the next version of a non-numeric version cannot be chosen; create it in the token yourself`);
      }
      const next = { id, version: String(current === undefined ? 1 : Number(current) + 1) };
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

  /**
   * Whether `dek` unwraps under `kek` inside the token (AESWrap / AESWrapPad envelopes; AES/GCM
   * where the token wraps with GCM). The unwrapped session object is destroyed before returning.
   */
  async verifyUnwrap(dek: WrappedDek, kek: KekSelector): Promise<UnwrapVerdict> {
    const mechanism = dek.wrapAlg === 'AESWrapPad' ? pkcs11js.CKM_AES_KEY_WRAP_PAD : dek.wrapAlg === 'AESWrap' ? pkcs11js.CKM_AES_KEY_WRAP : undefined;
    if (mechanism === undefined) return { ok: false, problem: `wrapped with ${dek.wrapAlg}; the token check covers AESWrap and AESWrapPad` };
    return this.token.withSession(async (s) => {
      const h = this.token.findKey(s, this.names.label(kek));
      if (!h) return { ok: false, problem: `token ${this.token.name} has no KEK ${formatKek(kek)}` };
      let obj: Handle | undefined;
      try {
        obj = await this.token.lib.C_UnwrapKeyAsync(s, { mechanism }, h, dek.wrapped, sessionDekTemplate());
        return { ok: true, kek: formatKek(kek) };
      } catch (err) {
        return { ok: false, problem: `C_UnwrapKey under ${formatKek(kek)}: ${ckrName(ckrOf(err) ?? -1)}` };
      } finally {
        if (obj) this.token.lib.C_DestroyObject(s, obj);
      }
    });
  }

  #find(s: Handle, kek: KekSelector): Handle {
    if (kek.version === undefined) throw new ConfigError(`KEK ${kek.id}: a token KEK is changed one version at a time; expected ${kek.id}@<version>`);
    const h = this.token.findKey(s, this.names.label(kek));
    if (!h) throw new ConfigError(`token ${this.token.name} has no secret key labelled ${JSON.stringify(this.names.label(kek))} (KEK ${formatKek(kek)})`);
    return h;
  }
}
