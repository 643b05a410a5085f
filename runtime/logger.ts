// The worker's logger: pino, JSON lines on stdout. Connectors get children labelled with their
// connector and task. Secret config values never reach it (configs are logged masked).
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
