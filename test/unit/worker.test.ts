import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../connectors/index.js';
import { HerderError } from '../../runtime/herder.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { Worker, type WorkerStopSummary } from '../../runtime/worker.js';
import { drainWorker, exitCodeFor, type DrainOutcome } from '../../runtime/worker-shutdown.js';
import { Deferred, FakeRunnerFactory } from '../helpers/fake-runner.js';

const SHUTDOWN_TIMEOUT_MS = 5_000;

/** Stop deadlines fire only when the test says so; each pending sleep is listed with its length. */
class ManualTimers {
  readonly pending: Array<{ ms: number; fire: () => void }> = [];
  readonly requested: number[] = [];

  readonly sleep = (ms: number, signal: AbortSignal): Promise<boolean> => {
    this.requested.push(ms);
    return new Promise((resolve) => {
      const entry = {
        ms,
        fire: () => {
          this.remove(entry);
          resolve(true);
        },
      };
      this.pending.push(entry);
      signal.addEventListener(
        'abort',
        () => {
          this.remove(entry);
          resolve(false);
        },
        { once: true },
      );
    });
  };

  fireAll(): void {
    for (const entry of [...this.pending]) entry.fire();
  }

  private remove(entry: { ms: number; fire: () => void }): void {
    const index = this.pending.indexOf(entry);
    if (index !== -1) this.pending.splice(index, 1);
  }
}

/** Unit tests run no Kafka: any use of the client is a bug in the test. */
const noKafka = new Proxy({} as Kafka, {
  get: (_target, property) => {
    throw new Error(`the Worker unit tests use no Kafka client (kafka.${String(property)})`);
  },
});

function makeWorker(factory: FakeRunnerFactory, timers: ManualTimers): Worker {
  const dir = mkdtempSync(join(tmpdir(), 'infer-connect-worker-unit-'));
  return new Worker({
    workerId: 'worker-1',
    kafka: noKafka,
    plugins: PluginRegistry.of(builtinPlugins),
    metricsRegistry: new Registry(),
    logger: pino({ level: 'silent' }),
    settings: {
      workerId: 'worker-1',
      offsetFlushIntervalMs: 1_000,
      partitionsConcurrency: 1,
      shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
      maxRecordsPerCall: 500,
      consumerOverrides: {},
      producerOverrides: {},
    },
    schemaRegistryUrl: undefined,
    offsetStoreFile: join(dir, 'offsets.json'),
    runnerFactory: factory.create,
    sleep: timers.sleep,
  });
}

const config = (tasks = 2) => ({
  'connector.class': 'PassThrough',
  topics: 'scores-in',
  'output.topic': 'scores-out',
  'key.converter': 'string',
  'value.converter': 'string',
  'tasks.max': String(tasks),
});

