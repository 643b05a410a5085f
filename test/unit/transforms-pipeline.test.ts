import { expect } from 'chai';
import type { KafkaMessage } from 'kafkajs';
import type { ConnectRecord, ProcessorPlugin, SinkPlugin } from '../../runtime/api.js';
import { checkConnectorConfig } from '../../runtime/config/connector-config.js';
import { defineConfig } from '../../runtime/config/config-spec.js';
import { AvroConverter } from '../../runtime/converters/avro-converter.js';
import { createConverter } from '../../runtime/converters/index.js';
import {
  CachedSchemaRegistry,
  InMemoryRegistry,
  parseAvroSchema,
} from '../../runtime/converters/schema-registry.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { RecordPipeline } from '../../runtime/record-pipeline.js';
import { createTransformChain, transformConfigProblems } from '../../runtime/transforms/index.js';

const notUsed = (): never => {
  throw new Error('tasks are not created in config tests');
};
const sinkPlugin: SinkPlugin = {
  name: 'CollectSink',
  kind: 'sink',
  version: '1',
  description: 'test',
  config: defineConfig([]),
  createTask: notUsed,
};
const plugins = PluginRegistry.of([sinkPlugin]);
const base = { name: 'c', 'connector.class': 'CollectSink', topics: 'in', 'value.converter': 'json' };

describe('transforms config', () => {
  it('accepts Kafka Connect transform and predicate keys', () => {
    const { problems, config } = checkConnectorConfig(plugins, {
      ...base,
      transforms: 'route,mask',
      'transforms.route.type': 'org.apache.kafka.connect.transforms.RegexRouter',
      'transforms.route.regex': '(.*)',
      'transforms.route.replacement': '$1-copy',
      'transforms.mask.type': 'MaskField$Value',
      'transforms.mask.fields': 'ssn',
      'transforms.mask.predicate': 'pii',
      'transforms.mask.negate': 'false',
      predicates: 'pii',
      'predicates.pii.type': 'TopicNameMatches',
      'predicates.pii.pattern': 'in',
    });
    expect(problems).to.deep.equal([]);
    expect(config).to.not.equal(undefined);
  });

  it('reports an unknown class, a missing key and an undeclared predicate, each against its key', () => {
    const { problems, config } = checkConnectorConfig(plugins, {
      ...base,
      transforms: 'a,b,c',
      'transforms.a.type': 'com.example.Nope',
      'transforms.b.type': 'ExtractField$Value',
      'transforms.c.type': 'InsertField',
      'transforms.b.predicate': 'missing',
    });
    expect(config).to.equal(undefined);
    expect(problems.map((p) => p.key)).to.deep.equal([
      'transforms.a.type',
      'transforms.b.field',
      'transforms.b.predicate',
      'transforms.c.type',
    ]);
    expect(problems[0]!.message).to.contain('Class com.example.Nope could not be found; use one of:');
    expect(problems[1]!.message).to.contain('is required');
    expect(problems[2]!.message).to.contain(
      'names the predicate alias "missing", which predicates does not declare',
    );
    expect(problems[3]!.message).to.contain('use InsertField$Value or InsertField$Key');
  });

  it('reports a missing type, bad values and a bad predicate, and the same problems without a known plugin', () => {
    const config = {
      transforms: 'x,cast,route',
      'transforms.cast.type': 'Cast$Value',
      'transforms.cast.spec': 'a:decimal',
      'transforms.route.type': 'RegexRouter',
      'transforms.route.regex': '(a+)+b',
      'transforms.route.replacement': 'x',
      predicates: 'p',
      'predicates.p.type': 'HasHeaderKey',
    };
    const problems = transformConfigProblems(config);
    expect(problems.map((p) => p.key)).to.deep.equal([
      'predicates.p.name',
      'transforms.x.type',
      'transforms.cast.spec',
      'transforms.route.regex',
    ]);
    expect(problems[2]!.message).to.equal('Invalid type found in casting spec: decimal');
    expect(problems[3]!.message).to.contain('nested quantifier ((a+)+)');
    const unknownPlugin = checkConnectorConfig(plugins, { ...base, 'connector.class': 'Nope', ...config });
    expect(unknownPlugin.problems.map((p) => p.key)).to.include.members([
      'connector.class',
      'transforms.x.type',
    ]);
  });

  it('refuses building a chain from an invalid config, listing every problem', () => {
    expect(() => createTransformChain({ transforms: 'a', 'transforms.a.type': 'Nope' })).to.throw(
      'transforms.a.type: Class Nope could not be found',
    );
  });
});

const message = (offset: number, value: unknown, headers: Record<string, Buffer> = {}): KafkaMessage => ({
  offset: String(offset),
  key: null,
  value: Buffer.from(JSON.stringify(value)),
  timestamp: '1700000000000',
  attributes: 0,
  headers,
});

const jsonConverter = (isKey: boolean) =>
  createConverter('json', { isKey, registry: undefined, schemasEnable: false });

