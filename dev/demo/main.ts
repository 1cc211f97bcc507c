/**
 * `npm run demo [-- --items N --keep --json]`: the demo's own entry point. It lives in dev/, which
 * the package and the image do not ship, so the shipped `rewrap` CLI has no demo command (and no
 * path to the local KMS server, which accepts any signature).
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../../src/core/errors.ts';
import { runDemo } from './demo.ts';

const USAGE = `Run a demo rotation end to end on this machine (local KMS server, S3, Postgres, 2 workers).

Usage: npm run demo [-- --items N] [--keep] [--json]
`;

async function main(argv: string[]): Promise<number> {
  let values: { items?: string; keep?: boolean; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { items: { type: 'string' }, keep: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  return (await runDemo({ items: values.items ? Number(values.items) : undefined, keep: Boolean(values.keep), json: Boolean(values.json) })) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    if (err instanceof Error && err.cause) process.stderr.write(`  cause: ${err.cause instanceof Error ? err.cause.message : String(err.cause)}\n`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
    process.exit();
  },
);
