import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../connectors/index.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { Worker } from '../../runtime/worker.js';
import type { SinkPlugin } from '../../runtime/api.js';
import {
  defineConfig,
  MASK,
  type ConfigProblem,
  type ParsedConfig,
} from '../../runtime/config/config-spec.js';
import {
  connectorSpecFor,
  parseConnectorConfig,
  usesAvroConverter,
} from '../../runtime/config/connector-config.js';
import {
  AvroConverter,
  BytesConverter,
  CachedSchemaRegistry,
  InMemoryRegistry,
  JsonConverter,
  StringConverter,
  parseAvroSchema,
  type HttpRegistryOptions,
  type RegistryClient,
} from '../../runtime/converters/index.js';
import {
  ConnectorConverters,
  converterRegistryOptions,
} from '../../runtime/converters/connector-converters.js';
import { ConnectError } from '../../runtime/errors.js';
import { makeTestPki, type TestPki } from '../helpers/secure-stack.js';

const sink: SinkPlugin = {
  name: 'Sink',
  kind: 'sink',
  version: '1.0.0',
  description: 'Takes records.',
  config: defineConfig([]),
  createTask: () => {
    throw new Error('tasks are not created in config tests');
  },
};

const parse = (extra: Record<string, unknown>) =>
  parseConnectorConfig(
    sink,
    { name: 'c', 'connector.class': 'Sink', topics: 'in', ...extra },
    { providers: [] },
  );

function valid(extra: Record<string, unknown>): ParsedConfig {
  const { config, problems } = parse(extra);
  expect(problems).to.deep.equal([]);
  return config!;
}

const messageFor = (problems: ConfigProblem[], key: string) =>
  problems
    .filter((p) => p.key === key)
    .map((p) => p.message)
    .join(' | ');

/** ConnectorConverters whose connector registries are in-memory, recording the options each was built with. */
function converters(workerRegistry?: RegistryClient) {
  const built: HttpRegistryOptions[] = [];
  const factory = new ConnectorConverters(workerRegistry, undefined, (options) => {
    built.push(options);
    return new CachedSchemaRegistry(new InMemoryRegistry());
  });
  return { factory, built };
}

const orderSchemaJson = {
  type: 'record',
  name: 'com.example.Order',
  fields: [{ name: 'id', type: 'long' }] as Array<Record<string, unknown>>,
};
const record = parseAvroSchema(orderSchemaJson);

describe("Kafka Connect's converter class names", () => {
  const cases = [
    ['io.confluent.connect.avro.AvroConverter', AvroConverter],
    ['org.apache.kafka.connect.json.JsonConverter', JsonConverter],
    ['org.apache.kafka.connect.storage.StringConverter', StringConverter],
    ['org.apache.kafka.connect.converters.ByteArrayConverter', BytesConverter],
  ] as const;
  for (const [className, kind] of cases) {
    it(`accepts ${className} as an alias of ${kind.name}, and echoes the class name as given`, () => {
      const config = valid({
        'key.converter': className,
        'value.converter': className,
        'key.converter.schema.registry.url': 'http://127.0.0.1:8081',
        'value.converter.schema.registry.url': 'http://127.0.0.1:8081',
      });
      const { factory } = converters();
      expect(factory.create(config, 'key')).to.be.instanceOf(kind);
      expect(factory.create(config, 'value')).to.be.instanceOf(kind);
      expect(factory.create(config, 'key').isKey).to.equal(true);
      expect(config.masked()['value.converter']).to.equal(className);
    });
  }

  it('refuses converters this runtime does not have, naming the supported ones', () => {
    const { problems } = parse({
      'key.converter': 'io.confluent.connect.protobuf.ProtobufConverter',
      'value.converter': 'io.confluent.connect.json.JsonSchemaConverter',
    });
    expect(messageFor(problems, 'key.converter')).to.equal(
      '"io.confluent.connect.protobuf.ProtobufConverter" is not one of: avro, json, string, bytes, ' +
        'io.confluent.connect.avro.AvroConverter, org.apache.kafka.connect.json.JsonConverter, ' +
        'org.apache.kafka.connect.storage.StringConverter, org.apache.kafka.connect.converters.ByteArrayConverter',
    );
    expect(messageFor(problems, 'value.converter')).to.include(
      'JsonSchemaConverter" is not one of: avro, json',
    );
  });

  it("defaults schemas.enable to true for JsonConverter's class name (as Kafka Connect), false for json", () => {
    const plain = Buffer.from('{"a":1}');
    const { factory } = converters();
    const byClass = factory.create(
      valid({ 'value.converter': 'org.apache.kafka.connect.json.JsonConverter' }),
      'value',
    );
    const error = (() => {
      try {
        byClass.toConnect('t', plain);
      } catch (e) {
        return e as ConnectError;
      }
      return undefined;
    })();
    expect(error?.code).to.equal('JSON_DECODE_FAILED');
    expect(error?.message).to.include('schemas.enable=true');
    const byName = factory.create(valid({ 'value.converter': 'json' }), 'value');
    expect(byName.toConnect('t', plain).value).to.deep.equal({ a: 1 });
    const explicit = factory.create(
      valid({
        'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
        'value.converter.schemas.enable': 'false',
      }),
      'value',
    );
    expect(explicit.toConnect('t', plain).value).to.deep.equal({ a: 1 });
  });
});