describe('the record pipeline with transforms', () => {
  const collecting = () => {
    const seen: ConnectRecord[] = [];
    const plugin: SinkPlugin = {
      ...sinkPlugin,
      createTask: () => ({
        put: async (records) => {
          seen.push(...records);
        },
      }),
    };
    return { seen, plugin };
  };

  const pipeline = (
    plugin: SinkPlugin | ProcessorPlugin,
    transforms: Record<string, unknown>,
    valueConverter = jsonConverter(false),
  ) => {
    const task = plugin.createTask({} as never);
    return new RecordPipeline({
      plugin,
      task: () => task as never,
      keyConverter: createConverter('string', { isKey: true, registry: undefined, schemasEnable: false }),
      valueConverter,
      now: () => 0,
      partitionFor: () => undefined,
      fits: () => ({ fits: true, size: 1, limit: 2 }),
      maxRecordBytes: 1_000_000,
      transforms: createTransformChain(transforms),
    });
  };

  it('hands the task transformed records and skips filtered ones without a failure', async () => {
    const { seen, plugin } = collecting();
    const result = await pipeline(plugin, {
      transforms: 'drop,insert',
      'transforms.drop.type': 'Filter',
      'transforms.drop.predicate': 'marked',
      'transforms.insert.type': 'InsertField$Value',
      'transforms.insert.offset.field': 'offset',
      predicates: 'marked',
      'predicates.marked.type': 'HasHeaderKey',
      'predicates.marked.name': 'skip',
    }).run('in', 0, [
      message(5, { a: 1 }),
      message(6, { a: 2 }, { skip: Buffer.from('1') }),
      message(7, { a: 3 }),
    ]);
    expect(result.failures).to.deep.equal([]);
    expect(seen.map((r) => r.value)).to.deep.equal([
      { a: 1, offset: 5 },
      { a: 3, offset: 7 },
    ]);
    expect(seen.map((r) => r.offset)).to.deep.equal(['5', '7']);
  });

  it('reports a record a transform cannot handle as a TRANSFORMATION failure naming the transform class', async () => {
    const { seen, plugin } = collecting();
    const result = await pipeline(plugin, {
      transforms: 'extract',
      'transforms.extract.type': 'ExtractField$Value',
      'transforms.extract.field': 'a',
    }).run('in', 0, [message(0, { a: 1 }), message(1, 'text'), message(2, { a: 3 })]);
    expect(seen.map((r) => r.value)).to.deep.equal([1, 3]);
    expect(result.failures).to.have.length(1);
    expect(result.failures[0]).to.include({
      index: 1,
      stage: 'TRANSFORMATION',
      className: 'org.apache.kafka.connect.transforms.ExtractField$Value',
    });
    expect((result.failures[0]!.error as { code?: string }).code).to.equal('TRANSFORM_FAILED');
  });

  it('gives a processor the derived schema with its own id, the same ref for every record of a schema', async () => {
    const registry = new CachedSchemaRegistry(new InMemoryRegistry());
    const inputType = parseAvroSchema({
      type: 'record',
      name: 'R',
      fields: [
        { name: 'a', type: 'int' },
        { name: 'b', type: 'string' },
      ],
    });
    const id = await registry.register('in-value', inputType);
    const avro = new AvroConverter(registry, { isKey: false });
    const encode = (value: unknown) => {
      const body = inputType.toBuffer(value);
      const framed = Buffer.alloc(5 + body.length);
      framed.writeInt32BE(id, 1);
      body.copy(framed, 5);
      return framed;
    };
    const seen: ConnectRecord[] = [];
    const processor: ProcessorPlugin = {
      name: 'Echo',
      kind: 'processor',
      version: '1',
      description: 'test',
      config: defineConfig([]),
      createTask: () => ({
        process: async (records) => {
          seen.push(...records);
          return records.map((r) => [{ topic: 'out', value: r.value, valueSchema: r.valueSchema!.type }]);
        },
      }),
    };
    const result = await pipeline(
      processor,
      { transforms: 'cast', 'transforms.cast.type': 'Cast$Value', 'transforms.cast.spec': 'a:string' },
      avro,
    ).run('in', 0, [
      { ...message(0, null), value: encode({ a: 1, b: 'x' }) },
      { ...message(1, null), value: encode({ a: 2, b: 'y' }) },
    ]);
    expect(result.failures).to.deep.equal([]);
    expect(seen[0]!.valueSchema!.id).to.be.lessThan(0);
    expect(seen[1]!.valueSchema).to.equal(seen[0]!.valueSchema);
    expect(seen.map((r) => r.value)).to.deep.equal([
      { a: '1', b: 'x' },
      { a: '2', b: 'y' },
    ]);
    // The output is encoded under the derived schema, registered under the output topic's subject.
    const written = result.outputs[0]!.message.value as Buffer;
    const outputSchema = await registry.schemaById(written.readInt32BE(1));
    expect(
      (outputSchema as unknown as { type: { fields: Array<{ name: string; type: { typeName: string } }> } })
        .type.fields[0]!.type.typeName,
    ).to.equal('string');
  });
});
