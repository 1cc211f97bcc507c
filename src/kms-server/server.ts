/**
 * A KMS-compatible HTTP server for development and tests: never a production key store.
 * Clients talk to it with @aws-sdk/client-kms (endpoint = `url`); any SigV4 signature is
 * accepted, but an Authorization header must be present. Admin endpoints (no auth):
 *   GET  /__admin/faults        current faults
 *   POST /__admin/faults        replace faults (JSON FaultOptions; {} clears)
 *   GET  /__admin/stats         KmsStats
 *   POST /__admin/stats/reset   zero the stats
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { FaultController, type FaultOptions, type KmsStats } from './faults.ts';
import { ACCOUNT_ID, KeyStore } from './keystore.ts';
import { operations } from './operations.ts';
import { KmsError, parseJsonObject, readBody, sendJson, sendKmsError, TARGET_PREFIX } from './protocol.ts';
import { loadState, saveState } from './state-file.ts';

export type { FaultOptions, KmsStats } from './faults.ts';

export interface KmsServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Region in ARNs. Default us-east-1. */
  region?: string;
  /** JSON file holding keys and key material (mode 0600); loaded at start, rewritten on change. */
  stateFile?: string;
  faults?: FaultOptions;
  /** Where unexpected server errors go (never key material). Default: stderr. */
  onInternalError?: (err: unknown) => void;
}

export interface KmsServer {
  url: string;
  port: number;
  close(): Promise<void>;
  setFaults(f: FaultOptions): void;
  stats(): KmsStats;
}

export async function startKmsServer(options: KmsServerOptions = {}): Promise<KmsServer> {
  const store = new KeyStore(options.region ?? 'us-east-1');
  if (options.stateFile) {
    const path = options.stateFile;
    loadState(path, store);
    store.onChange = () => saveState(path, store);
  }
  const faults = new FaultController(options.faults);
  const onInternalError = options.onInternalError ?? ((err: unknown) => process.stderr.write(`local KMS internal error: ${(err as Error)?.stack ?? String(err)}\n`));
  const closing = new AbortController();

  async function handleKms(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '';
    const body = await readBody(req);
    if (req.method !== 'POST' || (req.url ?? '/').split('?')[0] !== '/') {
      throw new KmsError('UnknownOperationException', `expected POST / (AWS JSON 1.1), got ${req.method} ${req.url}`, 404);
    }
    if (!req.headers.authorization) {
      throw new KmsError('MissingAuthenticationTokenException', 'Request is missing Authentication Token', 400);
    }
    const handler = Object.hasOwn(operations, op) ? operations[op] : undefined;
    if (!handler) throw new KmsError('UnknownOperationException', `X-Amz-Target ${JSON.stringify(target)} is not a supported KMS operation`);
    if (faults.latencyMs > 0) await delay(faults.latencyMs, undefined, { signal: closing.signal });
    const fault = faults.admit(op);
    if (fault) throw fault;
    const input = parseJsonObject(body);
    refuseDeniedKeys(input);
    sendJson(res, 200, handler(store, input));
  }

  /** The deniedKeyIds fault: any key named by the request (resolved) or by its blob. */
  function refuseDeniedKeys(input: Record<string, unknown>): void {
    const named: string[] = [];
    for (const field of ['KeyId', 'SourceKeyId', 'DestinationKeyId', 'TargetKeyId']) {
      const ref = input[field];
      if (typeof ref !== 'string') continue;
      try {
        named.push(store.resolve(ref, { allowAlias: true }).keyId);
      } catch {
        // an unknown key is the operation's own NotFoundException
      }
    }
    const denied = named.find((id) => faults.isDenied(id));
    if (denied) {
      throw new KmsError('AccessDeniedException', `User: arn:aws:iam::${ACCOUNT_ID}:user/local is not authorized to use ${store.keyArn(denied)} (injected denial)`);
    }
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const body = await readBody(req);
    if (path === '/__admin/faults' && req.method === 'GET') return sendJson(res, 200, faults.get(), 'application/json');
    if (path === '/__admin/faults' && req.method === 'POST') {
      try {
        faults.set(JSON.parse(body.toString('utf8') || '{}'));
      } catch (err) {
        return sendJson(res, 400, { message: (err as Error).message }, 'application/json');
      }
      return sendJson(res, 200, faults.get(), 'application/json');
    }
    if (path === '/__admin/stats' && req.method === 'GET') return sendJson(res, 200, faults.stats(), 'application/json');
    if (path === '/__admin/stats/reset' && req.method === 'POST') {
      faults.resetStats();
      return sendJson(res, 200, faults.stats(), 'application/json');
    }
    sendJson(res, 404, { message: `no admin endpoint ${req.method} ${path}` }, 'application/json');
  }

  const server = createServer((req, res) => {
    res.setHeader('x-amzn-RequestId', randomUUID());
    const path = (req.url ?? '/').split('?')[0]!;
    const work = path.startsWith('/__admin/') ? handleAdmin(req, res, path) : handleKms(req, res);
    work.catch((err: unknown) => {
      if (closing.signal.aborted || res.headersSent) return void res.destroy();
      if (err instanceof KmsError) {
        faults.countError(err.type);
        return sendKmsError(res, err);
      }
      onInternalError(err);
      faults.countError('KMSInternalException');
      sendKmsError(res, new KmsError('KMSInternalException', 'Internal error in the local KMS server', 500));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  // A wildcard bind is reachable on loopback; the url must name an address a client can dial.
  const dial = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const host = dial.includes(':') ? `[${dial}]` : dial;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    setFaults: (f) => faults.set(f),
    stats: () => faults.stats(),
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
