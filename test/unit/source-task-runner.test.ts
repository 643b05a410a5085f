import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Kafka, ProducerBatch } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  defineConfig,
  type SourcePlugin,
  type SourceRecord,
  type SourceRecordFailure,
  type SourceTask,
} from '../../runtime/api.js';
import { parseConnectorConfig } from '../../runtime/config/connector-config.js';
import type { Converter } from '../../runtime/converters/converter.js';
import { ConnectError, RetriableError } from '../../runtime/errors.js';
import { FileOffsetStore } from '../../runtime/offset-store.js';
import { SourceTaskRunner } from '../../runtime/source-task-runner.js';
import { RuntimeMetrics } from '../../runtime/task-metrics.js';

/** Sleeps wait until the test fires them; a stop (abort) ends them at once, as interruptibleSleep does. */
class FakeClock {
  time = 1_000_000;
  readonly sleeps: number[] = [];
  private timers: Array<{ at: number; resolve: (elapsed: boolean) => void; cancel: () => void }> = [];
  readonly now = () => this.time;
  readonly sleep = (ms: number, signal: AbortSignal): Promise<boolean> => {
    if (signal.aborted) return Promise.resolve(false);
    this.sleeps.push(ms);
    return new Promise((resolve) => {
      const onAbort = () => {
        this.timers = this.timers.filter((t) => t !== timer);
        resolve(false);
      };
      const timer = {
        at: this.time + ms,
        resolve,
        cancel: () => signal.removeEventListener('abort', onAbort),
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });
  };
  get pending(): number[] {
    return this.timers.map((t) => t.at - this.time);
  }
  /** Moves time to the earliest pending sleep and ends it; false when none is pending. */
  fireNext(): boolean {
    const next = [...this.timers].sort((a, b) => a.at - b.at)[0];
    if (!next) return false;
    this.timers = this.timers.filter((t) => t !== next);
    this.time = Math.max(this.time, next.at);
    next.cancel();
    next.resolve(true);
    return true;
  }
}

const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** Lets the runner work, firing one pending sleep at a time, until `done()`. */
async function runUntil(clock: FakeClock, done: () => boolean, what: string): Promise<void> {
  for (let fired = 0; ; fired++) {
    await settle();
    if (done()) return;
    if (fired > 200 || !clock.fireNext()) {
      throw new Error(`${what} did not happen (${fired} sleeps fired, pending: ${clock.pending.join(', ')})`);
    }
  }
}

const kafkaError = (name: string, message: string, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(message), { name, ...extra });
const brokerDown = () =>
  kafkaError('KafkaJSConnectionError', 'Connection error: connect ECONNREFUSED', { retriable: true });
const notAuthorized = () =>
  kafkaError('KafkaJSProtocolError', 'Not authorized to access topics: [Topic authorization failed]', {
    type: 'TOPIC_AUTHORIZATION_FAILED',
    retriable: false,
  });
const tooLarge = () =>
  kafkaError('KafkaJSProtocolError', 'The request included a message larger than the max message size', {
    type: 'MESSAGE_TOO_LARGE',
    retriable: false,
  });

const record = (line: number, value: unknown = { line }): SourceRecord => ({
  topic: 'out',
  value,
  sourcePartition: { file: 'in.csv' },
  sourceOffset: { line },
});

type Poll = Array<SourceRecord | SourceRecordFailure> | null;

interface HarnessOptions {
  config?: Record<string, unknown>;
  /** What successive polls return; after the last one the task is finished (null). */
  polls: Poll[];
  /** Decides each sendBatch call (1-based): throw to fail it. */
  onSend?: (call: number, batch: ProducerBatch) => void;
  prepareEncode?: (call: number) => void;
  taskStop?: () => Promise<void>;
  shutdownTimeoutMs?: number;
  offsetFlushIntervalMs?: number;
}

function harness(options: HarnessOptions) {
  const clock = new FakeClock();
  const dir = mkdtempSync(join(tmpdir(), 'source-runner-'));
  const offsetFile = join(dir, 'offsets.json');
  const offsets = new FileOffsetStore(offsetFile);
  const polls = [...options.polls];
  const task = { stopped: false, polls: 0 };
  const fakeTask: SourceTask = {
    poll: async () => {
      task.polls++;
      return polls.length > 0 ? polls.shift()! : null;
    },
    stop: async () => {
      await options.taskStop?.();
      task.stopped = true;
    },
  };
  const plugin: SourcePlugin = {
    kind: 'source',
    name: 'FakeSource',
    version: '1',
    description: 'polls what the test scripted',
    config: defineConfig([]),
    createTask: () => fakeTask,
  };
  const { config, problems } = parseConnectorConfig(plugin, {
    name: 'fake',
    'connector.class': 'FakeSource',
    'value.converter': 'json',
    'errors.retry.timeout': 60_000,
    'errors.retry.delay.max.ms': 10_000,
    ...options.config,
  });
  if (!config) throw new Error(JSON.stringify(problems));

  const acked: Array<{ topic: string; values: string[] }> = [];
  const producer = { sendBatchCalls: 0, disconnected: false };
  const fakeProducer = {
    connect: async () => undefined,
    disconnect: async () => {
      producer.disconnected = true;
    },
    send: async () => [],
    sendBatch: async (batch: ProducerBatch) => {
      producer.sendBatchCalls++;
      options.onSend?.(producer.sendBatchCalls, batch);
      for (const { topic, messages } of batch.topicMessages ?? []) {
        acked.push({ topic, values: messages.map((m) => String(m.value)) });
      }
      return [];
    },
  };
  const admin = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    listTopics: async () => ['out', 'dlq'],
    createTopics: async () => true,
  };
  const kafka = { producer: () => fakeProducer, admin: () => admin } as unknown as Kafka;

