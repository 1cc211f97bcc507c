/**
 * What the catalog says about the configured columns, looked up once at first use: the id type
 * (parameters are cast to it so the primary-key index is used), whether the wrapped key is bytea
 * or base64 text, and the KEK column types (written values are cast to them).
 */
import type pg from 'pg';
import { ConfigError } from '../core/errors.ts';
import type { ColumnName, PgTableShape } from './pg-table-config.ts';
import { KMS_MATERIAL_ID_LENGTH } from '../core/kms-material.ts';

export interface PgTableColumns {
  /** Base type of the id column, safe to splice into SQL as a cast target. */
  idType: string;
  /** 'bytea': raw bytes; 'text': base64 in a text/varchar column. */
  wrappedKind: 'bytea' | 'text';
  kekIdType: string;
  kekVersionType: string;
  /**
   * Whether the version column can hold a KMS key material id (64 characters of text): KMS keys
   * have no versions, so the material is what a KMS write records there when it fits; a column
   * that cannot hold it (integer, varchar(10)...) keeps NULL for KMS rows, as before.
   */
  kekVersionHoldsMaterialId: boolean;
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
         format_type(COALESCE(NULLIF(ty.typbasetype, 0), a.atttypid), NULL) AS type,
         format_type(a.atttypid, a.atttypmod) AS declared,
         CASE WHEN ty.typbasetype <> 0 THEN ty.typtypmod ELSE a.atttypmod END AS typmod
  FROM (SELECT to_regclass($1) AS oid) r
  LEFT JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_type ty ON ty.oid = a.atttypid`;

export interface ColumnType {
  /** Base type without modifiers (a domain's base type), e.g. `character varying`. */
  type: string;
  /** As declared, e.g. `character varying(16)` or a domain's name. */
  declared: string;
  /** Type modifier: for varchar(n) / char(n), n + 4; -1 when none. */
  typmod: number;
}

/** The table's columns by name, or undefined when `tableSql` names no table the pool can see. */
export async function readColumnTypes(pool: pg.Pool, tableSql: string): Promise<Map<string, ColumnType> | undefined> {
  const { rows } = await pool.query<{ oid: string | null; name: string | null; type: string | null; declared: string | null; typmod: number | null }>(DESCRIBE_SQL, [tableSql]);
  if (rows.length === 0 || rows[0]!.oid === null) return undefined;
  return new Map(rows.filter((r) => r.name !== null).map((r) => [r.name!, { type: r.type!, declared: r.declared!, typmod: r.typmod ?? -1 }]));
}

export async function describeColumns(pool: pg.Pool, shape: PgTableShape): Promise<PgTableColumns> {
  const columns = await readColumnTypes(pool, shape.tableSql);
  if (!columns) {
    throw new ConfigError(`${shape.storeId}: table ${JSON.stringify(shape.tableName)} does not exist (or is not on the search_path of the pool); check the table setting`);
  }
  const types = new Map([...columns].map(([name, c]) => [name, c.type]));
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
    kekVersionHoldsMaterialId: holdsMaterialId(typeOf(shape.kekVersion), columns.get(shape.kekVersion.name)!.typmod),
    materialIdType: shape.materialId ? typeOf(shape.materialId) : undefined,
    keyProblem: keyChecker(idType),
  };
}

/** text, or varchar(n) / char(n) with n >= 64 (the typmod of a length-limited type is n + 4). */
export function holdsMaterialId(type: string, typmod: number): boolean {
  return TEXT_TYPES.has(type) && (typmod < 0 || typmod - 4 >= KMS_MATERIAL_ID_LENGTH);
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
