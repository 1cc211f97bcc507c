/**
 * Invariant 5 in the logger itself: key bytes and fields named like key material never reach a
 * log line, at any depth, in the object logged or in a child logger's bindings.
 */
import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import { auditWrite } from '../src/rewrap/audit.ts';

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