  let encodes = 0;
  const json = (isKey: boolean): Converter => ({
    isKey,
    toConnect: () => ({ value: null }),
    prepareEncode: async () => {
      if (!isKey) options.prepareEncode?.(++encodes);
    },
    fromConnect: (_topic, value) => (value === null ? null : Buffer.from(JSON.stringify(value))),
  });

  const registry = new Registry();
  const metrics = new RuntimeMetrics(registry);
  const states: string[] = [];
  const runner = new SourceTaskRunner({
    kafka,
    connectorName: 'fake',
    taskId: 0,
    plugin,
    config,
    settings: {
      workerId: 'test',
      offsetFlushIntervalMs: options.offsetFlushIntervalMs ?? 0,
      partitionsConcurrency: 1,
      shutdownTimeoutMs: options.shutdownTimeoutMs ?? 5_000,
      maxRecordsPerCall: 100,
      consumerOverrides: {},
      producerOverrides: {},
    },
    keyConverter: json(true),
    valueConverter: json(false),
    metrics,
    registry,
    logger: pino({ level: 'silent' }),
    offsets,
    onStateChange: (state) => states.push(state),
    now: clock.now,
    sleep: clock.sleep,
  });
  /** The offset stored on disk (a fresh store reads the file). */
  const storedOffset = () => new FileOffsetStore(offsetFile).get('fake', { file: 'in.csv' });
  const retries = async () =>
    (await registry.getSingleMetric('kafka_connect_task_error_total_retries')?.get())?.values[0]?.value;
  return { runner, clock, task, producer, acked, storedOffset, offsetFile, states, retries };
}

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return error as ConnectError;
  }
  throw new Error('expected a rejection');
}

