/**
 * The one KMSClient per process and region. SDK retries are kept small on purpose: throttling
 * is classified as a transient item error by KmsKekProvider so that the pipeline backs off
 * globally (its rate limiter), instead of every call retrying on its own. So a throttled call is
 * never retried by the SDK (NoThrottlingRetryStrategy): a retry would go out unbudgeted, and
 * when it succeeded the shared budget never heard of the throttle (test/kms-budget-blocks.test.ts).
 */
import { KMSClient } from '@aws-sdk/client-kms';
import { StandardRetryStrategy } from '@smithy/core/retry';

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
    retryStrategy: new NoThrottlingRetryStrategy(options.maxAttempts ?? 2),
    /* throwOnRequestTimeout: without it @smithy/node-http-handler 4 only logs a warning when
       requestTimeout passes, and a hung call hangs its item (and batch) for good. */
    requestHandler: {
      requestTimeout: options.requestTimeoutMs ?? 10_000,
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      throwOnRequestTimeout: true,
    },
  });
}

/** The SDK's standard retries (5xx, timeouts, resets) without retries of throttled calls. */
class NoThrottlingRetryStrategy extends StandardRetryStrategy {
  override refreshRetryTokenForRetry(...args: Parameters<StandardRetryStrategy['refreshRetryTokenForRetry']>): ReturnType<StandardRetryStrategy['refreshRetryTokenForRetry']> {
    /* The retry middleware rethrows the call's own error when this refuses. */
    if (args[1].errorType === 'THROTTLING') return Promise.reject(new Error('throttled calls are not retried here: the shared KMS budget backs off'));
    return super.refreshRetryTokenForRetry(...args);
  }
}
