// The life of one connector's tasks: the target state the user asked for (RUNNING, PAUSED,
// STOPPED) and the task runners that exist for it. Transitions follow Kafka Connect's standalone
// herder (StandaloneHerder + WorkerConnector, KIP-875 for STOPPED):
//
//   operation     RUNNING                PAUSED (tasks exist)   PAUSED (no tasks)      STOPPED
//   pause         pause every task       pause every task       -> PAUSED, no tasks    -> PAUSED, no tasks
//   resume        resume every task      resume every task      create tasks, running  create tasks, running
//   stop          stop and drop tasks    stop and drop tasks    -> STOPPED             nothing
//   reconfigure   new tasks, running     new tasks, paused      no tasks               no tasks
//   restart task  replace, running       replace, paused        404 (no such task)     404 (no such task)
//
// "PAUSED, no tasks" is Kafka Connect's answer to pausing a stopped connector: its tasks were
// deleted by the stop and are only generated again once the connector is resumed (KIP-980: "No
// tasks will be created for such connectors until they're resumed").
//
// Invariants the worker's status relies on:
// - The target is recorded before it is applied, and applied to every task; a runner that rejects
//   a pause or resume is stopped and reported FAILED (with the cause as its trace), never left
//   running under a target it did not take. Restarting the task brings it back in the target state.
// - The connector's state is FAILED (tasks could not be created) or its target, never RUNNING while
//   the target is PAUSED; `tasks()` lists exactly the tasks that exist.
// - A runner whose stop() rejects or outlives its deadline is reported and replaced all the same.
//
// Callers serialize the operations of one connector (KeyedSerialQueue in the worker); only
// `shutdown` may run beside another operation, and it stops every runner still alive, including
// those an operation in flight is stopping or has just created.
import type { Logger } from 'pino';
import { errorMessage } from './error-catalogue.js';
import { FatalError, traceOf } from './errors.js';
import type { ObservedState, TargetState } from './herder.js';
import type { TaskRunner } from './task-runner.js';

/** The clock of stop deadlines: resolves after `ms`, or early when `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<unknown>;

export interface LifecycleDependencies {
  connector: string;
  /** How many tasks the connector's current config asks for (`tasks.max`). */
  taskCount: () => number;
  /** A runner for task `taskId` of the current config; a throw fails the connector (no tasks). */
  createRunner: (taskId: number) => TaskRunner;
  /** Called after the lifecycle recorded a task as FAILED that its runner does not report so. */
  onTaskFailed?: (taskId: number) => void;
  logger: Logger;
  /** How long an operation waits for one runner's stop before it goes on without it. */
  stopTimeoutMs: number;
  sleep: Sleep;
}

/** One task of the connector: its current runner and a failure the lifecycle recorded for it. */
export interface TaskView {
  readonly taskId: number;
  readonly runner: TaskRunner;
  /** Set when the lifecycle stopped the runner because it could not take the target state. */
  readonly failure: string | undefined;
}

/** A task that did not drain: its stop rejected (a step failed) or outlived the deadline. */
export interface TaskStopFailure {
  connector: string;
  task: number;
  timedOut: boolean;
  message: string;
}

interface TaskSlot {
  readonly taskId: number;
  runner: TaskRunner;
  failure: string | undefined;
}

type StopResult = { ok: true } | { ok: false; timedOut: boolean; error: unknown };

export class ConnectorLifecycle {
  private targetState: TargetState;
  private slots: TaskSlot[] = [];
  private connectorFailure: string | undefined;
  /** Runners created and not yet stopped (or still stopping): what a shutdown must wait for. */
  private readonly live = new Set<TaskRunner>();
  /** Each runner's one stop, shared by every caller (TaskRunner.stop is idempotent). */
  private readonly stops = new WeakMap<TaskRunner, Promise<StopResult>>();

  constructor(
    private readonly deps: LifecycleDependencies,
    initialTarget: TargetState = 'RUNNING',
  ) {
    this.targetState = initialTarget;
  }

  get target(): TargetState {
    return this.targetState;
  }

  /** The trace of the last failure to create the connector's tasks. */
  get failure(): string | undefined {
    return this.connectorFailure;
  }

  /** Observed connector state: FAILED when its tasks could not be created, else its target. */
  get state(): ObservedState {
    return this.connectorFailure !== undefined ? 'FAILED' : this.targetState;
  }

