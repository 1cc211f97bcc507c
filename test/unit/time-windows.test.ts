import { describe, expect, it } from 'vitest';
import { inAnyWindow, localTime } from '../../src/schedule/time-windows.ts';

// 2026-12-04 is a Friday.
const at = (iso: string) => new Date(iso);

describe('time windows for scheduled runs', () => {
  it('no windows: always allowed', () => {
    expect(inAnyWindow([], at('2026-12-04T12:00:00Z'))).toBe(true);
  });

  it('a day window: its days, from inclusive, to exclusive, in its own time zone', () => {
    const w = [{ days: ['fri' as const], from: '09:00', to: '17:00', tz: 'Europe/Berlin' }];
    expect(inAnyWindow(w, at('2026-12-04T08:00:00Z'))).toBe(true); // 09:00 Berlin
    expect(inAnyWindow(w, at('2026-12-04T07:59:00Z'))).toBe(false);
    expect(inAnyWindow(w, at('2026-12-04T16:00:00Z'))).toBe(false); // 17:00 Berlin
    expect(inAnyWindow(w, at('2026-12-05T10:00:00Z'))).toBe(false); // Saturday
  });

  it('a window over midnight belongs to the day it opens: "fri 18:00-08:00" covers Saturday morning, not Friday morning', () => {
    const w = [{ days: ['fri' as const], from: '18:00', to: '08:00', tz: 'UTC' }];
    expect(inAnyWindow(w, at('2026-12-04T19:00:00Z'))).toBe(true);
    expect(inAnyWindow(w, at('2026-12-05T07:59:00Z'))).toBe(true);
    expect(inAnyWindow(w, at('2026-12-05T08:00:00Z'))).toBe(false);
    expect(inAnyWindow(w, at('2026-12-04T07:00:00Z'))).toBe(false);
  });

  it('local time follows the zone, daylight saving included', () => {
    expect(localTime(at('2026-07-03T12:00:00Z'), 'America/New_York')).toEqual({ day: 'fri', minute: 8 * 60 });
    expect(localTime(at('2026-12-04T12:00:00Z'), 'America/New_York')).toEqual({ day: 'fri', minute: 7 * 60 });
  });
});
