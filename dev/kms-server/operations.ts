/**
 * The KMS operations this local server answers, with AWS KMS semantics for symmetric keys:
 * disabled keys refuse cryptographic operations, a KeyId/SourceKeyId that is not the key of the
 * blob is IncorrectKeyException, old key materials keep decrypting after a rotation.
 */
import { randomBytes } from 'node:crypto';
import { decryptBlob, encryptBlob, MAX_BLOB_BYTES, readBlobHeader } from './ciphertext.ts';
import { ACCOUNT_ID, type KeyStore, type KmsKey } from './keystore.ts';
import {
  epochSeconds,
  invalidCiphertext,
  KmsError,
  optionalBoolean,
  optionalContext,
  optionalInteger,
  optionalString,
  requiredBlob,
  requiredString,
  validation,
  type JsonObject,
} from './protocol.ts';

export type Operation = (store: KeyStore, body: JsonObject) => JsonObject;

const SYMMETRIC_DEFAULT = 'SYMMETRIC_DEFAULT';

function keyMetadata(store: KeyStore, key: KmsKey): JsonObject {
  return {
    AWSAccountId: ACCOUNT_ID,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: epochSeconds(key.createdAtMs),
    Enabled: key.enabled,
    Description: key.description,
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: key.enabled ? 'Enabled' : 'Disabled',
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: SYMMETRIC_DEFAULT,
    KeySpec: SYMMETRIC_DEFAULT,
    EncryptionAlgorithms: [SYMMETRIC_DEFAULT],
    MultiRegion: false,
    CurrentKeyMaterialId: key.currentMaterialId,
  };
}

function requireEnabled(key: KmsKey): void {
  if (!key.enabled) throw new KmsError('DisabledException', `${key.arn} is disabled.`);
}

function checkAlgorithm(body: JsonObject, field: string): void {
  const alg = optionalString(body, field);
  if (alg !== undefined && alg !== SYMMETRIC_DEFAULT) {
    throw new KmsError('InvalidKeyUsageException', `${field} ${alg} is not supported by symmetric keys; use ${SYMMETRIC_DEFAULT}`);
  }
}

function onlyValue(body: JsonObject, field: string, allowed: string): void {
  const v = optionalString(body, field);
  if (v !== undefined && v !== allowed) throw validation(`${field} ${v} is not supported by this local KMS; only ${allowed}`);
}

/** Decrypts a blob after the checks AWS makes, in its order: key ref, key state, then the tag. */
function openBlob(store: KeyStore, blob: Buffer, expectedKeyRef: string | undefined, context: Record<string, string>) {
  const header = readBlobHeader(blob);
  if (expectedKeyRef !== undefined) {
    const expected = store.resolve(expectedKeyRef, { allowAlias: true });
    if (expected.keyId !== header.keyId) {
      throw new KmsError('IncorrectKeyException', `The key ID in the request does not identify a CMK that can perform this operation.`);
    }
  }
  const key = store.keys.get(header.keyId);
  if (!key) throw invalidCiphertext('the ciphertext refers to a key that does not exist in this KMS');
  requireEnabled(key);
  const material = key.materials.get(header.materialId);
  if (!material) throw invalidCiphertext(`the ciphertext refers to a key material that ${key.arn} does not have`);
  return { key, materialId: material.id, plaintext: decryptBlob(blob, material.secret, context) };
}

function seal(key: KmsKey, plaintext: Buffer, context: Record<string, string>): { blob: Buffer; materialId: string } {
  const material = key.materials.get(key.currentMaterialId)!;
  return { blob: encryptBlob({ keyId: key.keyId, materialId: material.id }, material.secret, plaintext, context), materialId: material.id };
}

const b64 = (b: Buffer) => b.toString('base64');

