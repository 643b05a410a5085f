// How the CLI ends a worker on SIGTERM/SIGINT: drain every task (Worker.stop, bounded by
// `task.shutdown.graceful.timeout.ms`), close the REST server, and turn the outcome into the
// process exit code: 0 only when every task drained and the server closed, 1 otherwise, so an
// orchestrator sees a drain that failed or timed out.
import type { Logger } from 'pino';
import type { Sleep, TaskStopFailure } from './connector-lifecycle.js';
import type { WorkerStopSummary } from './worker.js';

/** Time beyond the worker's own deadline for closing the REST server before the process gives up. */
export const DRAIN_MARGIN_MS = 2_000;

export type DrainOutcome =
  /** The worker stopped (cleanly or not, see `summary`) and the REST server was closed or failed to. */
  | { kind: 'drained'; summary: WorkerStopSummary; restError: unknown }
  /** Stopping threw, which Worker.stop's contract rules out; treated as a failed drain. */
  | { kind: 'failed'; error: unknown }
  /** The drain outlived `deadlineMs`: the process exits without waiting for it. */
  | { kind: 'deadline-exceeded'; deadlineMs: number };

export interface DrainSteps {
  stopWorker: () => Promise<WorkerStopSummary>;
  closeRest: () => Promise<void>;
  /** The whole drain's deadline: the worker's shutdown timeout plus DRAIN_MARGIN_MS. */
  deadlineMs: number;
  sleep: Sleep;
}

/** Stops the worker, then closes the REST server, within `deadlineMs`; never throws. */
export async function drainWorker(steps: DrainSteps): Promise<DrainOutcome> {
  const drain = (async (): Promise<DrainOutcome> => {
    let summary: WorkerStopSummary;
    try {
      summary = await steps.stopWorker();
    } catch (error) {
      return { kind: 'failed', error };
    }
    let restError: unknown;
    try {
      await steps.closeRest();
    } catch (error) {
      restError = error ?? new Error('closing the REST server failed');
    }
    return { kind: 'drained', summary, restError };
  })();
  const abort = new AbortController();
  const deadline = steps
    .sleep(steps.deadlineMs, abort.signal)
    .then((): DrainOutcome => ({ kind: 'deadline-exceeded', deadlineMs: steps.deadlineMs }));
  try {
    return await Promise.race([drain, deadline]);
  } finally {
    abort.abort();
  }
}

/** 0 when every task drained and the REST server closed; 1 for anything else. */
export function exitCodeFor(outcome: DrainOutcome): 0 | 1 {
  return outcome.kind === 'drained' && outcome.summary.clean && outcome.restError === undefined ? 0 : 1;
}

/** Logs the outcome the way an operator reads it after a shutdown. */
export function logDrainOutcome(logger: Logger, outcome: DrainOutcome): void {
  switch (outcome.kind) {
    case 'drained': {
      const failures: TaskStopFailure[] = outcome.summary.failures;
      if (failures.length > 0) logger.error({ failures }, 'worker stopped, but some tasks did not drain');
      if (outcome.restError !== undefined)
        logger.error({ err: outcome.restError }, 'closing the REST server failed');
      if (exitCodeFor(outcome) === 0) logger.info('worker stopped');
      return;
    }
    case 'failed':
      logger.error({ err: outcome.error }, 'stopping the worker failed');
      return;
    case 'deadline-exceeded':
      logger.error({ deadlineMs: outcome.deadlineMs }, 'drain did not finish within its deadline; exiting');
      return;
  }
}
