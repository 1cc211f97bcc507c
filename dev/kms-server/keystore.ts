/**
 * Keys, key materials and aliases of the local KMS, in memory. Key ids are resolved the way
 * AWS KMS accepts them: key id (uuid), key ARN, `alias/name`, or alias ARN (aliases only where
 * the AWS operation accepts them).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { KmsError, notFound } from './protocol.ts';
import { SecretBytes } from './secret.ts';

export const ACCOUNT_ID = '111122223333';

export interface KeyMaterial {
  /** 64 hex characters, as AWS reports KeyMaterialId. */
  id: string;
  secret: SecretBytes;
  createdAtMs: number;
}

export interface KmsKey {
  keyId: string;
  arn: string;
  description: string;
  createdAtMs: number;
  enabled: boolean;
  /** Every material the key ever had: old ones still decrypt. */
  materials: Map<string, KeyMaterial>;
  currentMaterialId: string;
}

export interface KmsAlias {
  name: string;
  targetKeyId: string;
  createdAtMs: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ALIAS_NAME = /^alias\/[a-zA-Z0-9/_-]{1,250}$/;

export function newMaterial(): KeyMaterial {
  return { id: randomBytes(32).toString('hex'), secret: new SecretBytes(randomBytes(32)), createdAtMs: Date.now() };
}

export class KeyStore {
  readonly region: string;
  readonly keys = new Map<string, KmsKey>();
  readonly aliases = new Map<string, KmsAlias>();
  /** Called after every change, to persist the state (a no-op without a state file). */
  onChange: () => void = () => {};

  constructor(region: string) {
    this.region = region;
  }

  keyArn(keyId: string): string {
    return `arn:aws:kms:${this.region}:${ACCOUNT_ID}:key/${keyId}`;
  }

  aliasArn(name: string): string {
    return `arn:aws:kms:${this.region}:${ACCOUNT_ID}:${name}`;
  }

  createKey(description: string): KmsKey {
    const keyId = randomUUID();
    const material = newMaterial();
    const key: KmsKey = {
      keyId,
      arn: this.keyArn(keyId),
      description,
      createdAtMs: Date.now(),
      enabled: true,
      materials: new Map([[material.id, material]]),
      currentMaterialId: material.id,
    };
    this.keys.set(keyId, key);
    this.onChange();
    return key;
  }

  /** Resolves a key reference or throws NotFoundException naming it. */
  resolve(ref: string, options: { allowAlias: boolean }): KmsKey {
    let rest = ref;
    const arnPrefix = `arn:aws:kms:${this.region}:${ACCOUNT_ID}:`;
    if (ref.startsWith('arn:')) {
      if (!ref.startsWith(arnPrefix)) {
        throw notFound(`Invalid arn ${JSON.stringify(ref)}: this KMS serves region ${this.region}, account ${ACCOUNT_ID}`);
      }
      rest = ref.slice(arnPrefix.length);
      if (rest.startsWith('key/')) rest = rest.slice(4);
      else if (!rest.startsWith('alias/')) throw notFound(`Invalid arn ${JSON.stringify(ref)}: expected key/<id> or alias/<name>`);
    }
    if (rest.startsWith('alias/')) {
      if (!options.allowAlias) throw notFound(`Invalid keyId ${JSON.stringify(ref)}: this operation takes a key id or key ARN, not an alias`);
      const alias = this.aliases.get(rest);
      if (!alias) throw notFound(`Alias ${this.aliasArn(rest)} is not found.`);
      rest = alias.targetKeyId;
    }
    const key = UUID.test(rest) ? this.keys.get(rest) : undefined;
    if (!key) throw notFound(`Key '${this.keyArn(rest)}' does not exist`);
    return key;
  }

  rotate(key: KmsKey): KeyMaterial {
    const material = newMaterial();
    key.materials.set(material.id, material);
    key.currentMaterialId = material.id;
    this.onChange();
    return material;
  }

  setEnabled(key: KmsKey, enabled: boolean): void {
    key.enabled = enabled;
    this.onChange();
  }

  createAlias(name: string, targetKeyId: string): void {
    if (!ALIAS_NAME.test(name)) {
      throw new KmsError('InvalidAliasNameException', `AliasName ${JSON.stringify(name)} must match alias/[a-zA-Z0-9/_-]+`);
    }
    if (name.startsWith('alias/aws/')) {
      throw new KmsError('InvalidAliasNameException', `AliasName ${JSON.stringify(name)}: the prefix alias/aws/ is reserved`);
    }
    if (this.aliases.has(name)) throw new KmsError('AlreadyExistsException', `An alias with the name ${this.aliasArn(name)} already exists`);
    const key = this.resolve(targetKeyId, { allowAlias: false });
    this.aliases.set(name, { name, targetKeyId: key.keyId, createdAtMs: Date.now() });
    this.onChange();
  }

  deleteAlias(name: string): void {
    if (!this.aliases.delete(name)) throw notFound(`Alias ${this.aliasArn(name)} is not found.`);
    this.onChange();
  }
}
