/**
 * The scheduler's check, each tick, that a running campaign may still wrap under its target KEK.
 * A local keyring target marked decrypt-only (`incident start --decrypt-only`) or disabled, or
 * gone, throws a ConfigError, and the scheduler pauses the campaign with that message as its
 * reason (scheduler.ts, tickOnce). Workers refuse such batches by the same check
 * (Resources.provider, keyring-file-watch.ts). KMS targets are not checked here: KMS itself
 * refuses a disabled key, item by item.
 */
import type { Campaign } from '../ledger/types.ts';
import type { Resources } from '../runtime/resources.ts';

export function checkTargetKek(res: Resources, c: Campaign): void {
  if (c.spec.provider.type === 'local') res.provider(c.id, c.spec);
}
