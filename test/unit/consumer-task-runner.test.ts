import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSProtocolError, type Kafka } from 'kafkajs';
import { Registry } from 'prom-client';
import { passThroughPlugin } from '../../connectors/passthrough/passthrough.js';
import type { ProcessorPlugin } from '../../runtime/api.js';
import { parseConnectorConfig } from '../../runtime/config/connector-config.js';
import { ConsumerTaskRunner } from '../../runtime/consumer-task-runner.js';
import { createConverter } from '../../runtime/converters/index.js';
import { createLogger } from '../../runtime/logger.js';
import { RuntimeMetrics } from '../../runtime/task-metrics.js';
import { FakeKafka } from '../helpers/fake-kafka.js';

const silent = createLogger('fatal', new Writable({ write: (_c, _e, done) => done() }));

function buildRunner(
  config: Record<string, unknown>,
  options: {
    plugin?: ProcessorPlugin;
    shutdownTimeoutMs?: number;
    kafka?: FakeKafka;
    pausedLagRefreshMs?: number;
  } = {},
) {
  const kafka = options.kafka ?? new FakeKafka();
  if (!kafka.topics.has('in')) kafka.topics.set('in', { partitions: 3 });
  const plugin = options.plugin ?? passThroughPlugin;
  const { config: parsed, problems } = parseConnectorConfig(plugin, {
    name: 'c',
    'connector.class': plugin.name,
    topics: 'in',
    'output.topic': 'out',
    'key.converter': 'string',
    'value.converter': 'string',
    ...config,
  });
  if (!parsed) throw new Error(JSON.stringify(problems));
  const metrics = new RuntimeMetrics(new Registry());
  const runner = new ConsumerTaskRunner({
    kafka: kafka as unknown as Kafka,
    connectorName: 'c',
    taskId: 0,
    plugin,
    config: parsed,
    settings: {
      workerId: 'w',
      offsetFlushIntervalMs: 1000,
      partitionsConcurrency: 1,
      shutdownTimeoutMs: options.shutdownTimeoutMs ?? 2_000,
      maxRecordsPerCall: 500,
      consumerOverrides: {},
      producerOverrides: {},
    },
    keyConverter: createConverter('string', { isKey: true, registry: undefined, schemasEnable: false }),
    valueConverter: createConverter('string', { isKey: false, registry: undefined, schemasEnable: false }),
    metrics,
    registry: new Registry(),
    logger: silent,
    pausedLagRefreshMs: options.pausedLagRefreshMs,
  });
  return { kafka, runner, metrics };
}

function brokerError(type: string, code: number): Error {
  const protocol = new KafkaJSProtocolError({ message: type, type, code, retriable: false } as never);
  return Object.assign(new KafkaJSNonRetriableError(protocol as never), { cause: protocol });
}

const DLQ = {
  'errors.tolerance': 'all',
  'errors.deadletterqueue.topic.name': 'dlq',
  'errors.deadletterqueue.context.headers.enable': 'true',
};

