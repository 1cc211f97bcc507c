/**
 * Runs the local KMS-compatible server from the command line (a development and test tool,
 * never a production key store). Prints one JSON line {"url": ...} once listening.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startKmsServer, type FaultOptions } from './server.ts';

const HELP = `Usage: kms-server [options]

A local, KMS-compatible server for development and tests (AWS JSON 1.1, any SigV4 signature).
Never use it as a key store for real data. Every response carries an x-rewrap-test-server header.

Options:
  --host <addr>            address to listen on (default 127.0.0.1; loopback only unless:)
  --insecure-listen-any    allow a non-loopback --host (anyone who reaches it can use its keys)
  --port <n>               port, 0 for a free one (default 0)
  --region <r>             region used in key ARNs (default us-east-1)
  --state-file <path>      keep keys in this JSON file (mode 0600) across restarts
  --throttle-ratio <0..1>  fraction of requests answered ThrottlingException
  --rps-limit <n>          throttle above n requests per second (token bucket)
  --latency-ms <n>         add n ms to every KMS request
  -h, --help               show this help

Prints {"url": "http://host:port", "adminToken": "..."} on one line when listening. The admin
routes need Authorization: Bearer <adminToken> (set it with KMS_ADMIN_TOKEN, else a random one):
  POST <url>/__admin/faults  {"throttleRatio":0.5,"rpsLimit":100,"latencyMs":20,"outageForMs":5000}
  GET  <url>/__admin/stats
SIGTERM or SIGINT closes it.`;

function num(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`--${flag} must be a number, got ${JSON.stringify(text)}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      region: { type: 'string' },
      'state-file': { type: 'string' },
      'throttle-ratio': { type: 'string' },
      'rps-limit': { type: 'string' },
      'latency-ms': { type: 'string' },
      'insecure-listen-any': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const faults: FaultOptions = {};
  const ratio = num('throttle-ratio', values['throttle-ratio']);
  if (ratio !== undefined) faults.throttleRatio = ratio;
  const rps = num('rps-limit', values['rps-limit']);
  if (rps !== undefined) faults.rpsLimit = rps;
  const latency = num('latency-ms', values['latency-ms']);
  if (latency !== undefined) faults.latencyMs = latency;

  const server = await startKmsServer({
    host: values.host,
    port: num('port', values.port),
    region: values.region,
    stateFile: values['state-file'],
    insecureListenAny: values['insecure-listen-any'] === true,
    // A development tool's entry point: its one setting from the environment, read here.
    adminToken: process.env.KMS_ADMIN_TOKEN || undefined,
    faults,
  });
  process.stdout.write(`${JSON.stringify({ url: server.url, adminToken: server.adminToken })}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`second ${signal}: exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    // Bounded: a client holding a connection open cannot keep the process alive.
    const timer = setTimeout(() => process.exit(1), 5_000);
    timer.unref();
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Run when executed directly (`npm run kms-server --`, i.e. `node --import tsx dev/kms-server/main.ts`), not when imported. */
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`kms-server: ${(err as Error).message}\n`);
    process.exit(2);
  });
}
