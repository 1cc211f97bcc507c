/**
 * "Does this DEK still decrypt, and not under the KEK being retired?" for one envelope, used only
 * by the retirement gate. Local keyring: unwrap in memory with the KEK that wraps it now, zero the
 * result. KMS: Decrypt (with KeyId when the ledger says which key), zero the plaintext.
 * Invariant 5: the answer names KEKs and error types only; no key bytes ever leave this file.
 */
import { DecryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { formatKek, type KekSelector, type WrappedDek } from '../kek/kek-provider.ts';
import { gcmUnwrap } from '../kek/aes-gcm-wrap.ts';
import { kmsEncryptionContext } from '../kek/kms-kek-provider.ts';
import type { LocalKeyringProvider } from '../kek/local-keyring-provider.ts';
import type { Pkcs11KekProvider } from '../kek/pkcs11-kek-provider.ts';
import type { Pkcs11KekAdmin } from '../kek/pkcs11-kek-admin.ts';

export type UnwrapVerdict = { ok: true; kek: string } | { ok: false; underRetiring: boolean; problem: string };

export interface UnwrapChecker {
  check(dek: WrappedDek, expectedKeyId?: string, signal?: AbortSignal): Promise<UnwrapVerdict>;
}

const matches = (retiring: KekSelector, id: string, version?: string, materialId?: string) =>
  id === retiring.id && (retiring.version === undefined || retiring.version === version || retiring.version === materialId);

export function localUnwrapChecker(keyring: LocalKeyringProvider, retiring: KekSelector): UnwrapChecker {
  return {
    async check(dek) {
      const ref = keyring.identify(dek);
      if (!ref) return { ok: false, underRetiring: false, problem: `no keyring KEK matches its ${dek.kek ? `KEK columns (${formatKek(dek.kek)})` : 'matdesc'}` };
      if (matches(retiring, ref.id, ref.version)) return { ok: false, underRetiring: true, problem: `still under ${formatKek(ref)}` };
      const entry = keyring.entry(ref);
      if (!entry || entry.state === 'disabled') return { ok: false, underRetiring: false, problem: `under ${formatKek(ref)}, which is ${entry ? 'disabled' : 'not in the keyring'}` };
      const plain = gcmUnwrap(entry.material, dek.wrapped, dek.cekAlg);
      if (!plain) return { ok: false, underRetiring: false, problem: `does not authenticate under ${formatKek(ref)} (corrupt)` };
      plain.fill(0);
      return { ok: true, kek: formatKek(ref) };
    },
  };
}

export function kmsUnwrapChecker(kms: KMSClient, retiring: KekSelector): UnwrapChecker {
  return {
    async check(dek, expectedKeyId, signal) {
      if (dek.wrapAlg !== 'kms+context') return { ok: false, underRetiring: false, problem: `wrapped with ${dek.wrapAlg}, not kms+context` };
      try {
        const out = await kms.send(
          new DecryptCommand({ CiphertextBlob: dek.wrapped, EncryptionContext: kmsEncryptionContext(dek), KeyId: expectedKeyId }),
          { abortSignal: signal },
        );
        out.Plaintext?.fill(0);
        const keyId = out.KeyId ?? expectedKeyId ?? '';
        const sameKey = keyId === retiring.id || keyId.endsWith(`/${retiring.id}`) || retiring.id.endsWith(`/${keyId}`);
        if (sameKey && (retiring.version === undefined || retiring.version === out.KeyMaterialId)) {
          return { ok: false, underRetiring: true, problem: `still under ${formatKek(retiring)}` };
        }
        return { ok: true, kek: out.KeyMaterialId ? `${keyId}@${out.KeyMaterialId}` : keyId };
      } catch (err) {
        const e = err as { name?: string; $metadata?: { requestId?: string } };
        return { ok: false, underRetiring: false, problem: `KMS Decrypt failed: ${e.name ?? 'Error'}${e.$metadata?.requestId ? ` (request ${e.$metadata.requestId})` : ''}` };
      }
    },
  };
}

/** PKCS#11: the KEK the envelope names must unwrap it inside the token (nothing leaves the token). */
export function pkcs11UnwrapChecker(provider: Pkcs11KekProvider, admin: Pkcs11KekAdmin, retiring: KekSelector): UnwrapChecker {
  return {
    async check(dek) {
      const ref = provider.identify(dek);
      if (!ref) return { ok: false, underRetiring: false, problem: `names no token KEK (${dek.kek ? `KEK columns ${formatKek(dek.kek)}` : 'no "kek" in its matdesc'})` };
      if (matches(retiring, ref.id, ref.version)) return { ok: false, underRetiring: true, problem: `still under ${formatKek(ref)}` };
      const verdict = await admin.verifyUnwrap(dek, ref);
      return verdict.ok ? verdict : { ok: false, underRetiring: false, problem: verdict.problem };
    },
  };
}
