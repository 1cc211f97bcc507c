/** `rewrap api`: the HTTP API, the live dashboard and /metrics of the backlog. */
import { loadConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { Resources } from '../runtime/resources.ts';
import { migrate } from '../ledger/index.ts';
import { startApiServer } from '../api/server.ts';
import { EXIT, UsageError, type Command } from './args.ts';

export const DEFAULT_API_PORT = 4600;

export const apiCommand: Command = {
  name: 'api',
  summary: 'Run the HTTP API and live dashboard (GET / ), with /metrics of the backlog. Reads need REWRAP_API_READ_TOKEN, writes REWRAP_API_TOKEN.',
  usage: `rewrap api [--port ${DEFAULT_API_PORT}] [--host 127.0.0.1] [--public-reads]

  --port <n>       port to listen on (default ${DEFAULT_API_PORT}; 0 picks a free one)
  --host <addr>    address to bind (default 127.0.0.1; 0.0.0.0 to expose it)
  --public-reads   serve the read endpoints without a token (a dashboard on a trusted network only:
                   they show item keys, failure details, scopes and specs)

Endpoints: GET / (dashboard; open /#token=<read token> once, or type it when asked), GET /metrics,
GET /healthz (alive), GET /readyz (ledger reachable and migrated; 503 otherwise; no token, any Host);
with Authorization: Bearer <REWRAP_API_READ_TOKEN or REWRAP_API_TOKEN>: GET /api/campaigns?limit=&after=,
GET /api/campaigns/<id>, GET /api/campaigns/<id>/failures?after=&limit=, GET /api/campaigns/<id>/history,
GET /api/inventory; with Authorization: Bearer <REWRAP_API_TOKEN>: POST /api/campaigns (body: campaign
spec, held to REWRAP_API_POLICY; ?start=true), POST /api/campaigns/<id>/start|pause|resume|cancel.

Environment: REWRAP_API_TOKEN (writes; at least 16 characters; unset = every mutation refused),
REWRAP_API_READ_TOKEN (reads), REWRAP_API_POLICY (JSON file: the KMS endpoints and regions, keys,
keyring and manifest files, buckets and tables API-created campaigns may name; unset = the API creates
no campaign), REWRAP_API_ALLOWED_HOSTS (Host names served beside the bound address and localhost),
DATABASE_URL (the ledger), LOG_LEVEL.`,
  options: { port: { type: 'string' }, host: { type: 'string' }, 'public-reads': { type: 'boolean' } },
  async run({ values }) {
    const port = values.port === undefined ? DEFAULT_API_PORT : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`api: --port ${String(values.port)}: expected an integer from 0 to 65535`);
    const host = typeof values.host === 'string' && values.host ? values.host : '127.0.0.1';
    const config = loadConfig();
    const log = createLogger({ level: config.logLevel, name: 'api' });
    const res = new Resources(config);
    try {
      await migrate(res.ledger);
      const api = await startApiServer({ pool: res.ledger, config, log, port, host, publicReads: values['public-reads'] === true });
      process.stdout.write(`rewrap api: dashboard at ${api.url}/\n`);
      return await new Promise<number>((resolve) => {
        let stopping = false;
        const onSignal = () => {
          if (stopping) process.exit(130); // a second signal forces exit
          stopping = true;
          api.close().then(() => res.close()).then(
            () => resolve(EXIT.ok),
            () => resolve(EXIT.failed),
          );
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
    } catch (err) {
      await res.close();
      throw err;
    }
  },
};
