// The worker behind the new REST paths: active topics recorded from what a task's Kafka clients
// move (not the DLQ), log levels reaching the task loggers, and Kafka Connect 4.1's status
// `version`, task `task.class` and plugin listing. Real Worker, fake runners and a fake Kafka.
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
import { Worker, type RunnerFactoryInput } from '../../runtime/worker.js';
import { FakeRunnerFactory } from '../helpers/fake-runner.js';

/** Consumers deliver one batch of `in` when run; producers acknowledge every send. */
const fakeKafka = {
  consumer: () => ({
    run: async (config: { eachBatch: (payload: { batch: unknown }) => Promise<void> }) =>
      config.eachBatch({ batch: { topic: 'in', messages: [{}] } }),
  }),
  producer: () => ({ send: async () => [], sendBatch: async () => [] }),
} as unknown as Kafka;

const passThrough = (extra: Record<string, string> = {}) => ({
  'connector.class': 'PassThrough',
  topics: 'in',
  'output.topic': 'out',
  'key.converter': 'string',
  'value.converter': 'string',
  'tasks.max': '1',
  ...extra,
});

async function refusal(action: () => unknown): Promise<HerderError> {
  try {
    await action();
  } catch (error) {
    expect(error).to.be.instanceOf(HerderError);
    return error as HerderError;
  }
  throw new Error('expected a HerderError');
}

describe('Worker: active topics, log levels and Kafka Connect 4.1 shapes', () => {
  let deps: RunnerFactoryInput[];
  let worker: Worker;

  function makeWorker(topicTracking?: { enable: boolean; allowReset: boolean }) {
    const factory = new FakeRunnerFactory();
    deps = [];
    worker = new Worker({
      workerId: 'w',
      kafka: fakeKafka,
      plugins: PluginRegistry.of(builtinPlugins),
      metricsRegistry: new Registry(),
      logger: pino({ level: 'info' }, { write: () => undefined }),
      settings: {
        workerId: 'w',
        offsetFlushIntervalMs: 1_000,
        partitionsConcurrency: 1,
        shutdownTimeoutMs: 1_000,
        maxRecordsPerCall: 500,
        consumerOverrides: {},
        producerOverrides: {},
      },
      schemaRegistryUrl: undefined,
      offsetStoreFile: join(mkdtempSync(join(tmpdir(), 'infer-connect-admin-')), 'offsets.json'),
      runnerFactory: (input) => {
        deps.push(input);
        return factory.create(input);
      },
      topicTracking,
      now: () => 1234,
    });
  }

  beforeEach(() => makeWorker());

  it('lists the topics a task consumed and produced to, not its dead-letter topic, until reset or delete', async () => {
    await worker.putConnectorConfig(
      'c',
      passThrough({ 'errors.tolerance': 'all', 'errors.deadletterqueue.topic.name': 'dlq' }),
      false,
    );
    expect(worker.connectorActiveTopics('c')).to.deep.equal({ topics: [] });
    const { kafka } = deps[0]!;
    await kafka.consumer({ groupId: 'connect-c' }).run({ eachBatch: async () => undefined });
    const producer = kafka.producer();
    await producer.send({ topic: 'out', messages: [] });
    await producer.sendBatch({ topicMessages: [{ topic: 'dlq', messages: [] }] });
    expect(worker.connectorActiveTopics('c')).to.deep.equal({ topics: ['in', 'out'] });
    worker.resetConnectorActiveTopics('c');
    expect(worker.connectorActiveTopics('c')).to.deep.equal({ topics: [] });
    await producer.send({ topic: 'out', messages: [] });
    await worker.deleteConnector('c');
    expect(worker.connectorActiveTopics('c')).to.deep.equal({ topics: [] });
  });

  it('refuses topics with 403 when tracking is off, and resets when resets are off', async () => {
    makeWorker({ enable: true, allowReset: false });
    expect((await refusal(() => worker.resetConnectorActiveTopics('c'))).httpStatus).to.equal(403);
    makeWorker({ enable: false, allowReset: true });
    const error = await refusal(() => worker.connectorActiveTopics('c'));
    expect([error.httpStatus, error.code, error.message]).to.deep.equal([
      403,
      'TOPIC_TRACKING_DISABLED',
      'Topic tracking is disabled.',
    ]);
  });

  it('sets a connector’s task loggers by its namespace and answers what changed', async () => {
    await worker.putConnectorConfig('c', passThrough(), false);
    const taskLogger = deps[0]!.logger;
    expect(worker.loggerLevel('connectors.c')).to.deep.equal({ level: 'INFO', last_modified: null });
    expect(worker.setLoggerLevel('connectors.c', 'debug')).to.deep.equal(['connectors.c']);
    expect(taskLogger.level).to.equal('debug');
    expect(worker.loggerLevels()).to.deep.equal({
      'connectors.c': { level: 'DEBUG', last_modified: 1234 },
      root: { level: 'INFO', last_modified: null },
    });
    // A restarted task gets a new logger at the level that was set.
    await worker.restartTask('c', 0);
    expect(deps.at(-1)!.logger.level).to.equal('debug');
    expect((await refusal(() => worker.setLoggerLevel('root', 'LOUD'))).httpStatus).to.equal(400);
    expect((await refusal(() => worker.loggerLevel('nope'))).httpStatus).to.equal(404);
  });

  it('answers status with versions, task configs with task.class, and lists transforms and converters on request', async () => {
    await worker.putConnectorConfig('c', passThrough(), false);
    const version = builtinPlugins.find((p) => p.name === 'PassThrough')!.version;
    const status = worker.connectorStatus('c');
    expect([status.connector.version, ...status.tasks.map((t) => t.version)]).to.deep.equal([
      version,
      version,
    ]);
    expect(worker.taskConfigs('c')[0]!.config).to.include({ 'task.class': 'PassThrough', 'task.id': '0' });
    const all = worker.plugins(false);
    expect(all).to.deep.include({
      class: 'org.apache.kafka.connect.transforms.InsertField$Value',
      type: 'transformation',
      version: '0.1.0',
    });
    expect(all).to.deep.include({
      class: 'org.apache.kafka.connect.transforms.predicates.HasHeaderKey',
      type: 'predicate',
      version: '0.1.0',
    });
    expect(all).to.deep.include({
      class: 'org.apache.kafka.connect.json.JsonConverter',
      type: 'converter',
      version: '0.1.0',
    });
    expect(worker.plugins().every((p) => ['source', 'sink', 'processor'].includes(p.type))).to.equal(true);
  });
});
