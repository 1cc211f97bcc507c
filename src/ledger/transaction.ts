/** One transaction on one pooled client: BEGIN, the work, COMMIT; ROLLBACK on any error; release always. */
import type pg from 'pg';

export async function withTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  /* A checked-out client has no pool listener: when the server ends the session (a restart,
     57P01) pg emits 'error' on it, and an unlistened 'error' ends the process. Noted here, the
     failure reaches the caller through the query that was running or the next one. */
  const onError = (err: Error) => {
    broken ??= err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (!broken) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection is unusable: destroy it instead of returning it to the pool.
        broken = rollbackErr instanceof Error ? rollbackErr : new Error('ROLLBACK failed', { cause: rollbackErr });
      }
    }
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}
