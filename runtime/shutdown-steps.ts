// The ordered, bounded stop both task runners use: each step gets what is left of ONE deadline
// (`task.shutdown.graceful.timeout.ms` for the whole stop, not per step), a failed or late step
// does not keep the next ones from running, and `finish()` reports every failure at the end.
// A step still running at the deadline is left behind; its late failure is only logged.
import type { Logger } from 'pino';
import { ConnectError } from './errors.js';

const TIMED_OUT = Symbol('timed out');

export class ShutdownSteps {
  private readonly deadline: number;
  private readonly timers = new AbortController();
  private readonly failures: Array<{ what: string; error: unknown }> = [];

  constructor(
    private readonly options: {
      timeoutMs: number;
      now: () => number;
      sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
      logger: Logger;
    },
  ) {
    this.deadline = options.now() + options.timeoutMs;
  }

  async step(what: string, work: (() => unknown) | undefined | false): Promise<void> {
    if (!work) return;
    let running: Promise<unknown>;
    try {
      running = Promise.resolve(work());
    } catch (error) {
      this.failures.push({ what, error });
      return;
    }
    const left = this.deadline - this.options.now();
    const outcome =
      left <= 0
        ? TIMED_OUT
        : await Promise.race([
            running.then(
              () => undefined,
              (error: unknown) => ({ error }),
            ),
            this.options.sleep(left, this.timers.signal).then((elapsed) => (elapsed ? TIMED_OUT : undefined)),
          ]);
    if (outcome === TIMED_OUT) {
      this.failures.push({
        what,
        error: new ConnectError(
          'TASK_STOP_TIMEOUT',
          `${what} was still running when the stop deadline passed (task.shutdown.graceful.timeout.ms = ` +
            `${this.options.timeoutMs} ms for the whole stop)`,
        ),
      });
      running.catch((error: unknown) =>
        this.options.logger.warn({ err: error }, `${what} failed after the stop deadline`),
      );
    } else if (outcome) {
      this.failures.push({ what, error: outcome.error });
    }
  }

  /** Ends the stop: throws TASK_STOP_FAILED naming every failed step, if any. */
  finish(subject: string): void {
    this.timers.abort();
    if (this.failures.length === 0) return;
    for (const { what, error } of this.failures) {
      this.options.logger.error({ err: error }, `stopping ${subject}: ${what} failed`);
    }
    throw new ConnectError(
      'TASK_STOP_FAILED',
      `${subject} did not stop cleanly: ` +
        this.failures
          .map(({ what, error }) => `${what}: ${(error as Error)?.message ?? String(error)}`)
          .join('; '),
      { cause: this.failures[0]!.error },
    );
  }
}
