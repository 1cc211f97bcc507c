/**
 * Retiring a KEK version once the gate (kek-retirement.ts) passes. Local keyring: state
 * "disabled" in the keyring file; with `delete`, the version and its material leave the file
 * (after a full verification pass). KMS: DisableKey, only for a whole key (KMS cannot disable one
 * key material). KMS key deletion is not offered: our local KMS server has no
 * ScheduleKeyDeletion, and deleting a real KMS key is left to the operator's own procedure.
 */
import { DisableKeyCommand } from '@aws-sdk/client-kms';
import { ConfigError } from '../errors.ts';
import { formatKek, type KekSelector } from '../kek/kek-provider.ts';
import type { Resources } from '../runtime/resources.ts';
import { campaignsFromKek } from '../ledger/index.ts';
import { checkRetirement, type RetirementCheck, type RetirementOptions } from './kek-retirement.ts';
import { removeKeyringVersion, setKeyringState } from '../kek/keyring-file-edit.ts';

export interface RetireResult {
  check: RetirementCheck;
  /** What was done, when the gate passed. */
  action?: 'disabled' | 'deleted' | 'kms-disabled';
}

export async function retireKek(res: Resources, kek: KekSelector, o: RetirementOptions & { delete: boolean }, signal?: AbortSignal): Promise<RetireResult> {
  // By id alone: which provider the KEK lives in does not depend on the version asked for.
  const [newest] = await campaignsFromKek(res.ledger, { id: kek.id });
  if (newest?.spec.provider.type === 'kms') {
    if (o.delete) throw new ConfigError('kek retire --delete: not supported for KMS keys (our KMS server has no ScheduleKeyDeletion); disable the key here and schedule its deletion in KMS yourself');
    if (kek.version !== undefined) throw new ConfigError(`kek retire ${formatKek(kek)}: KMS cannot disable one key material; retire the whole key (rewrap kek retire ${kek.id}) once no item is under any of its materials`);
  } else if (kek.version === undefined && newest) {
    throw new ConfigError(`kek retire ${kek.id}: a keyring KEK is retired one version at a time; expected ${kek.id}@<version>`);
  }
  const check = await checkRetirement(res, kek, { ...o, fullPass: o.fullPass || o.delete }, signal);
  if (!check.ok) return { check };
  if (check.provider === 'pkcs11') {
    const admin = res.pkcs11Admin(newest!.spec);
    if (o.delete) await admin.destroy(kek);
    else await admin.disable(kek);
    return { check, action: o.delete ? 'deleted' : 'disabled' };
  }
  if (check.provider === 'kms') {
    await res.kmsClient(newest!.spec).send(new DisableKeyCommand({ KeyId: kek.id }), { abortSignal: signal });
    return { check, action: 'kms-disabled' };
  }
  const file = check.keyringFile!;
  if (o.delete) {
    await removeKeyringVersion(file, kek.id, kek.version!);
    return { check, action: 'deleted' };
  }
  await setKeyringState(file, kek.id, kek.version!, 'disabled');
  return { check, action: 'disabled' };
}

/** "24h", "30m", "90s", "2d", "0" -> milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new ConfigError(`${flag}: expected a duration such as 24h, 30m, 90s, 2d or 0; got ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? (Number(m[1]) === 0 ? 'ms' : 'x')) as 'ms'];
  if (unit === undefined) throw new ConfigError(`${flag}: give a unit (ms, s, m, h, d), e.g. 24h; got ${JSON.stringify(text)}`);
  return Number(m[1]) * unit;
}
