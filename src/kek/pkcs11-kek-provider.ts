/**
 * KEK provider over a PKCS#11 token (an HSM; SoftHSM2 in tests). The rewrap of a DEK happens
 * inside the token: C_UnwrapKey the old wrapped DEK under the source KEK into a session object
 * (CKA_TOKEN false, CKA_SENSITIVE true, CKA_EXTRACTABLE true only so that C_WrapKey may take it),
 * C_WrapKey it under the target KEK, C_DestroyObject the session object.
 * Invariant 5, stronger here: the plaintext DEK never enters this process's memory at all; what
 * crosses the binding is the old and the new wrapped key and object handles.
 *
 * KEKs are AES-256 secret-key token objects found by label: `<id>@<version>`, or the label the
 * provider spec's `labels` map gives that name. Mechanisms by envelope format:
 *   AESWrapPad (Postgres tables) -> CKM_AES_KEY_WRAP_PAD (RFC 5649)
 *   AESWrap (S3EC legacy)        -> CKM_AES_KEY_WRAP (RFC 3394)
 *   AES/GCM (S3EC V2, tables)    -> CKM_AES_GCM with the content cipher name as AAD, only where the
 *                                   token can wrap with it (C_GetMechanismInfo CKF_WRAP|CKF_UNWRAP);
 *                                   otherwise the item fails `hsm-mechanism-unsupported`, never
 *                                   done in software.
 */
import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { permanent } from '../core/errors.ts';
import { NotUnderSourceError, type KekProvider, type RewrapResult } from './kek-provider.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrapAlgorithm, type WrappedDek } from '../core/kek-ref.ts';
import { CKR, ckrName, ckrOf, classifyPkcs11Error } from './pkcs11-errors.ts';
import { sessionDekTemplate, type Handle, type Mechanism, type Pkcs11Token } from './pkcs11-token.ts';
import { Pkcs11KekNames } from './pkcs11-kek-names.ts';

const GCM_IV_BYTES = 12;
const GCM_TAG_BITS = 128;

export class Pkcs11KekProvider implements KekProvider {
  readonly kind = 'pkcs11' as const;
  readonly #token: Pkcs11Token;
  readonly names: Pkcs11KekNames;
  /** Newest version per KEK id, looked up in the token and kept for a short while. */
  readonly #latest = new Map<string, { version: string | undefined; at: number }>();

  constructor(token: Pkcs11Token, names: Pkcs11KekNames = new Pkcs11KekNames({})) {
    this.#token = token;
    this.names = names;
  }

  /** From the store's KEK columns, or the `kek` entry of the matdesc (as rewrap writes it). */
  identify(dek: WrappedDek): KekVersionRef | undefined {
    if (dek.kek?.version !== undefined) return { id: dek.kek.id, version: dek.kek.version };
    return this.names.parse(dek.matdesc.kek);
  }

