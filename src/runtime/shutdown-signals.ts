/**
 * The one signal handling of every long-running process (scheduler, worker, api, the local KMS
 * server): SIGTERM or SIGINT starts an ordered, bounded shutdown once; a second signal forces the
 * process out (shutdown is idempotent, and an operator who asks twice means it).
 */
export function onShutdownSignals(
  stop: (signal: NodeJS.Signals) => void,
  onSecond: (signal: NodeJS.Signals) => void = () => process.exit(130),
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return onSecond(signal);
    stopping = true;
    stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Resolves once the first signal's `close` has settled: true when it succeeded. */
export function untilShutdownSignal(close: () => Promise<void>): Promise<boolean> {
  return new Promise((resolve) =>
    onShutdownSignals(() => {
      close().then(
        () => resolve(true),
        () => resolve(false),
      );
    }),
  );
}
