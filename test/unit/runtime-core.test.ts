import { expect } from 'chai';
import { KafkaJSConnectionError, type Producer, type ProducerBatch, type ProducerRecord } from 'kafkajs';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../connectors/index.js';
import { backoffDelay, interruptibleSleep } from '../../runtime/backoff.js';
import { DeadLetterQueue } from '../../runtime/dead-letter-queue.js';
import { RecordError, RetriableError, traceOf } from '../../runtime/errors.js';
import { sendInRequests, MAX_REQUEST_BYTES } from '../../runtime/kafka-clients.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { RuntimeMetrics } from '../../runtime/task-metrics.js';

function fakeProducer(fail = false) {
  const sent: ProducerRecord[] = [];
  const batches: ProducerBatch[] = [];
  const producer = {
    send: async (record: ProducerRecord) => {
      if (fail) throw new KafkaJSConnectionError('broker down');
      sent.push(record);
      return [];
    },
    sendBatch: async (batch: ProducerBatch) => {
      if (fail) throw new KafkaJSConnectionError('broker down');
      batches.push(batch);
      for (const { topic, messages } of batch.topicMessages ?? []) sent.push({ topic, messages });
      return [];
    },
  } as unknown as Producer;
  return { producer, sent, batches };
}

describe('retry timing', () => {
  it('backs off exponentially from 300 ms and caps at errors.retry.delay.max.ms', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, 10_000))).to.deep.equal([
      300, 600, 1200, 2400, 4800, 9600, 10_000, 10_000,
    ]);
    expect(backoffDelay(3, 500)).to.equal(500);
  });

  it('ends a backoff sleep early when the task is stopped', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const sleeping = interruptibleSleep(60_000, controller.signal);
    controller.abort();
    expect(await sleeping).to.equal(false);
    expect(Date.now() - started).to.be.below(1000);
  });
});

describe('the dead-letter queue', () => {
  const metrics = () => new RuntimeMetrics(new Registry());
  const labels = { connector: 'c', task: '0' };

  it("keeps the original bytes, headers and timestamp and adds Kafka Connect's context headers", async () => {
    const { producer, sent } = fakeProducer();
    const m = metrics();
    const dlq = new DeadLetterQueue({
      topic: 'dlq',
      contextHeaders: true,
      connectorName: 'c',
      taskId: 0,
      metrics: m,
      labels,
    });
    const error = new RecordError('MODEL_INPUT_MISSING', 'field "age" is null; tensor "age" needs a value', {
      context: { field: 'age', tensor: 'age', 'model.name': 'census' },
    });
    await dlq.send(
      [
        {
          origin: { topic: 'in', partition: 2, offset: '41' },
          key: Buffer.from('k'),
          value: Buffer.from([0, 1, 2]),
          headers: { mine: Buffer.from('x') },
          timestamp: '1700000000000',
          stage: 'TASK_PROCESS',
          className: 'TFServingInference',
          error,
        },
      ],
      producer,
    );
    const message = sent[0]!.messages[0]!;
    expect(sent[0]!.topic).to.equal('dlq');
    expect(message.value).to.deep.equal(Buffer.from([0, 1, 2]));
    expect(message.timestamp).to.equal('1700000000000');
    const headers = message.headers!;
    expect(headers.mine).to.deep.equal(Buffer.from('x'));
    expect(headers).to.include({
      '__connect.errors.topic': 'in',
      '__connect.errors.partition': '2',
      '__connect.errors.offset': '41',
      '__connect.errors.connector.name': 'c',
      '__connect.errors.task.id': '0',
      '__connect.errors.stage': 'TASK_PROCESS',
      '__connect.errors.class.name': 'TFServingInference',
      '__connect.errors.exception.class.name': 'RecordError',
      '__connect.errors.exception.message': error.message,
      '__connect.errors.field': 'age',
      '__connect.errors.tensor': 'age',
      '__connect.errors.model.name': 'census',
      '__connect.errors.error.code': 'MODEL_INPUT_MISSING',
    });
    expect(String(headers['__connect.errors.exception.stacktrace'])).to.contain('RecordError');
    expect((await m.dlqProduceRequests.get()).values[0]!.value).to.equal(1);
  });

  it('writes no context headers when they are disabled', async () => {
    const { producer, sent } = fakeProducer();
    const dlq = new DeadLetterQueue({
      topic: 'dlq',
      contextHeaders: false,
      connectorName: 'c',
      taskId: 0,
      metrics: metrics(),
      labels,
    });
    await dlq.send(
      [{ key: null, value: Buffer.from('v'), stage: 'TASK_POLL', className: 'X', error: new Error('bad') }],
      producer,
    );
    expect(Object.keys(sent[0]!.messages[0]!.headers ?? {})).to.deep.equal([]);
  });

  it('turns a failed write into a retriable error and counts the failure, so the offset is not committed', async () => {
    const { producer } = fakeProducer(true);
    const m = metrics();
    const dlq = new DeadLetterQueue({
      topic: 'dlq',
      contextHeaders: true,
      connectorName: 'c',
      taskId: 0,
      metrics: m,
      labels,
    });
    let thrown: unknown;
    try {
      await dlq.send(
        [{ key: null, value: null, stage: 'TASK_PUT', className: 'X', error: new Error('bad') }],
        producer,
      );
    } catch (error) {
      thrown = error;
    }
    expect(thrown).to.be.instanceOf(RetriableError);
    expect((thrown as RetriableError).code).to.equal('DLQ_PRODUCE_FAILED');
    expect((await m.dlqProduceFailures.get()).values[0]!.value).to.equal(1);
  });
});

