// One error hierarchy for the runtime and its connectors. Every error has a stable `code` from the
// catalogue (runtime/error-catalogue.ts, documented in docs/errors.md), the processing `stage`
// where it happened, and a `cause`. Retry is opt-in: only `RetriableError` is retried.
//
// The three outcomes of the spec map to three classes and never blur:
//   RetriableError -> transient: back off and retry, then pause the partitions and redeliver.
//   RecordError    -> bad record: with errors.tolerance=all it goes to the dead-letter queue.
//   FatalError     -> the task goes to FAILED with this error as the trace; no retry loop.
// Any other thrown value is treated as fatal.

/** Kafka Connect's processing stages (its `Stage` enum), plus our processor stage. */
export type Stage =
  | 'KEY_CONVERTER'
  | 'VALUE_CONVERTER'
  | 'HEADER_CONVERTER'
  | 'TRANSFORMATION'
  | 'TASK_PUT'
  | 'TASK_POLL'
  | 'TASK_PROCESS'
  | 'KAFKA_PRODUCE'
  | 'KAFKA_CONSUME'
  | 'TASK_START'
  | 'CONFIG';

export interface ErrorOptions {
  stage?: Stage;
  cause?: unknown;
  /** Extra context for dead-letter headers and logs, e.g. `{ field: 'age', tensor: 'age' }`. */
  context?: Record<string, string | number | undefined>;
}

export class ConnectError extends Error {
  readonly code: string;
  readonly retriable: boolean = false;
  readonly stage: Stage | undefined;
  readonly context: Record<string, string | number | undefined>;

  constructor(code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.stage = options.stage;
    this.context = options.context ?? {};
  }
}

/** Transient: the same work may succeed later (server unavailable, deadline, overload). */
export class RetriableError extends ConnectError {
  override readonly retriable = true;
  /** When set, the earliest useful retry (e.g. a circuit breaker's reset timeout). */
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, options: ErrorOptions & { retryAfterMs?: number } = {}) {
    super(code, message, options);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** This record cannot be processed, whatever happens to the rest of the stream. */
export class RecordError extends ConnectError {}

/** The task cannot go on (bad config, model missing, auth failure). */
export class FatalError extends ConnectError {}

export type Outcome = 'retry' | 'fail-record' | 'fatal';

export function outcomeOf(error: unknown): Outcome {
  if (error instanceof RetriableError) return 'retry';
  if (error instanceof RecordError) return 'fail-record';
  return 'fatal';
}

/** A stack trace with its causes, as Kafka Connect shows in a FAILED task's `trace`; codes included. */
export function traceOf(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    const prefix = depth === 0 ? '' : 'Caused by: ';
    if (current instanceof Error) {
      const code = current instanceof ConnectError ? ` [${current.code}]` : '';
      const frames = (current.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line));
      parts.push(
        `${prefix}${current.name}${code}: ${current.message}${frames.length ? `\n${frames.join('\n')}` : ''}`,
      );
      current = current.cause;
    } else {
      parts.push(`${prefix}${String(current)}`);
      break;
    }
  }
  return parts.join('\n');
}
