import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { defineConfig, type SourcePlugin, type SourceRecord } from '../../runtime/api.js';
import { parseConnectorConfig } from '../../runtime/config/connector-config.js';
import { createConverter } from '../../runtime/converters/index.js';
import { FileOffsetStore } from '../../runtime/offset-store.js';
import { SourceTaskRunner } from '../../runtime/source-task-runner.js';
import { RuntimeMetrics } from '../../runtime/task-metrics.js';
import { FakeKafka } from '../helpers/fake-kafka.js';

const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

const line = (n: number, value: unknown): SourceRecord => ({
  topic: 'out',
  value,
  sourcePartition: { file: 'in.csv' },
  sourceOffset: { line: n },
});

/** A source runner on the fake Kafka whose task polls `records` once, then finishes. */
async function runSource(records: SourceRecord[], config: Record<string, unknown>) {
  const kafka = new FakeKafka();
  kafka.topics.set('out', { partitions: 1 });
  const offsetFile = join(mkdtempSync(join(tmpdir(), 'transforms-source-')), 'offsets.json');
  const polls: Array<SourceRecord[] | null> = [records];
  const plugin: SourcePlugin = {
    kind: 'source',
    name: 'ScriptedSource',
    version: '1',
    description: 'test',
    config: defineConfig([]),
    createTask: () => ({ poll: async () => polls.shift() ?? null }),
  };
  const { config: parsed, problems } = parseConnectorConfig(plugin, {
    name: 'src',
    'connector.class': 'ScriptedSource',
    'value.converter': 'json',
    ...config,
  });
  if (!parsed) throw new Error(JSON.stringify(problems));
  const states: string[] = [];
  const registry = new Registry();
  const runner = new SourceTaskRunner({
    kafka: kafka as unknown as Kafka,
    connectorName: 'src',
    taskId: 0,
    plugin,
    config: parsed,
    settings: {
      workerId: 'w',
      offsetFlushIntervalMs: 0,
      partitionsConcurrency: 1,
      shutdownTimeoutMs: 2_000,
      maxRecordsPerCall: 100,
      consumerOverrides: {},
      producerOverrides: {},
    },
    keyConverter: createConverter('string', { isKey: true, registry: undefined, schemasEnable: false }),
    valueConverter: createConverter('json', { isKey: false, registry: undefined, schemasEnable: false }),
    metrics: new RuntimeMetrics(registry),
    registry,
    logger: pino({ level: 'silent' }),
    offsets: new FileOffsetStore(offsetFile),
    onStateChange: (state) => states.push(state),
    now: () => 1_000,
    // Nothing here waits on time: a sleep ends only when it is interrupted.
    sleep: (_ms, signal) =>
      new Promise<boolean>((resolve) =>
        signal.addEventListener('abort', () => resolve(false), { once: true }),
      ),
  });
  await runner.start();
  await settle();
  const sent = kafka.producers.flatMap((p) => p.sent);
  const stored = () => new FileOffsetStore(offsetFile).get('src', { file: 'in.csv' });
  return { runner, sent, states, stored };
}

const EXTRACT = {
  transforms: 'extract',
  'transforms.extract.type': 'org.apache.kafka.connect.transforms.ExtractField$Value',
  'transforms.extract.field': 'a',
};

describe('transforms on source records', () => {
  it('apply before the converter; a record a transform refuses goes to the DLQ with stage TRANSFORMATION under tolerance all', async () => {
    const { runner, sent, stored } = await runSource(
      [line(1, { a: 1 }), line(2, 'text'), line(3, { a: 3 })],
      {
        ...EXTRACT,
        'errors.tolerance': 'all',
        'errors.deadletterqueue.topic.name': 'dlq',
        'errors.deadletterqueue.topic.replication.factor': 1,
        'errors.deadletterqueue.context.headers.enable': true,
      },
    );
    await runner.stop();
    expect(sent.filter((s) => s.topic === 'out').map((s) => String(s.message.value))).to.deep.equal([
      '1',
      '3',
    ]);
    const letters = sent.filter((s) => s.topic === 'dlq');
    expect(letters).to.have.length(1);
    const headers = letters[0]!.message.headers as Record<string, string>;
    expect(headers['__connect.errors.stage']).to.equal('TRANSFORMATION');
    expect(headers['__connect.errors.class.name']).to.equal(
      'org.apache.kafka.connect.transforms.ExtractField$Value',
    );
    expect(headers['__connect.errors.error.code']).to.equal('TRANSFORM_FAILED');
    expect(stored()).to.deep.equal({ line: 3 });
  });

  it('fail the task on such a record under errors.tolerance=none, after writing the ones before it', async () => {
    const { runner, sent, states, stored } = await runSource(
      [line(1, { a: 1 }), line(2, 'text'), line(3, { a: 3 })],
      EXTRACT,
    );
    expect(states).to.include('FAILED');
    expect(runner.trace).to.contain('TRANSFORM_FAILED');
    expect(sent.map((s) => String(s.message.value))).to.deep.equal(['1']);
    await runner.stop().catch(() => undefined);
    expect(stored()).to.deep.equal({ line: 1 });
  });

  it('store the source offset of records a Filter dropped', async () => {
    const { runner, sent, stored } = await runSource([line(1, { a: 1 }), line(2, { a: 2 })], {
      transforms: 'drop',
      'transforms.drop.type': 'Filter',
    });
    await runner.stop();
    expect(sent).to.deep.equal([]);
    expect(stored()).to.deep.equal({ line: 2 });
  });

  it('write the topic, key, value and headers the transforms produced', async () => {
    const { runner, sent } = await runSource([line(1, 'hello')], {
      transforms: 'hoist,route,header',
      'transforms.hoist.type': 'HoistField$Value',
      'transforms.hoist.field': 'line',
      'transforms.route.type': 'RegexRouter',
      'transforms.route.regex': 'out',
      'transforms.route.replacement': 'out',
      'transforms.header.type': 'InsertHeader',
      'transforms.header.header': 'via',
      'transforms.header.value.literal': 'smt',
    });
    await runner.stop();
    expect(sent).to.have.length(1);
    expect(JSON.parse(String(sent[0]!.message.value))).to.deep.equal({ line: 'hello' });
    expect(String((sent[0]!.message.headers as Record<string, Buffer>)['via'])).to.equal('smt');
  });
});