describe('the source task runner', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    await settle();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled, 'unhandled rejections').to.deep.equal([]);
  });

  it('retries a transient produce failure with backoff and stores the offset only once Kafka acknowledged it', async () => {
    const offsetsWhileFailing: unknown[] = [];
    const h = harness({
      polls: [[record(1), record(2)]],
      onSend: (call) => {
        if (call <= 2) {
          offsetsWhileFailing.push(h.storedOffset());
          throw brokerDown();
        }
      },
    });
    await h.runner.start();
    expect(h.runner.state).to.equal('RUNNING');
    await runUntil(h.clock, () => h.runner.details().finished === true, 'the task finishing');

    expect(h.clock.sleeps).to.deep.equal([300, 600]);
    expect(h.producer.sendBatchCalls).to.equal(3);
    expect(offsetsWhileFailing).to.deep.equal([undefined, undefined]);
    expect(h.acked).to.deep.equal([{ topic: 'out', values: ['{"line":1}', '{"line":2}'] }]);
    expect(h.storedOffset()).to.deep.equal({ line: 2 });
    expect(await h.retries()).to.equal(2);
    expect(h.runner.state).to.equal('RUNNING');
    await h.runner.stop();
    expect(h.runner.state).to.equal('STOPPED');
  });

  it('with errors.retry.timeout=0 holds the polled records and tries again after growing pauses', async () => {
    const h = harness({
      config: { 'errors.retry.timeout': 0 },
      polls: [[record(1)]],
      onSend: (call) => {
        if (call <= 4) throw brokerDown();
      },
    });
    await h.runner.start();
    await runUntil(h.clock, () => h.runner.details().finished === true, 'the task finishing');
    expect(h.clock.sleeps).to.deep.equal([300, 600, 1200, 2400]);
    expect(h.task.polls).to.equal(2); // the held batch, then the end: nothing was polled twice
    expect(h.storedOffset()).to.deep.equal({ line: 1 });
    await h.runner.stop();
  });

  it('fails the task on a fatal produce error, without retrying, with the cause in its trace', async () => {
    const h = harness({
      polls: [[record(1)]],
      onSend: () => {
        throw notAuthorized();
      },
    });
    await h.runner.start();
    await runUntil(h.clock, () => h.task.stopped && h.producer.disconnected, 'the failed task releasing');
    expect(h.runner.state).to.equal('FAILED');
    expect(h.runner.trace).to.match(/^FatalError \[KAFKA_AUTHORIZATION_FAILED\]/);
    expect(h.runner.trace).to.contain('Caused by: KafkaJSProtocolError: Not authorized');
    expect(h.producer.sendBatchCalls).to.equal(1);
    expect(h.clock.sleeps).to.deep.equal([5_000]); // only the release's stop deadline: no retry wait
    expect(h.storedOffset()).to.equal(undefined);
    await h.runner.stop(); // the release was clean
    expect(h.runner.state).to.equal('FAILED');
  });

  it('retries a schema registry blip on the first encode instead of failing the task', async () => {
    const h = harness({
      polls: [[record(1)]],
      prepareEncode: (call) => {
        if (call === 1) {
          throw new RetriableError('SCHEMA_REGISTRY_UNAVAILABLE', 'Schema registry is unavailable: 503');
        }
      },
    });
    await h.runner.start();
    await runUntil(h.clock, () => h.runner.details().finished === true, 'the task finishing');
    expect(h.runner.state).to.equal('RUNNING');
    expect(h.clock.sleeps).to.deep.equal([300]);
    expect(h.acked).to.deep.equal([{ topic: 'out', values: ['{"line":1}'] }]);
    expect(h.storedOffset()).to.deep.equal({ line: 1 });
    await h.runner.stop();
  });

  it('with errors.tolerance=all dead-letters a record the broker refuses as too large and writes the others', async () => {
    const big = 'x'.repeat(1000);
    const h = harness({
      config: { 'errors.tolerance': 'all', 'errors.deadletterqueue.topic.name': 'dlq' },
      polls: [[record(1), record(2, { big }), record(3)]],
      onSend: (_call, batch) => {
        const sizes = (batch.topicMessages ?? []).flatMap((t) =>
          t.messages.map((m) => String(m.value).length),
        );
        if ((batch.topicMessages ?? [])[0]?.topic === 'out' && sizes.some((s) => s > 500)) throw tooLarge();
      },
    });
    await h.runner.start();
    await runUntil(h.clock, () => h.runner.details().finished === true, 'the task finishing');
    expect(h.acked.map((a) => a.topic)).to.deep.equal(['out', 'out', 'dlq']);
    expect(h.acked[0]!.values).to.deep.equal(['{"line":1}']);
    expect(h.acked[1]!.values).to.deep.equal(['{"line":3}']);
    expect(h.acked[2]!.values).to.deep.equal([JSON.stringify({ big })]);
    expect(h.storedOffset()).to.deep.equal({ line: 3 });
    expect(h.runner.state).to.equal('RUNNING');
    await h.runner.stop();
  });

  it('stops promptly while retrying, storing the acknowledged offsets and none of the unacknowledged', async () => {
    const h = harness({
      config: { 'errors.retry.timeout': -1 },
      offsetFlushIntervalMs: 60_000,
      polls: [[record(1)], [record(2)]],
      onSend: (call) => {
        if (call >= 2) throw brokerDown();
      },
    });
    await h.runner.start();
    await runUntil(h.clock, () => h.producer.sendBatchCalls >= 4, 'three failed sends');
    expect(h.storedOffset()).to.equal(undefined); // acknowledged, not flushed yet
    const timeBeforeStop = h.clock.time;
    const first = h.runner.stop();
    expect(h.runner.stop()).to.equal(first);
    await first; // no sleep fired: the retry wait ended with the stop
    expect(h.clock.time).to.equal(timeBeforeStop);
    expect(h.storedOffset()).to.deep.equal({ line: 1 });
    expect(h.task.stopped).to.equal(true);
    expect(h.producer.disconnected).to.equal(true);
    expect(h.runner.state).to.equal('STOPPED');
    expect(h.states).to.deep.equal(['RUNNING', 'STOPPED']);
  });

  it('rejects a stop whose task.stop hangs once the stop deadline passed, after closing the producer', async () => {
    const h = harness({
      shutdownTimeoutMs: 5_000,
      polls: [[record(1)]],
      taskStop: () => new Promise<void>(() => undefined),
    });
    await h.runner.start();
    await runUntil(h.clock, () => h.runner.details().finished === true, 'the task finishing');
    const stopStartedAt = h.clock.time;
    let settled = false;
    const stopping = h.runner.stop().finally(() => (settled = true));
    await settle();
    expect(settled, 'stop waits for the hanging task.stop until the deadline').to.equal(false);
    expect(h.clock.pending).to.deep.equal([5_000]);
    h.clock.fireNext();
    const error = await rejection(stopping);
    expect(h.clock.time - stopStartedAt).to.equal(5_000);
    expect(error.code).to.equal('TASK_STOP_FAILED');
    expect(error.message).to.contain('stopping the task did not finish within the stop');
    expect(error.message).to.contain('closing the producer was started but not awaited');
    expect(h.producer.disconnected).to.equal(true);
    expect(h.storedOffset()).to.deep.equal({ line: 1 });
    expect(h.runner.state).to.equal('STOPPED');
    expect(await rejection(h.runner.stop())).to.equal(error);
  });

  it('fails the task, not the process, when the offset file cannot be written', async () => {
    const h = harness({ polls: [[record(1)]] });
    mkdirSync(`${h.offsetFile}.tmp`); // the store's temporary file cannot be created
    await h.runner.start();
    await runUntil(h.clock, () => h.runner.state === 'FAILED', 'the task failing');
    expect(h.runner.trace).to.match(
      /^FatalError \[OFFSET_STORE_WRITE_FAILED\]: cannot write the offset file/,
    );
    expect(h.acked).to.have.length(1);
    // The stop reports that the acknowledged offset could still not be stored.
    const error = await rejection(h.runner.stop());
    expect(error.code).to.equal('TASK_STOP_FAILED');
    expect(error.message).to.contain('storing source offsets: cannot write the offset file');
    expect(h.task.stopped).to.equal(true);
    expect(h.producer.disconnected).to.equal(true);
    expect(h.runner.state).to.equal('FAILED');
  });
});
