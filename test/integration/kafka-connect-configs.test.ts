// Existing Kafka Connect connector configs, in Connect's REST shape and with Connect's class names
// (connector, converters, transforms), run unchanged on our worker against the real stack.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { AvroConverter, CachedSchemaRegistry, parseAvroSchema } from '../../runtime/converters/index.js';
import type { ConnectError } from '../../runtime/errors.js';
import { createTopic, producePartitions, readTopic } from '../helpers/kafka-topics.js';
import { registryUrl, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const orderSchema = {
  type: 'record',
  name: 'Order',
  namespace: 'com.example',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'customer', type: 'string' },
    { name: 'amount', type: 'double' },
    { name: 'pin', type: 'string' },
  ],
};

async function rest(base: string, method: string, path: string, body?: unknown) {
  const response = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

describe('existing Kafka Connect connector configs', function () {
  this.timeout(120_000);

  it("run unchanged: Confluent's AvroConverter with its own registry URL, StringConverter keys and a transforms chain", async () => {
    // No worker registry: the connector's value.converter.schema.registry.url is the only one.
    const worker = await startTestWorker({ 'schema.registry.url': '' });
    const topic = uniqueName('connect-orders');
    const out = join(worker.dir, 'orders.jsonl');
    try {
      await createTopic(topic, 1);
      const producerRegistry = new SchemaRegistry({ host: registryUrl });
      const { id } = await producerRegistry.register(
        { type: SchemaType.AVRO, schema: JSON.stringify(orderSchema) },
        { subject: `${topic}-value` },
      );
      const orders = [
        { id: 1, customer: 'ada', amount: 12.5, pin: '1111' },
        { id: 2, customer: 'bob', amount: 7.25, pin: '2222' },
        { id: 3, customer: 'cy', amount: 100, pin: '3333' },
      ];
      await producePartitions(topic, [
        await Promise.all(
          orders.map(async (o) => ({
            key: `order-${o.id}`,
            value: await producerRegistry.encode(id, o),
            headers: {},
            timestamp: String(Date.now()),
          })),
        ),
      ]);

      // A connector config as Kafka Connect takes it (REST shape, every value a string).
      const config = {
        'connector.class': 'org.apache.kafka.connect.file.FileStreamSinkConnector',
        'tasks.max': '1',
        topics: topic,
        file: out,
        'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
        'value.converter': 'io.confluent.connect.avro.AvroConverter',
        'value.converter.schema.registry.url': registryUrl,
        'value.converter.auto.register.schemas': 'false',
        transforms: 'addSource,dropPin',
        'transforms.addSource.type': 'org.apache.kafka.connect.transforms.InsertField$Value',
        'transforms.addSource.static.field': 'source',
        'transforms.addSource.static.value': 'orders-db',
        'transforms.dropPin.type': 'org.apache.kafka.connect.transforms.ReplaceField$Value',
        'transforms.dropPin.exclude': 'pin',
        'transforms.dropPin.renames': 'amount:total',
      };
      const created = await rest(worker.url, 'POST', '/connectors', { name: 'orders-sink', config });
      expect(created.status, JSON.stringify(created.body)).to.equal(201);

      const lines = await waitFor(
        () => {
          if (!existsSync(out)) return undefined;
          const text = readFileSync(out, 'utf8').trimEnd().split('\n');
          return text.length >= orders.length ? text : undefined;
        },
        60_000,
        `${orders.length} lines in ${out}`,
      );
      // What Kafka Connect's chain makes of each value: pin dropped, amount renamed in place,
      // the static field appended; the sink writes one JSON line per value.
      expect(lines).to.deep.equal([
        '{"id":1,"customer":"ada","total":12.5,"source":"orders-db"}',
        '{"id":2,"customer":"bob","total":7.25,"source":"orders-db"}',
        '{"id":3,"customer":"cy","total":100,"source":"orders-db"}',
      ]);

      const echoed = await rest(worker.url, 'GET', '/connectors/orders-sink/config');
      expect(echoed.body).to.deep.equal({ ...config, name: 'orders-sink' });
      const status = (await rest(worker.url, 'GET', '/connectors/orders-sink/status')).body as {
        tasks: Array<{ state: string }>;
      };
      expect(status.tasks.map((t) => t.state)).to.deep.equal(['RUNNING']);
    } finally {
      await worker.stop();
    }
  });

  it("carry Connect schemas through JsonConverter: a processor's output is byte for byte what Connect wrote", async () => {
    const worker = await startTestWorker();
    const input = uniqueName('connect-json-in');
    const output = uniqueName('connect-json-out');
    try {
      await createTopic(input, 1);
      // Envelopes exactly as Kafka Connect's JsonConverter (schemas.enable=true) writes them.
      const schema = JSON.stringify({
        type: 'struct',
        fields: [
          { type: 'int8', optional: false, field: 'level' },
          { type: 'int64', optional: false, field: 'id' },
          { type: 'string', optional: true, field: 'name' },
          { type: 'bytes', optional: false, field: 'raw' },
          {
            type: 'bytes',
            optional: false,
            name: 'org.apache.kafka.connect.data.Decimal',
            version: 1,
            parameters: { scale: '2' },
            field: 'price',
          },
          {
            type: 'int64',
            optional: false,
            name: 'org.apache.kafka.connect.data.Timestamp',
            version: 1,
            field: 'at',
          },
          {
            type: 'map',
            keys: { type: 'int32', optional: false },
            values: { type: 'string', optional: false },
            optional: false,
            field: 'labels',
          },
        ],
        optional: false,
        name: 'com.example.Event',
      });
      const values = [
        `{"schema":${schema},"payload":{"level":3,"id":9223372036854775807,"name":"first","raw":"AAEC/w==","price":"MDk=","at":1764547200000,"labels":[[1,"a"],[2,"b"]]}}`,
        `{"schema":${schema},"payload":{"level":-1,"id":-9007199254740993,"name":null,"raw":"","price":"/4A=","at":0,"labels":[]}}`,
        '{"schema":null,"payload":{"free":"form","n":12345678901234567890}}',
      ];
      await producePartitions(input, [
        values.map((value, i) => ({
          key: `k${i}`,
          value: Buffer.from(value),
          headers: {},
          timestamp: String(Date.now()),
        })),
      ]);
      const config = {
        'connector.class': 'PassThrough',
        topics: input,
        'output.topic': output,
        'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
        'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      };
      const created = await rest(worker.url, 'POST', '/connectors', { name: 'json-pass', config });
      expect(created.status, JSON.stringify(created.body)).to.equal(201);

      const records = await readTopic(output, values.length, 60_000);
      expect(records.map((r) => r.value!.toString())).to.deep.equal(values);
      expect(records.map((r) => r.key)).to.deep.equal(['k0', 'k1', 'k2']);
    } finally {
      await worker.stop();
    }
  });

  it('with auto.register.schemas=false find an already registered schema (or the latest version) in the real registry and never register one', async () => {
    const topic = uniqueName('connect-lookup');
    const type = parseAvroSchema(orderSchema);
    const plain = new SchemaRegistry({ host: registryUrl });
    const writer = new AvroConverter(new CachedSchemaRegistry(registryUrl), {
      isKey: false,
      autoRegister: false,
    });
    const refused = await writer.prepareEncode(topic, type).then(
      () => undefined,
      (e: ConnectError) => e,
    );
    expect(refused?.code).to.equal('SCHEMA_INCOMPATIBLE');
    expect(refused?.message).to.include(`not registered under subject ${topic}-value`);
    const { id } = await plain.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(orderSchema) },
      { subject: `${topic}-value` },
    );
    await writer.prepareEncode(topic, type);
    const bytes = writer.fromConnect(topic, { id: 1, customer: 'a', amount: 1, pin: 's' }, type)!;
    expect(bytes.readInt32BE(1)).to.equal(id);
    expect(await plain.getLatestSchemaId(`${topic}-value`)).to.equal(id);

    // use.latest.version: a newer version (a field with a default) is what the values are written with.
    const newer = {
      ...orderSchema,
      fields: [...orderSchema.fields, { name: 'channel', type: 'string', default: 'web' }],
    };
    const { id: newerId } = await plain.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(newer) },
      { subject: `${topic}-value` },
    );
    const latest = new AvroConverter(new CachedSchemaRegistry(registryUrl), {
      isKey: false,
      autoRegister: false,
      useLatestVersion: true,
    });
    await latest.prepareEncode(topic, type);
    const written = latest.fromConnect(topic, { id: 2, customer: 'b', amount: 2, pin: 't' }, type)!;
    expect(written.readInt32BE(1)).to.equal(newerId);
    expect({ ...(await plain.decode(written)) }).to.deep.equal({
      id: 2,
      customer: 'b',
      amount: 2,
      pin: 't',
      channel: 'web',
    });
  });
});
