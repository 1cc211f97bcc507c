/** A separate process editing a keyring file (keyring-file-safety.test.ts): appends `n` versions of `id`. */
import { appendKeyringVersion } from '../../src/kek/keyring-file-edit.ts';

const [file, id, n] = process.argv.slice(2);
for (let i = 0; i < Number(n); i++) await appendKeyringVersion(file!, id!);