export const operations: Record<string, Operation> = {
  CreateKey(store, body) {
    onlyValue(body, 'KeySpec', SYMMETRIC_DEFAULT);
    onlyValue(body, 'CustomerMasterKeySpec', SYMMETRIC_DEFAULT);
    onlyValue(body, 'KeyUsage', 'ENCRYPT_DECRYPT');
    onlyValue(body, 'Origin', 'AWS_KMS');
    if (optionalBoolean(body, 'MultiRegion')) throw validation('MultiRegion keys are not supported by this local KMS');
    const key = store.createKey(optionalString(body, 'Description') ?? '');
    return { KeyMetadata: keyMetadata(store, key) };
  },

  DescribeKey(store, body) {
    return { KeyMetadata: keyMetadata(store, store.resolve(requiredString(body, 'KeyId'), { allowAlias: true })) };
  },

  EnableKey(store, body) {
    store.setEnabled(store.resolve(requiredString(body, 'KeyId'), { allowAlias: false }), true);
    return {};
  },

  DisableKey(store, body) {
    store.setEnabled(store.resolve(requiredString(body, 'KeyId'), { allowAlias: false }), false);
    return {};
  },

  RotateKeyOnDemand(store, body) {
    const key = store.resolve(requiredString(body, 'KeyId'), { allowAlias: false });
    requireEnabled(key);
    store.rotate(key);
    return { KeyId: key.keyId };
  },

  Encrypt(store, body) {
    const key = store.resolve(requiredString(body, 'KeyId'), { allowAlias: true });
    const plaintext = requiredBlob(body, 'Plaintext', 1, 4096);
    const context = optionalContext(body, 'EncryptionContext');
    checkAlgorithm(body, 'EncryptionAlgorithm');
    requireEnabled(key);
    // Like AWS, Encrypt does not report the key material (Decrypt, ReEncrypt, GenerateDataKey do).
    const { blob } = seal(key, plaintext, context);
    return { CiphertextBlob: b64(blob), KeyId: key.arn, EncryptionAlgorithm: SYMMETRIC_DEFAULT };
  },

  Decrypt(store, body) {
    const blob = requiredBlob(body, 'CiphertextBlob', 1, MAX_BLOB_BYTES);
    const context = optionalContext(body, 'EncryptionContext');
    checkAlgorithm(body, 'EncryptionAlgorithm');
    const opened = openBlob(store, blob, optionalString(body, 'KeyId'), context);
    return {
      Plaintext: b64(opened.plaintext),
      KeyId: opened.key.arn,
      EncryptionAlgorithm: SYMMETRIC_DEFAULT,
      KeyMaterialId: opened.materialId,
    };
  },

  ReEncrypt(store, body) {
    const blob = requiredBlob(body, 'CiphertextBlob', 1, MAX_BLOB_BYTES);
    const destination = store.resolve(requiredString(body, 'DestinationKeyId'), { allowAlias: true });
    checkAlgorithm(body, 'SourceEncryptionAlgorithm');
    checkAlgorithm(body, 'DestinationEncryptionAlgorithm');
    const opened = openBlob(store, blob, optionalString(body, 'SourceKeyId'), optionalContext(body, 'SourceEncryptionContext'));
    requireEnabled(destination);
    const sealed = seal(destination, opened.plaintext, optionalContext(body, 'DestinationEncryptionContext'));
    opened.plaintext.fill(0);
    return {
      CiphertextBlob: b64(sealed.blob),
      SourceKeyId: opened.key.arn,
      KeyId: destination.arn,
      SourceEncryptionAlgorithm: SYMMETRIC_DEFAULT,
      DestinationEncryptionAlgorithm: SYMMETRIC_DEFAULT,
      SourceKeyMaterialId: opened.materialId,
      DestinationKeyMaterialId: sealed.materialId,
    };
  },

  GenerateDataKey(store, body) {
    const key = store.resolve(requiredString(body, 'KeyId'), { allowAlias: true });
    const bytes = optionalInteger(body, 'NumberOfBytes');
    const spec = optionalString(body, 'KeySpec');
    if ((bytes === undefined) === (spec === undefined)) throw validation('Specify exactly one of NumberOfBytes or KeySpec');
    let size: number;
    if (spec !== undefined) {
      if (spec !== 'AES_256' && spec !== 'AES_128') throw validation(`KeySpec ${spec} is not valid; expected AES_256 or AES_128`);
      size = spec === 'AES_256' ? 32 : 16;
    } else {
      if (bytes! < 1 || bytes! > 1024) throw validation(`NumberOfBytes must be 1 to 1024, got ${bytes}`);
      size = bytes!;
    }
    const context = optionalContext(body, 'EncryptionContext');
    requireEnabled(key);
    const plaintext = randomBytes(size);
    const { blob, materialId } = seal(key, plaintext, context);
    return { CiphertextBlob: b64(blob), Plaintext: b64(plaintext), KeyId: key.arn, KeyMaterialId: materialId };
  },

  CreateAlias(store, body) {
    store.createAlias(requiredString(body, 'AliasName'), requiredString(body, 'TargetKeyId'));
    return {};
  },

  DeleteAlias(store, body) {
    store.deleteAlias(requiredString(body, 'AliasName'));
    return {};
  },

  ListAliases(store, body) {
    const ref = optionalString(body, 'KeyId');
    const keyId = ref === undefined ? undefined : store.resolve(ref, { allowAlias: false }).keyId;
    const aliases = [...store.aliases.values()]
      .filter((a) => keyId === undefined || a.targetKeyId === keyId)
      .map((a) => ({
        AliasName: a.name,
        AliasArn: store.aliasArn(a.name),
        TargetKeyId: a.targetKeyId,
        CreationDate: epochSeconds(a.createdAtMs),
        LastUpdatedDate: epochSeconds(a.createdAtMs),
      }));
    return { Aliases: aliases, Truncated: false };
  },

  ListKeys(store) {
    return { Keys: [...store.keys.values()].map((k) => ({ KeyId: k.keyId, KeyArn: k.arn })), Truncated: false };
  },
};
