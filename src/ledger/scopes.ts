/** Campaign scopes: validation and the overlap rule that keeps two campaigns off the same items. */
import { ConfigError } from '../core/errors.ts';
import type { Scope } from './types.ts';
import { parseStoreId, pgStoreId } from '../core/store-id.ts';

export function validateScopes(scopes: unknown): Scope[] {
  if (!Array.isArray(scopes) || scopes.length === 0) throw new ConfigError('campaign scopes: expected a non-empty array of { storeId, prefix? }');
  return scopes.map((s, i) => {
    const r = s as Record<string, unknown> | null;
    if (!r || typeof r.storeId !== 'string' || r.storeId.length === 0) {
      throw new ConfigError(`campaign scopes[${i}].storeId: expected a non-empty store id such as "s3://bucket" or "pg:public.t"`);
    }
    if (r.prefix !== undefined && typeof r.prefix !== 'string') throw new ConfigError(`campaign scopes[${i}].prefix: expected a string`);
    // An empty prefix covers the whole store, exactly like no prefix.
    return r.prefix ? { storeId: r.storeId, prefix: r.prefix } : { storeId: r.storeId };
  });
}

/**
 * The store id two scopes are compared by: a pg table named without a schema is the one in
 * "public" (the default search_path), so `pg:orders` and `pg:public.orders` are one store. Table
 * names are quoted as given (pg-table-config.ts), so case is kept.
 */
export function canonicalStoreId(storeId: string): string {
  const store = parseStoreId(storeId);
  if (store?.kind === 'pg' && !store.table.includes('.')) return pgStoreId(`public.${store.table}`);
  return storeId;
}

/** Same store, and one prefix contains the other (no prefix = the whole store). */
export function scopesOverlap(a: Scope, b: Scope): boolean {
  if (canonicalStoreId(a.storeId) !== canonicalStoreId(b.storeId)) return false;
  if (a.prefix === undefined || b.prefix === undefined) return true;
  return a.prefix.startsWith(b.prefix) || b.prefix.startsWith(a.prefix);
}

export function formatScope(s: Scope): string {
  return s.prefix === undefined ? s.storeId : `${s.storeId} prefix "${s.prefix}"`;
}
