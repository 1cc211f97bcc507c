/**
 * A conventional envelope table, for tests and the demo: the shape an application that encrypts
 * rows with envelope encryption typically has. Returns the store config fields that match it.
 */
import type pg from 'pg';
import { parseTableName, quoteIdent } from './pg-table-config.ts';

export interface EnvelopeTableOptions {
  /** Extra text columns holding the encryption context (become the matdesc). */
  contextColumns?: string[];
  /** Also create a `kek_material_id text` column. */
  materialIdColumn?: boolean;
  /** 'bytea' (default) or 'text' (base64) for `wrapped_dek`. */
  wrappedKeyType?: 'bytea' | 'text';
}

/** The config fields naming the created columns: spread them into a PgTableStoreConfig. */
export interface EnvelopeTableColumns {
  table: string;
  idColumn: 'id';
  wrappedKeyColumn: 'wrapped_dek';
  kekIdColumn: 'kek_id';
  kekVersionColumn: 'kek_version';
  contextColumns: string[];
  materialIdColumn?: 'kek_material_id';
}

/**
 * CREATE TABLE <table> (id bigint primary key, payload bytea, iv bytea, wrapped_dek bytea,
 * kek_id text, kek_version text [, kek_material_id text] [, <context> text ...]).
 */
export async function createEnvelopeTable(pool: pg.Pool, table: string, opts: EnvelopeTableOptions = {}): Promise<EnvelopeTableColumns> {
  const { tableSql } = parseTableName(table);
  const contextColumns = opts.contextColumns ?? [];
  const wrappedType = opts.wrappedKeyType ?? 'bytea';
  const columns = [
    'id bigint PRIMARY KEY',
    'payload bytea',
    'iv bytea',
    `wrapped_dek ${wrappedType === 'text' ? 'text' : 'bytea'}`,
    'kek_id text',
    'kek_version text',
    ...(opts.materialIdColumn ? ['kek_material_id text'] : []),
    ...contextColumns.map((c) => `${quoteIdent(c)} text`),
  ];
  await pool.query(`CREATE TABLE ${tableSql} (${columns.join(', ')})`);
  return {
    table,
    idColumn: 'id',
    wrappedKeyColumn: 'wrapped_dek',
    kekIdColumn: 'kek_id',
    kekVersionColumn: 'kek_version',
    contextColumns,
    ...(opts.materialIdColumn ? { materialIdColumn: 'kek_material_id' as const } : {}),
  };
}
