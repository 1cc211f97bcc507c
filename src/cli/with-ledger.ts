/** One CLI command's clients for the configured ledger, schema migrated, closed when `fn` ends. */
import { loadConfig } from '../config.ts';
import { migrate } from '../ledger/index.ts';
import { Resources } from '../runtime/resources.ts';

export async function withLedger<T>(fn: (res: Resources) => Promise<T>): Promise<T> {
  const res = new Resources(loadConfig());
  try {
    await migrate(res.ledger);
    return await fn(res);
  } finally {
    await res.close();
  }
}
