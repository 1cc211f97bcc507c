/**
 * What the catalog says about the configured columns, looked up once at first use: the id type
 * (parameters are cast to it so the primary-key index is used), whether the wrapped key is bytea
 * or base64 text, and the KEK column types (written values are cast to them).
 */
import type pg from 'pg';
import { ConfigError } from '../errors.ts';
import type { ColumnName, PgTableShape } from './pg-table-config.ts';

export interface PgTableColumns {
  /** Base type of the id column, safe to splice into SQL as a cast target. */
  idType: string;
  /** 'bytea': raw bytes; 'text': base64 in a text/varchar column. */
  wrappedKind: 'bytea' | 'text';
  kekIdType: string;
  kekVersionType: string;
  materialIdType?: string;
  /** Why `key` cannot be a value of the id column (so no row has it), or undefined if it can. */
  keyProblem(key: string): string | undefined;
}

/** format_type() output for built-in and schema-qualified plain names; anything else is refused. */
const TYPE_NAME = /^[A-Za-z_][A-Za-z0-9_ ]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;
const TEXT_TYPES = new Set(['text', 'character varying', 'character']);
const INT_RANGE: Record<string, bigint> = { smallint: 2n ** 15n, integer: 2n ** 31n, bigint: 2n ** 63n };
const UUID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/i;

const DESCRIBE_SQL = `
  SELECT r.oid::int8 AS oid, a.attname AS name,
         format_type(COALESCE(NULLIF(ty.typbasetype, 0), a.atttypid), NULL) AS type
  FROM (SELECT to_regclass($1) AS oid) r
  LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_type ty ON ty.oid = a.atttypid`;

export async function describeColumns(pool: pg.Pool, shape: PgTableShape): Promise<PgTableColumns> {
  const { rows } = await pool.query<{ oid: string | null; name: string | null; type: string | null }>(DESCRIBE_SQL, [shape.tableSql]);
  if (rows.length === 0 || rows[0]!.oid === null) {
    throw new ConfigError(`${shape.storeId}: table ${JSON.stringify(shape.tableName)} does not exist (or is not on the search_path of the pool); check the table setting`);
  }
  const types = new Map(rows.filter((r) => r.name !== null).map((r) => [r.name!, r.type!]));
  const typeOf = (c: ColumnName): string => {
    const t = types.get(c.name);
    if (t === undefined) {
      throw new ConfigError(`${shape.storeId}: ${c.field} names column "${c.name}", which table ${shape.tableName} does not have (names are case-sensitive)`);
    }
    if (!TYPE_NAME.test(t)) throw new ConfigError(`${shape.storeId}: ${c.field} column "${c.name}" has type ${t}, which this store cannot cast to`);
    return t;
  };

  const idType = typeOf(shape.id);
  const wrappedType = typeOf(shape.wrapped);
  let wrappedKind: 'bytea' | 'text';
  if (wrappedType === 'bytea') wrappedKind = 'bytea';
  else if (TEXT_TYPES.has(wrappedType)) wrappedKind = 'text';
  else {
    throw new ConfigError(
      `${shape.storeId}: wrappedKeyColumn "${shape.wrapped.name}" has type ${wrappedType}; expected bytea, or text/varchar holding base64`,
    );
  }
  for (const c of shape.context) typeOf(c);
  return {
    idType,
    wrappedKind,
    kekIdType: typeOf(shape.kekId),
    kekVersionType: typeOf(shape.kekVersion),
    materialIdType: shape.materialId ? typeOf(shape.materialId) : undefined,
    keyProblem: keyChecker(idType),
  };
}

/**
 * Keys are cast to the id type inside the statement; one key that does not cast would fail the
 * whole batch, so keys that cannot name any row are sorted out first (they are 'item-missing').
 * Types not listed here are left to Postgres.
 */
function keyChecker(idType: string): (key: string) => string | undefined {
  const limit = INT_RANGE[idType];
  return (key) => {
    if (key.includes('\u0000')) return 'contains a NUL character';
    if (limit !== undefined) {
      if (!/^-?\d+$/.test(key)) return `is not a ${idType}`;
      const n = BigInt(key);
      return n >= -limit && n < limit ? undefined : `is out of range for ${idType}`;
    }
    if (idType === 'uuid' && !UUID.test(key)) return 'is not a uuid';
    return undefined;
  };
}