/** Lets every already-settled promise callback run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

async function rejection(promise: Promise<unknown>): Promise<HerderError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(HerderError);
    return error as HerderError;
  }
  throw new Error('expected the operation to be refused');
}

function states(worker: Worker, name: string) {
  const status = worker.connectorStatus(name);
  return { connector: status.connector.state, tasks: status.tasks.map((t) => t.state) };
}

describe('Worker connector lifecycle', () => {
  let factory: FakeRunnerFactory;
  let timers: ManualTimers;
  let worker: Worker;

  beforeEach(() => {
    factory = new FakeRunnerFactory();
    timers = new ManualTimers();
    worker = makeWorker(factory, timers);
  });

  describe('pause, resume and stop', () => {
    it('a pause sent while the tasks are still starting applies after the start, and every task ends paused', async () => {
      const gates: Deferred[] = [];
      factory.prepare = (runner) => gates.push(runner.hold('start'));
      const created = worker.putConnectorConfig('c', config(), false);
      const paused = worker.pauseConnector('c');
      await settle();
      expect(factory.created.map((r) => r.calls)).to.deep.equal([['start'], ['start']]);
      for (const gate of gates) gate.resolve();
      await Promise.all([created, paused]);

      expect(states(worker, 'c')).to.deep.equal({ connector: 'PAUSED', tasks: ['PAUSED', 'PAUSED'] });
      expect(factory.created.map((r) => r.calls)).to.deep.equal([
        ['start', 'pause'],
        ['start', 'pause'],
      ]);
    });

    it('a runner that rejects a pause is stopped and reported FAILED, while the pause itself succeeds', async () => {
      await worker.putConnectorConfig('c', config(), false);
      factory.latest('c', 0).fail('pause', new Error('Consumer group was not initialized'));

      await worker.pauseConnector('c');

      const status = worker.connectorStatus('c');
      expect(status.connector.state).to.equal('PAUSED');
      expect(status.tasks.map((t) => t.state)).to.deep.equal(['FAILED', 'PAUSED']);
      expect(status.tasks[0]!.trace)
        .to.contain('TASK_STATE_CHANGE_FAILED')
        .and.contain('Consumer group was not initialized');
      expect(factory.latest('c', 0).calls).to.include('stop');
      expect(factory.alive('c')).to.deep.equal([factory.latest('c', 1)]);
    });

    it('restarting a task that failed its pause brings it back paused, not running', async () => {
      await worker.putConnectorConfig('c', config(), false);
      factory.latest('c', 0).fail('pause', new Error('Consumer group was not initialized'));
      await worker.pauseConnector('c');

      await worker.restartTask('c', 0);

      const replacement = factory.latest('c', 0);
      expect(replacement.generation).to.equal(1);
      expect(replacement.calls).to.deep.equal(['pause', 'start']);
      expect(states(worker, 'c')).to.deep.equal({ connector: 'PAUSED', tasks: ['PAUSED', 'PAUSED'] });
    });

    it('resume after pause resumes every task and reports RUNNING', async () => {
      await worker.putConnectorConfig('c', config(), false);
      await worker.pauseConnector('c');
      await worker.resumeConnector('c');

      expect(states(worker, 'c')).to.deep.equal({ connector: 'RUNNING', tasks: ['RUNNING', 'RUNNING'] });
      expect(factory.created.map((r) => r.calls)).to.deep.equal([
        ['start', 'pause', 'resume'],
        ['start', 'pause', 'resume'],
      ]);
    });

    it('stop drops the tasks; pausing a stopped connector keeps none (as Kafka Connect); resume starts them again', async () => {
      await worker.putConnectorConfig('c', config(), false);
      await worker.stopConnector('c');
      expect(states(worker, 'c')).to.deep.equal({ connector: 'STOPPED', tasks: [] });
      expect(factory.alive('c')).to.deep.equal([]);

      await worker.pauseConnector('c');
      expect(states(worker, 'c')).to.deep.equal({ connector: 'PAUSED', tasks: [] });
      expect(worker.connectorInfo('c').tasks).to.deep.equal([]);
      expect(factory.created).to.have.length(2);

      await worker.resumeConnector('c');
      expect(states(worker, 'c')).to.deep.equal({ connector: 'RUNNING', tasks: ['RUNNING', 'RUNNING'] });
      expect(worker.connectorInfo('c').tasks).to.deep.equal([
        { connector: 'c', task: 0 },
        { connector: 'c', task: 1 },
      ]);
      expect(factory.alive('c').map((r) => [r.taskId, r.generation])).to.deep.equal([
        [0, 1],
        [1, 1],
      ]);
    });

    it('resuming a stopped connector starts its tasks running', async () => {
      await worker.putConnectorConfig('c', config(), false);
      await worker.stopConnector('c');
      await worker.resumeConnector('c');
      expect(states(worker, 'c')).to.deep.equal({ connector: 'RUNNING', tasks: ['RUNNING', 'RUNNING'] });
    });

    it('a config update of a paused connector replaces its tasks with paused ones of the new config', async () => {
      await worker.putConnectorConfig('c', config(2), false);
      await worker.pauseConnector('c');
      await worker.putConnectorConfig('c', config(3), true);

      expect(states(worker, 'c')).to.deep.equal({
        connector: 'PAUSED',
        tasks: ['PAUSED', 'PAUSED', 'PAUSED'],
      });
      expect(factory.alive('c').every((r) => r.calls[0] === 'pause')).to.equal(true);
    });
  });

  describe('one change at a time per connector', () => {
    it('two concurrent restarts leave exactly one live runner per task', async () => {
      await worker.putConnectorConfig('c', config(), false);
      const first = worker.restartConnector('c', { includeTasks: true, onlyFailed: false });
      const second = worker.restartConnector('c', { includeTasks: true, onlyFailed: false });
      await Promise.all([first, second]);

      const alive = factory.alive('c');
      expect(alive.map((r) => [r.taskId, r.generation])).to.deep.equal([
        [0, 2],
        [1, 2],
      ]);
      expect(states(worker, 'c').tasks).to.deep.equal(['RUNNING', 'RUNNING']);
    });

    it('a delete sent during a restart waits for it, then leaves no runner alive; later changes answer 404', async () => {
      await worker.putConnectorConfig('c', config(), false);
      const slowStop = factory.latest('c', 0).hold('stop');
      const restarted = worker.restartTask('c', 0);
      await factory.latest('c', 0).received('stop');
      const deleted = worker.deleteConnector('c');
      slowStop.resolve();
      await Promise.all([restarted, deleted]);

      expect(factory.alive('c')).to.deep.equal([]);
      expect(factory.created.every((r) => r.state === 'STOPPED')).to.equal(true);
      expect((await rejection(worker.restartTask('c', 0))).httpStatus).to.equal(404);
      expect((await rejection(worker.resumeConnector('c'))).httpStatus).to.equal(404);
      expect(() => worker.connectorStatus('c')).to.throw(HerderError);
    });

    it('a restart queued behind a delete answers 404 and starts nothing', async () => {
      await worker.putConnectorConfig('c', config(), false);
      const deleted = worker.deleteConnector('c');
      const restarted = worker.restartConnector('c', { includeTasks: true, onlyFailed: false });
      await deleted;
      expect((await rejection(restarted)).httpStatus).to.equal(404);
      expect(factory.created).to.have.length(2);
      expect(factory.alive('c')).to.deep.equal([]);
    });

    it('a delete sent during a config update leaves no runner of either config alive', async () => {
      await worker.putConnectorConfig('c', config(2), false);
      const slowStarts: Deferred[] = [];
      factory.prepare = (runner) => slowStarts.push(runner.hold('start'));
      const updated = worker.putConnectorConfig('c', config(3), true);
      await settle();
      const deleted = worker.deleteConnector('c');
      for (const gate of slowStarts) gate.resolve();
      await Promise.all([updated, deleted]);

      expect(factory.created).to.have.length(5);
      expect(factory.alive('c')).to.deep.equal([]);
    });

    it('a task restart sent during a config update applies to the new config (404 once the task is gone)', async () => {
      await worker.putConnectorConfig('c', config(2), false);
      const slowStop = factory.latest('c', 1).hold('stop');
      const updated = worker.putConnectorConfig('c', config(1), true);
      await factory.latest('c', 1).received('stop');
      const restartGone = worker.restartTask('c', 1);
      const restartKept = worker.restartTask('c', 0);
      slowStop.resolve();
      await updated;

      expect((await rejection(restartGone)).httpStatus).to.equal(404);
      await restartKept;
      expect(factory.alive('c').map((r) => [r.taskId, r.generation])).to.deep.equal([[0, 2]]);
      expect(worker.connectorInfo('c').tasks).to.deep.equal([{ connector: 'c', task: 0 }]);
    });

    it('a runner whose stop rejects is replaced all the same on restart, update and delete', async () => {
      factory.prepare = (runner) => runner.fail('stop', new Error('commit failed'));
      await worker.putConnectorConfig('c', config(1), false);

      await worker.restartTask('c', 0);
      expect(factory.latest('c', 0).generation).to.equal(1);
      await worker.putConnectorConfig('c', config(2), true);
      expect(factory.alive('c').map((r) => [r.taskId, r.generation])).to.deep.equal([
        [0, 2],
        [1, 0],
      ]);
      await worker.deleteConnector('c');
      expect(factory.alive('c')).to.deep.equal([]);
      expect(worker.connectorNames()).to.deep.equal([]);
    });

    it('a runner whose stop never settles does not block a delete past the stop timeout', async () => {
      await worker.putConnectorConfig('c', config(1), false);
      factory.latest('c', 0).hang('stop');
      const deleted = worker.deleteConnector('c');
      await factory.latest('c', 0).received('stop');
      await settle();
      expect(timers.pending.map((p) => p.ms)).to.deep.equal([SHUTDOWN_TIMEOUT_MS]);
      timers.fireAll();
      await deleted;
      expect(worker.connectorNames()).to.deep.equal([]);
    });
  });

  describe('stop (shutdown)', () => {
    it('stops every task at once under one deadline and reports the task that never stopped', async () => {
      await worker.putConnectorConfig('a', config(2), false);
      await worker.putConnectorConfig('b', config(1), false);
      factory.latest('a', 1).hang('stop');
      const gates = [factory.latest('a', 0).hold('stop'), factory.latest('b', 0).hold('stop')];

      const stopped = worker.stop();
      await Promise.all(factory.created.map((r) => r.received('stop')));
      expect(timers.pending.map((p) => p.ms)).to.deep.equal([SHUTDOWN_TIMEOUT_MS]);
      for (const gate of gates) gate.resolve();
      await settle();
      timers.fireAll();
      const summary = await stopped;

      expect(summary.clean).to.equal(false);
      expect(summary.failures).to.have.length(1);
      expect(summary.failures[0]).to.include({ connector: 'a', task: 1, timedOut: true });
      expect(summary.failures[0]!.message).to.contain(`${SHUTDOWN_TIMEOUT_MS} ms`);
      expect(timers.requested).to.deep.equal([SHUTDOWN_TIMEOUT_MS]);
    });

    it('reports a task whose stop rejected (a drain step failed), and is clean when every task drained', async () => {
      await worker.putConnectorConfig('a', config(2), false);
      factory.latest('a', 0).fail('stop', new Error('offset commit failed'));
      const failed = await worker.stop();
      expect(failed.clean).to.equal(false);
      expect(failed.failures).to.deep.equal([
        { connector: 'a', task: 0, timedOut: false, message: 'offset commit failed' },
      ]);

      const other = makeWorker(new FakeRunnerFactory(), new ManualTimers());
      await other.putConnectorConfig('a', config(2), false);
      expect(await other.stop()).to.deep.equal({ clean: true, failures: [] });
    });

    it('is idempotent: a second call answers the same report without stopping anything again', async () => {
      await worker.putConnectorConfig('a', config(1), false);
      const first = await worker.stop();
      const second = await worker.stop();
      expect(second).to.equal(first);
      expect(factory.latest('a', 0).calls.filter((c) => c === 'stop')).to.have.length(1);
    });

    it('also waits for a runner that an operation in flight is stopping', async () => {
      await worker.putConnectorConfig('a', config(1), false);
      const runner = factory.latest('a', 0);
      const slowStop = runner.hold('stop');
      const stopping = worker.stopConnector('a');
      await runner.received('stop');

      const drained = worker.stop();
      await settle();
      let settled = false;
      void drained.then(() => (settled = true));
      await settle();
      expect(settled, 'stop resolved while a task was still stopping').to.equal(false);
      slowStop.resolve();
      expect(await drained).to.deep.equal({ clean: true, failures: [] });
      await stopping;
    });

    it('refuses changes once stopping began, and starts no task for an operation in flight', async () => {
      await worker.putConnectorConfig('a', config(1), false);
      const slowStop = factory.latest('a', 0).hold('stop');
      const restarting = worker.restartTask('a', 0);
      await factory.latest('a', 0).received('stop');

      const drained = worker.stop();
      const refused = await rejection(worker.pauseConnector('a'));
      expect(refused.code).to.equal('WORKER_STOPPING');
      expect(refused.httpStatus).to.equal(409);
      slowStop.resolve();
      await drained;
      await restarting;

      expect(factory.created).to.have.length(1);
      expect(factory.alive('a')).to.deep.equal([]);
      expect(worker.health().status).to.equal('unhealthy');
    });
  });
});

describe('CLI drain exit code', () => {
  const clean: WorkerStopSummary = { clean: true, failures: [] };
  const unclean: WorkerStopSummary = {
    clean: false,
    failures: [
      { connector: 'a', task: 0, timedOut: true, message: 'stopping task 0 took longer than 5000 ms' },
    ],
  };

  it('is 0 only when every task drained and the REST server closed', () => {
    const cases: Array<[DrainOutcome, number]> = [
      [{ kind: 'drained', summary: clean, restError: undefined }, 0],
      [{ kind: 'drained', summary: unclean, restError: undefined }, 1],
      [{ kind: 'drained', summary: clean, restError: new Error('close failed') }, 1],
      [{ kind: 'failed', error: new Error('boom') }, 1],
      [{ kind: 'deadline-exceeded', deadlineMs: 7_000 }, 1],
    ];
    for (const [outcome, code] of cases) expect(exitCodeFor(outcome), outcome.kind).to.equal(code);
  });

  it('closes the REST server after the worker stopped, and exits 0 after a clean drain', async () => {
    const order: string[] = [];
    const outcome = await drainWorker({
      stopWorker: async () => {
        order.push('worker');
        return clean;
      },
      closeRest: async () => {
        order.push('rest');
      },
      deadlineMs: 7_000,
      sleep: new ManualTimers().sleep,
    });
    expect(order).to.deep.equal(['worker', 'rest']);
    expect(exitCodeFor(outcome)).to.equal(0);
  });

  it('exits 1 when a task did not drain', async () => {
    const outcome = await drainWorker({
      stopWorker: async () => unclean,
      closeRest: async () => undefined,
      deadlineMs: 7_000,
      sleep: new ManualTimers().sleep,
    });
    expect(outcome).to.deep.include({ kind: 'drained', summary: unclean });
    expect(exitCodeFor(outcome)).to.equal(1);
  });

  it('gives up at its deadline when the drain hangs, and exits 1', async () => {
    const timers = new ManualTimers();
    const drained = drainWorker({
      stopWorker: () => new Promise<WorkerStopSummary>(() => undefined),
      closeRest: async () => undefined,
      deadlineMs: 7_000,
      sleep: timers.sleep,
    });
    await settle();
    expect(timers.pending.map((p) => p.ms)).to.deep.equal([7_000]);
    timers.fireAll();
    const outcome = await drained;
    expect(outcome).to.deep.equal({ kind: 'deadline-exceeded', deadlineMs: 7_000 });
    expect(exitCodeFor(outcome)).to.equal(1);
  });
});
