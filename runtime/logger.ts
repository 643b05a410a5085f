// The worker's logger: pino, JSON lines on stdout. Connectors get children labelled with their
// connector and task. Configs are logged masked; `withRedaction` hides every known secret value
// (SecretRedactor) in each serialized line, whatever logged it: an error message, a stack, a
// field, a kafkajs line.
import { pino, type Logger } from 'pino';

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'infer-connect' },
      redact: { paths: ['config.*.password', '*.password', '*.secret'], censor: '[hidden]' },
    },
    destination ?? process.stdout,
  );
}

type Hooks = { streamWrite?: (line: string) => string } & Record<string, unknown>;

/**
 * A child of `logger` (and of its children) whose every line passes through `redact` just before
 * it is written (pino's `streamWrite` hook, chained after one the logger already has). Lines the
 * parent writes itself are not touched: log through the returned logger.
 */
export function withRedaction(logger: Logger, redact: (line: string) => string): Logger {
  const child = logger.child({});
  const symbol = pino.symbols.hooksSym;
  const target = child as unknown as Record<symbol, Hooks | undefined>;
  const hooks = target[symbol] ?? {};
  const previous = hooks.streamWrite;
  target[symbol] = {
    ...hooks,
    streamWrite: previous ? (line: string) => redact(previous(line)) : redact,
  };
  return child;
}
