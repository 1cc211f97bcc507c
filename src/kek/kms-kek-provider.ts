/**
 * KEK provider for AWS KMS (and the local KMS-compatible server): one `ReEncrypt` per DEK, so
 * the plaintext DEK never leaves KMS. `SourceKeyId` is always set, so KMS itself refuses a DEK
 * that is not under the campaign source (IncorrectKeyException -> NotUnderSourceError).
 */
import { DecryptCommand, DescribeKeyCommand, ReEncryptCommand, type KMSClient, type ReEncryptCommandOutput } from '@aws-sdk/client-kms';
import { ConfigError, permanent, transient } from '../core/errors.ts';
import { NotUnderSourceError, type KekProvider, type RewrapResult, zeroAfter } from './kek-provider.ts';
import { formatKek, type KekSelector, type KekVersionRef, type WrappedDek } from '../core/kek-ref.ts';

/** The reserved encryption-context key S3EC V2 binds the content cipher to (kms+context). */
export const CEK_ALG_CONTEXT_KEY = 'aws:x-amz-cek-alg';

/**
 * The KMS encryption context of an S3EC V2 kms+context DEK: the matdesc plus the content cipher.
 * The official clients already store `aws:x-amz-cek-alg` in the matdesc; setting it from
 * x-amz-cek-alg again is idempotent, and a matdesc that disagrees with x-amz-cek-alg fails to
 * decrypt (InvalidCiphertextException), as it would in the official clients.
 */
export function kmsEncryptionContext(dek: WrappedDek): Record<string, string> {
  return { ...dek.matdesc, [CEK_ALG_CONTEXT_KEY]: dek.cekAlg };
}

const THROTTLING = new Set(['ThrottlingException', 'LimitExceededException', 'TooManyRequestsException', 'RequestLimitExceeded', 'ThrottledException']);
const UNAVAILABLE = new Set(['KMSInternalException', 'DependencyTimeoutException', 'KeyUnavailableException', 'ServiceUnavailableException', 'TimeoutError', 'RequestTimeout']);
const PERMANENT = {
  NotFoundException: 'unknown-kek',
  InvalidArnException: 'unknown-kek',
  DisabledException: 'kek-disabled',
  KMSInvalidStateException: 'kek-disabled',
  InvalidCiphertextException: 'invalid-ciphertext',
  AccessDeniedException: 'access-denied',
} as const;

export class KmsKekProvider implements KekProvider {
  readonly kind = 'kms' as const;
  readonly #client: KMSClient;
  /** Destination key ARNs of aliases, resolved once per process (DescribeKey). */
  readonly #aliasArns = new Map<string, Promise<string | undefined>>();

  /** `client`: the one KMSClient of this process and region (see createKmsClient). */
  constructor(client: KMSClient) {
    this.#client = client;
  }

  /** KMS blobs are opaque: only the store's KEK columns or a valid stamp can say. */
  identify(dek: WrappedDek): KekVersionRef | undefined {
    return dek.kek;
  }

