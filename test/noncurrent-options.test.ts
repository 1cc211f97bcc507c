/**
 * Issue 14: the campaign options for noncurrent versions are checked like every spec field (an
 * unknown value is refused naming the field and the values allowed), and the noncurrent sweep's
 * lock decision, from the lock fields of a HEAD as Ceph RGW 16 answers it (measured shapes: a
 * GOVERNANCE or COMPLIANCE retention gives ObjectLockMode and ObjectLockRetainUntilDate, a legal
 * hold ObjectLockLegalHoldStatus "ON"; nothing when unlocked). The live cases are in
 * noncurrent-versions.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parseCampaignSpec } from '../src/campaign/spec.ts';
import { DEFAULT_OPTIONS } from '../src/core/campaign-spec.ts';
import { lockReason } from '../src/campaign/noncurrent-sweep.ts';
import { lockOf } from '../src/reports/noncurrent-versions.ts';

const spec = (options: Record<string, unknown>) => ({ name: 'n', sources: [{ type: 's3', bucket: 'b' }], provider: { type: 'local', keyringFile: 'k.json' }, from: 'k@1', to: 'k@2', options });
const refusal = (options: Record<string, unknown>) => {
  try {
    parseCampaignSpec(spec(options));
    return 'accepted';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('noncurrentVersions and bypassGovernanceRetention', () => {
  it('default to report and no bypass; accept report, delete, keep', () => {
    expect(DEFAULT_OPTIONS).toMatchObject({ noncurrentVersions: 'report', bypassGovernanceRetention: false });
    for (const m of ['report', 'delete', 'keep']) expect(parseCampaignSpec(spec({ noncurrentVersions: m })).options.noncurrentVersions).toBe(m);
    expect(parseCampaignSpec(spec({ noncurrentVersions: 'delete', bypassGovernanceRetention: true })).options.bypassGovernanceRetention).toBe(true);
  });

  it('refuse an unknown value naming the field and the values allowed, a misspelt field, a non-boolean bypass, and a bypass without delete', () => {
    expect(refusal({ noncurrentVersions: 'purge' })).toMatch(/^campaign spec\.options\.noncurrentVersions: expected one of "report", "delete", "keep" .*got "purge"$/);
    expect(refusal({ noncurrentversions: 'keep' })).toBe('campaign spec.options.noncurrentversions: unknown field; did you mean noncurrentVersions?');
    expect(refusal({ noncurrentVersions: 'delete', bypassGovernanceRetention: 'yes' })).toMatch(/^campaign spec\.options\.bypassGovernanceRetention: expected true or false/);
    expect(refusal({ bypassGovernanceRetention: true })).toMatch(/only with "noncurrentVersions": "delete"/);
  });
});

describe('lockReason (object lock on a noncurrent version)', () => {
  const now = new Date('2026-12-02T17:30:00Z');
  const later = new Date('2026-12-02T18:23:41.248Z');
  const earlier = new Date('2026-12-02T17:00:00Z');
  it('a legal hold and COMPLIANCE are never bypassed; GOVERNANCE only with the bypass; an expired retention does not lock', () => {
    expect(lockReason(lockOf({}), now, false)).toBeUndefined();
    expect(lockReason(lockOf({ ObjectLockLegalHoldStatus: 'ON' }), now, true)).toBe('legal-hold');
    expect(lockReason(lockOf({ ObjectLockLegalHoldStatus: 'OFF' }), now, false)).toBeUndefined();
    expect(lockReason(lockOf({ ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: later }), now, true)).toBe('retention-compliance');
    expect(lockReason(lockOf({ ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: later }), now, false)).toBe('retention-governance');
    expect(lockReason(lockOf({ ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: later }), now, true)).toBeUndefined();
    expect(lockReason(lockOf({ ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: earlier }), now, false)).toBeUndefined();
    expect(lockReason(lockOf({ ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: later, ObjectLockLegalHoldStatus: 'ON' }), now, true)).toBe('legal-hold');
  });
});
