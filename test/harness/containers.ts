/**
 * TESTCONTAINERS=1: the test services in containers (Redis, Postgres, MinIO as the S3 server),
 * started once per run by global-setup.ts through testcontainers, for machines with a container
 * runtime and none of the local services. Without it, the harness uses the local services exactly
 * as before. testcontainers is imported only on this path (it is a devDependency, loaded by
 * dynamic import, so a run without it never loads it). CI does not exercise this path: its
 * machines have no container engine.
 */
export interface ContainerServices {
  redisUrl: string;
  databaseUrl: string;
  s3: { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string };
  stop(): Promise<void>;
}

export async function startContainerServices(): Promise<ContainerServices> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const started: { stop(): Promise<unknown> }[] = [];
  const stop = async () => {
    await Promise.allSettled(started.map((c) => c.stop()));
  };
  try {
    const [redis, postgres, minio] = await Promise.all([
      new GenericContainer('redis:7')
        .withCommand(['redis-server', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'])
        .withExposedPorts(6379)
        .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
        .start()
        .then((c) => (started.push(c), c)),
      new GenericContainer('postgres:15')
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
        .withExposedPorts(5432)
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
        .start()
        .then((c) => (started.push(c), c)),
      new GenericContainer('minio/minio')
        .withCommand(['server', '/data'])
        .withEnvironment({ MINIO_ROOT_USER: 'rewrap', MINIO_ROOT_PASSWORD: 'rewrap-secret' })
        .withExposedPorts(9000)
        .withWaitStrategy(Wait.forHttp('/minio/health/ready', 9000))
        .start()
        .then((c) => (started.push(c), c)),
    ]);
    return {
      redisUrl: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
      databaseUrl: `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`,
      s3: { endpoint: `http://${minio.getHost()}:${minio.getMappedPort(9000)}`, accessKeyId: 'rewrap', secretAccessKey: 'rewrap-secret', region: 'us-east-1' },
      stop,
    };
  } catch (err) {
    await stop();
    throw new Error('TESTCONTAINERS=1: could not start the test services in containers (is a container runtime running?)', { cause: err });
  }
}
