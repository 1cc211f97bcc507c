/** Allowed time windows for scheduled runs (e.g. only outside business hours). */
import { WEEKDAYS, type TimeWindow, type Weekday } from '../ledger/schedule-types.ts';

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export function minutesOf(hhmm: string): number {
  const m = HHMM.exec(hhmm);
  if (!m) throw new Error(`invariant violated: ${hhmm} is not HH:MM`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Weekday and minute of the day of `at` in time zone `tz`. */
export function localTime(at: Date, tz: string): { day: Weekday; minute: number } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  return { day: get('weekday').toLowerCase().slice(0, 3) as Weekday, minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

function inWindow(w: TimeWindow, at: Date): boolean {
  const { day, minute } = localTime(at, w.tz);
  const from = minutesOf(w.from);
  const to = minutesOf(w.to);
  if (from < to) return w.days.includes(day) && minute >= from && minute < to;
  // Over midnight: the evening part belongs to `day`, the morning part to the day before.
  const yesterday = WEEKDAYS[(WEEKDAYS.indexOf(day) + 6) % 7]!;
  return (w.days.includes(day) && minute >= from) || (w.days.includes(yesterday) && minute < to);
}

/** True when no windows are set, or `at` falls in at least one of them. */
export function inAnyWindow(windows: TimeWindow[], at: Date): boolean {
  return windows.length === 0 || windows.some((w) => inWindow(w, at));
}

export function isHhmm(v: unknown): v is string {
  return typeof v === 'string' && HHMM.test(v);
}
