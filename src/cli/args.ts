/** Small shared pieces of the CLI: flags, exit codes, output. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../core/errors.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, refused: 3, notFound: 4 } as const;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options?: ParseArgsConfig['options'];
  /** The command parses its own flags: it gets argv untouched as `positionals`. */
  rawArgs?: boolean;
  run(args: { values: Record<string, unknown>; positionals: string[] }): Promise<number>;
}

export function parse(cmd: Command, argv: string[]): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    return { values, positionals };
  } catch (err) {
    throw new UsageError(`${cmd.name}: ${(err as Error).message}`);
  }
}

export function helpText(cmd: Command): string {
  return `${cmd.summary}\n\nUsage: ${cmd.usage}\n`;
}

/** Prints either JSON (for scripts) or the human text. */
export function out(json: boolean, data: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(data, null, 2) + '\n' : human() + '\n');
}

export function requireId(positionals: string[], cmd: string): string {
  const id = positionals[0];
  if (!id) throw new UsageError(`${cmd}: expected a campaign id (see: rewrap campaign list)`);
  return id;
}

export function isUserError(err: unknown): boolean {
  return err instanceof ConfigError || err instanceof UsageError;
}
