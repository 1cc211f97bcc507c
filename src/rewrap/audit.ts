/**
 * The audit trail: one event per store write (a rewrapped key, or a key material recorded), from
 * the worker that wrote it or the canary. Item keys go to the ledger and the audit log only
 * (invariant 6); no key bytes, only KEK ids, versions and provider request ids (invariant 5).
 */
import { childLogger, type Logger } from '../log.ts';
import type { KekVersionRef } from '../core/kek-ref.ts';
import type { ItemOutcome } from './outcome.ts';

export function auditWrite(log: Logger, storeId: string, o: ItemOutcome, extra?: { canary: true }): void {
  /* `problem`: the write landed, a follow-up of it did not (tags not put back): said with the
     write's own event, at warn so it is seen. */
  if (o.status === 'rewrapped') {
    const event = { event: 'item.rewrapped', store: storeId, item: o.key, from: o.from, to: o.to, kmsRequestId: o.requestId, ...extra };
    if (o.problem) log.warn({ ...event, problem: o.problem }, 'audit');
    else log.info(event, 'audit');
  } else if (o.status === 'skipped' && o.recorded) {
    /* `kekRef`, not `kek`: the logger censors fields named like key material (`kek`), which hid the
       very reference this event exists to record. It holds an id, a version and a material id only. */
    const event = { event: 'item.material-recorded', store: storeId, item: o.key, kekRef: o.current, kmsRequestId: o.recorded.requestId, ...extra };
    if (o.problem) log.warn({ ...event, problem: o.problem }, 'audit');
    else log.info(event, 'audit');
  }
}

/**
 * The audit events of one batch's writes: the same lines as auditWrite, one per item, but the
 * fields every rewrap of a (from, to) pair shares (event, store, from, to) are serialised once per
 * batch, in a child logger's bindings, instead of once per item (issue 17, point 2: the audit line
 * was ~5 % of a worker's CPU on B1). Items with a `problem` and material records keep auditWrite.
 */
export function auditWrites(log: Logger, storeId: string, outcomes: readonly ItemOutcome[]): void {
  let pairs: Map<string, Logger> | undefined;
  for (const o of outcomes) {
    if (o.status !== 'rewrapped' || o.problem) {
      auditWrite(log, storeId, o);
      continue;
    }
    pairs ??= new Map();
    const pair = refKey(o.from) + '\u0000' + refKey(o.to);
    let pairLog = pairs.get(pair);
    if (!pairLog) {
      pairLog = childLogger(log, { event: 'item.rewrapped', store: storeId, from: o.from, to: o.to });
      pairs.set(pair, pairLog);
    }
    pairLog.info({ item: o.key, kmsRequestId: o.requestId }, 'audit');
  }
}

const refKey = (r: KekVersionRef) => `${r.id}\u0000${r.version ?? ''}\u0000${r.materialId ?? ''}`;
