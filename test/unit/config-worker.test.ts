import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ProcessorPlugin } from '../../runtime/api.js';
import { envConfigProvider, fileConfigProvider } from '../../runtime/config/config-providers.js';
import { defineConfig, MASK, type ConfigProblem } from '../../runtime/config/config-spec.js';
import { parseConnectorConfig } from '../../runtime/config/connector-config.js';
import {
  parseListener,
  parseWorkerConfig,
  readWorkerConfigFile,
  restListener,
  schemaRegistryProblem,
} from '../../runtime/config/worker-config.js';

const messageFor = (problems: ConfigProblem[], key: string) => problems.find((p) => p.key === key)?.message;
const parse = (raw: Record<string, unknown>) => parseWorkerConfig(raw, { providers: [] });

describe('worker config', () => {
  it('needs only bootstrap.servers and fills the documented defaults', () => {
    const { config, problems } = parse({ 'bootstrap.servers': 'localhost:9092' });
    expect(problems).to.deep.equal([]);
    expect(config!.getList('bootstrap.servers')).to.deep.equal(['localhost:9092']);
    expect(config!.getOptionalString('schema.registry.url')).to.equal(undefined);
    expect(config!.getString('listeners')).to.equal('http://127.0.0.1:8083');
    expect(config!.getString('offset.storage.file.filename')).to.equal('/tmp/connect.offsets');
    expect(config!.getNumber('offset.flush.interval.ms')).to.equal(10000);
    expect(config!.getNumber('task.shutdown.graceful.timeout.ms')).to.equal(10000);
    expect(config!.getString('group.id')).to.equal('infer-connect');
    expect(config!.getString('client.id')).to.equal('infer-connect');
    expect(config!.getNumber('consumer.partitions.concurrency')).to.equal(4);
    expect(config!.getNumber('consumer.max.poll.records')).to.equal(500);
    expect(config!.getString('log.level')).to.equal('info');
  });

  it('refuses a missing or malformed bootstrap.servers', () => {
    expect(messageFor(parse({}).problems, 'bootstrap.servers')).to.match(/^is required/);
    expect(
      messageFor(parse({ 'bootstrap.servers': 'kafka1:9092,kafka2' }).problems, 'bootstrap.servers'),
    ).to.equal('"kafka2" must have the form host:port');
    expect(parse({ 'bootstrap.servers': '[::1]:9092,10.0.0.1:9092' }).problems).to.deep.equal([]);
  });

  it('reports every problem at once', () => {
    const { problems } = parse({
      'bootstrap.servers': 'localhost:9092',
      listeners: 'https://0.0.0.0:8443',
      'schema.registry.url': 'registry:8081',
      'log.level': 'verbose',
      'consumer.partitions.concurrency': 0,
    });
    expect(problems.map((p) => p.key)).to.have.members([
      'listeners',
      'schema.registry.url',
      'log.level',
      'consumer.partitions.concurrency',
    ]);
  });

  describe('listeners', () => {
    it('accepts one http://host:port URL, IPv6 hosts, the all-interfaces form and port 0', () => {
      expect(parseListener('http://127.0.0.1:8083')).to.deep.equal({ host: '127.0.0.1', port: 8083 });
      expect(parseListener('http://[::1]:8083/')).to.deep.equal({ host: '::1', port: 8083 });
      expect(parseListener('http://:8083')).to.deep.equal({ host: '0.0.0.0', port: 8083 });
      expect(parseListener('http://localhost:0')).to.deep.equal({ host: 'localhost', port: 0 });
      const { config } = parse({ 'bootstrap.servers': 'k:9092', listeners: 'http://0.0.0.0:18083' });
      expect(restListener(config!)).to.deep.equal({ host: '0.0.0.0', port: 18083 });
    });

    it('refuses https, missing ports, out-of-range ports and lists', () => {
      for (const listeners of [
        'https://localhost:8443',
        'http://localhost',
        'http://localhost:70000',
        'http://a:1,http://b:2',
      ]) {
        const message = messageFor(parse({ 'bootstrap.servers': 'k:9092', listeners }).problems, 'listeners');
        expect(message, listeners).to.include('must have the form http://host:port');
      }
    });
  });

  describe('schema registry', () => {
    it('accepts registry URLs with a path and refuses ones without a scheme', () => {
      const apicurio = parse({
        'bootstrap.servers': 'k:9092',
        'schema.registry.url': 'http://127.0.0.1:8081/apis/ccompat/v7',
      });
      expect(apicurio.problems).to.deep.equal([]);
      expect(
        messageFor(
          parse({ 'bootstrap.servers': 'k:9092', 'schema.registry.url': 'registry:8081' }).problems,
          'schema.registry.url',
        ),
      ).to.match(/must be an http or https URL|must be a URL/);
    });

    it('keeps the basic-auth credentials out of masked configs and problem messages', () => {
      const { config } = parse({
        'bootstrap.servers': 'k:9092',
        'schema.registry.basic.auth.user.info': 'svc:pa55word',
      });
      expect(config!.getString('schema.registry.basic.auth.user.info')).to.equal('svc:pa55word');
      expect(config!.masked()['schema.registry.basic.auth.user.info']).to.equal(MASK);
      const bad = parse({
        'bootstrap.servers': 'k:9092',
        'schema.registry.basic.auth.user.info': 'justapassword',
      });
      expect(bad.problems).to.deep.equal([
        { key: 'schema.registry.basic.auth.user.info', message: 'must have the form <user>:<password>' },
      ]);
    });

    it('is required when a connector uses the avro converter', () => {
      const plugin: ProcessorPlugin = {
        name: 'Scorer',
        kind: 'processor',
        version: '1',
        description: 'Scores.',
        config: defineConfig([
          { name: 'model.name', type: 'string', importance: 'high', documentation: 'Model.' },
        ]),
        createTask: () => {
          throw new Error('not used');
        },
      };
      const connector = (extra: Record<string, string>) =>
        parseConnectorConfig(
          plugin,
          {
            name: 'c',
            'connector.class': 'Scorer',
            topics: 'in',
            'output.topic': 'out',
            'model.name': 'm',
            ...extra,
          },
          { providers: [] },
        ).config!;
      const withoutRegistry = parse({ 'bootstrap.servers': 'k:9092' }).config!;
      const withRegistry = parse({
        'bootstrap.servers': 'k:9092',
        'schema.registry.url': 'http://r:8081',
      }).config!;

      expect(schemaRegistryProblem(withoutRegistry, connector({}))).to.have.property(
        'key',
        'schema.registry.url',
      );
      expect(
        schemaRegistryProblem(
          withoutRegistry,
          connector({ 'value.converter': 'json', 'key.converter': 'avro' }),
        ),
      )
        .to.have.property('message')
        .that.includes('uses the avro converter');
      expect(schemaRegistryProblem(withoutRegistry, connector({ 'value.converter': 'json' }))).to.equal(
        undefined,
      );
      expect(schemaRegistryProblem(withRegistry, connector({}))).to.equal(undefined);
    });
  });

  it('passes producer, consumer and admin client properties through', () => {
    const { config } = parse({
      'bootstrap.servers': 'k:9092',
      'producer.acks': 'all',
      'consumer.session.timeout.ms': 45000,
      'admin.request.timeout.ms': '5000',
    });
    expect(config!.withPrefix('producer.')).to.deep.equal({ acks: 'all' });
    expect(config!.withPrefix('consumer.')).to.deep.equal({ 'session.timeout.ms': '45000' });
    expect(config!.withPrefix('admin.')).to.deep.equal({ 'request.timeout.ms': '5000' });
  });

  describe('files', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'infer-connect-worker-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('reads JSON and .properties worker files, resolving variables', () => {
      const secrets = join(dir, 'registry.properties');
      writeFileSync(secrets, 'auth=svc:from-file\n');
      const json = join(dir, 'worker.json');
      writeFileSync(
        json,
        JSON.stringify({
          'bootstrap.servers': '${env:BROKERS}',
          'schema.registry.basic.auth.user.info': `\${file:${secrets}:auth}`,
          'offset.flush.interval.ms': 500,
        }),
      );
      const providers = [envConfigProvider({ BROKERS: 'k1:9092,k2:9092' }), fileConfigProvider()];
      const { config, problems } = readWorkerConfigFile(json, { providers });
      expect(problems).to.deep.equal([]);
      expect(config!.getList('bootstrap.servers')).to.deep.equal(['k1:9092', 'k2:9092']);
      expect(config!.getString('schema.registry.basic.auth.user.info')).to.equal('svc:from-file');
      expect(config!.masked()['bootstrap.servers']).to.equal('${env:BROKERS}');

      const props = join(dir, 'worker.properties');
      writeFileSync(props, 'bootstrap.servers=localhost:9092\noffset.flush.interval.ms=250\n');
      expect(
        readWorkerConfigFile(props, { providers }).config!.getNumber('offset.flush.interval.ms'),
      ).to.equal(250);
    });

    it('reports an unreadable file, bad JSON and a non-object as problems with the file', () => {
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, '{"bootstrap.servers": "k:9092",\n"listeners": }');
      expect(readWorkerConfigFile(bad).problems[0]!.message).to.match(/not valid JSON.*line 2 column/);
      const array = join(dir, 'array.json');
      writeFileSync(array, '[]');
      expect(readWorkerConfigFile(array).problems).to.deep.equal([
        { key: '(file)', message: 'a worker config must be a JSON object of config keys' },
      ]);
      expect(readWorkerConfigFile(join(dir, 'none.json')).problems[0]!.message).to.include('ENOENT');
    });
  });
});