describe('the consumer task runner', () => {
  it('dead-letters a record too large for the output topic and writes its neighbours, without asking the broker', async () => {
    const { kafka, runner } = buildRunner(DLQ);
    kafka.topics.set('out', { partitions: 3, maxMessageBytes: 300 });
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0, 1, 2] });
    const resolved = await consumer.deliver('in', 0, [
      { offset: 0, value: 'a' },
      { offset: 1, value: 'x'.repeat(1000) },
      { offset: 2, value: 'c' },
    ]);
    const producer = kafka.producers[0]!;
    expect(producer.sent.filter((p) => p.topic === 'out').map((p) => String(p.message.value))).to.deep.equal([
      'a',
      'c',
    ]);
    const letters = producer.sent.filter((p) => p.topic === 'dlq');
    expect(letters).to.have.length(1);
    expect(String(letters[0]!.message.value)).to.equal('x'.repeat(1000));
    expect(letters[0]!.message.headers).to.include({
      '__connect.errors.offset': '1',
      '__connect.errors.stage': 'KAFKA_PRODUCE',
      '__connect.errors.error.code': 'KAFKA_RECORD_TOO_LARGE',
    });
    expect(resolved).to.deep.equal(['2']);
    expect(runner.state).to.equal('RUNNING');
    await runner.stop();
  });

  it('dead-letters a consumed record larger than max.record.bytes without decoding it', async () => {
    const { kafka, runner } = buildRunner({ ...DLQ, 'max.record.bytes': 100 });
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0] });
    const resolved = await consumer.deliver('in', 0, [
      { offset: 0, value: 'a' },
      { offset: 1, key: 'k', value: 'y'.repeat(100) },
      { offset: 2, value: 'c' },
    ]);
    const producer = kafka.producers[0]!;
    expect(producer.sent.filter((p) => p.topic === 'out').map((p) => String(p.message.value))).to.deep.equal([
      'a',
      'c',
    ]);
    const [letter] = producer.sent.filter((p) => p.topic === 'dlq');
    expect(String(letter!.message.key)).to.equal('k');
    expect(letter!.message.headers).to.include({
      '__connect.errors.stage': 'KAFKA_CONSUME',
      '__connect.errors.class.name': 'KafkaConsumer',
      '__connect.errors.error.code': 'RECORD_TOO_LARGE',
    });
    expect(resolved).to.deep.equal(['2']);
    await runner.stop();
  });

  it('fails the task on an authorization error after one attempt, instead of redelivering for ever', async () => {
    const { kafka, runner } = buildRunner(DLQ);
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0] });
    kafka.producers[0]!.failures.push(brokerError('TOPIC_AUTHORIZATION_FAILED', 29));
    const resolved = await consumer.deliver('in', 0, [{ offset: 0, value: 'a' }]);
    expect(resolved).to.deep.equal([]);
    expect(runner.state).to.equal('FAILED');
    expect(runner.trace).to.contain('KAFKA_AUTHORIZATION_FAILED');
    expect(kafka.producers[0]!.sendCalls).to.equal(1);
    await runner.stop().catch(() => undefined);
  });

  it('creates a deleted output topic again and writes the chunk, instead of redelivering for ever', async () => {
    const { kafka, runner } = buildRunner({ 'errors.retry.timeout': 10_000, 'errors.retry.delay.max.ms': 1 });
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0] });
    kafka.topics.delete('out');
    const missing = new KafkaJSProtocolError({
      message: 'This server does not host this topic-partition',
      type: 'UNKNOWN_TOPIC_OR_PARTITION',
      code: 3,
      retriable: true,
    } as never);
    kafka.producers[0]!.failures.push(missing);
    const resolved = await consumer.deliver('in', 0, [{ offset: 0, value: 'a' }]);
    expect(kafka.topics.has('out')).to.equal(true);
    expect(kafka.producers[0]!.sent.map((p) => String(p.message.value))).to.deep.equal(['a']);
    expect(resolved).to.deep.equal(['0']);
    await runner.stop();
  });

  it('accepts a pause before its consumer has joined the group and applies it on the join', async () => {
    const { kafka, runner } = buildRunner({});
    const starting = runner.start();
    await runner.pause();
    await starting;
    expect(runner.state).to.equal('PAUSED');
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0, 1, 2] });
    expect([...consumer.paused].sort()).to.deep.equal(['in:0', 'in:1', 'in:2']);
    await runner.resume();
    expect([...consumer.paused]).to.deep.equal([]);
    expect(runner.state).to.equal('RUNNING');
    await runner.stop();
  });

  it('keeps a partition paused by the user when its redelivery time comes', async () => {
    const { kafka, runner } = buildRunner({ 'errors.retry.timeout': 0, 'errors.retry.delay.max.ms': 1 });
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0, 1] });
    kafka.producers[0]!.failures.push(new KafkaJSConnectionError('Connection refused'));
    expect(await consumer.deliver('in', 0, [{ offset: 5, value: 'a' }])).to.deep.equal([]);
    expect(consumer.seeks).to.deep.equal([{ topic: 'in', partition: 0, offset: '5' }]);
    await runner.pause();
    await sleep(50); // the 1 ms redelivery timer fires
    expect([...consumer.paused].sort()).to.deep.equal(['in:0', 'in:1']);
    await runner.resume();
    expect([...consumer.paused]).to.deep.equal([]);
    await runner.stop();
  });

  it('survives a redelivery time that comes while the consumer rebuilds its group, and re-applies state on the join', async () => {
    const { kafka, runner } = buildRunner({ 'errors.retry.timeout': 0, 'errors.retry.delay.max.ms': 1 });
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0] });
    kafka.producers[0]!.failures.push(new KafkaJSConnectionError('Connection refused'));
    await consumer.deliver('in', 0, [{ offset: 0, value: 'a' }]);
    consumer.rebuilding = true; // kafkajs throws from pause/resume/seek now
    await sleep(50);
    consumer.rebuilding = false;
    consumer.join({ in: [0] });
    expect([...consumer.paused]).to.deep.equal([]);
    expect(runner.state).to.equal('RUNNING');
    await runner.stop();
  });

  it('keeps the consumer-lag gauge moving while a partition waits for redelivery', async () => {
    const { kafka, runner, metrics } = buildRunner(
      { 'errors.retry.timeout': 0, 'errors.retry.delay.max.ms': 60_000 },
      { pausedLagRefreshMs: 10 },
    );
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0] });
    kafka.producers[0]!.failures.push(new KafkaJSConnectionError('Connection refused'));
    await consumer.deliver('in', 0, [{ offset: 40, value: 'a' }], 41);
    const lag = async () =>
      (await metrics.consumerLag.get()).values.find((v) => v.labels.partition === '0')?.value;
    expect(await lag()).to.equal(1);
    await sleep(60); // the broker's high watermark (1000 in the fake) is read while paused
    expect(await lag()).to.equal(1000 - 40);
    await runner.stop();
  });

  it('drops the pending redelivery of a partition that moved to another member', async () => {
    const { kafka, runner } = buildRunner({ 'errors.retry.timeout': 0, 'errors.retry.delay.max.ms': 60_000 });
    await runner.start();
    const consumer = await kafka.untilRunning();
    consumer.join({ in: [0, 1] });
    kafka.producers[0]!.failures.push(new KafkaJSConnectionError('Connection refused'));
    await consumer.deliver('in', 0, [{ offset: 0, value: 'a' }]);
    expect(runner.details().paused_partitions).to.deep.equal(['in:0']);
    consumer.join({ in: [1] });
    expect(runner.details().paused_partitions).to.deep.equal([]);
    expect(consumer.paused.has('in:0')).to.equal(false);
    await runner.stop();
  });

  it('bounds the whole stop by one deadline and reports a task that did not stop', async () => {
    const stuck: ProcessorPlugin = {
      ...passThroughPlugin,
      name: 'Stuck',
      createTask: (context) => ({
        ...passThroughPlugin.createTask(context),
        stop: () => new Promise<void>(() => {}),
      }),
    };
    const { kafka, runner } = buildRunner({}, { plugin: stuck, shutdownTimeoutMs: 100 });
    await runner.start();
    await kafka.untilRunning();
    let error: Error | undefined;
    await runner.stop().catch((e: Error) => (error = e));
    expect(error?.message).to.contain('did not stop cleanly').and.contain('stopping the task');
    expect(runner.state).to.equal('STOPPED');
  });

  describe('with processing.guarantee=exactly_once', () => {
    it('writes each input partition through its own transactional producer, with the offsets in the transaction', async () => {
      const { kafka, runner } = buildRunner({ 'processing.guarantee': 'exactly_once' });
      await runner.start();
      const consumer = await kafka.untilRunning();
      consumer.join({ in: [0, 1] });
      await consumer.deliver('in', 0, [
        { offset: 0, value: 'a' },
        { offset: 1, value: 'b' },
      ]);
      await consumer.deliver('in', 1, [{ offset: 7, value: 'c' }]);
      const ids = kafka.producers.map((p) => p.transactionalId).filter(Boolean);
      expect(ids).to.deep.equal(['connect-c-in-0', 'connect-c-in-1']);
      expect(kafka.committed.get('in:0')).to.equal('2');
      expect(kafka.committed.get('in:1')).to.equal('8');
      expect(consumer.commits).to.deep.equal([]); // never outside a transaction
      await runner.stop();
    });

    it('after being fenced, claims the partition again and skips what the newer owner committed', async () => {
      const { kafka, runner } = buildRunner({ 'processing.guarantee': 'exactly_once' });
      await runner.start();
      const consumer = await kafka.untilRunning();
      consumer.join({ in: [0] });
      await consumer.deliver('in', 0, [{ offset: 0, value: 'a' }]);
      // Another worker took the partition over, fenced this task's producer and committed up to 5.
      const other = kafka.producer({ transactionalId: 'connect-c-in-0' });
      await other.connect();
      kafka.committed.set('in:0', '5');
      consumer.join({ in: [0] });
      const resolved = await consumer.deliver('in', 0, [
        { offset: 3, value: 'd' },
        { offset: 4, value: 'e' },
        { offset: 5, value: 'f' },
      ]);
      const mine = kafka.producers.filter((p) => p !== other && p.transactionalId === 'connect-c-in-0');
      expect(mine).to.have.length(2);
      expect(mine[1]!.sent.map((p) => String(p.message.value))).to.deep.equal(['f']);
      expect(resolved).to.deep.equal(['4', '5']);
      expect(kafka.committed.get('in:0')).to.equal('6');
      await runner.stop();
    });

    it('treats a group coordinator that moved while claiming a partition as transient, not fatal', async () => {
      const { kafka, runner } = buildRunner({ 'processing.guarantee': 'exactly_once' });
      await runner.start();
      const consumer = await kafka.untilRunning();
      consumer.join({ in: [0] });
      kafka.adminFailures.push(
        new KafkaJSProtocolError({
          message: 'This is not the correct coordinator for this group',
          type: 'NOT_COORDINATOR_FOR_GROUP',
          code: 16,
          retriable: true,
        } as never),
      );
      expect(await consumer.deliver('in', 0, [{ offset: 0, value: 'a' }])).to.deep.equal([]);
      expect(runner.state).to.equal('RUNNING');
      expect(runner.details().paused_partitions).to.deep.equal(['in:0']);
      // Redelivered: the partition is claimed again and its records written.
      expect(await consumer.deliver('in', 0, [{ offset: 0, value: 'a' }])).to.deep.equal(['0']);
      expect(kafka.committed.get('in:0')).to.equal('1');
      await runner.stop();
    });

    it('is refused with overrides that would break it', () => {
      expect(() =>
        buildRunner({ 'processing.guarantee': 'exactly_once', 'producer.override.acks': '1' }),
      ).to.throw(/exactly_once cannot be correct with producer acks=1/);
    });
  });
});
