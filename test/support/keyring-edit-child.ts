/**
 * A separate process editing a keyring file (keyring-file-safety.test.ts): appends `n` versions of
 * `id`. With `--barrier` it prints "ready" and starts only when a line arrives on stdin, so that
 * several children can be released at the same instant.
 */
import { createInterface } from 'node:readline';
import { appendKeyringVersion } from '../../src/kek/keyring-file-edit.ts';

const [file, id, n, barrier] = process.argv.slice(2);
if (barrier === '--barrier') {
  const lines = createInterface({ input: process.stdin });
  const go = new Promise<void>((resolve) => lines.once('line', () => resolve()));
  process.stdout.write('ready\n');
  await go;
  lines.close();
}
for (let i = 0; i < Number(n); i++) await appendKeyringVersion(file!, id!);
