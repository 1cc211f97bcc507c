/** Rotation schedules as stored in the ledger. Names, paths and KEK ids only: nothing secret. */
import type { CampaignOptions, ProviderSpec, SourceSpec } from '../core/campaign-spec.ts';

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/**
 * A time window in which scheduled runs may start: on `days`, from `from` to `to` (HH:MM, in
 * `tz`). A window with `to` <= `from` runs over midnight: "fri 18:00-08:00" covers Friday 18:00
 * to Saturday 08:00 (the day names the day the window opens).
 */
export interface TimeWindow {
  days: Weekday[];
  from: string;
  to: string;
  tz: string;
}

/** What each run's campaign looks like; `from`/`to` are filled in by the run. */
export interface CampaignTemplate {
  kind: 'routine' | 'incident';
  sources: SourceSpec[];
  provider: ProviderSpec;
  options: CampaignOptions;
}

/** KMS: new key material in the same key (RotateKeyOnDemand), or a new key (CreateKey). */
export type KmsRotation = 'rotate-on-demand' | 'new-key';

export interface NewSchedule {
  name: string;
  cron: string;
  /** Time zone the cron expression is read in (IANA name). */
  timezone: string;
  template: CampaignTemplate;
  /** The KEK id each run rotates (local keyring id, or KMS key id/ARN). */
  kekId: string;
  kmsRotation: KmsRotation;
  windows: TimeWindow[];
  nextRunAt: Date;
  createdAt: Date;
}

export interface Schedule extends NewSchedule {
  lastRunAt: Date | null;
  runClaimedAt: Date | null;
  lastRun: { outcome: ScheduleRunOutcome | null; campaignId: string | null; ranAt: Date; detail: string | null } | null;
}

export type ScheduleRunOutcome = 'campaign-started' | 'nothing-to-move' | 'campaign-active' | 'failed';

export interface ScheduleRun {
  id: number;
  scheduleName: string;
  dueAt: Date;
  ranAt: Date;
  finishedAt: Date | null;
  outcome: ScheduleRunOutcome | null;
  fromKek: string | null;
  toKek: string | null;
  campaignId: string | null;
  detail: string | null;
}

export interface ClaimedScheduleRun {
  schedule: Schedule;
  runId: number;
  dueAt: Date;
  /** A crashed run had created this KEK version already: use it instead of creating another. */
  resume?: { fromKek: string; toKek: string };
}
