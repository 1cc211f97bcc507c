/**
 * The two statements of the table store. Every name in them comes from a validated, quoted
 * PgTableShape or the catalog (PgTableColumns); values always travel as array parameters.
 */
import type { PgTableShape } from './pg-table-config.ts';
import type { PgTableColumns } from './pg-table-columns.ts';

/**
 * One SELECT for a batch: $1 is text[] of keys. Joining the keys (not `id = ANY`) returns each
 * row under the key the caller used ('007' stays '007'), and casting the key to the id type
 * lets the planner probe the primary-key index per key.
 * Columns: key, wrapped, kek_id, kek_version, material_id (or NULL), c0..cN (context, as text).
 */
export function selectSql(shape: PgTableShape, cols: PgTableColumns): string {
  return `SELECT k.key, ${envelopeColumns(shape)} FROM unnest($1::text[]) AS k(key) JOIN ${shape.tableSql} AS t ON t.${shape.id.sql} = k.key::${cols.idType}`;
}

/** The same columns with the row's own id (as text) for the key: a select list over alias t for a source's statement. */
export function rowColumns(shape: PgTableShape): string {
  return `t.${shape.id.sql}::text AS key, ${envelopeColumns(shape)}`;
}

function envelopeColumns(shape: PgTableShape): string {
  const ctx = shape.context.map((c, i) => `, t.${c.sql}::text AS c${i}`).join('');
  const material = shape.materialId ? `t.${shape.materialId.sql}::text` : 'NULL::text';
  return `t.${shape.wrapped.sql} AS wrapped, t.${shape.kekId.sql}::text AS kek_id, t.${shape.kekVersion.sql}::text AS kek_version, ${material} AS material_id${ctx}`;
}

/**
 * One conditional UPDATE for a batch. Parameters, all arrays of equal length:
 * $1 keys, $2 wrapped key as read (the token), $3 new wrapped key, $4 KEK id, $5 KEK version,
 * then $6 material id (if configured), then one text[] per context column.
 * A row is written only if its wrapped key is still the one read (compare-and-swap) AND its
 * context columns still hold the context the new wrapped key is bound to: a wrapped key is never
 * stored next to a context it cannot be unwrapped with. RETURNING names the rows written.
 */
export function updateSql(shape: PgTableShape, cols: PgTableColumns): string {
  const w = cols.wrappedKind === 'bytea' ? 'bytea' : 'text';
  const names = ['key', 'old_wrapped', 'new_wrapped', 'kek_id', 'kek_version'];
  const types = ['text', w, w, 'text', 'text'];
  const sets = [
    `${shape.wrapped.sql} = v.new_wrapped`,
    `${shape.kekId.sql} = v.kek_id::${cols.kekIdType}`,
    `${shape.kekVersion.sql} = v.kek_version::${cols.kekVersionType}`,
  ];
  if (shape.materialId) {
    names.push('material_id');
    types.push('text');
    sets.push(`${shape.materialId.sql} = v.material_id::${cols.materialIdType}`);
  }
  const conds = [`t.${shape.id.sql} = v.key::${cols.idType}`, `t.${shape.wrapped.sql} = v.old_wrapped`];
  shape.context.forEach((c, i) => {
    names.push(`c${i}`);
    types.push('text');
    conds.push(`t.${c.sql}::text IS NOT DISTINCT FROM v.c${i}`);
  });
  const arrays = types.map((t, i) => `$${i + 1}::${t}[]`).join(', ');
  return (
    `UPDATE ${shape.tableSql} AS t SET ${sets.join(', ')} ` +
    `FROM unnest(${arrays}) AS v(${names.join(', ')}) ` +
    `WHERE ${conds.join(' AND ')} RETURNING v.key`
  );
}