  /** The tasks that exist, by id. */
  tasks(): readonly TaskView[] {
    return this.slots;
  }

  /** First start of a new connector: creates its tasks unless it starts PAUSED or STOPPED. */
  async start(): Promise<void> {
    if (this.targetState === 'RUNNING') await this.createTasks();
  }

  async pause(): Promise<void> {
    this.targetState = 'PAUSED';
    await this.applyTargetToTasks();
  }

  async resume(): Promise<void> {
    this.targetState = 'RUNNING';
    if (this.slots.length === 0) await this.createTasks();
    else await this.applyTargetToTasks();
  }

  async stop(): Promise<void> {
    this.targetState = 'STOPPED';
    await this.dropTasks();
  }

  /** After a config change: replaces the tasks that exist with tasks of the new config. */
  async reconfigure(): Promise<void> {
    const hadTasks = this.slots.length > 0;
    await this.dropTasks();
    this.connectorFailure = undefined;
    if (this.targetState === 'RUNNING' || (this.targetState === 'PAUSED' && hadTasks)) {
      await this.createTasks();
    }
  }

  /**
   * Kafka Connect's `POST /connectors/{name}/restart`: the connector part clears a connector
   * failure and creates the tasks a RUNNING connector lacks; with `includeTasks`, tasks (only the
   * FAILED ones with `onlyFailed`) are replaced in the target state.
   */
  async restart(options: { includeTasks: boolean; onlyFailed: boolean }): Promise<void> {
    if (!options.onlyFailed || this.connectorFailure !== undefined) {
      this.connectorFailure = undefined;
      if (this.targetState === 'RUNNING' && this.slots.length === 0) {
        await this.createTasks();
        return;
      }
    }
    if (!options.includeTasks) return;
    const restarting = this.slots.filter((slot) => !options.onlyFailed || taskState(slot) === 'FAILED');
    await Promise.all(restarting.map((slot) => this.replaceRunner(slot)));
  }

  /** Replaces one task's runner in the target state; false when the task does not exist. */
  async restartTask(taskId: number): Promise<boolean> {
    const slot = this.slots.find((s) => s.taskId === taskId);
    if (!slot) return false;
    await this.replaceRunner(slot);
    return true;
  }

  /** Connector deleted: stops and drops every task (the target no longer matters). */
  async remove(): Promise<void> {
    await this.dropTasks();
  }

  /**
   * Worker shutdown: stops every runner still alive at once and waits for them until
   * `deadline.reached` resolves (one deadline for all, `deadline.ms` long). Never throws; returns the
   * tasks that did not drain.
   */
  async shutdown(deadline: { reached: Promise<unknown>; ms: number }): Promise<TaskStopFailure[]> {
    const runners = [...this.live];
    const results = await Promise.all(
      runners.map(async (runner) => ({
        runner,
        result: await beforeDeadline(this.stopOf(runner), deadline.reached),
      })),
    );
    return results.flatMap(({ runner, result }) =>
      result.ok
        ? []
        : [
            {
              connector: this.deps.connector,
              task: runner.taskId,
              timedOut: result.timedOut,
              message: result.timedOut ? this.timeoutMessage(runner, deadline.ms) : messageOf(result.error),
            },
          ],
    );
  }

  // ---------------------------------------------------------------------------------------------

  private async createTasks(): Promise<void> {
    this.connectorFailure = undefined;
    const slots: TaskSlot[] = [];
    try {
      const count = this.deps.taskCount();
      for (let taskId = 0; taskId < count; taskId++) {
        slots.push({ taskId, runner: this.deps.createRunner(taskId), failure: undefined });
      }
    } catch (error) {
      // Runners created before the throw were never started and hold nothing: drop them.
      this.connectorFailure = traceOf(error);
      this.deps.logger.error({ err: error, connector: this.deps.connector }, 'connector failed to start');
      return;
    }
    for (const slot of slots) this.live.add(slot.runner);
    this.slots = slots;
    await Promise.all(slots.map((slot) => this.launch(slot)));
  }

  /** Starts a new runner in the target state: a task of a paused connector never processes a record. */
  private async launch(slot: TaskSlot): Promise<void> {
    const runner = slot.runner;
    try {
      if (this.targetState === 'PAUSED') await runner.pause();
      await runner.start();
      // A runner that ignored the pause before start (the contract asks it not to) still ends paused.
      if (this.targetState === 'PAUSED' && runner.state === 'RUNNING') await runner.pause();
    } catch (error) {
      await this.failTask(slot, runner, error, 'start');
    }
  }

