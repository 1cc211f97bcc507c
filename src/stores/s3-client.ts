/**
 * The one S3 client a process uses, and the small helpers every S3 adapter call needs:
 * ETag normalisation, sending a command with extra (non-modelled) headers, and marking a
 * command as a fenced, single-attempt write (invariant 8).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '../core/errors.ts';
import type { WriteFence } from './envelope-store.ts';

/** Defaults of the per-request timeouts (REWRAP_S3_REQUEST_TIMEOUT_MS, REWRAP_S3_CONNECT_TIMEOUT_MS). */
export const S3_REQUEST_TIMEOUT_MS = 30_000;
export const S3_CONNECT_TIMEOUT_MS = 3_000;

export interface S3ClientOptions {
  /** Non-AWS endpoint, e.g. http://127.0.0.1:7480 (Ceph RGW, MinIO). Absent: AWS. */
  endpoint?: string;
  region: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Default: true when `endpoint` is set (non-AWS servers rarely do virtual-host buckets). */
  forcePathStyle?: boolean;
  /** SDK attempts per read call (default 3). Writes are always sent once (fencedWrite). */
  maxAttempts?: number;
  /**
   * Time from sending a request to its response headers before the request is abandoned with a
   * TimeoutError (a transient item failure). Default 30000. A server-side copy answers with
   * headers early (AWS streams the copy result), so this does not bound the copy itself.
   */
  requestTimeoutMs?: number;
  /** TCP connect timeout. Default 3000. */
  connectionTimeoutMs?: number;
}

/** Create once per process (per region) and pass it in; never one per call. */
export function createS3Client(options: S3ClientOptions): S3Client {
  if (!options.region) throw new ConfigError('S3 region is required (e.g. us-east-1)');
  if (options.endpoint !== undefined) {
    try {
      new URL(options.endpoint);
    } catch (cause) {
      throw new ConfigError(`S3 endpoint ${JSON.stringify(options.endpoint)} is not a URL; expected e.g. http://127.0.0.1:7480`, { cause });
    }
  }
  return new S3Client({
    region: options.region,
    endpoint: options.endpoint,
    credentials: options.credentials,
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    maxAttempts: options.maxAttempts,
    /* Without throwOnRequestTimeout the handler only logs a warning when requestTimeout passes
       (@smithy/node-http-handler 4): a hung request would hang the item, and its batch, forever. */
    requestHandler: {
      requestTimeout: options.requestTimeoutMs ?? S3_REQUEST_TIMEOUT_MS,
      connectionTimeout: options.connectionTimeoutMs ?? S3_CONNECT_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    },
    /* Default checksums break streamed bodies on S3-compatible servers (RGW answers 411) and
       add nothing here: we never stream payloads, only copy them server-side. */
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** ETags compare without quotes: RGW returns them unquoted in Copy*Result, quoted elsewhere. */
export function normalizeEtag(etag: string | undefined): string {
  if (!etag) return '';
  let e = etag.trim();
  if (e.startsWith('W/')) e = e.slice(2);
  if (e.length >= 2 && e.startsWith('"') && e.endsWith('"')) e = e.slice(1, -1);
  return e;
}

export function quoteEtag(etag: string): string {
  return `"${normalizeEtag(etag)}"`;
}

/** What we need of an SDK command: its own middleware stack. */
interface WithMiddlewareStack {
  middlewareStack: {
    add(middleware: never, options: { step: 'build' | 'finalizeRequest' | 'deserialize'; name?: string; priority?: 'high' | 'normal' | 'low'; override?: boolean }): void;
  };
}

type Next = (args: { request: unknown }) => Promise<unknown>;

/**
 * Marks `command` as a store write (invariant 8):
 * - sent ONCE: the client's retry middleware is overridden for this command only (same name,
 *   step and priority, which the SDK's middleware stack requires for an override). A write whose
 *   answer was lost must be re-read by the pipeline, not re-sent blind; reads keep SDK retries.
 * - fenced as the request leaves: `fence` runs innermost (deserialize step, low priority),
 *   after serialisation, signing and any retry loop, right before the HTTP handler puts the
 *   request on a socket. What it throws is what `send` throws; nothing was sent then.
 */
export function fencedWrite<C extends WithMiddlewareStack>(command: C, fence: WriteFence | undefined): C {
  const once = (next: Next) => (args: { request: unknown }) => next(args);
  command.middlewareStack.add(once as never, { step: 'finalizeRequest', name: 'retryMiddleware', priority: 'high', override: true });
  if (fence) {
    const guard = (next: Next) => async (args: { request: unknown }) => {
      fence();
      return next(args);
    };
    command.middlewareStack.add(guard as never, { step: 'deserialize', name: 'rewrapWriteFence', priority: 'low' });
  }
  return command;
}

/**
 * Adds request headers the SDK does not model (e.g. RGW's legacy `x-amz-copy-if-match`) to one
 * command. Added in the build step, before signing, so they are signed like any other header.
 * A stack refuses two middlewares of one name: a second set of headers on the same command
 * (the requester-pays header on a copy that sends legacy preconditions) needs its own `name`.
 */
export function withHeaders<C extends WithMiddlewareStack>(command: C, headers: Record<string, string>, name = 'rewrapExtraHeaders'): C {
  if (Object.keys(headers).length === 0) return command;
  const middleware =
    (next: (args: { request: unknown }) => Promise<unknown>) =>
    async (args: { request: unknown }): Promise<unknown> => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) Object.assign(request.headers, headers);
      return next(args);
    };
  command.middlewareStack.add(middleware as never, { step: 'build', name });
  return command;
}

/** The `CopySource` value for an object: bucket and key, each path segment URL-encoded. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * The client with `x-amz-request-payer: requester` on every request sent through it (a source's
 * `"requesterPays": true`: the store's reads and writes, and the listing that plans it).
 */
export function payingClient(client: S3Client): S3Client {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop !== 'send') return Reflect.get(target, prop, receiver);
      return (command: Parameters<S3Client['send']>[0], options?: Parameters<S3Client['send']>[1]) =>
        target.send(withHeaders(command, { 'x-amz-request-payer': 'requester' }, 'rewrapRequestPayer'), options);
    },
  });
}
