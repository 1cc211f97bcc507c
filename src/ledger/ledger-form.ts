/**
 * Which ledger form a new campaign gets (REWRAP_LEDGER_FORM, read by every path that creates
 * one: `campaign create`, the API, schedules, `incident start`).
 * - `auto` (the default): `batches` where the spec can take it (Postgres table sources, with or
 *   without a canary), `items` otherwise, never a refusal: the cheap ledger where it exists, and
 *   an unattended schedule over an S3 source still runs;
 * - `items`: one ledger row per item (the only form before schema 9);
 * - `batches`: one per batch (docs/batch-ledger-design.md); a spec the form cannot take is
 *   refused at create, naming the source or option (createCampaign).
 */
import type { CampaignSpec } from '../core/campaign-spec.ts';
import type { LedgerForm } from './types.ts';

export type LedgerFormSetting = LedgerForm | 'auto';

/** REWRAP_LEDGER_FORM when it is not set (README, Configuration). */
export const DEFAULT_LEDGER_FORM: LedgerFormSetting = 'auto';

/** Why the batch form cannot take this spec, naming the field; undefined when it can. */
export function batchFormProblem(spec: CampaignSpec): string | undefined {
  const notPg = spec.sources.findIndex((s) => s.type !== 'pg');
  if (notPg >= 0) return `sources[${notPg}] is ${spec.sources[notPg]!.type}; it takes Postgres table sources only`;
  return undefined;
}

/** The form a campaign of this spec is created in under the setting. */
export function ledgerFormFor(spec: CampaignSpec, setting: LedgerFormSetting): LedgerForm {
  if (setting === 'auto') return batchFormProblem(spec) === undefined ? 'batches' : 'items';
  return setting;
}
