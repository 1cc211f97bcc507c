/**
 * KEK admin (kek-admin.ts) over AWS KMS (and the local KMS-compatible server). The next version
 * is new key material in the same key (RotateKeyOnDemand; the campaign drains the previous
 * material id) or a new key (CreateKey; the schedule follows it on its next run). Disabling is
 * DisableKey, for a whole key only (KMS cannot disable one key material). Destroying is not
 * offered: our local KMS server has no ScheduleKeyDeletion, and deleting a real KMS key is left to
 * the operator's own procedure. Verification is a Decrypt (with KeyId when the ledger says which
 * key) whose plaintext is zeroed at once.
 */
import { CreateKeyCommand, DecryptCommand, DescribeKeyCommand, DisableKeyCommand, ListAliasesCommand, RotateKeyOnDemandCommand, type KMSClient } from '@aws-sdk/client-kms';
import { ConfigError } from '../core/errors.ts';
import type { KekAdmin, KekLifecycleOptions, KekVerifier, UnwrapVerdict } from './kek-admin.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrappedDek } from '../core/kek-ref.ts';
import { matchesSelector } from './kek-selector.ts';
import { kmsEncryptionContext } from './kms-kek-provider.ts';

export class KmsKekAdmin implements KekAdmin {
  readonly kind = 'kms' as const;
  readonly #kms: KMSClient;

  /** `client`: the one KMSClient of this process and region (see createKmsClient). */
  constructor(client: KMSClient) {
    this.#kms = client;
  }

  async currentVersion(kekId: string, o: KekLifecycleOptions): Promise<KekSelector> {
    if (o.rotation === 'new-key') return { id: kekId };
    const out = await this.#kms.send(new DescribeKeyCommand({ KeyId: kekId }));
    const material = out.KeyMetadata?.CurrentKeyMaterialId;
    if (!material) throw new Error(`${o.requester}: KMS DescribeKey ${kekId} reported no CurrentKeyMaterialId; cannot tell which key material to drain`);
    return { id: kekId, version: material };
  }

  async createNextVersion(kekId: string, _from: KekSelector, o: KekLifecycleOptions): Promise<{ to: KekSelector; nextKekId: string }> {
    if (o.rotation === 'new-version') {
      await this.#kms.send(new RotateKeyOnDemandCommand({ KeyId: kekId }));
      return { to: { id: kekId }, nextKekId: kekId };
    }
    const created = await this.#kms.send(new CreateKeyCommand({ Description: `rewrap ${o.requester}: successor of ${kekId}` }));
    const arn = created.KeyMetadata?.Arn;
    if (!arn) throw new Error(`${o.requester}: KMS CreateKey answered without a key ARN`);
    return { to: { id: arn }, nextKekId: arn };
  }

  assertRetirable(kek: KekSelector, o: { destroy: boolean }): void {
    if (o.destroy) throw new ConfigError('kek retire --delete: not supported for KMS keys (our KMS server has no ScheduleKeyDeletion); disable the key here and schedule its deletion in KMS yourself');
    if (kek.id.startsWith('alias/') || /^arn:[^:]+:kms:[^:]*:[^:]*:alias\//.test(kek.id)) {
      throw new ConfigError(`kek retire ${kek.id}: KMS disables a key by its key id or key ARN, not by an alias (an alias can be pointed at another key meanwhile); run rewrap kek retire with the key ARN (aws kms describe-key --key-id ${kek.id})`);
    }
    if (kek.version !== undefined) throw new ConfigError(`kek retire ${formatKek(kek)}: KMS cannot disable one key material; retire the whole key (rewrap kek retire ${kek.id}) once no item is under any of its materials`);
  }

  async disable(kek: KekSelector, signal?: AbortSignal): Promise<void> {
    this.assertRetirable(kek, { destroy: false });
    await this.#kms.send(new DisableKeyCommand({ KeyId: kek.id }), { abortSignal: signal });
  }

  async destroy(kek: KekSelector): Promise<void> {
    this.assertRetirable(kek, { destroy: true });
  }

  verifier(): KekVerifier {
    return new KmsKekVerifier(this.#kms);
  }

  /** DescribeKey (the key id and ARN an alias or id resolves to) and ListAliases of that key. */
  async otherNames(kekId: string, signal?: AbortSignal): Promise<string[]> {
    const meta = (await this.#kms.send(new DescribeKeyCommand({ KeyId: kekId }), { abortSignal: signal })).KeyMetadata;
    if (!meta?.KeyId || !meta.Arn) throw new Error(`KMS DescribeKey ${kekId} answered without the key's id and ARN`);
    const names = new Set<string>([meta.KeyId, meta.Arn]);
    for (let marker: string | undefined, more = true; more; ) {
      const page = await this.#kms.send(new ListAliasesCommand({ KeyId: meta.KeyId, Marker: marker }), { abortSignal: signal });
      for (const a of page.Aliases ?? []) {
        if (a.AliasName) names.add(a.AliasName);
        if (a.AliasArn) names.add(a.AliasArn);
      }
      more = page.Truncated === true && page.NextMarker !== undefined;
      marker = page.NextMarker;
    }
    names.delete(kekId);
    return [...names].sort();
  }
}

class KmsKekVerifier implements KekVerifier {
  readonly kind = 'kms' as const;
  readonly #kms: KMSClient;

  constructor(client: KMSClient) {
    this.#kms = client;
  }

  /** KMS blobs are opaque: only the store's KEK columns or a valid stamp can say. */
  identify(dek: WrappedDek): KekVersionRef | undefined {
    return dek.kek;
  }

  async verifyUnwrap(dek: WrappedDek, retiring: KekSelector, expectedKeyId?: string, signal?: AbortSignal): Promise<UnwrapVerdict> {
    if (dek.wrapAlg !== 'kms+context') return { ok: false, underRetiring: false, problem: `wrapped with ${dek.wrapAlg}, not kms+context` };
    try {
      const out = await this.#kms.send(
        new DecryptCommand({ CiphertextBlob: dek.wrapped, EncryptionContext: kmsEncryptionContext(dek), KeyId: expectedKeyId }),
        { abortSignal: signal },
      );
      out.Plaintext?.fill(0);
      const keyId = out.KeyId ?? expectedKeyId ?? '';
      // KMS answers with the key ARN; the KEK may be named by its key id or ARN.
      const sameKey = keyId === retiring.id || keyId.endsWith(`/${retiring.id}`) || retiring.id.endsWith(`/${keyId}`);
      if (sameKey && matchesSelector({ id: retiring.id, materialId: out.KeyMaterialId }, retiring)) {
        return { ok: false, underRetiring: true, problem: `still under ${formatKek(retiring)}` };
      }
      return { ok: true, kek: out.KeyMaterialId ? `${keyId}@${out.KeyMaterialId}` : keyId };
    } catch (err) {
      const e = err as { name?: string; $metadata?: { requestId?: string } };
      return { ok: false, underRetiring: false, problem: `KMS Decrypt failed: ${e.name ?? 'Error'}${e.$metadata?.requestId ? ` (request ${e.$metadata.requestId})` : ''}` };
    }
  }

  close(): void {}
}
