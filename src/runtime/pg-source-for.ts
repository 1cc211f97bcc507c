/**
 * The campaign's Postgres table source of one store (`pg:<table>`), or undefined when the
 * campaign has none: what a batch-form range is read through outside a worker (the canary,
 * `campaign report --expand`).
 */
import type { CampaignSpec } from '../core/campaign-spec.ts';
import { pgStoreId } from '../core/store-id.ts';
import { PgTableSource } from '../sources/pg-table-source.ts';
import type { Resources } from './resources.ts';

export function pgSourceFor(res: Resources, spec: CampaignSpec, storeId: string): PgTableSource | undefined {
  const index = spec.sources.findIndex((s) => s.type === 'pg' && pgStoreId(s.table) === storeId);
  if (index < 0) return undefined;
  const source = res.source(spec, index);
  return source instanceof PgTableSource ? source : undefined;
}
