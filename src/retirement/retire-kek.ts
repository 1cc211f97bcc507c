/**
 * Retiring a KEK version once the gate (kek-retirement.ts) passes, through the KEK admin port
 * (src/kek/kek-admin.ts). Local keyring: state "disabled" in the keyring file; with `delete`, the
 * version and its material leave the file (after a full verification pass). KMS: DisableKey, only
 * for a whole key (KMS cannot disable one key material). KMS key deletion is not offered: our
 * local KMS server has no ScheduleKeyDeletion, and deleting a real KMS key is left to the
 * operator's own procedure.
 */
import { ConfigError } from '../core/errors.ts';
import type { KekSelector } from '../core/kek-ref.ts';
import type { Resources } from '../runtime/resources.ts';
import { campaignsFromKek } from '../ledger/index.ts';
import { checkRetirement, type RetirementCheck, type RetirementOptions } from './kek-retirement.ts';

export interface RetireResult {
  check: RetirementCheck;
  /** What was done, when the gate passed. */
  action?: 'disabled' | 'deleted' | 'kms-disabled';
}

export async function retireKek(res: Resources, kek: KekSelector, o: RetirementOptions & { delete: boolean }, signal?: AbortSignal): Promise<RetireResult> {
  // By id alone: which provider the KEK lives in does not depend on the version asked for.
  const [newest] = await campaignsFromKek(res.ledger, { id: kek.id });
  /* No campaign ever drained it: the gate refuses (nothing shows it unused), whatever the provider. */
  if (newest) res.kekAdmin(newest.spec, { keyringFile: o.keyringFile }).assertRetirable(kek, { destroy: o.delete });
  const check = await checkRetirement(res, kek, { ...o, fullPass: o.fullPass || o.delete }, signal);
  if (!check.ok || !newest) return { check };
  /* Through the provider the gate verified against: the newest campaign from this version (its
     keyring file, its PKCS#11 token and labels), not the newest from any version of the id, which
     may name another token or label map and so another object. */
  const [gated] = await campaignsFromKek(res.ledger, kek);
  const admin = res.kekAdmin((gated ?? newest).spec, { keyringFile: check.keyringFile ?? o.keyringFile });
  if (o.delete) {
    /* Invariant 7, for the one step that cannot be undone: the full pass re-reads every item in
       scope and can take hours, and the gate's ledger and live checks were read before it. A
       campaign started meanwhile (draining the KEK, or moving items to it), a move, a new
       noncurrent version: all are checked again, without the full pass, just before the delete. */
    const again = await checkRetirement(res, kek, { ...o, fullPass: false }, signal);
    if (!again.ok) {
      const blockers = again.blockers.map((b) => `${b} (found checking again after the full pass, just before the delete)`);
      return { check: { ...again, ...(check.fullPass ? { fullPass: check.fullPass } : {}), blockers } };
    }
    await admin.destroy(kek, signal);
    return { check, action: 'deleted' };
  }
  await admin.disable(kek, signal);
  return { check, action: admin.kind === 'kms' ? 'kms-disabled' : 'disabled' };
}

/** "24h", "30m", "90s", "2d", "0" -> milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new ConfigError(`${flag}: expected a duration such as 24h, 30m, 90s, 2d or 0; got ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? (Number(m[1]) === 0 ? 'ms' : 'x')) as 'ms'];
  if (unit === undefined) throw new ConfigError(`${flag}: give a unit (ms, s, m, h, d), e.g. 24h; got ${JSON.stringify(text)}`);
  return Number(m[1]) * unit;
}
