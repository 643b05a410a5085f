import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { registryUrl, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const censusSchema = readFileSync(new URL('../../schemas/census.avsc', import.meta.url), 'utf8');
const row = (age: number) => ({
  age,
  workclass: 'Private',
  fnlwgt: 1000 + age,
  education: 'Bachelors',
  education_num: 13,
  marital_status: 'Never-married',
  occupation: 'Sales',
  relationship: 'Not-in-family',
  race: 'White',
  sex: 'Female',
  capital_gain: 0,
  capital_loss: 0,
  hours_per_week: 40,
  native_country: 'United-States',
  income: '<=50K',
});

/** Good records around four kinds of poison, all in one partition. */
async function producePoisonedTopic(topic: string) {
  const registry = new SchemaRegistry({ host: registryUrl });
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: censusSchema },
    { subject: `${topic}-value` },
  );
  const good = async (age: number) => ({ key: `k${age}`, value: await registry.encode(id, row(age)) });
  const truncated = (await registry.encode(id, row(99))).subarray(0, 9);
  const unknownId = Buffer.from(await registry.encode(id, row(98)));
  unknownId.writeInt32BE(987654321, 1);
  const messages = [
    await good(20),
    {
      key: 'bad-magic',
      value: Buffer.from([0x07, 0, 0, 0, 1, 2, 3]),
      headers: { origin: 'test' } as IHeaders,
    },
    await good(21),
    { key: 'unknown-id', value: unknownId },
    await good(22),
    { key: 'truncated', value: truncated },
    { key: 'empty', value: Buffer.alloc(0) },
    await good(23),
  ];
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: messages.map((m) => ({ ...m, timestamp: '1700000000000' })) });
  await producer.disconnect();
  return messages;
}

async function readAll(topic: string, count: number): Promise<KafkaMessage[]> {
  const consumer = testKafka().consumer({ groupId: uniqueName('reader') });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: KafkaMessage[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void out.push(message) });
  try {
    await waitFor(() => out.length >= count, 30_000, `${count} records on ${topic}`);
    return out;
  } finally {
    await consumer.disconnect();
  }
}

describe('poison records in an Avro topic', function () {
  this.timeout(120_000);

  it('with errors.tolerance=all, each lands in the DLQ with its original bytes and context headers; good records flow', async () => {
    const input = uniqueName('poison-in');
    const sent = await producePoisonedTopic(input);
    const worker = await startTestWorker();
    try {
      await worker.worker.putConnectorConfig(
        'poison-all',
        {
          'connector.class': 'PassThrough',
          topics: input,
          'output.topic': `${input}-out`,
          'key.converter': 'string',
          'value.converter': 'avro',
          'errors.tolerance': 'all',
          'errors.deadletterqueue.topic.name': `${input}-dlq`,
          'errors.deadletterqueue.topic.replication.factor': 1,
          'errors.deadletterqueue.context.headers.enable': true,
        },
        false,
      );
      const dlq = await readAll(`${input}-dlq`, 4);
      const output = await readAll(`${input}-out`, 4);
      expect(output.map((m) => m.key?.toString())).to.deep.equal(['k20', 'k21', 'k22', 'k23']);
      expect(dlq.map((m) => m.key?.toString())).to.deep.equal([
        'bad-magic',
        'unknown-id',
        'truncated',
        'empty',
      ]);
      for (const letter of dlq) {
        const original = sent.find((s) => s.key === letter.key?.toString())!;
        expect(Buffer.compare(letter.value ?? Buffer.alloc(0), original.value)).to.equal(0);
        expect(letter.timestamp).to.equal('1700000000000');
        const h = (name: string) => letter.headers?.[`__connect.errors.${name}`]?.toString();
        expect(h('topic')).to.equal(input);
        expect(h('partition')).to.equal('0');
        expect(h('connector.name')).to.equal('poison-all');
        expect(h('task.id')).to.equal('0');
        expect(h('stage')).to.equal('VALUE_CONVERTER');
        expect(h('exception.class.name')).to.equal('RecordError');
        expect(h('exception.message')).to.be.a('string').and.not.equal('');
        expect(h('exception.stacktrace')).to.contain('RecordError');
      }
      const offsetOf = (key: string) =>
        dlq.find((m) => m.key?.toString() === key)!.headers!['__connect.errors.offset']!.toString();
      expect([
        offsetOf('bad-magic'),
        offsetOf('unknown-id'),
        offsetOf('truncated'),
        offsetOf('empty'),
      ]).to.deep.equal(['1', '3', '5', '6']);
      expect(dlq[0]!.headers!.origin?.toString()).to.equal('test');
      expect(dlq.map((m) => m.headers!['__connect.errors.error.code']!.toString())).to.deep.equal([
        'AVRO_MAGIC_BYTE',
        'AVRO_UNKNOWN_SCHEMA_ID',
        'AVRO_DECODE_FAILED',
        'AVRO_MAGIC_BYTE',
      ]);
    } finally {
      await worker.stop();
    }
  });

  it('with errors.tolerance=none, the task FAILS with the cause and resumes from the failed offset after the fix', async () => {
    const input = uniqueName('poison-none');
    await producePoisonedTopic(input);
    const worker = await startTestWorker();
    const config = {
      'connector.class': 'PassThrough',
      topics: input,
      'output.topic': `${input}-out`,
      'key.converter': 'string',
      'value.converter': 'avro',
    };
    try {
      await worker.worker.putConnectorConfig('poison-none', config, false);
      const failed = await waitFor(
        () => {
          const task = worker.worker.connectorStatus('poison-none').tasks[0];
          return task?.state === 'FAILED' ? task : undefined;
        },
        30_000,
        'the task to fail',
      );
      expect(failed.trace).to.contain('AVRO_MAGIC_BYTE').and.contain(`${input}-0@1`);
      // Everything before the bad record is written and committed; the bad record is not.
      const committed = await worker.worker.connectorOffsets('poison-none');
      expect(committed.offsets).to.deep.equal([
        { partition: { kafka_topic: input, kafka_partition: 0 }, offset: { kafka_offset: 1 } },
      ]);
      const before = await readAll(`${input}-out`, 1);
      expect(before.map((m) => m.key?.toString())).to.deep.equal(['k20']);

      // The fix: route bad records to a DLQ. The restarted task starts at the failed offset.
      await worker.worker.putConnectorConfig(
        'poison-none',
        {
          ...config,
          'errors.tolerance': 'all',
          'errors.deadletterqueue.topic.name': `${input}-dlq`,
          'errors.deadletterqueue.topic.replication.factor': 1,
        },
        true,
      );
      const dlq = await readAll(`${input}-dlq`, 4);
      expect(dlq.map((m) => m.key?.toString())).to.deep.equal([
        'bad-magic',
        'unknown-id',
        'truncated',
        'empty',
      ]);
      const output = await readAll(`${input}-out`, 4);
      expect(output.map((m) => m.key?.toString())).to.deep.equal(['k20', 'k21', 'k22', 'k23']);
      expect(worker.worker.connectorStatus('poison-none').tasks[0]!.state).to.equal('RUNNING');
    } finally {
      await worker.stop();
    }
  });
});
