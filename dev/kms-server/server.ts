/**
 * A KMS-compatible HTTP server for development and tests: never a production key store.
 * Clients talk to it with @aws-sdk/client-kms (endpoint = `url`); any SigV4 signature is
 * accepted, but an Authorization header must be present. Because it checks no signature it says
 * what it is: it listens on loopback only unless `insecureListenAny`, and every response carries
 * TEST_SERVER_HEADER. Admin endpoints need `Authorization: Bearer <adminToken>`:
 *   GET  /__admin/faults        current faults
 *   POST /__admin/faults        replace faults (JSON FaultOptions; {} clears)
 *   GET  /__admin/stats         KmsStats
 *   POST /__admin/stats/reset   zero the stats
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { FaultController, type FaultOptions, type KmsStats } from './faults.ts';
import { ACCOUNT_ID, KeyStore } from './keystore.ts';
import { operations } from './operations.ts';
import { KmsError, parseJsonObject, readBody, sendJson, sendKmsError, TARGET_PREFIX } from './protocol.ts';
import { loadState, saveState } from './state-file.ts';

export type { FaultOptions, KmsStats } from './faults.ts';

/** On every response: a client (or a person reading a packet capture) can tell this is not AWS KMS. */
export const TEST_SERVER_HEADER = 'x-rewrap-test-server';
const TEST_SERVER_NOTICE = 'rewrap local KMS for development and tests; accepts any signature; never a key store for real data';

export interface KmsServerOptions {
  /** Default 127.0.0.1. Anything but a loopback address needs `insecureListenAny`. */
  host?: string;
  /** Allow a non-loopback `host`: the server checks no signature, so anyone who can reach it can use its keys. */
  insecureListenAny?: boolean;
  /** Bearer token of the /__admin routes; default a random one (see KmsServer.adminToken). */
  adminToken?: string;
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
  /** The bearer token the /__admin routes need. */
  adminToken: string;
  port: number;
  close(): Promise<void>;
  setFaults(f: FaultOptions): void;
  stats(): KmsStats;
}

export async function startKmsServer(options: KmsServerOptions = {}): Promise<KmsServer> {
  const listenHost = options.host ?? '127.0.0.1';
  if (!isLoopback(listenHost) && !options.insecureListenAny) {
    throw new Error(
      `local KMS server: --host ${listenHost} is not a loopback address; this test server accepts any signature, so anyone who reaches it can use its keys. ` +
        'Pass --insecure-listen-any (insecureListenAny) to bind it anyway, on a network you trust.',
    );
  }
  const adminToken = options.adminToken ?? randomBytes(24).toString('hex');
  const adminDigest = digest(adminToken);
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
    const m = /^Bearer +(\S+) *$/i.exec(String(req.headers.authorization ?? ''));
    if (!m || !timingSafeEqual(digest(m[1]!), adminDigest)) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendJson(res, 401, { message: 'admin routes need Authorization: Bearer <admin token> (printed by kms-server at start, or KMS_ADMIN_TOKEN)' }, 'application/json');
    }
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
    res.setHeader(TEST_SERVER_HEADER, TEST_SERVER_NOTICE);
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
    server.listen(options.port ?? 0, listenHost, () => {
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
    adminToken,
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

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