  private async applyTargetToTasks(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.applyTarget(slot)));
  }

  private async applyTarget(slot: TaskSlot): Promise<void> {
    // Stopped by an earlier failed transition: a task restart brings it back in the target state.
    if (slot.failure !== undefined) return;
    const runner = slot.runner;
    const paused = this.targetState === 'PAUSED';
    try {
      if (paused) await runner.pause();
      else await runner.resume();
    } catch (error) {
      await this.failTask(slot, runner, error, paused ? 'pause' : 'resume');
    }
  }

  /** Records `slot` FAILED with `cause` and stops its runner, so it cannot run against the target. */
  private async failTask(slot: TaskSlot, runner: TaskRunner, cause: unknown, action: string): Promise<void> {
    const error = new FatalError(
      'TASK_STATE_CHANGE_FAILED',
      errorMessage('TASK_STATE_CHANGE_FAILED', {
        task: slot.taskId,
        connector: this.deps.connector,
        action,
        details: messageOf(cause),
      }),
      { cause },
    );
    if (slot.runner === runner) slot.failure = traceOf(error);
    this.deps.logger.error({ err: error, connector: this.deps.connector, task: slot.taskId }, 'task failed');
    await this.stopWithinTimeout(runner);
    if (slot.runner === runner) this.deps.onTaskFailed?.(slot.taskId);
  }

  private async replaceRunner(slot: TaskSlot): Promise<void> {
    await this.stopWithinTimeout(slot.runner);
    let runner: TaskRunner;
    try {
      runner = this.deps.createRunner(slot.taskId);
    } catch (error) {
      slot.failure = traceOf(error);
      this.deps.logger.error(
        { err: error, connector: this.deps.connector, task: slot.taskId },
        'task could not be created',
      );
      this.deps.onTaskFailed?.(slot.taskId);
      return;
    }
    this.live.add(runner);
    slot.runner = runner;
    slot.failure = undefined;
    await this.launch(slot);
  }

  private async dropTasks(): Promise<void> {
    const slots = this.slots;
    this.slots = [];
    await Promise.all(slots.map((slot) => this.stopWithinTimeout(slot.runner)));
  }

  /** Stops `runner`, waiting at most `stopTimeoutMs`; logs a failure and never throws. */
  private async stopWithinTimeout(runner: TaskRunner): Promise<void> {
    const abort = new AbortController();
    try {
      const result = await beforeDeadline(
        this.stopOf(runner),
        this.deps.sleep(this.deps.stopTimeoutMs, abort.signal),
      );
      if (!result.ok) {
        const message = result.timedOut
          ? this.timeoutMessage(runner, this.deps.stopTimeoutMs)
          : messageOf(result.error);
        this.deps.logger.error(
          {
            connector: this.deps.connector,
            task: runner.taskId,
            err: result.timedOut ? undefined : result.error,
          },
          `task did not stop cleanly; going on without it: ${message}`,
        );
      }
    } finally {
      abort.abort();
    }
  }

  private stopOf(runner: TaskRunner): Promise<StopResult> {
    let stopping = this.stops.get(runner);
    if (!stopping) {
      stopping = Promise.resolve()
        .then(() => runner.stop())
        .then(
          (): StopResult => ({ ok: true }),
          (error: unknown): StopResult => ({ ok: false, timedOut: false, error }),
        )
        .finally(() => this.live.delete(runner));
      this.stops.set(runner, stopping);
    }
    return stopping;
  }

  private timeoutMessage(runner: TaskRunner, ms: number): string {
    return errorMessage('TASK_STOP_TIMEOUT', {
      what: `stopping task ${runner.taskId} of connector ${this.deps.connector}`,
      ms,
    });
  }
}

/** A task's observed state, counting a failure the lifecycle recorded. */
export function taskState(task: TaskView): ObservedState {
  return task.failure !== undefined ? 'FAILED' : task.runner.state;
}

async function beforeDeadline(
  stopping: Promise<StopResult>,
  deadline: Promise<unknown>,
): Promise<StopResult> {
  return Promise.race([
    stopping,
    deadline.then((): StopResult => ({ ok: false, timedOut: true, error: undefined })),
  ]);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
