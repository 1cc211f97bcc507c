/** The real `rewrap` CLI against a test pipeline: spec files, runs, JSON output. */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runRewrap } from '../../dev/services/processes.ts';
import type { Pipeline } from './pipeline.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `rewrap <args>` with the pipeline's environment (its ledger schema, Redis prefix, KMS). */
export function rewrapCli(pipe: Pipeline, args: string[]): Promise<CliResult> {
  return runRewrap(args, pipe.env);
}

/** Parses the stdout of a `--json` command, saying what was printed when it is not JSON. */
export function jsonOf<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch (err) {
    throw new Error(`expected JSON on stdout (exit ${r.code}); stdout: ${r.stdout}\nstderr: ${r.stderr}`, { cause: err });
  }
}

/** Writes a campaign spec into the pipeline's temporary directory; returns its path. */
export async function specFile(pipe: Pipeline, spec: unknown): Promise<string> {
  const file = join(pipe.dir, `spec-${randomBytes(3).toString('hex')}.json`);
  await writeFile(file, JSON.stringify(spec));
  return file;
}
