/**
 * The KEK side of a scheduled rotation: which KEK version is current (the one to drain), and
 * making the next one. Local keyring: a new `<id>@<n+1>` entry with fresh random material, written
 * atomically. KMS: RotateKeyOnDemand (new key material in the same key; the campaign drains the
 * previous material id), or CreateKey (a new key; the schedule follows it on its next run).
 * PKCS#11: `<id>@<n+1>` generated in the token (pkcs11-kek-admin.ts).
 */
import { isAbsolute, resolve } from 'node:path';
import { CreateKeyCommand, DescribeKeyCommand, RotateKeyOnDemandCommand } from '@aws-sdk/client-kms';
import type { CampaignSpec } from '../campaign/spec.ts';
import type { KekSelector } from '../kek/kek-provider.ts';
import { loadKeyringFile } from '../kek/keyring-file.ts';
import type { Resources } from '../runtime/resources.ts';
import { ConfigError } from '../errors.ts';
import { appendKeyringVersion, numericVersions } from '../kek/keyring-file-edit.ts';
import type { Schedule } from './schedule-types.ts';

export function keyringPath(file: string): string {
  return isAbsolute(file) ? file : resolve(file);
}

/** The KEK version everything should be under now: what the next campaign drains. */
export async function currentKek(res: Resources, schedule: Schedule, spec: CampaignSpec): Promise<KekSelector> {
  const p = schedule.template.provider;
  if (p.type === 'local') {
    const path = keyringPath(p.keyringFile);
    const entries = loadKeyringFile(path);
    try {
      const versions = numericVersions(entries, schedule.kekId, path);
      if (versions.length === 0) throw new ConfigError(`schedule ${schedule.name}: keyring file ${path} has no KEK ${schedule.kekId}`);
      return { id: schedule.kekId, version: String(versions[versions.length - 1]) };
    } finally {
      for (const e of entries) e.material.fill(0);
    }
  }
  if (p.type === 'pkcs11') {
    const version = await res.pkcs11Admin(spec).currentVersion(schedule.kekId);
    if (version === undefined) throw new ConfigError(`schedule ${schedule.name}: the PKCS#11 token has no KEK ${schedule.kekId} (labels ${schedule.kekId}@<version>)`);
    return { id: schedule.kekId, version };
  }
  if (schedule.kmsRotation === 'new-key') return { id: schedule.kekId };
  const out = await res.kmsClient(spec).send(new DescribeKeyCommand({ KeyId: schedule.kekId }));
  const material = out.KeyMetadata?.CurrentKeyMaterialId;
  if (!material) throw new Error(`schedule ${schedule.name}: KMS DescribeKey ${schedule.kekId} reported no CurrentKeyMaterialId; cannot tell which key material to drain`);
  return { id: schedule.kekId, version: material };
}

/** Creates the next KEK version; `nextKekId` is the KEK id the schedule rotates next time. */
export async function createNextKek(res: Resources, schedule: Schedule, spec: CampaignSpec, from: KekSelector): Promise<{ to: KekSelector; nextKekId: string }> {
  const p = schedule.template.provider;
  if (p.type === 'local') {
    const { previous, created } = await appendKeyringVersion(keyringPath(p.keyringFile), schedule.kekId);
    if (previous !== from.version) {
      // Someone added a version between our look and our write: drain theirs too, next run.
      throw new Error(`schedule ${schedule.name}: keyring KEK ${schedule.kekId} changed during the run (newest was ${from.version}, then ${previous}); created ${created}, the next run drains ${previous}`);
    }
    return { to: { id: schedule.kekId, version: created }, nextKekId: schedule.kekId };
  }
  if (p.type === 'pkcs11') {
    // C_GenerateKey inside the token: the new version is sensitive and never extractable.
    const created = await res.pkcs11Admin(spec).createNextVersion(schedule.kekId);
    if (Number(created.version) !== Number(from.version) + 1) {
      throw new Error(`schedule ${schedule.name}: token KEK ${schedule.kekId} changed during the run (newest was ${from.version}); created ${created.version}, the next run drains the newer ones`);
    }
    return { to: created, nextKekId: schedule.kekId };
  }
  const kms = res.kmsClient(spec);
  if (schedule.kmsRotation === 'rotate-on-demand') {
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: schedule.kekId }));
    return { to: { id: schedule.kekId }, nextKekId: schedule.kekId };
  }
  const created = await kms.send(new CreateKeyCommand({ Description: `rewrap schedule ${schedule.name}: successor of ${schedule.kekId}` }));
  const arn = created.KeyMetadata?.Arn;
  if (!arn) throw new Error(`schedule ${schedule.name}: KMS CreateKey answered without a key ARN`);
  return { to: { id: arn }, nextKekId: arn };
}
