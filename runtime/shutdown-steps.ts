// The ordered, bounded stop both task runners use: every step shares ONE deadline
// (`task.shutdown.graceful.timeout.ms` for the whole stop, not per step, timed on the runner's
// injected clock), a failed or late step does not keep the next ones from running, and `finish()`
// reports every failure at the end. A step still running at the deadline is left behind (its late
// failure only logged); steps after the deadline are started, to release what they can, but not
// awaited, so the stop stays bounded.
import type { Logger } from 'pino';
import { ConnectError } from './errors.js';

const TIMED_OUT = Symbol('timed out');

export class ShutdownSteps {
  private readonly timer = new AbortController();
  private readonly deadline: Promise<typeof TIMED_OUT | undefined>;
  private deadlinePassed = false;
  private readonly failures: Array<{ what: string; error: unknown }> = [];

  constructor(
    private readonly options: {
      timeoutMs: number;
      sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
      logger: Logger;
    },
  ) {
    this.deadline = options.sleep(options.timeoutMs, this.timer.signal).then((elapsed) => {
      this.deadlinePassed = elapsed;
      return elapsed ? TIMED_OUT : undefined;
    });
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
    const late = this.deadlinePassed;
    const outcome = late
      ? TIMED_OUT
      : await Promise.race([
          running.then(
            () => undefined,
            (error: unknown) => ({ error }),
          ),
          this.deadline,
        ]);
    if (outcome === TIMED_OUT) {
      const { timeoutMs } = this.options;
      const message = late
        ? `${what} was started but not awaited: the stop had already taken its ${timeoutMs} ms`
        : `${what} did not finish within the stop's ${timeoutMs} ms`;
      this.failures.push({
        what,
        error: new ConnectError('TASK_STOP_TIMEOUT', `${message} (task.shutdown.graceful.timeout.ms)`),
      });
      running.catch((error: unknown) =>
        this.options.logger.warn({ err: error }, `${what} failed after the stop deadline`),
      );
    } else if (outcome) {
      this.failures.push({ what, error: outcome.error });
    }
  }

  /** Ends the stop: throws TASK_STOP_FAILED naming every failed or late step, if any. */
  finish(subject: string): void {
    this.timer.abort();
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
