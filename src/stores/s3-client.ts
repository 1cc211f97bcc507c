/**
 * The one S3 client a process uses, and the small helpers every S3 adapter call needs:
 * ETag normalisation and sending a command with extra (non-modelled) headers.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '../errors.ts';

export interface S3ClientOptions {
  /** Non-AWS endpoint, e.g. http://127.0.0.1:7480 (Ceph RGW, MinIO). Absent: AWS. */
  endpoint?: string;
  region: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Default: true when `endpoint` is set (non-AWS servers rarely do virtual-host buckets). */
  forcePathStyle?: boolean;
  /** SDK retries per call (default 3). The pipeline retries transient item failures itself. */
  maxAttempts?: number;
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
  middlewareStack: { add(middleware: never, options: { step: 'build'; name?: string }): void };
}

/**
 * Adds request headers the SDK does not model (e.g. RGW's legacy `x-amz-copy-if-match`) to one
 * command. Added in the build step, before signing, so they are signed like any other header.
 */
export function withHeaders<C extends WithMiddlewareStack>(command: C, headers: Record<string, string>): C {
  if (Object.keys(headers).length === 0) return command;
  const middleware =
    (next: (args: { request: unknown }) => Promise<unknown>) =>
    async (args: { request: unknown }): Promise<unknown> => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) Object.assign(request.headers, headers);
      return next(args);
    };
  command.middlewareStack.add(middleware as never, { step: 'build', name: 'rewrapExtraHeaders' });
  return command;
}

/** The `CopySource` value for an object: bucket and key, each path segment URL-encoded. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}
