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
  summary: 'Run the HTTP API and live dashboard (GET / ), with /metrics of the backlog. Read-only unless REWRAP_API_TOKEN is set.',
  usage: `rewrap api [--port ${DEFAULT_API_PORT}] [--host 127.0.0.1]

  --port <n>     port to listen on (default ${DEFAULT_API_PORT}; 0 picks a free one)
  --host <addr>  address to bind (default 127.0.0.1; 0.0.0.0 to expose it)

Endpoints: GET / (dashboard), GET /api/campaigns, GET /api/campaigns/<id>,
GET /api/campaigns/<id>/failures?after=&limit=, GET /api/campaigns/<id>/history, GET /api/inventory,
GET /metrics; with Authorization: Bearer <REWRAP_API_TOKEN>: POST /api/campaigns (body: campaign
spec; ?start=true), POST /api/campaigns/<id>/start|pause|resume|cancel.

Environment: REWRAP_API_TOKEN (at least 16 characters; unset = every mutation refused),
DATABASE_URL (the ledger), LOG_LEVEL.`,
  options: { port: { type: 'string' }, host: { type: 'string' } },
  async run({ values }) {
    const port = values.port === undefined ? DEFAULT_API_PORT : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`api: --port ${String(values.port)}: expected an integer from 0 to 65535`);
    const host = typeof values.host === 'string' && values.host ? values.host : '127.0.0.1';
    const config = loadConfig();
    const log = createLogger({ level: config.logLevel, name: 'api' });
    const res = new Resources(config);
    try {
      await migrate(res.ledger);
      const api = await startApiServer({ pool: res.ledger, config, log, port, host });
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
