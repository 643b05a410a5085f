// The last line of defence of a worker process: an error nobody caught. A Kafka client error
// (kafkajs throws from timers and event handlers while it rebuilds a group or a connection) must
// never end the process: its tasks recover through their own retries and rebalances, so it is
// logged and the worker goes on. Anything else is a bug whose state cannot be trusted: it is
// logged and the process exits 1, so the orchestrator restarts it and the group redelivers.
import type { Logger } from 'pino';

/** Whether `error` comes from the Kafka client (kafkajs' error classes are all named KafkaJS*). */
export function isKafkaClientError(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 6; depth++) {
    if (current.name.startsWith('KafkaJS')) return true;
    current = (current as Error & { cause?: unknown }).cause;
  }
  return false;
}

/** Installs the handlers; returns their undo. `exit` is injected for tests. */
export function guardProcess(logger: Logger, exit: (code: number) => void = (code) => process.exit(code)) {
  const onError = (kind: string) => (error: unknown) => {
    if (isKafkaClientError(error)) {
      logger.warn({ err: error }, `${kind} from the Kafka client; the worker keeps running`);
      return;
    }
    logger.fatal({ err: error }, `${kind}; exiting`);
    logger.flush?.();
    exit(1);
  };
  const onRejection = onError('unhandled rejection');
  const onException = onError('uncaught exception');
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
