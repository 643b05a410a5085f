import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import type { KafkaMessage } from 'kafkajs';
import { passThroughPlugin } from '../../connectors/passthrough/passthrough.js';
import { AvroConverter } from '../../runtime/converters/avro-converter.js';
import { createConverter } from '../../runtime/converters/index.js';
import { CachedSchemaRegistry, parseAvroSchema } from '../../runtime/converters/schema-registry.js';
import { RecordPipeline } from '../../runtime/record-pipeline.js';
import { createTransformChain } from '../../runtime/transforms/index.js';
import { readTopic } from '../helpers/kafka-topics.js';
import { registryUrl, uniqueName } from '../helpers/stack.js';
import { startTestWorker } from '../helpers/worker.js';

/** The registry's schema for `id` and the decoded body of a Confluent-framed Avro payload. */
async function decode(registry: CachedSchemaRegistry, framed: Buffer) {
  expect(framed[0]).to.equal(0);
  const id = framed.readInt32BE(1);
  const schema = await registry.schemaById(id);
  if (!('type' in schema)) throw new Error(`schema id ${id} is not readable: ${JSON.stringify(schema)}`);
  return {
    id,
    schema: JSON.parse(JSON.stringify(schema.type.schema({ exportAttrs: true }))),
    value: schema.type.fromBuffer(framed.subarray(5)),
  };
}

async function latestId(subject: string): Promise<number> {
  const answer = await fetch(`${registryUrl}/subjects/${encodeURIComponent(subject)}/versions/latest`);
  expect(answer.status, `subject ${subject}`).to.equal(200);
  return ((await answer.json()) as { id: number }).id;
}

describe('Single Message Transforms on the real stack', function () {
  this.timeout(120_000);

  it('FileSource with HoistField and InsertField writes Avro registered under the derived schema', async () => {
    const worker = await startTestWorker();
    const topic = uniqueName('smt-file');
    try {
      const file = join(worker.dir, 'people.jsonl');
      writeFileSync(file, '{"name":"ada","age":36}\n{"name":"alan","age":41}\n');
      const schemaFile = join(worker.dir, 'person.avsc');
      writeFileSync(
        schemaFile,
        JSON.stringify({
          type: 'record',
          name: 'Person',
          fields: [
            { name: 'name', type: 'string' },
            { name: 'age', type: 'int' },
          ],
        }),
      );
      await worker.worker.putConnectorConfig(
        'smt-file-source',
        {
          'connector.class': 'FileSource',
          file,
          format: 'jsonl',
          'value.schema.file': schemaFile,
          topic,
          'value.converter': 'avro',
          transforms: 'hoist,origin',
          'transforms.hoist.type': 'org.apache.kafka.connect.transforms.HoistField$Value',
          'transforms.hoist.field': 'person',
          'transforms.origin.type': 'InsertField$Value',
          'transforms.origin.static.field': 'origin!',
          'transforms.origin.static.value': 'people.jsonl',
          'transforms.origin.topic.field': 'source_topic',
        },
        false,
      );
      const records = await readTopic(topic, 2);
      const registry = new CachedSchemaRegistry(registryUrl);
      const decoded = await Promise.all(records.map((r) => decode(registry, r.value!)));
      expect(decoded.map((d) => ({ ...d.value }))).to.deep.equal([
        { person: { name: 'ada', age: 36 }, source_topic: topic, origin: 'people.jsonl' },
        { person: { name: 'alan', age: 41 }, source_topic: topic, origin: 'people.jsonl' },
      ]);
      expect(decoded[0]!.schema.name).to.equal('io.confluent.connect.avro.ConnectDefault');
      expect(decoded[0]!.schema.fields.map((f: { name: string }) => f.name)).to.deep.equal([
        'person',
        'source_topic',
        'origin',
      ]);
      // `origin!` is required; `source_topic` (no suffix) optional, as Kafka Connect's InsertField.
      expect(decoded[0]!.schema.fields[1].type).to.deep.equal(['null', 'string']);
      expect(decoded[0]!.schema.fields[2].type).to.equal('string');
      expect(decoded[0]!.id).to.equal(await latestId(`${topic}-value`));
      expect(worker.worker.connectorStatus('smt-file-source').tasks[0]!.state).to.equal('RUNNING');
    } finally {
      await worker.stop();
    }
  });

  it('a processor with ReplaceField, InsertField and Cast on Avro input writes Avro under the registered derived schema', async () => {
    // The consumed-record path (RecordPipeline, as the consumer task runner drives it) with the
    // real schema registry: decode, transform, process (PassThrough), encode and register.
    const registry = new CachedSchemaRegistry(registryUrl);
    const input = uniqueName('smt-in');
    const output = uniqueName('smt-out');
    const inputType = parseAvroSchema({
      type: 'record',
      name: 'Order',
      namespace: 'shop',
      fields: [
        { name: 'id', type: 'long' },
        { name: 'amount', type: 'double' },
        { name: 'ssn', type: 'string' },
      ],
    });
    const id = await registry.register(`${input}-value`, inputType);
    const framed = (value: unknown) => {
      const body = inputType.toBuffer(value);
      const out = Buffer.alloc(5 + body.length);
      out.writeInt32BE(id, 1);
      body.copy(out, 5);
      return out;
    };
    const message = (offset: number, value: unknown): KafkaMessage => ({
      offset: String(offset),
      key: Buffer.from(`k${offset}`),
      value: framed(value),
      timestamp: '1700000000000',
      attributes: 0,
      headers: {},
    });
    const task = passThroughPlugin.createTask({ config: { getString: () => output } } as never);
    const pipeline = new RecordPipeline({
      plugin: passThroughPlugin,
      task: () => task,
      keyConverter: createConverter('string', { isKey: true }),
      valueConverter: new AvroConverter(registry, { isKey: false }),
      now: () => Date.now(),
      partitionFor: () => undefined,
      fits: () => ({ fits: true, size: 0, limit: 1 }),
      maxRecordBytes: 1_000_000,
      transforms: createTransformChain({
        transforms: 'drop,meta,cast',
        'transforms.drop.type': 'org.apache.kafka.connect.transforms.ReplaceField$Value',
        'transforms.drop.exclude': 'ssn',
        'transforms.drop.renames': 'amount:total',
        'transforms.meta.type': 'org.apache.kafka.connect.transforms.InsertField$Value',
        'transforms.meta.offset.field': 'source_offset',
        'transforms.cast.type': 'org.apache.kafka.connect.transforms.Cast$Value',
        'transforms.cast.spec': 'id:string,total:float32',
      }),
    });
    const result = await pipeline.run(input, 0, [
      message(10, { id: 1, amount: 9.5, ssn: '123' }),
      message(11, { id: 2, amount: 20.25, ssn: '456' }),
    ]);
    expect(result.failures).to.deep.equal([]);
    const decoded = await Promise.all(result.outputs.map((o) => decode(registry, o.message.value as Buffer)));
    expect(decoded.map((d) => ({ ...d.value }))).to.deep.equal([
      { id: '1', total: 9.5, source_offset: 10 },
      { id: '2', total: 20.25, source_offset: 11 },
    ]);
    expect(decoded[0]!.schema).to.deep.include({ name: 'shop.Order', type: 'record' });
    expect(decoded[0]!.schema.fields).to.deep.equal([
      { name: 'id', type: 'string' },
      { name: 'total', type: 'float' },
      { name: 'source_offset', type: ['null', 'long'], default: null },
    ]);
    expect(decoded[0]!.id).to.equal(await latestId(`${output}-value`));
    expect(decoded[0]!.id).to.not.equal(id);
  });
});
