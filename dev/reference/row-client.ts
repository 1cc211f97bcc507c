/** Envelope-encrypted rows written the way an application would, for tests and checks. */
import type pg from 'pg';
import { randomBytes } from 'node:crypto';
import { aesUnwrap, aesWrap, encryptPayload } from './s3ec-client.ts';

export interface RowKek {
  id: string;
  version: string;
  material: Buffer;
}

/** Inserts rows 1..n (or from `firstId`) under `kek`; returns each row's DEK by id. */
export async function insertRows(pool: pg.Pool, table: string, n: number, kek: RowKek, firstId = 1): Promise<Map<string, Buffer>> {
  const deks = new Map<string, Buffer>();
  for (let start = 0; start < n; start += 5000) {
    const ids: string[] = [];
    const payloads: Buffer[] = [];
    const ivs: Buffer[] = [];
    const wrapped: Buffer[] = [];
    for (let i = start; i < Math.min(n, start + 5000); i++) {
      const id = String(firstId + i);
      const dek = randomBytes(32);
      const { iv, body } = encryptPayload(dek, Buffer.from(`row ${id} secret payload`));
      deks.set(id, dek);
      ids.push(id);
      payloads.push(body);
      ivs.push(iv);
      wrapped.push(aesWrap(kek.material, dek));
    }
    await pool.query(
      `INSERT INTO ${table} (id, payload, iv, wrapped_dek, kek_id, kek_version)
       SELECT id, p, iv, w, $5, $6 FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(id, p, iv, w)`,
      [ids, payloads, ivs, wrapped, kek.id, kek.version],
    );
  }
  return deks;
}

/** Every row, independently unwrapped with only the KEKs given (by id@version). */
export async function unwrapAll(pool: pg.Pool, table: string, keks: RowKek[]): Promise<Map<string, { dek: Buffer; kek: string }>> {
  const byName = new Map(keks.map((k) => [`${k.id}@${k.version}`, k.material]));
  const { rows } = await pool.query<{ id: string; wrapped_dek: Buffer; kek_id: string; kek_version: string }>(
    `SELECT id::text, wrapped_dek, kek_id, kek_version FROM ${table} ORDER BY id`,
  );
  const out = new Map<string, { dek: Buffer; kek: string }>();
  for (const r of rows) {
    const name = `${r.kek_id}@${r.kek_version}`;
    const material = byName.get(name);
    if (!material) throw new Error(`row ${r.id}: no test KEK ${name}`);
    out.set(r.id, { dek: aesUnwrap(material, r.wrapped_dek), kek: name });
  }
  return out;
}
