/** The `rewrap` command line. */
import { ConfigError } from '../core/errors.ts';
import { CampaignConflictError } from '../ledger/index.ts';
import { EXIT, UsageError, helpText, parse, type Command } from './args.ts';
import { campaignCommands } from './campaign-commands.ts';
import { scheduleCommands } from './schedule-commands.ts';
import { kekCommands } from './kek-commands.ts';
import { processCommands } from './process-commands.ts';
import { incidentCommand } from './incident-command.ts';
import { apiCommand } from './api-command.ts';
import { ledgerCommands } from './ledger-commands.ts';

const COMMANDS: Command[] = [...processCommands, apiCommand, ...campaignCommands, ...scheduleCommands, ...kekCommands, incidentCommand, ...ledgerCommands];

const USAGE = `rewrap — move every wrapped data key from an old KEK to a new one, safely and as fast as your KMS quota allows.

Usage: rewrap <command> [options]      (rewrap <command> --help for details)

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(18)} ${c.summary}`).join('\n')}

Every command takes --json for machine-readable output. Exit codes: 0 ok, 1 failed,
2 bad usage or configuration, 3 refused (state or overlap), 4 not found.`;

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(USAGE + '\n');
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  const two = `${argv[0]} ${argv[1] ?? ''}`;
  const cmd = COMMANDS.find((c) => c.name === two) ?? COMMANDS.find((c) => c.name === argv[0]);
  if (!cmd) {
    if (argv[0] === 'campaign') {
      process.stderr.write(`rewrap campaign: expected one of ${campaignCommands.map((c) => c.name.split(' ')[1]).join(', ')}\n`);
    } else if (argv[0] === 'ledger') {
      process.stderr.write(`rewrap ledger: expected one of ${ledgerCommands.map((c) => c.name.split(' ')[1]).join(', ')}\n`);
    } else process.stderr.write(`rewrap: unknown command "${argv[0]}"\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const rest = argv.slice(cmd.name.split(' ').length);
  if (cmd.rawArgs) return cmd.run({ values: {}, positionals: rest });
  const args = parse(cmd, rest);
  if (args.values.help) {
    process.stdout.write(helpText(cmd));
    return EXIT.ok;
  }
  return cmd.run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`rewrap: ${err.message}\n`);
      process.exitCode = EXIT.usage;
    } else if (err instanceof CampaignConflictError) {
      process.stderr.write(`rewrap: refused: ${err.message}\n`);
      process.exitCode = EXIT.refused;
    } else {
      process.stderr.write(`rewrap: ${err instanceof Error ? err.message : String(err)}\n`);
      if (err instanceof Error && err.cause) process.stderr.write(`  cause: ${err.cause instanceof Error ? err.cause.message : String(err.cause)}\n`);
      process.exitCode = EXIT.failed;
    }
    // A command that failed has nothing left to do: don't wait for open connections to drain.
    process.exit();
  },
);