  async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector): Promise<RewrapResult> {
    const mech = this.#mechanismFor(dek.wrapAlg);
    const src = this.identify(dek) ?? (from.version !== undefined ? { id: from.id, version: from.version } : undefined);
    if (!src) throw permanent('unknown-kek', `the envelope names no KEK (no KEK columns, no "kek" in its matdesc ${JSON.stringify(dek.matdesc)}) and the campaign source ${formatKek(from)} has no version`);
    if (src.id !== from.id || (from.version !== undefined && src.version !== from.version)) {
      throw new NotUnderSourceError(`wrapped by ${formatKek(src)}, not ${formatKek(from)}`, src);
    }
    const dst = to.version !== undefined ? { id: to.id, version: to.version } : await this.#newest(to.id);
    const wrapped = await this.#token.withSession(async (session) => {
      const srcKey = this.#key(session, src);
      const dstKey = this.#key(session, dst);
      const dekObject = await this.#unwrap(session, mech, dek, srcKey, `C_UnwrapKey under ${formatKek(src)} (${dek.wrapAlg})`);
      try {
        return await wrapUnder(this.#token, session, mech, dek.cekAlg, dstKey, dekObject);
      } catch (err) {
        throw classifyPkcs11Error(err, `C_WrapKey under ${formatKek(dst)} (${dek.wrapAlg})`);
      } finally {
        /* Postcondition: the unwrapped DEK does not outlive this call, in the token either
           (a session object would also go with its session, but sessions are pooled). */
        try {
          this.#token.lib.C_DestroyObject(session, dekObject);
        } catch {
          /* the session is broken: the object goes with it when it is closed */
        }
      }
    });
    return {
      wrapAlg: dek.wrapAlg,
      wrapped,
      /* A row's context columns stay as they are (its KEK columns name the KEK); an S3 envelope
         names its KEK in the matdesc, as an S3EC reader picks its key. */
      matdesc: dek.kek ? { ...dek.matdesc } : { ...dek.matdesc, kek: formatKek(dst) },
      from: src,
      to: dst,
    };
  }

  /**
   * Verification that needs the plaintext DEK (the canary's content check) is not offered: the
   * DEK never leaves the token. `verifyUnwrap` (pkcs11-kek-admin.ts) proves a DEK unwraps
   * under a KEK without exporting it.
   */
  async withUnwrapped<T>(): Promise<T> {
    throw permanent('provider-rejected', 'the pkcs11 provider never exports a plaintext DEK; the canary (canaryFraction) is not available with it');
  }

  /** The token is shared by every campaign of the process (Resources closes it). */
  close(): void {}

  #mechanismFor(wrapAlg: WrapAlgorithm): number {
    const mech =
      wrapAlg === 'AESWrapPad' ? pkcs11js.CKM_AES_KEY_WRAP_PAD : wrapAlg === 'AESWrap' ? pkcs11js.CKM_AES_KEY_WRAP : wrapAlg === 'AES/GCM' ? pkcs11js.CKM_AES_GCM : undefined;
    if (mech === undefined) throw permanent('unsupported-wrap-alg', `wrap algorithm ${wrapAlg} needs a KMS provider, not a PKCS#11 token`);
    const can = this.#token.supports(mech);
    if (!can.wrap || !can.unwrap) {
      throw permanent(
        'hsm-mechanism-unsupported',
        `token ${this.#token.name} cannot ${!can.unwrap ? 'unwrap' : 'wrap'} with ${MECH_NAMES[mech]} (needed for ${wrapAlg} envelopes); the item is left as it is`,
      );
    }
    return mech;
  }

  /**
   * C_UnwrapKey into a session object. CKR_GENERAL_ERROR / CKR_FUNCTION_FAILED are ambiguous
   * here: SoftHSM2 answers CKR_GENERAL_ERROR for a wrapped key that does not authenticate, where
   * the standard says CKR_WRAPPED_KEY_INVALID, and other tokens use them for a device in trouble.
   * So the unwrap is tried once more; the same answer again while the session still answers
   * C_GetSessionInfo means the wrapped key (permanent, invalid-ciphertext), otherwise the token
   * (transient).
   */
  async #unwrap(session: Handle, mech: number, dek: WrappedDek, key: Handle, what: string): Promise<Handle> {
    const { mechanism, body } = unwrapParams(mech, dek);
    const once = () => this.#token.lib.C_UnwrapKeyAsync(session, mechanism, key, body, sessionDekTemplate());
    try {
      return await once();
    } catch (err) {
      const code = ckrOf(err);
      if (code !== CKR.GENERAL_ERROR && code !== CKR.FUNCTION_FAILED) throw classifyPkcs11Error(err, what);
      try {
        return await once();
      } catch (again) {
        if (ckrOf(again) !== code) throw classifyPkcs11Error(again, what);
        try {
          this.#token.lib.C_GetSessionInfo(session);
        } catch {
          throw classifyPkcs11Error(again, what);
        }
        throw permanent('invalid-ciphertext', `PKCS#11 ${what}: ${ckrName(code)} twice from a token that otherwise answers: the wrapped key does not authenticate under this KEK (corrupt, or wrong KEK)`, again);
      }
    }
  }

  #key(session: Handle, kek: KekVersionRef): Handle {
    const label = this.names.label(kek);
    const h = this.#token.findKey(session, label);
    if (!h) throw permanent('unknown-kek', `token ${this.#token.name} has no secret key labelled ${JSON.stringify(label)} (KEK ${formatKek(kek)})`);
    return h;
  }

  async #newest(id: string): Promise<KekVersionRef> {
    const hit = this.#latest.get(id);
    let version = hit && Date.now() - hit.at < LATEST_TTL_MS ? hit.version : undefined;
    if (version === undefined) {
      version = await this.#token.withSession((s) => newestVersion(this.#token, s, this.names, id));
      this.#latest.set(id, { version, at: Date.now() });
    }
    if (version === undefined) throw permanent('unknown-kek', `token ${this.#token.name} has no version of KEK ${id} (labels ${id}@<version>)`);
    return { id, version };
  }
}