describe('per-connector converter settings', () => {
  it("gives a connector with its own registry URL its own client, shared by its tasks, and the worker's otherwise", async () => {
    const workerTransport = new InMemoryRegistry();
    const worker = new CachedSchemaRegistry(workerTransport);
    const { factory, built } = converters(worker);
    const own = valid({
      'value.converter': 'io.confluent.connect.avro.AvroConverter',
      'value.converter.schema.registry.url': 'http://127.0.0.1:8081/apis/ccompat/v7',
      'key.converter': 'io.confluent.connect.avro.AvroConverter',
      'key.converter.schema.registry.url': 'http://127.0.0.1:8081/apis/ccompat/v7',
    });
    factory.create(own, 'value');
    factory.create(own, 'value'); // a second task
    factory.create(own, 'key');
    expect(built).to.deep.equal([{ url: 'http://127.0.0.1:8081/apis/ccompat/v7' }]);
    factory.create(
      valid({ 'value.converter.schema.registry.url': 'http://127.0.0.1:8081/apis/ccompat/v7' }),
      'value',
    );
    expect(built).to.have.length(2); // another connector config: another client

    const shared = factory.create(valid({ 'value.converter': 'avro' }), 'value');
    await shared.prepareEncode!('orders', record);
    expect(workerTransport.calls.register).to.equal(1);
  });

  it('lets a worker without schema.registry.url validate an avro connector that names its own registry', () => {
    const worker = new Worker({
      workerId: 'w',
      kafka: new Proxy({} as Kafka, {
        get: () => {
          throw new Error('validation uses no Kafka client');
        },
      }),
      plugins: PluginRegistry.of(builtinPlugins),
      metricsRegistry: new Registry(),
      logger: pino({ level: 'silent' }),
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
      offsetStoreFile: join(mkdtempSync(join(tmpdir(), 'converter-settings-')), 'offsets.json'),
    });
    const base = {
      'connector.class': 'FileStreamSink',
      topics: 'in',
      file: '/tmp/x.jsonl',
      'value.converter': 'io.confluent.connect.avro.AvroConverter',
    };
    const errorsOf = (config: Record<string, unknown>) =>
      worker
        .validateConfig('FileSink', config)
        .configs.filter((c) => c.value.errors.length > 0)
        .map((c) => `${c.value.name}: ${c.value.errors.join('; ')}`);
    expect(
      errorsOf({ ...base, 'value.converter.schema.registry.url': 'http://127.0.0.1:8081' }),
    ).to.deep.equal([
      // the file is outside this worker's (empty) allowed.paths; nothing about the registry
      ...errorsOf({ ...base, 'value.converter': 'json' }),
    ]);
    expect(errorsOf(base).join('\n')).to.include(
      'value.converter: is avro, which needs a schema registry, but this worker has no schema.registry.url',
    );
  });

  it('needs no worker registry when every avro converter has its own', () => {
    expect(
      usesAvroConverter(valid({ 'value.converter.schema.registry.url': 'http://127.0.0.1:8081' })),
    ).to.equal(false);
    expect(usesAvroConverter(valid({}))).to.equal(true);
    expect(
      usesAvroConverter(valid({ 'value.converter': 'org.apache.kafka.connect.storage.StringConverter' })),
    ).to.equal(false);
  });

  it('reads basic auth as Confluent does, and keeps the user info secret', () => {
    const config = valid({
      'value.converter.schema.registry.url': 'http://127.0.0.1:8081',
      'value.converter.basic.auth.credentials.source': 'USER_INFO',
      'value.converter.basic.auth.user.info': 'reader:s3cret-pass',
    });
    expect(converterRegistryOptions(config, 'value')).to.deep.equal({
      url: 'http://127.0.0.1:8081',
      auth: 'reader:s3cret-pass',
    });
    expect(config.masked()['value.converter.basic.auth.user.info']).to.equal(MASK);
    expect(config.secretValues()).to.include('reader:s3cret-pass');
    const older = valid({
      'value.converter.schema.registry.url': 'http://u:p@127.0.0.1:8081',
      'value.converter.schema.registry.basic.auth.user.info': 'old:name-pass',
    });
    expect(converterRegistryOptions(older, 'value')?.auth).to.equal('old:name-pass');
    const fromUrl = valid({
      'value.converter.schema.registry.url': 'http://u:p@127.0.0.1:8081',
      'value.converter.basic.auth.credentials.source': 'URL',
    });
    expect(converterRegistryOptions(fromUrl, 'value')).to.deep.equal({ url: 'http://u:p@127.0.0.1:8081' });
  });

  it('refuses inconsistent credentials and TLS keys against the key that is wrong', () => {
    const { problems } = parse({
      'value.converter.schema.registry.url': 'http://127.0.0.1:8081',
      'value.converter.basic.auth.credentials.source': 'USER_INFO',
      'key.converter.schema.registry.url': 'http://127.0.0.1:8081',
      'key.converter.schema.registry.ssl.truststore.location': '/etc/ca.pem',
    });
    expect(messageFor(problems, 'value.converter.basic.auth.credentials.source')).to.equal(
      'is USER_INFO but value.converter.basic.auth.user.info is not set: set it to <user>:<password>',
    );
    expect(problems.map((p) => p.message).join('\n')).to.include(
      'key.converter.schema.registry.ssl.truststore.location is set but key.converter.schema.registry.url is http://: use an https:// URL',
    );
    const jks = parse({
      'value.converter.schema.registry.url': 'https://127.0.0.1:8081',
      'value.converter.schema.registry.ssl.truststore.type': 'JKS',
      'value.converter.schema.registry.ssl.truststore.password': 'changeit',
    }).problems;
    const text = jks.map((p) => `${p.key}: ${p.message}`).join('\n');
    expect(text).to.include('JKS stores are not supported (Node reads PEM only)');
    expect(text).to.include('keytool -exportcert');
    expect(text).not.to.include('changeit');
  });

  it('refuses SASL_INHERIT, several URLs and a user info without a password', () => {
    const { problems } = parse({
      'value.converter.schema.registry.url': 'http://a:8081,http://b:8081',
      'key.converter.basic.auth.credentials.source': 'SASL_INHERIT',
      'key.converter.basic.auth.user.info': 'nopassword',
    });
    expect(messageFor(problems, 'value.converter.schema.registry.url')).to.include(
      'takes one schema registry URL',
    );
    expect(messageFor(problems, 'key.converter.basic.auth.credentials.source')).to.equal(
      '"SASL_INHERIT" is not one of: USER_INFO, URL',
    );
    expect(messageFor(problems, 'key.converter.basic.auth.user.info')).to.equal(
      'must have the form <user>:<password>',
    );
  });

  it("refuses Confluent's keys this runtime does not implement, by name, and accepts their defaults", () => {
    const { problems } = parse({
      'value.converter.use.latest.with.metadata': 'app.version=2',
      'value.converter.use.schema.id': '42',
      'value.converter.bearer.auth.credentials.source': 'STATIC_TOKEN',
      'value.converter.bearer.auth.token': 'tok-123456',
      'key.converter.normalize.schemas': 'true',
      'key.converter.context.name.strategy': 'com.example.Ctx',
    });
    expect(problems.map((p) => p.key)).to.have.members([
      'value.converter.use.latest.with.metadata',
      'value.converter.use.schema.id',
      'value.converter.bearer.auth.credentials.source',
      'value.converter.bearer.auth.token',
      'key.converter.normalize.schemas',
      'key.converter.context.name.strategy',
    ]);
    expect(messageFor(problems, 'value.converter.use.schema.id')).to.equal(
      "is not supported by this runtime (writing always uses the record's own schema): remove it or set it to -1",
    );
    expect(JSON.stringify(problems)).not.to.include('tok-123456');
    expect(
      parse({
        'value.converter.use.latest.version': 'false',
        'value.converter.use.schema.id': '-1',
        'value.converter.connect.meta.data': 'true',
      }).problems,
    ).to.deep.equal([]);
  });

  it('refuses every declared-but-unsupported converter key when set to anything but its default', () => {
    const unsupported = connectorSpecFor(sink).keys.filter((k) =>
      k.documentation.startsWith('Not supported'),
    );
    expect(unsupported.map((k) => k.name)).to.include.members([
      'key.converter.use.latest.with.metadata',
      'value.converter.enhanced.avro.schema.support',
      'value.converter.schemas.cache.size',
    ]);
    for (const key of unsupported) {
      const problems = parse({ [key.name]: 'something-else' }).problems;
      expect(messageFor(problems, key.name), key.name).to.match(
        /^is not supported by this runtime \(.+\): remove it/,
      );
    }
  });

  it('with auto.register.schemas=false looks the schema up and never registers it', async () => {
    const transport = new InMemoryRegistry();
    const registry = new CachedSchemaRegistry(transport);
    const { factory } = converters(registry);
    const config = valid({ 'value.converter.auto.register.schemas': 'false' });
    const converter = factory.create(config, 'value');
    const error = await converter.prepareEncode!('orders', record).then(
      () => undefined,
      (e: ConnectError) => e,
    );
    expect(error?.code).to.equal('SCHEMA_INCOMPATIBLE');
    expect(error?.message).to.include('not registered under subject orders-value');
    expect(error?.stage).to.equal('VALUE_CONVERTER');
    const id = await transport.register('orders-value', JSON.stringify(record.schema()));
    const later = factory.create(config, 'value');
    await later.prepareEncode!('orders', record);
    expect(later.fromConnect('orders', { id: 7 }, record)!.readInt32BE(1)).to.equal(id);
    expect(transport.calls.register).to.equal(1); // only the test's own registration
  });

  it("with use.latest.version writes with the subject's latest version, converting the value to it", async () => {
    const transport = new InMemoryRegistry();
    const { factory } = converters(new CachedSchemaRegistry(transport));
    const latest = {
      ...orderSchemaJson,
      fields: [...orderSchemaJson.fields, { name: 'channel', type: 'string', default: 'web' }],
    };
    await transport.register('orders-value', JSON.stringify(orderSchemaJson));
    const latestId = await transport.register('orders-value', JSON.stringify(latest));
    const config = valid({
      'value.converter.auto.register.schemas': 'false',
      'value.converter.use.latest.version': 'true',
    });
    const converter = factory.create(config, 'value');
    await converter.prepareEncode!('orders', record);
    const bytes = converter.fromConnect('orders', { id: 7 }, record)!;
    expect(bytes.readInt32BE(1)).to.equal(latestId);
    expect(parseAvroSchema(latest).fromBuffer(bytes.subarray(5))).to.deep.include({ id: 7, channel: 'web' });
    expect(transport.calls.register).to.equal(2); // the test's own
  });

  it('with use.latest.version refuses a latest version that cannot read the records, unless not strict', async () => {
    const transport = new InMemoryRegistry();
    const { factory } = converters(new CachedSchemaRegistry(transport));
    const other = { type: 'record', name: 'com.example.Order', fields: [{ name: 'code', type: 'string' }] };
    await transport.register('orders-value', JSON.stringify(other));
    const strict = factory.create(
      valid({
        'value.converter.auto.register.schemas': 'false',
        'value.converter.use.latest.version': 'true',
      }),
      'value',
    );
    const error = await strict.prepareEncode!('orders', record).then(
      () => undefined,
      (e: ConnectError) => e,
    );
    expect(error?.code).to.equal('SCHEMA_INCOMPATIBLE');
    expect(error?.message).to.include('The latest version of subject orders-value');
    const lax = factory.create(
      valid({
        'value.converter.auto.register.schemas': 'false',
        'value.converter.use.latest.version': 'true',
        'value.converter.latest.compatibility.strict': 'false',
      }),
      'value',
    );
    await lax.prepareEncode!('orders', record);
    expect(lax.fromConnect('orders', { code: 'x' }, record)!.subarray(5).toString()).to.include('x');
  });

  it('refuses use.latest.version while auto.register.schemas is on, as Confluent would ignore it', () => {
    expect(
      messageFor(
        parse({ 'value.converter.use.latest.version': 'true' }).problems,
        'value.converter.use.latest.version',
      ),
    ).to.include('set value.converter.auto.register.schemas=false');
  });

  it('registers under the subject the subject name strategy names', async () => {
    const transport = new InMemoryRegistry();
    const { factory } = converters(new CachedSchemaRegistry(transport));
    const strategies = {
      'io.confluent.kafka.serializers.subject.TopicNameStrategy': 'orders-value',
      'io.confluent.kafka.serializers.subject.RecordNameStrategy': 'com.example.Order',
      TopicRecordNameStrategy: 'orders-com.example.Order',
    };
    for (const [strategy, subject] of Object.entries(strategies)) {
      const converter = factory.create(
        valid({ 'value.converter.value.subject.name.strategy': strategy }),
        'value',
      );
      await converter.prepareEncode!('orders', record);
      expect(Object.keys(transport.subjectVersions()), strategy).to.include(subject);
    }
    const keyConverter = factory.create(
      valid({
        'key.converter': 'avro',
        'key.converter.key.subject.name.strategy':
          'io.confluent.kafka.serializers.subject.RecordNameStrategy',
      }),
      'key',
    );
    const error = await keyConverter.prepareEncode!('orders', parseAvroSchema('"string"')).then(
      () => undefined,
      (e: ConnectError) => e,
    );
    expect(error?.code).to.equal('SCHEMA_INCOMPATIBLE');
    expect(error?.message).to.include(
      'key.subject.name.strategy=RecordNameStrategy names subjects after records',
    );
  });

  it('writes Decimals as JSON numbers with decimal.format=NUMERIC', () => {
    const { factory } = converters();
    const decimal = parseAvroSchema({ type: 'bytes', logicalType: 'decimal', precision: 10, scale: 2 });
    const numeric = factory.create(
      valid({ 'value.converter': 'json', 'value.converter.decimal.format': 'NUMERIC' }),
      'value',
    );
    const base64 = factory.create(valid({ 'value.converter': 'json' }), 'value');
    const unscaled = Buffer.from([0x30, 0x39]); // 12345
    expect(numeric.fromConnect('t', unscaled, decimal)!.toString()).to.equal('123.45');
    expect(base64.fromConnect('t', unscaled, decimal)!.toString()).to.equal('"MDk="');
  });

  describe("TLS to the connector's registry", function () {
    this.timeout(20_000);
    let pki: TestPki;
    before(() => (pki = makeTestPki()));
    after(() => rmSync(pki.dir, { recursive: true, force: true }));

    it("reads schema.registry.ssl.* under the converter's prefix: trust, client key and host-name checking", () => {
      const config = valid({
        'value.converter.schema.registry.url': 'https://127.0.0.1:8081',
        'value.converter.schema.registry.ssl.truststore.location': pki.caFile,
        'value.converter.schema.registry.ssl.keystore.location': pki.clientKeystoreFile,
        'value.converter.schema.registry.ssl.key.password': pki.clientKeyPassword,
        'value.converter.schema.registry.ssl.endpoint.identification.algorithm': '',
      });
      const options = converterRegistryOptions(config, 'value')!;
      expect(options.tls!.ca).to.deep.equal([readFileSync(pki.caFile, 'utf8').trim()]);
      expect(options.tls!.cert).to.match(/BEGIN CERTIFICATE/);
      expect(options.tls!.passphrase).to.equal(pki.clientKeyPassword);
      expect(options.tls!.verifyHostname).to.equal(false);
      expect(config.masked()['value.converter.schema.registry.ssl.key.password']).to.equal(MASK);
    });

    it('fails the task with the key to fix when the PEM file is not usable', () => {
      const config = valid({
        'value.converter.schema.registry.url': 'https://127.0.0.1:8081',
        'value.converter.schema.registry.ssl.truststore.location': `${pki.dir}/missing.pem`,
      });
      const error = (() => {
        try {
          converters().factory.create(config, 'value');
        } catch (e) {
          return e as ConnectError;
        }
        return undefined;
      })();
      expect(error?.code).to.equal('CONFIG_INVALID');
      expect(error?.message).to.include('value.converter.schema.registry.ssl.truststore.location');
    });
  });
});