  /** Decrypt with KeyId set, so KMS refuses a blob under any other key; the plaintext is zeroed after `fn`. */
  async withUnwrapped<T>(dek: WrappedDek, kek: KekSelector, fn: (plaintextDek: Buffer) => Promise<T>, signal?: AbortSignal): Promise<T> {
    let plain: Buffer;
    try {
      const out = await this.#client.send(
        new DecryptCommand({ CiphertextBlob: dek.wrapped, KeyId: kek.id, EncryptionContext: kmsEncryptionContext(dek) }),
        { abortSignal: signal },
      );
      if (kek.version !== undefined && out.KeyMaterialId !== undefined && out.KeyMaterialId !== kek.version) {
        (out.Plaintext as Uint8Array).fill(0);
        throw new NotUnderSourceError(`wrapped by key material ${out.KeyMaterialId}, not ${kek.version}`, { id: kek.id, materialId: out.KeyMaterialId });
      }
      plain = Buffer.from(out.Plaintext!);
      (out.Plaintext as Uint8Array).fill(0);
    } catch (err) {
      if (err instanceof NotUnderSourceError) throw err;
      throw classifyKmsError(err, kek, kek, signal);
    }
    return zeroAfter(plain, fn);
  }

  /**
   * Note on `from.version` (a key material id): KMS cannot be asked to decrypt only under one
   * material, so the check happens after ReEncrypt returned. A mismatch throws
   * NotUnderSourceError; the new ciphertext is simply dropped (nothing is written), which is
   * harmless: ReEncrypt changes no state in KMS, it only costs one request.
   */
  async rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    if (dek.wrapAlg !== 'kms+context') {
      throw permanent('unsupported-wrap-alg', `KMS provider cannot rewrap a ${dek.wrapAlg} DEK (KEK ${formatKek(from)}); expected kms+context`);
    }
    const context = kmsEncryptionContext(dek);
    let out: ReEncryptCommandOutput;
    try {
      out = await this.#client.send(
        new ReEncryptCommand({
          CiphertextBlob: dek.wrapped,
          SourceKeyId: from.id,
          DestinationKeyId: to.id,
          SourceEncryptionContext: context,
          DestinationEncryptionContext: context,
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      throw classifyKmsError(err, from, to, signal);
    }
    if (!out.CiphertextBlob || out.CiphertextBlob.length === 0) {
      throw transient('provider-unavailable', `KMS ReEncrypt ${formatKek(from)} -> ${formatKek(to)} answered without a CiphertextBlob`);
    }
    await this.#assertUnderDestination(out.KeyId, to);
    const result: RewrapResult = {
      wrapAlg: 'kms+context',
      wrapped: Buffer.from(out.CiphertextBlob),
      matdesc: dek.matdesc,
      from: { id: from.id, materialId: out.SourceKeyMaterialId },
      to: { id: to.id, materialId: out.DestinationKeyMaterialId },
      requestId: out.$metadata.requestId,
    };
    if (from.version !== undefined && out.SourceKeyMaterialId !== from.version) {
      throw new NotUnderSourceError(
        `DEK is under KEK ${from.id} key material ${out.SourceKeyMaterialId ?? '(not reported by KMS)'}, not the campaign source material ${from.version}`,
        { id: out.SourceKeyId ?? from.id, materialId: out.SourceKeyMaterialId },
        { rewrapped: out.SourceKeyMaterialId === undefined ? undefined : result },
      );
    }
    if (from.version !== undefined) result.from.version = from.version;
    return result;
  }

  /**
   * Precondition of every store write: the blob KMS returned is under the key the campaign asked
   * for (its KeyId, an ARN). An endpoint that is not KMS (a metadata service, a proxy) or a KMS that
   * used another key would otherwise have its answer written into every item, destroying the DEKs.
   * Not item-specific: a ConfigError (the endpoint or region is wrong), so the batch fails as a
   * whole, nothing is written or recorded per item, and maxBatchFailures pauses the campaign.
   */
  async #assertUnderDestination(keyId: string | undefined, to: KekSelector): Promise<void> {
    const want = to.id;
    let ok: boolean;
    if (keyId === undefined || !/^arn:aws[a-z-]*:kms:[^:]*:[^:]*:key\/[^/]+$/.test(keyId)) ok = false;
    else if (want.startsWith('arn:') && !/:alias\//.test(want)) ok = keyId === want;
    else if (!want.startsWith('alias/') && !want.startsWith('arn:')) ok = keyId.endsWith(`:key/${want}`);
    else ok = keyId === (await this.#aliasArn(want));
    if (!ok) {
      throw new ConfigError(
        `KMS ReEncrypt to KEK ${formatKek(to)} answered a ciphertext under ${keyId === undefined ? 'no KeyId' : JSON.stringify(keyId)}, not the requested destination key; ` +
          'nothing was written. Check the campaign provider endpoint and region (KMS_ENDPOINT, provider.endpoint).',
      );
    }
  }

  #aliasArn(alias: string): Promise<string | undefined> {
    let p = this.#aliasArns.get(alias);
    if (!p) {
      /* Shared by every caller until it settles: no one caller's signal may end it for the others
         (a batch that lost its lease would fail them all). One request, bounded by the client's
         request timeout. */
      p = this.#client.send(new DescribeKeyCommand({ KeyId: alias })).then((o) => o.KeyMetadata?.Arn);
      this.#aliasArns.set(alias, p);
      p.catch(() => this.#aliasArns.delete(alias));
    }
    return p;
  }
}

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/**
 * One classification for every KMS failure. Messages name both KEKs, the KMS error type and the
 * request id; they never contain blob bytes (the SDK's own messages do not either). Any other
 * 4xx answer (validation, unsupported key usage...) is the item's permanent failure
 * `provider-rejected` with the KMS error name, never the whole batch's: a batch that fails as a
 * whole is retried, so one such item would otherwise fail its batch forever (issue 13, point 6).
 */
export function classifyKmsError(err: unknown, from: KekSelector, to: KekSelector, signal?: AbortSignal): Error {
  if (signal?.aborted) return err as Error; // the caller cancelled: let its abort propagate as is
  const e = (err ?? {}) as SdkErrorShape;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const where = `KMS ReEncrypt from KEK ${formatKek(from)} to ${formatKek(to)}`;
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}${e.$metadata?.requestId ? `, request ${e.$metadata.requestId}` : ''}: ${e.message ?? ''}`;

  if (name === 'IncorrectKeyException') {
    return new NotUnderSourceError(`${where}: the DEK is not wrapped by ${from.id} (${detail})`, undefined, { cause: err });
  }
  if (Object.hasOwn(PERMANENT, name)) {
    return permanent(PERMANENT[name as keyof typeof PERMANENT], `${where} failed: ${detail}`, err);
  }
  if (THROTTLING.has(name) || status === 429) return transient('throttled', `${where} was throttled: ${detail}`, err);
  if (UNAVAILABLE.has(name) || (status !== undefined && status >= 500)) {
    return transient('provider-unavailable', `${where} failed: ${detail}`, err);
  }
  if (status === undefined) {
    // No HTTP answer at all: connection refused or reset, DNS, socket timeout.
    return transient('provider-unavailable', `${where} got no answer from KMS: ${name}${e.code ? ` ${e.code}` : ''}: ${e.message ?? ''}`, err);
  }
  // KMS answered with a 4xx we do not know (ValidationException, InvalidKeyUsageException...):
  // asking again gets the same answer, so it is this item's failure, named; if every item gets
  // it, the failure thresholds (maxFailures, maxFailureRatio) pause the campaign.
  if (status >= 400 && status < 500) return permanent('provider-rejected', `${where} was refused: ${detail}`, err);
  return new Error(`${where} failed with an unexpected answer: ${detail}`, { cause: err });
}
