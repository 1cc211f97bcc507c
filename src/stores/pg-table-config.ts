/**
 * Configuration of the Postgres table envelope store, validated once at construction.
 * Every table and column name is checked against a strict identifier pattern AND double-quoted
 * before it goes into SQL: no name reaches a statement unvalidated (no injection through config).
 */
import type pg from 'pg';
import type { WrapAlgorithm } from '../core/kek-ref.ts';
import { ConfigError } from '../core/errors.ts';
import { GCM_CEK_ALG } from '../envelope/s3ec-v2.ts';
import { pgStoreId, type StoreId } from '../core/store-id.ts';

export interface PgTableStoreConfig {
  /** The process's one pool; the store never creates clients of its own. */
  pool: pg.Pool;
  /**
   * `schema.table` or `table` (then the pool's search_path decides). Names are matched exactly
   * as in the catalog (quoted, so case-sensitive): an unquoted `CREATE TABLE Secrets` is `secrets`.
   */
  table: string;
  /** Primary key (or unique) column; item keys are its values rendered as text. */
  idColumn: string;
  /** The wrapped DEK: `bytea`, or `text`/`varchar` holding base64 (detected from the catalog). */
  wrappedKeyColumn: string;
  kekIdColumn: string;
  /** May hold NULL (no version known). */
  kekVersionColumn: string;
  /** Encryption-context columns; they become the matdesc map column -> text value (NULL: absent). */
  contextColumns?: string[];
  /** How every row's DEK is wrapped: one value per table. */
  wrapAlg: WrapAlgorithm;
  /** Content cipher of the payloads; default 'AES/GCM/NoPadding'. */
  cekAlg?: string;
  /** Optional column for the KMS key material id of the KEK that wraps the DEK. */
  materialIdColumn?: string;
}

/** The config after validation: names split and quoted, defaults applied. */
export interface PgTableShape {
  /** `pg:<table as given>`, the store id used in the ledger. */
  storeId: StoreId;
  /** The table name as given, for messages. */
  tableName: string;
  /** Quoted, possibly schema-qualified: `"public"."secrets"`. */
  tableSql: string;
  id: ColumnName;
  wrapped: ColumnName;
  kekId: ColumnName;
  kekVersion: ColumnName;
  materialId?: ColumnName;
  context: ColumnName[];
  wrapAlg: WrapAlgorithm;
  cekAlg: string;
}

export interface ColumnName {
  /** As in the catalog (for lookups and messages). */
  name: string;
  /** Double-quoted, safe to splice into SQL. */
  sql: string;
  /** The config field that named it, for messages. */
  field: string;
}

/** Unquoted-identifier shape, at most 63 bytes (NAMEDATALEN - 1). Anything else is refused. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const WRAP_ALGS: readonly WrapAlgorithm[] = ['AES/GCM', 'kms+context'];

/** Quotes a name that already matched IDENTIFIER (so it holds no quote to escape). */
export function quoteIdent(name: string): string {
  if (!IDENTIFIER.test(name)) throw new ConfigError(`${JSON.stringify(name)} is not a plain SQL identifier`);
  return `"${name}"`;
}

function column(name: unknown, field: string): ColumnName {
  if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
    throw new ConfigError(
      `pg table store: ${field} is ${describe(name)}; expected a column name of letters, digits and _ (not starting with a digit, at most 63 characters)`,
    );
  }
  return { name, sql: `"${name}"`, field };
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (typeof value === 'string') return JSON.stringify(value);
  return `a ${value === null ? 'null' : typeof value}`;
}

/** Splits `schema.table` / `table` and quotes each part. */
export function parseTableName(table: unknown): { tableName: string; tableSql: string } {
  const parts = typeof table === 'string' ? table.split('.') : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every((p) => IDENTIFIER.test(p))) {
    throw new ConfigError(
      `pg table store: table is ${describe(table)}; expected "schema.table" or "table", each part letters, digits and _ (not starting with a digit)`,
    );
  }
  return { tableName: table as string, tableSql: parts.map((p) => `"${p}"`).join('.') };
}

export function validatePgTableConfig(config: PgTableStoreConfig): PgTableShape {
  if (typeof config !== 'object' || config === null) throw new ConfigError('pg table store: config is missing; expected an object');
  const cfg = config as unknown as Record<string, unknown>;
  const pool = cfg.pool as { query?: unknown } | undefined;
  if (typeof pool !== 'object' || pool === null || typeof pool.query !== 'function') {
    throw new ConfigError(`pg table store: pool is ${describe(cfg.pool)}; expected a pg.Pool`);
  }
  const { tableName, tableSql } = parseTableName(cfg.table);
  const id = column(cfg.idColumn, 'idColumn');
  const wrapped = column(cfg.wrappedKeyColumn, 'wrappedKeyColumn');
  const kekId = column(cfg.kekIdColumn, 'kekIdColumn');
  const kekVersion = column(cfg.kekVersionColumn, 'kekVersionColumn');
  const materialId = cfg.materialIdColumn === undefined ? undefined : column(cfg.materialIdColumn, 'materialIdColumn');

  const ctx = cfg.contextColumns ?? [];
  if (!Array.isArray(ctx)) throw new ConfigError(`pg table store: contextColumns is ${describe(ctx)}; expected an array of column names`);
  const context = ctx.map((name: unknown, i) => column(name, `contextColumns[${i}]`));

  const wrapAlg = cfg.wrapAlg;
  if (typeof wrapAlg !== 'string' || !WRAP_ALGS.includes(wrapAlg as WrapAlgorithm)) {
    throw new ConfigError(`pg table store: wrapAlg is ${describe(wrapAlg)}; expected one of ${WRAP_ALGS.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  const cekAlg = cfg.cekAlg ?? GCM_CEK_ALG;
  if (typeof cekAlg !== 'string' || cekAlg.length === 0) {
    throw new ConfigError(`pg table store: cekAlg is ${describe(cfg.cekAlg)}; expected a content cipher name such as ${GCM_CEK_ALG}`);
  }

  /* Invariant: one column plays one role; a wrapped-key column that doubles as a KEK column
     would be overwritten with the wrong kind of value. */
  const seen = new Map<string, string>();
  for (const c of [id, wrapped, kekId, kekVersion, ...(materialId ? [materialId] : []), ...context]) {
    const other = seen.get(c.name);
    if (other) throw new ConfigError(`pg table store: ${c.field} names column "${c.name}", already used by ${other}; expected a distinct column`);
    seen.set(c.name, c.field);
  }

  return {
    storeId: pgStoreId(tableName),
    tableName,
    tableSql,
    id,
    wrapped,
    kekId,
    kekVersion,
    materialId,
    context,
    wrapAlg: wrapAlg as WrapAlgorithm,
    cekAlg,
  };
}
