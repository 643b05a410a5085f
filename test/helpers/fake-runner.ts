// Fake task runners for Worker unit tests: each records the lifecycle calls it received, and each
// call can be held until the test releases it, made to reject, or made never to settle. States
// follow the real runners' contract: pause() before start() makes start() come up PAUSED, stop()
// is idempotent (one promise), and a stop that fails rejects after reaching STOPPED.
import type { ObservedState } from '../../runtime/herder.js';
import type { TaskRunner } from '../../runtime/task-runner.js';
import type { RunnerFactoryInput } from '../../runtime/worker.js';

export type LifecycleCall = 'start' | 'pause' | 'resume' | 'stop';

/** A promise the test settles by hand. */
export class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/** How one kind of call behaves: go straight through, wait for a gate, reject, or never settle. */
type Behaviour =
  { kind: 'pass' } | { kind: 'hold'; gate: Deferred } | { kind: 'fail'; error: Error } | { kind: 'hang' };

export class FakeRunner implements TaskRunner {
  readonly calls: LifecycleCall[] = [];
  trace: string | undefined;
  private observed: ObservedState = 'UNASSIGNED';
  private userPaused = false;
  private stopping: Promise<void> | undefined;
  private readonly behaviours = new Map<LifecycleCall, Behaviour>();
  /** Resolves when a call of that kind arrives (to wait for an operation to reach the runner). */
  private readonly arrivals = new Map<LifecycleCall, Deferred>();

  constructor(
    readonly connector: string,
    readonly taskId: number,
    /** Which runner of this task this is (0 for the first, 1 after one restart...). */
    readonly generation: number,
  ) {}

  get state(): ObservedState {
    return this.observed;
  }

  /** Started and not asked to stop: this runner would be consuming (or paused, holding its clients). */
  get alive(): boolean {
    return this.calls.includes('start') && !this.calls.includes('stop');
  }

  /** Holds the next calls of `call` until the returned gate resolves. */
  hold(call: LifecycleCall): Deferred {
    const gate = new Deferred();
    this.behaviours.set(call, { kind: 'hold', gate });
    return gate;
  }

  fail(call: LifecycleCall, error: Error): void {
    this.behaviours.set(call, { kind: 'fail', error });
  }

  hang(call: LifecycleCall): void {
    this.behaviours.set(call, { kind: 'hang' });
  }

  /** Resolves once `call` has been received (at once if it already was). */
  received(call: LifecycleCall): Promise<void> {
    if (this.calls.includes(call)) return Promise.resolve();
    return this.arrival(call).promise;
  }

  details(): Record<string, unknown> {
    return { generation: this.generation };
  }

  async start(): Promise<void> {
    await this.enter('start');
    if (this.observed === 'UNASSIGNED') this.observed = this.userPaused ? 'PAUSED' : 'RUNNING';
  }

  async pause(): Promise<void> {
    await this.enter('pause');
    this.userPaused = true;
    if (this.observed === 'RUNNING') this.observed = 'PAUSED';
  }

  async resume(): Promise<void> {
    await this.enter('resume');
    this.userPaused = false;
    if (this.observed === 'PAUSED') this.observed = 'RUNNING';
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.enter('stop');
      } finally {
        this.observed = 'STOPPED';
      }
    })();
    return this.stopping;
  }

  private async enter(call: LifecycleCall): Promise<void> {
    this.calls.push(call);
    this.arrival(call).resolve();
    const behaviour = this.behaviours.get(call) ?? { kind: 'pass' };
    switch (behaviour.kind) {
      case 'pass':
        return;
      case 'hold':
        return behaviour.gate.promise;
      case 'fail':
        throw behaviour.error;
      case 'hang':
        return new Promise<void>(() => undefined);
    }
  }

  private arrival(call: LifecycleCall): Deferred {
    let arrival = this.arrivals.get(call);
    if (!arrival) {
      arrival = new Deferred();
      this.arrivals.set(call, arrival);
    }
    return arrival;
  }
}

/**
 * The worker's `runnerFactory`: makes FakeRunners and remembers every one. `prepare` (set by a
 * test) configures each new runner before the worker sees it.
 */
export class FakeRunnerFactory {
  readonly created: FakeRunner[] = [];
  prepare: ((runner: FakeRunner) => void) | undefined;

  readonly create = (deps: RunnerFactoryInput): FakeRunner => {
    const generation = this.created.filter(
      (r) => r.connector === deps.connectorName && r.taskId === deps.taskId,
    ).length;
    const runner = new FakeRunner(deps.connectorName, deps.taskId, generation);
    this.prepare?.(runner);
    this.created.push(runner);
    return runner;
  };

  /** The runners of `connector` started and not asked to stop. */
  alive(connector: string): FakeRunner[] {
    return this.created.filter((r) => r.connector === connector && r.alive);
  }

  /** The newest runner of a task. */
  latest(connector: string, taskId: number): FakeRunner {
    const runner = this.created.filter((r) => r.connector === connector && r.taskId === taskId).at(-1);
    if (!runner) throw new Error(`no runner was created for ${connector}-${taskId}`);
    return runner;
  }
}
