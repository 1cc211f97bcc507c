/**
 * Invariant 5 in the logger itself: key bytes and fields named like key material never reach a
 * log line, at any depth, in the object logged or in a child logger's bindings.
 */
import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { childLogger, createLogger } from '../src/log.ts';
import { auditWrite, auditWrites } from '../src/rewrap/audit.ts';
import type { ItemOutcome } from '../src/rewrap/outcome.ts';

function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'info', destination: sink }) };
}

it('censors bytes and secret-named fields at every depth, keeps everything else', () => {
  const { lines, log } = capture();
  const dek = Buffer.from('0123456789abcdef0123456789abcdef');
  log.child({ campaignId: 'c1', token: 'session-token-value' }).info(
    { dek, item: 's3://b/k', to: { id: 'local:app', version: '2' }, deep: { a: { b: { material: 'kek-bytes-base64', note: 'ok' } } }, list: [{ wrapped: 'AAAA' }, new Uint8Array(5)], a1: { a2: { a3: { a4: { a5: { a6: 'x' } } } } } },
    'audit',
  );
  expect(lines).toHaveLength(1);
  const text = lines[0]!;
  for (const secret of [dek.toString('hex'), dek.toString('base64'), dek.toString('utf8'), 'session-token-value', 'kek-bytes-base64', 'AAAA']) expect(text).not.toContain(secret);
  const line = JSON.parse(text);
  expect(line).toMatchObject({ msg: 'audit', campaignId: 'c1', token: '[redacted]', dek: '[redacted]', item: 's3://b/k', to: { id: 'local:app', version: '2' } });
  expect(line.deep.a.b).toEqual({ material: '[redacted]', note: 'ok' });
  expect(line.list).toEqual([{ wrapped: '[redacted]' }, '[5 bytes]']);
  expect(line.a1.a2.a3.a4.a5).toBe('[nested too deep to log]');
});

it('an error is logged once, as structured fields (type, message, cause), not as JSON text inside `message` (issue 15)', () => {
  const { lines, log } = capture();
  const err = new Error('store write failed', { cause: new Error('connection reset') });
  log.error({ err, campaignId: 'c1' }, 'batch failed');
  log.error(err);
  log.warn({ err: { code: 'ECONNRESET', message: 'plain object error' } }, 'library error');
  const [a, b, c] = lines.map((l) => JSON.parse(l));
  expect(a).toMatchObject({ msg: 'batch failed', campaignId: 'c1', err: { type: 'Error', message: 'store write failed', cause: { type: 'Error', message: 'connection reset' } } });
  expect(b.err).toEqual(a.err);
  expect(c.err).toEqual({ code: 'ECONNRESET', message: 'plain object error' });
  for (const l of lines) expect(l).not.toContain('\\"message\\"');
});

it('the item.material-recorded audit event shows the KEK reference, not "[redacted]" (issue 15)', () => {
  const { lines, log } = capture();
  auditWrite(log, 's3://b', { status: 'skipped', key: 'k1', reason: 'already-at-target', current: { id: 'arn:aws:kms:us-east-1:111122223333:key/k', materialId: 'm'.repeat(64) }, recorded: { requestId: 'r-1' } });
  const line = JSON.parse(lines[0]!);
  expect(line).toMatchObject({ event: 'item.material-recorded', store: 's3://b', item: 'k1', kmsRequestId: 'r-1', kekRef: { id: 'arn:aws:kms:us-east-1:111122223333:key/k', materialId: 'm'.repeat(64) } });
  expect(lines[0]).not.toContain('[redacted]');
});

it("a batch's audit lines (shared fields serialised once per KEK pair) say exactly what one auditWrite per item says (issue 17, point 2)", () => {
  const a = { id: 'local:app', version: '1' };
  const b = { id: 'local:app', version: '2', materialId: 'm2' };
  const outcomes: ItemOutcome[] = [
    { status: 'rewrapped', key: 'k1', from: a, to: b, requestId: 'r1', conflicts: 0 },
    { status: 'rewrapped', key: 'k2', from: { id: 'local:other', version: '7' }, to: b, conflicts: 1 },
    { status: 'skipped', key: 'k3', reason: 'already-at-target', current: b },
    { status: 'rewrapped', key: 'k4', from: a, to: b, requestId: 'r4', conflicts: 0, problem: 'tags not put back' },
    { status: 'skipped', key: 'k5', reason: 'already-at-target', current: b, recorded: { requestId: 'r5' } },
    { status: 'failed', key: 'k6', reason: 'malformed-envelope', detail: 'x' },
    { status: 'rewrapped', key: 'k7', from: a, to: b, requestId: 'r7', conflicts: 0 },
  ];
  const perItem = capture();
  for (const o of outcomes) auditWrite(perItem.log, 's3://b', o);
  const perBatch = capture();
  auditWrites(perBatch.log, 's3://b', outcomes);
  const parse = (lines: string[]) => lines.map((l) => { const { time: _t, ...rest } = JSON.parse(l); return rest; }).sort((x, y) => String(x.item).localeCompare(String(y.item)));
  expect(perBatch.lines).toHaveLength(5);
  expect(parse(perBatch.lines)).toEqual(parse(perItem.lines));
});

it("childLogger scrubs its bindings like any logged object: pino serialises them once and its formatter never sees them (invariant 5)", () => {
  const { lines, log } = capture();
  const dek = Buffer.from('0123456789abcdef0123456789abcdef');
  childLogger(log, { store: 's3://b', to: { id: 'k', material: 'kek-bytes-base64' }, raw: dek }).info({ item: 'k1' }, 'audit');
  expect(lines[0]).not.toContain('kek-bytes-base64');
  expect(lines[0]).not.toContain(dek.toString('hex'));
  expect(JSON.parse(lines[0]!)).toMatchObject({ store: 's3://b', to: { id: 'k', material: '[redacted]' }, raw: '[32 bytes]', item: 'k1' });
});