/** How long "the newest version of a KEK" is believed before the token is asked again. */
const LATEST_TTL_MS = 10_000;

const MECH_NAMES: Record<number, string> = {
  [pkcs11js.CKM_AES_KEY_WRAP_PAD]: 'CKM_AES_KEY_WRAP_PAD',
  [pkcs11js.CKM_AES_KEY_WRAP]: 'CKM_AES_KEY_WRAP',
  [pkcs11js.CKM_AES_GCM]: 'CKM_AES_GCM',
};

function gcmMechanism(iv: Buffer, aad: string): Mechanism {
  return {
    mechanism: pkcs11js.CKM_AES_GCM,
    parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, aad: Buffer.from(aad, 'utf8'), ivBits: iv.length * 8, tagBits: GCM_TAG_BITS } as pkcs11js.AesGCM,
  };
}

/** S3EC V2 AES/GCM: wrapped = 12-byte IV || ciphertext || tag; the token takes IV and AAD as parameters. */
function unwrapParams(mech: number, dek: WrappedDek): { mechanism: Mechanism; body: Buffer } {
  if (mech !== pkcs11js.CKM_AES_GCM) return { mechanism: { mechanism: mech }, body: dek.wrapped };
  if (dek.wrapped.length <= GCM_IV_BYTES) throw permanent('malformed-wrapped-key', `AES/GCM wrapped key of ${dek.wrapped.length} bytes`);
  return { mechanism: gcmMechanism(dek.wrapped.subarray(0, GCM_IV_BYTES), dek.cekAlg), body: dek.wrapped.subarray(GCM_IV_BYTES) };
}

async function wrapUnder(token: Pkcs11Token, session: Handle, mech: number, cekAlg: string, kek: Handle, dekObject: Handle): Promise<Buffer> {
  const out = Buffer.alloc(128);
  if (mech !== pkcs11js.CKM_AES_GCM) return Buffer.from(await token.lib.C_WrapKeyAsync(session, { mechanism: mech }, kek, dekObject, out));
  /* PKCS#11 2.40 GCM takes the IV from the caller; it is public (it is stored in the envelope). */
  const iv = randomBytes(GCM_IV_BYTES);
  const ct = await token.lib.C_WrapKeyAsync(session, gcmMechanism(iv, cekAlg), kek, dekObject, out);
  return Buffer.concat([iv, ct]);
}

/** The newest `<id>@<version>` KEK in the token (numeric order where versions are numbers). */
export function newestVersion(token: Pkcs11Token, session: Handle, names: Pkcs11KekNames, id: string): string | undefined {
  const versions = listVersions(token, session, names, id);
  return versions.sort(compareVersions).at(-1);
}

/** Every version of `id` with a secret-key token object, by the labels it carries. */
export function listVersions(token: Pkcs11Token, session: Handle, names: Pkcs11KekNames, id: string): string[] {
  const handles = token.findObjects(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
  ]);
  const out: string[] = [];
  for (const h of handles) {
    const [attr] = token.lib.C_GetAttributeValue(session, h, [{ type: pkcs11js.CKA_LABEL }]);
    const ref = names.fromLabel(attr?.value?.toString('utf8') ?? '');
    if (ref?.id === id && ref.version !== undefined) out.push(ref.version);
  }
  return out;
}

export function compareVersions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}
