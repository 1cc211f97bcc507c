/**
 * A separate process holding a keyring file's edit lock (keyring-file-safety.test.ts): takes it,
 * prints "held", and on a line on stdin prints "lock:<the lock file's content>" (still its own, or
 * not) and releases it. Killed while holding, it leaves a dead editor's lock, as a crash would.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { withKeyringLock } from '../../src/kek/keyring-file-lock.ts';

const [file] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const go = new Promise<void>((resolve) => lines.once('line', () => resolve()));
await withKeyringLock(file!, async () => {
  process.stdout.write('held\n');
  await go;
  let content: string;
  try {
    content = readFileSync(`${file}.lock`, 'utf8');
  } catch (err) {
    content = `(${(err as NodeJS.ErrnoException).code})`;
  }
  process.stdout.write(`lock:${content}\n`);
});
lines.close();
