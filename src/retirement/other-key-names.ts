/**
 * One KMS key, several names: its key id, key ARN, each alias and alias ARN. An S3 object's
 * matdesc and a table's KEK id column record whichever the writer used, and a campaign from one
 * name takes only the items recorded under it (a table source selects by the column; an object
 * naming another is skipped as not-under-source). Disabling the key by any name disables it for
 * all of them. So the gate asks the provider for the key's other names (KekAdmin.otherNames) and
 * checks each like the name it was given: the ledger's inventory, pending and failed items, and
 * campaigns at work. Rows of the tables in scope that record another name were never planned by
 * a campaign from this one, so nothing in the ledger shows them: they are counted from the table
 * (one indexed page per table; without an index on the KEK column, a scan). Invariant 7: when the
 * provider cannot say which other names the key has, that blocks.
 */
import { campaignsFromKek, kekUsage, listCampaigns } from '../ledger/index.ts';
import { pgStoreId } from '../core/store-id.ts';
import { ACTIVE_STATES, type Campaign } from '../ledger/types.ts';
import { UNDER_NO_KEK_REASONS } from '../core/reasons.ts';
import type { KekSelector } from '../core/kek-ref.ts';
import type { KekAdmin } from '../kek/kek-admin.ts';
import type { Resources } from '../runtime/resources.ts';
import { PgTableSource } from '../sources/pg-table-source.ts';

/** Rows counted per table before the count says "at least". */
const ROWS_COUNTED = 1000;

export async function otherNameBlockers(res: Resources, admin: KekAdmin, kek: KekSelector, name: string, campaigns: Campaign[], signal?: AbortSignal): Promise<string[]> {
  if (!admin.otherNames) return [];
  let names: string[];
  try {
    names = await admin.otherNames(kek.id, signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    const e = err as { name?: string; message?: string };
    return [
      `cannot tell which other names ${admin.kind.toUpperCase()} gives ${name} (${e.name ?? 'error'}: ${e.message ?? String(err)}): items that record its key id, key ARN or an alias instead would go unchecked; grant kms:DescribeKey and kms:ListAliases`,
    ];
  }
  const blockers: string[] = [];
  const same = (n: string) => `${n}, the same KMS key as ${name}`;
  for (const n of names) {
    const sel: KekSelector = { id: n, ...(kek.version !== undefined ? { version: kek.version } : {}) };
    const from = await campaignsFromKek(res.ledger, sel);
    const usage = await kekUsage(res.ledger, sel, from.map((c) => c.id), UNDER_NO_KEK_REASONS);
    for (const s of usage.stores) {
      if (s.underKek > 0) blockers.push(`${s.storeId}: ${s.underKek} item(s) still under ${same(n)} (ledger inventory); run a campaign from ${n}`);
      if (s.notYetMoved > 0) blockers.push(`${s.storeId}: ${s.notYetMoved} planned item(s) from ${same(n)} not moved yet`);
      if (s.failedNotMoved > 0) blockers.push(`${s.storeId}: ${s.failedNotMoved} item(s) failed to move from ${same(n)}`);
    }
    for (const c of from.filter((x) => ACTIVE_STATES.includes(x.state))) blockers.push(`campaign ${c.id} (${c.name}) draining ${same(n)} is still ${c.state}`);
  }
  /* A campaign at work moving items TO another name of the key: a batch in flight wraps under it. */
  for (const c of await listCampaigns(res.ledger, { states: [...ACTIVE_STATES] })) {
    const to = (c.spec.keyMap ?? [{ from: c.spec.from, to: c.spec.to }]).map((p) => p.to?.id).find((id) => id !== undefined && names.includes(id));
    if (to) blockers.push(`campaign ${c.id} (${c.name}) moving items to ${same(to)} is still ${c.state}`);
  }
  if (names.length === 0) return blockers;
  /* The tables the campaigns of this name rotated: rows there recording another name of the key. */
  const tables = new Map<string, Extract<Campaign['spec']['sources'][number], { type: 'pg' }>>();
  for (const c of campaigns) for (const s of c.spec.sources) if (s.type === 'pg') tables.set(s.table, s);
  for (const s of tables.values()) {
    const source = new PgTableSource(res.data(), { ...s }, names.map((id) => ({ id })));
    const page = await source.page(null, ROWS_COUNTED);
    const rows = page.groups.reduce((a, g) => a + g.keys.length, 0);
    if (rows === 0) continue;
    const recorded = names.map((n) => JSON.stringify(n)).join(', ');
    blockers.push(
      `${pgStoreId(s.table)}: ${page.done ? '' : 'at least '}${rows} row(s) record ${name} by another name (${s.kekIdColumn} is one of ${recorded}); ` +
        `no campaign from ${name} selects them, and they would not decrypt once the key is disabled; run a campaign from each name the rows use`,
    );
  }
  return blockers;
}
