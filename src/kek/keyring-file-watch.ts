/**
 * A local keyring provider that follows its file: before each batch (Resources.provider) the file's
 * identity, size and times are compared with those loaded, and a changed file is loaded again.
 * So a version marked decrypt-only (`incident start --decrypt-only`) or disabled wraps nothing new
 * from the next batch on, in every worker, without a restart. A file that no longer loads (bad
 * JSON, open permissions) stops the batches with its ConfigError: the old keyring may be the one
 * an operator is taking a KEK out of, so it is not used on.
 */
import { statSync } from 'node:fs';
import { ConfigError } from '../core/errors.ts';
import { formatKek, type KekSelector } from '../core/kek-ref.ts';
import { loadKeyringFile } from './keyring-file.ts';
import { LocalKeyringProvider } from './local-keyring-provider.ts';

function signature(path: string): string {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    throw new ConfigError(`keyring file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export class WatchedKeyring {
  readonly provider: LocalKeyringProvider;
  private loaded: string;

  constructor(readonly path: string) {
    this.loaded = signature(path);
    this.provider = new LocalKeyringProvider(loadKeyringFile(path));
  }

  /** Loads the file again when it changed since the last load; true when it did. */
  refresh(): boolean {
    const now = signature(this.path);
    if (now === this.loaded) return false;
    // Stat before reading: a change between the two is seen (again) by the next refresh.
    this.provider.replace(loadKeyringFile(this.path));
    this.loaded = now;
    return true;
  }

  /** ConfigError unless `to` is in the keyring and enabled: a campaign must not wrap under anything else. */
  assertWrappable(to: KekSelector, campaign: string): void {
    const e = this.provider.entry(to);
    if (!e) throw new ConfigError(`campaign ${campaign}: target KEK ${formatKek(to)} is not in keyring file ${this.path}`);
    if (e.state !== 'enabled') {
      throw new ConfigError(
        `campaign ${campaign}: target KEK ${e.id}@${e.version} is ${e.state} in keyring file ${this.path}, so nothing new may be wrapped under it; ` +
          'point the campaign at an enabled KEK (cancel it and create a new one), or set the version back to enabled and resume',
      );
    }
  }
}
