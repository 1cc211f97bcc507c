/** `rewrap kek retire <id>@<version>`: disable (or delete) a KEK version once nothing needs it. */
import { loadConfig } from '../config.ts';
import { Resources } from '../runtime/resources.ts';
import { migrate } from '../ledger/index.ts';
import { retireKek, parseDuration } from '../retirement/retire-kek.ts';
import { EXIT, UsageError, out, type Command } from './args.ts';

const retire: Command = {
  name: 'kek retire',
  summary: 'Disable a KEK version once no item is under it, a grace period passed and moved items verify (--delete: remove it).',
  usage: `rewrap kek retire <id>@<version> | <kms key id> [--grace 24h] [--sample 50] [--full] [--delete] [--keyring <file>]
                 [--allow-noncurrent-versions] [--json]

  Succeeds only when the ledger's inventory shows no item under the KEK in any store, no campaign
  draining it is active, --grace (default 24h) has passed since the last item moved away, and a
  sample of moved items, re-read from the stores, decrypts under the KEK that wraps it now.
  Then: keyring KEK -> state "disabled" in the keyring file; KMS key -> DisableKey (whole keys only).
  --full     also re-read every item in scope from the stores (not the ledger)
  --delete   remove the version and its material from the keyring file (implies --full; irreversible;
             not for KMS: our KMS server has no ScheduleKeyDeletion)
  --keyring  keyring file (default: REWRAP_KEYRING, else the newest campaign's)
  --allow-noncurrent-versions
             retire although noncurrent object versions in versioned buckets of the scope are
             still under this KEK (or a bucket's versions cannot be read): they become
             undecryptable. Without it they block, unless the newest campaign whose scope
             holds their keys said "noncurrentVersions": "keep". Either way they are counted
             and listed.

Exit codes: 0 retired, 2 bad usage, 3 refused (it says what still blocks).`,
  options: { grace: { type: 'string' }, sample: { type: 'string' }, full: { type: 'boolean' }, delete: { type: 'boolean' }, keyring: { type: 'string' }, 'allow-noncurrent-versions': { type: 'boolean' } },
  async run({ values, positionals }) {
    const target = positionals[0];
    if (!target) throw new UsageError('kek retire: expected <id>@<version> (keyring) or a KMS key id');
    const at = target.lastIndexOf('@');
    const kek = at > 0 ? { id: target.slice(0, at), version: target.slice(at + 1) } : { id: target };
    const graceMs = parseDuration((values.grace as string | undefined) ?? '24h', '--grace');
    const sampleSize = Number((values.sample as string | undefined) ?? 50);
    if (!Number.isInteger(sampleSize) || sampleSize < 1) throw new UsageError('kek retire: --sample must be an integer >= 1');
    const config = loadConfig();
    const res = new Resources(config);
    try {
      await migrate(res.ledger);
      const r = await retireKek(res, kek, {
        now: new Date(),
        graceMs,
        sampleSize,
        fullPass: Boolean(values.full),
        delete: Boolean(values.delete),
        keyringFile: (values.keyring as string | undefined) ?? config.keyringFile,
        allowNoncurrentVersions: Boolean(values['allow-noncurrent-versions']),
      });
      const c = r.check;
      /* Versions that did not block (keep, or the override) are said anyway: they become undecryptable. */
      const kept = c.noncurrent.filter((u) => !u.blocking).map((u) => `\n  noncurrent versions still under ${c.kek} in ${u.storeId}: ${u.versions} (${u.mode === 'keep' ? '"noncurrentVersions": "keep"' : '--allow-noncurrent-versions'}); they become undecryptable`);
      out(Boolean(values.json), { retired: Boolean(r.action), action: r.action ?? null, ...c }, () =>
        r.action
          ? `${c.kek}: ${r.action === 'deleted' ? 'removed from the keyring file' : 'disabled'} (sampled ${c.sample.checked} moved item(s)${c.sample.checked < c.sample.asked ? ` of the ${c.sample.asked} asked: the ledger keeps fewer (the campaigns moved fewer, or, in the batch form, batch n keeps 64/n per source KEK; --full re-reads every item)` : ''}${c.fullPass ? `, re-read ${c.fullPass.checked}` : ''})${kept.join('')}`
          : `refused: ${c.kek} cannot be retired yet:\n${c.blockers.map((b) => `  - ${b}`).join('\n')}`,
      );
      return r.action ? EXIT.ok : EXIT.refused;
    } finally {
      await res.close();
    }
  },
};

export const kekCommands: Command[] = [retire];