describe('producing in requests the broker accepts', () => {
  it('splits a large batch into requests under the size limit, in order', async () => {
    const { producer, batches } = fakeProducer();
    const value = Buffer.alloc(100_000);
    const messages = Array.from({ length: 20 }, (_, i) => ({
      topic: i % 2 ? 'a' : 'b',
      message: { key: String(i), value },
    }));
    await sendInRequests(producer, messages);
    expect(batches.length).to.be.greaterThan(1);
    const keys = batches.flatMap((b) =>
      b.topicMessages!.flatMap((t) => t.messages.map((m) => Number(m.key))),
    );
    expect(keys.sort((x, y) => x - y)).to.deep.equal(Array.from({ length: 20 }, (_, i) => i));
    for (const batch of batches) {
      const bytes = batch
        .topicMessages!.flatMap((t) => t.messages)
        .reduce((s, m) => s + (m.value as Buffer).length, 0);
      expect(bytes).to.be.at.most(MAX_REQUEST_BYTES);
    }
  });
});

describe('the plugin registry', () => {
  it('finds plugins by name or alias and refuses a name clash', () => {
    const registry = PluginRegistry.of(builtinPlugins);
    expect(registry.find('FileSource')?.name).to.equal('FileSource');
    expect(registry.find('org.apache.kafka.connect.file.FileStreamSinkConnector')?.name).to.equal('FileSink');
    expect(registry.find('Nope')).to.equal(undefined);
    expect(registry.unknownPluginMessage('Nope')).to.contain('FileSource');
    expect(registry.unknownPluginMessage('')).to.match(
      /^connector.class is required: set it to one of .*FileSource/,
    );
    expect(() => registry.register({ ...builtinPlugins[0]!, aliases: [] })).to.throw(/already taken/);
  });
});

describe('task traces', () => {
  it('show each error with its code and its causes, as a FAILED task reports them', () => {
    const trace = traceOf(new RetriableError('MODEL_UNAVAILABLE', 'outer', { cause: new Error('inner') }));
    expect(trace).to.match(/^RetriableError \[MODEL_UNAVAILABLE\]: outer/);
    expect(trace).to.contain('Caused by: Error: inner');
  });
});
