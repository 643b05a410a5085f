// The one retry operator of the runtime, shared by the source and consumer task runners (Kafka
// Connect's RetryWithToleranceOperator, transient part). It retries only what the error hierarchy
// marks transient (RetriableError), on the capped exponential schedule of runtime/backoff.ts, for
// at most `errors.retry.timeout`; what to do after that (pause and redeliver, hold a source batch)
// is the caller's decision, so the operator reports it instead of throwing. Every wait ends early
// when the task is asked to stop.
import { backoffDelay } from './backoff.js';
import { outcomeOf, RetriableError } from './errors.js';

export interface RetryOptions {
  /** `errors.retry.timeout`: how long after the first attempt a retry may still start; -1 = for ever, 0 = no retry. */
  retryTimeoutMs: number;
  /** `errors.retry.delay.max.ms`: cap of the exponential backoff. */
  maxDelayMs: number;
  now: () => number;
  /** Resolves true after `ms`, or false as soon as `signal` aborts (runtime/backoff.ts interruptibleSleep). */
  sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
  /** The task's stop signal: aborting it ends a wait between attempts with `{ kind: 'stopped' }`. */
  signal: AbortSignal;
  /** Called every `tickMs` (default 2000) while waiting between attempts, e.g. a consumer heartbeat; its errors are ignored. */
  whileWaiting?: () => Promise<void>;
  tickMs?: number;
  /** Called before each wait, with the error that failed attempt `attempt` and the delay before the next one. */
  onRetry?: (error: Error, attempt: number, delayMs: number) => void;
}

export type RetryResult<T> =
  | { kind: 'ok'; value: T; attempts: number }
  /** The transient failure outlasted `retryTimeoutMs`; `nextDelayMs` is the wait a next attempt would have had. */
  | { kind: 'gave-up'; error: Error; attempts: number; nextDelayMs: number }
  /** The signal aborted while waiting between attempts. */
  | { kind: 'stopped' };

export const DEFAULT_TICK_MS = 2_000;

/**
 * Runs `attempt(1)`, and after each transient failure waits, then runs `attempt(n + 1)`.
 * The wait before attempt n + 1 is max(backoffDelay(n, maxDelayMs), error.retryAfterMs ?? 0):
 * 300, 600, 1200 ... ms capped, unless the error asks for a longer one (an open circuit breaker).
 * It gives up, without waiting, when that wait would end after `start + retryTimeoutMs`.
 * Errors that are not transient (RecordError, FatalError, anything else) are rethrown unchanged,
 * at once: the caller routes them (dead-letter queue, task failure).
 */
export async function retryTransient<T>(
  attempt: (n: number) => Promise<T>,
  options: RetryOptions,
): Promise<RetryResult<T>> {
  const start = options.now();
  const deadline = options.retryTimeoutMs < 0 ? Number.POSITIVE_INFINITY : start + options.retryTimeoutMs;
  for (let n = 1; ; n++) {
    try {
      return { kind: 'ok', value: await attempt(n), attempts: n };
    } catch (error) {
      if (outcomeOf(error) !== 'retry') throw error;
      const transient = error as RetriableError;
      const delay = Math.max(backoffDelay(n, options.maxDelayMs), transient.retryAfterMs ?? 0);
      // retryTimeoutMs = 0 means no retry even when the delay is 0 (errors.retry.delay.max.ms = 0).
      if (options.retryTimeoutMs === 0 || options.now() + delay > deadline) {
        return { kind: 'gave-up', error: transient, attempts: n, nextDelayMs: delay };
      }
      options.onRetry?.(transient, n, delay);
      if (!(await waitBetweenAttempts(delay, options))) return { kind: 'stopped' };
    }
  }
}

/** Sleeps `ms` in slices of `tickMs`, calling `whileWaiting` after each slice the wait goes on past. */
async function waitBetweenAttempts(ms: number, options: RetryOptions): Promise<boolean> {
  const { signal, whileWaiting } = options;
  if (!whileWaiting) return (await options.sleep(ms, signal)) && !signal.aborted;
  const tick = Math.max(1, options.tickMs ?? DEFAULT_TICK_MS);
  for (let left = ms; ;) {
    const slice = Math.min(tick, left);
    if (!(await options.sleep(slice, signal)) || signal.aborted) return false;
    left -= slice;
    if (left <= 0) return true;
    try {
      await whileWaiting();
    } catch {
      // A failed heartbeat must not end the wait: the next attempt reports what is really wrong.
    }
    if (signal.aborted) return false;
  }
}
