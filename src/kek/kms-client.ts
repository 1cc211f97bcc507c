/**
 * The one KMSClient per process and region. SDK retries are kept small on purpose: throttling
 * is classified as a transient item error by KmsKekProvider so that the pipeline backs off
 * globally (its rate limiter), instead of every call retrying on its own.
 */
import { KMSClient } from '@aws-sdk/client-kms';

export type { KMSClient };

export interface KmsClientOptions {
  /** e.g. the local KMS server's url; absent means the AWS endpoint of the region. */
  endpoint?: string;
  region: string;
  /** Absent: the SDK's default credential chain (environment, profile, instance role...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Total attempts per call, SDK retries included. Default 2. */
  maxAttempts?: number;
  /** Per-request timeout (a hung KMS call becomes a transient failure). Default 10000. */
  requestTimeoutMs?: number;
  /** TCP connect timeout. Default 3000. */
  connectionTimeoutMs?: number;
}

export function createKmsClient(options: KmsClientOptions): KMSClient {
  if (!options.region) throw new Error('createKmsClient: region is required (e.g. "us-east-1")');
  return new KMSClient({
    region: options.region,
    endpoint: options.endpoint,
    credentials: options.credentials,
    maxAttempts: options.maxAttempts ?? 2,
    retryMode: 'standard',
    /* throwOnRequestTimeout: without it @smithy/node-http-handler 4 only logs a warning when
       requestTimeout passes, and a hung call hangs its item (and batch) for good. */
    requestHandler: {
      requestTimeout: options.requestTimeoutMs ?? 10_000,
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      throwOnRequestTimeout: true,
    },
  });
}
