/**
 * A schedule as the user writes it (`rewrap schedule create --spec schedule.json`):
 *   { "name": "orders-monthly", "cron": "0 3 1 * *", "timezone": "UTC",
 *     "kek": "orders",                       // local keyring id, or KMS key id/ARN
 *     "kmsRotation": "rotate-on-demand",     // KMS only: or "new-key"
 *     "windows": [{ "days": ["mon","tue","wed","thu","fri"], "from": "18:00", "to": "08:00", "tz": "Europe/Berlin" }],
 *     "campaign": { "kind": "routine", "sources": [...], "provider": {...}, "options": { "kmsRequestsPerSecond": 200 } } }
 * Validated once, here; messages name the field and what was expected.
 */
import { Cron } from 'croner';
import { ConfigError } from '../core/errors.ts';
import { parseCampaignSpec } from '../campaign/spec.ts';
import { rejectUnknownFields } from '../campaign/spec-fields.ts';
import { WEEKDAYS, type CampaignTemplate, type KmsRotation, type NewSchedule, type TimeWindow, type Weekday } from '../ledger/schedule-types.ts';
import { isHhmm } from './time-windows.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

export function assertTimeZone(tz: string, at: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch (err) {
    throw new ConfigError(`${at}: ${JSON.stringify(tz)} is not an IANA time zone (e.g. "UTC", "Europe/Berlin")`, { cause: err });
  }
}

/** The next due time strictly after `after`, or null when the expression never fires again. */
export function nextCronRun(cron: string, timezone: string, after: Date): Date | null {
  return new Cron(cron, { paused: true, timezone }).nextRun(after);
}

/** Parses a schedule document; `now` (the injectable clock) sets the first due time. */
export function parseScheduleSpec(input: unknown, now: Date): NewSchedule {
  if (typeof input !== 'object' || input === null) throw new ConfigError('schedule spec: expected a JSON object');
  const r = input as Record<string, unknown>;
  rejectUnknownFields(r, ['name', 'cron', 'timezone', 'kek', 'kmsRotation', 'windows', 'campaign'], 'schedule spec');
  if (!str(r.name) || !NAME.test(r.name)) throw new ConfigError('schedule spec.name: expected 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');
  const timezone = r.timezone ?? 'UTC';
  if (!str(timezone)) throw new ConfigError('schedule spec.timezone: expected an IANA time zone name');
  assertTimeZone(timezone, 'schedule spec.timezone');
  if (!str(r.cron)) throw new ConfigError('schedule spec.cron: expected a cron expression, e.g. "0 3 1 * *" (03:00 on the 1st of each month)');
  let next: Date | null;
  try {
    next = nextCronRun(r.cron, timezone, now);
  } catch (err) {
    throw new ConfigError(`schedule spec.cron: ${JSON.stringify(r.cron)} is not a valid cron expression (minute hour day-of-month month day-of-week)`, { cause: err });
  }
  if (!next) throw new ConfigError(`schedule spec.cron: ${JSON.stringify(r.cron)} never fires after ${now.toISOString()}`);
  if (!str(r.kek) || r.kek.includes('@')) throw new ConfigError('schedule spec.kek: expected the KEK id to rotate (no @version: each run rotates its newest version)');
  const kmsRotation = (r.kmsRotation ?? 'rotate-on-demand') as KmsRotation;
  if (kmsRotation !== 'rotate-on-demand' && kmsRotation !== 'new-key') throw new ConfigError('schedule spec.kmsRotation: expected "rotate-on-demand" or "new-key"');
  const windows = parseWindows(r.windows ?? []);
  const template = parseTemplate(r.campaign, r.name, r.kek);
  return { name: r.name, cron: r.cron, timezone, template, kekId: r.kek, kmsRotation, windows, nextRunAt: next, createdAt: now };
}

function parseTemplate(v: unknown, name: string, kek: string): CampaignTemplate {
  const c = v as Record<string, unknown> | null;
  if (typeof c !== 'object' || c === null) throw new ConfigError('schedule spec.campaign: expected { sources, provider, options? }, like a campaign spec without name/from/to');
  for (const k of ['name', 'from', 'to']) if (k in c) throw new ConfigError(`schedule spec.campaign.${k}: set by each run; remove it`);
  rejectUnknownFields(c, ['kind', 'sources', 'provider', 'options'], 'schedule spec.campaign');
  let spec;
  try {
    // Validated like a campaign spec with stand-in KEK versions (each run fills in the real ones).
    spec = parseCampaignSpec({ ...c, name, from: { id: kek, version: 'previous' }, to: { id: kek } });
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.message.replace(/^campaign spec/, 'schedule spec.campaign'), { cause: err });
    throw err;
  }
  return { kind: spec.kind, sources: spec.sources, provider: spec.provider, options: spec.options };
}

function parseWindows(v: unknown): TimeWindow[] {
  if (!Array.isArray(v)) throw new ConfigError('schedule spec.windows: expected an array of { days, from, to, tz }');
  return v.map((w, i) => {
    const at = `schedule spec.windows[${i}]`;
    const r = w as Record<string, unknown> | null;
    if (typeof r !== 'object' || r === null) throw new ConfigError(`${at}: expected { days, from, to, tz }`);
    rejectUnknownFields(r, ['days', 'from', 'to', 'tz'], at);
    const days = r.days ?? [...WEEKDAYS];
    if (!Array.isArray(days) || days.length === 0 || !days.every((d) => typeof d === 'string' && (WEEKDAYS as readonly string[]).includes(d.toLowerCase()))) {
      throw new ConfigError(`${at}.days: expected a non-empty array of ${WEEKDAYS.join(', ')}`);
    }
    if (!isHhmm(r.from)) throw new ConfigError(`${at}.from: expected HH:MM (24h), e.g. "18:00"`);
    if (!isHhmm(r.to)) throw new ConfigError(`${at}.to: expected HH:MM (24h), e.g. "08:00"`);
    if (r.from === r.to) throw new ConfigError(`${at}: from and to are both ${r.from}; a window needs a length (omit windows to allow any time)`);
    const tz = r.tz ?? 'UTC';
    if (!str(tz)) throw new ConfigError(`${at}.tz: expected an IANA time zone name`);
    assertTimeZone(tz, `${at}.tz`);
    return { days: days.map((d: string) => d.toLowerCase() as Weekday), from: r.from, to: r.to, tz };
  });
}
