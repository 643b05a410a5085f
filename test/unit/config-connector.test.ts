import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ProcessorPlugin, SinkPlugin, SourcePlugin } from '../../runtime/api.js';
import { envConfigProvider } from '../../runtime/config/config-providers.js';
import { defineConfig, MASK, type ConfigProblem } from '../../runtime/config/config-spec.js';
import {
  connectorDocument,
  connectorSpecFor,
  parseConnectorConfig,
  readConnectorConfigFile,
  topicsPattern,
} from '../../runtime/config/connector-config.js';

const notUsed = (): never => {
  throw new Error('tasks are not created in config tests');
};

const scorer: ProcessorPlugin = {
  name: 'Scorer',
  aliases: ['com.example.Scorer'],
  kind: 'processor',
  version: '1.0.0',
  description: 'Scores records.',
  config: defineConfig([
    {
      name: 'model.name',
      type: 'string',
      importance: 'high',
      documentation: 'The model to call. Any served model.',
    },
    {
      name: 'model.api.key',
      type: 'password',
      default: null,
      importance: 'medium',
      documentation: 'API key.',
    },
  ]),
  createTask: notUsed,
};

const sink: SinkPlugin = {
  ...scorer,
  name: 'Sink',
  aliases: [],
  kind: 'sink',
  config: defineConfig([]),
  createTask: notUsed,
};
const source: SourcePlugin = {
  ...scorer,
  name: 'Source',
  aliases: [],
  kind: 'source',
  config: defineConfig([]),
  createTask: notUsed,
};

const valid = {
  name: 'scores',
  'connector.class': 'Scorer',
  topics: 'transactions',
  'output.topic': 'scores',
  'model.name': 'fraud',
};

const parse = (extra: Record<string, unknown>, remove: string[] = []) => {
  const raw: Record<string, unknown> = { ...valid, ...extra };
  for (const key of remove) delete raw[key];
  return parseConnectorConfig(scorer, raw, { providers: [] });
};
const messageFor = (problems: ConfigProblem[], key: string) => problems.find((p) => p.key === key)?.message;

describe('connector config', () => {
  it('fills the documented defaults for a minimal processor config', () => {
    const { config, problems } = parse({});
    expect(problems).to.deep.equal([]);
    expect(config!.getNumber('tasks.max')).to.equal(1);
    expect(config!.getString('key.converter')).to.equal('string');
    expect(config!.getString('value.converter')).to.equal('avro');
    expect(config!.getBoolean('value.converter.schemas.enable')).to.equal(false);
    expect(config!.getString('errors.tolerance')).to.equal('none');
    expect(config!.getNumber('errors.retry.timeout')).to.equal(0);
    expect(config!.getNumber('errors.retry.delay.max.ms')).to.equal(60000);
    expect(config!.getOptionalString('errors.deadletterqueue.topic.name')).to.equal(undefined);
    expect(config!.getNumber('errors.deadletterqueue.topic.replication.factor')).to.equal(3);
    expect(config!.getString('processing.guarantee')).to.equal('at_least_once');
    expect(config!.getString('output.partitioning')).to.equal('input');
    expect(config!.getString('model.name')).to.equal('fraud');
  });

  it('accepts values as JSON numbers and booleans', () => {
    const { config, problems } = parse({
      'tasks.max': 4,
      'errors.retry.timeout': -1,
      'errors.log.enable': true,
      'value.converter': 'json',
      'value.converter.schemas.enable': true,
    });
    expect(problems).to.deep.equal([]);
    expect(config!.getNumber('tasks.max')).to.equal(4);
    expect(config!.getNumber('errors.retry.timeout')).to.equal(-1);
    expect(config!.getBoolean('errors.log.enable')).to.equal(true);
    expect(config!.getBoolean('value.converter.schemas.enable')).to.equal(true);
  });

  it('refuses a config with both topics and topics.regex, naming both keys', () => {
    const { config, problems } = parse({ 'topics.regex': 'tx-.*' });
    expect(config).to.equal(undefined);
    expect(problems).to.have.length(1);
    expect(problems[0]!.message).to.include('topics').and.to.include('topics.regex');
  });

  it('refuses a sink or processor config with neither topics nor topics.regex', () => {
    const { problems } = parse({}, ['topics']);
    expect(messageFor(problems, 'topics')).to.match(/set topics .* or topics\.regex/);
    const empty = parse({ topics: '' });
    expect(messageFor(empty.problems, 'topics')).to.match(/is required/);
  });

  it('refuses a topics.regex that is not a regular expression', () => {
    const { problems } = parse({ 'topics.regex': 'tx-(' }, ['topics']);
    expect(messageFor(problems, 'topics.regex')).to.match(/^is not a valid regular expression/);
  });

  it('refuses topic names Kafka would refuse', () => {
    const { problems } = parse({ topics: 'ok,not ok', 'output.topic': '..' });
    expect(messageFor(problems, 'topics')).to.include('"not ok" is not a legal topic name');
    expect(messageFor(problems, 'output.topic')).to.include('".." is not a legal topic name');
  });

  describe('dead-letter queue', () => {
    it('refuses a DLQ topic that is also an input topic', () => {
      const { problems } = parse({
        topics: 'transactions,refunds',
        'errors.tolerance': 'all',
        'errors.deadletterqueue.topic.name': 'refunds',
      });
      expect(problems).to.have.length(1);
      expect(problems[0]!.key).to.equal('errors.deadletterqueue.topic.name');
      expect(problems[0]!.message).to.include('"refunds" is also listed in topics');
    });

    it('refuses a DLQ topic that topics.regex matches as a whole name, and allows a partial match', () => {
      const matched = parse(
        { 'topics.regex': 'tx-.*', 'errors.tolerance': 'all', 'errors.deadletterqueue.topic.name': 'tx-dlq' },
        ['topics'],
      );
      expect(messageFor(matched.problems, 'errors.deadletterqueue.topic.name')).to.include(
        '"tx-dlq" matches topics.regex "tx-.*"',
      );
      const partial = parse(
        { 'topics.regex': 'tx', 'errors.tolerance': 'all', 'errors.deadletterqueue.topic.name': 'tx-dlq' },
        ['topics'],
      );
      expect(partial.problems).to.deep.equal([]);
    });

    it('refuses a DLQ topic without errors.tolerance=all, saying how to fix it', () => {
      const { problems } = parse({ 'errors.deadletterqueue.topic.name': 'scores-dlq' });
      expect(problems).to.have.length(1);
      expect(problems[0]!.key).to.equal('errors.deadletterqueue.topic.name');
      expect(problems[0]!.message).to.include('set errors.tolerance=all or remove the DLQ topic');
    });

    it('accepts replication factor -1 (broker default) and refuses 0', () => {
      const dlq = { 'errors.tolerance': 'all', 'errors.deadletterqueue.topic.name': 'scores-dlq' };
      expect(parse({ ...dlq, 'errors.deadletterqueue.topic.replication.factor': -1 }).problems).to.deep.equal(
        [],
      );
      const zero = parse({ ...dlq, 'errors.deadletterqueue.topic.replication.factor': 0 });
      expect(messageFor(zero.problems, 'errors.deadletterqueue.topic.replication.factor')).to.include(
        'single-broker cluster needs 1',
      );
    });
  });

  describe('processor output', () => {
    it('refuses an output topic that is an input topic, matched by topics.regex, or the DLQ topic', () => {
      expect(messageFor(parse({ 'output.topic': 'transactions' }).problems, 'output.topic')).to.include(
        'would consume its own output',
      );
      const byRegex = parse({ 'topics.regex': '.*' }, ['topics']);
      expect(messageFor(byRegex.problems, 'output.topic')).to.include('matches topics.regex');
      const dlq = parse({ 'errors.tolerance': 'all', 'errors.deadletterqueue.topic.name': 'scores' });
      expect(messageFor(dlq.problems, 'output.topic')).to.include('is also the dead-letter topic');
    });

    it('refuses unknown processing guarantees and partitionings, listing the valid ones', () => {
      const { problems } = parse({
        'processing.guarantee': 'exactly_once_v2',
        'output.partitioning': 'round_robin',
      });
      expect(messageFor(problems, 'processing.guarantee')).to.equal(
        '"exactly_once_v2" is not one of: at_least_once, exactly_once',
      );
      expect(messageFor(problems, 'output.partitioning')).to.equal('"round_robin" is not one of: input, key');
    });
  });

  it('refuses connector names that would not round-trip through the REST paths, saying why', () => {
    const problemFor = (name: string) => parse({ name }).problems.find((p) => p.key === 'name')?.message;
    expect(problemFor('x'.repeat(5000)))
      .to.contain('5000 bytes long')
      .and.contain('at most 200');
    expect(problemFor('scores/v2')).to.contain('"/"');
    expect(problemFor('a?b#c%d')).to.contain('"?"').and.contain('"#"').and.contain('"%"');
    expect(problemFor('..')).to.contain('path segments');
    expect(problemFor(' padded ')).to.contain('whitespace');
    expect(problemFor('line\nbreak')).to.contain('control characters');
    expect(problemFor('census-scores_v2.1')).to.equal(undefined);
    expect(problemFor('x'.repeat(200))).to.equal(undefined);
  });

  it('reports every problem at once', () => {
    const { config, problems } = parseConnectorConfig(
      scorer,
      {
        name: 'scores',
        'connector.class': 'Scorer',
        'tasks.max': 0,
        'value.converter': 'io.confluent.connect.protobuf.ProtobufConverter',
        'errors.tolerance': 'some',
        'errors.retry.timeout': 'soon',
      },
      { providers: [] },
    );
    expect(config).to.equal(undefined);
    expect(problems.map((p) => p.key)).to.have.members([
      'tasks.max',
      'value.converter',
      'errors.tolerance',
      'errors.retry.timeout',
      'output.topic',
      'model.name',
      'topics',
    ]);
    expect(messageFor(problems, 'value.converter')).to.equal(
      '"io.confluent.connect.protobuf.ProtobufConverter" is not one of: avro, json, string, bytes, ' +
        'io.confluent.connect.avro.AvroConverter, org.apache.kafka.connect.json.JsonConverter, ' +
        'org.apache.kafka.connect.storage.StringConverter, org.apache.kafka.connect.converters.ByteArrayConverter',
    );
    expect(messageFor(problems, 'model.name')).to.equal('is required: The model to call.');
  });

  it('accepts the plugin name or an alias as connector.class, and nothing else', () => {
    expect(parse({ 'connector.class': 'com.example.Scorer' }).problems).to.deep.equal([]);
    expect(messageFor(parse({ 'connector.class': 'Other' }).problems, 'connector.class')).to.include(
      'use one of: Scorer, com.example.Scorer',
    );
  });

  it('gives sources the error keys but no input or output topics', () => {
    const names = connectorSpecFor(source).keys.map((k) => k.name);
    expect(names).to.include.members(['errors.tolerance', 'errors.deadletterqueue.topic.name', 'tasks.max']);
    expect(names).not.to.include.members(['topics']);
    expect(names).not.to.include('output.topic');
    const { problems } = parseConnectorConfig(
      source,
      { name: 's', 'connector.class': 'Source' },
      { providers: [] },
    );
    expect(problems).to.deep.equal([]);
  });

  it('gives sinks topics but no output keys', () => {
    const names = connectorSpecFor(sink).keys.map((k) => k.name);
    expect(names).to.include('topics');
    expect(names).not.to.include('output.topic');
    expect(names).not.to.include('processing.guarantee');
  });

  it('passes consumer and producer overrides through to the parsed config', () => {
    const { config } = parse({
      'consumer.override.max.poll.records': 50,
      'producer.override.linger.ms': '5',
    });
    expect(config!.withPrefix('consumer.override.')).to.deep.equal({ 'max.poll.records': '50' });
    expect(config!.withPrefix('producer.override.')).to.deep.equal({ 'linger.ms': '5' });
  });

  it('resolves variables, masks secrets and shows references unresolved', () => {
    const providers = [envConfigProvider({ MODEL: 'fraud-v2', KEY: 'k-123456' })];
    const { config } = parseConnectorConfig(
      scorer,
      { ...valid, 'model.name': '${env:MODEL}', 'model.api.key': '${env:KEY}' },
      { providers },
    );
    expect(config!.getString('model.name')).to.equal('fraud-v2');
    expect(config!.getString('model.api.key')).to.equal('k-123456');
    expect(config!.masked()['model.name']).to.equal('${env:MODEL}');
    expect(config!.masked()['model.api.key']).to.equal(MASK);
  });

  it('reports an unresolved reference against its key', () => {
    const { problems } = parseConnectorConfig(
      scorer,
      { ...valid, 'model.name': '${env:MISSING}' },
      { providers: [envConfigProvider({})] },
    );
    expect(problems).to.deep.equal([
      {
        key: 'model.name',
        message: 'cannot resolve ${env:MISSING}: environment variable MISSING is not set',
      },
    ]);
  });

  describe('names', () => {
    it('takes the name from outside the config and refuses a different one inside', () => {
      const { name: _name, ...withoutName } = valid;
      expect(
        parseConnectorConfig(scorer, withoutName, { name: 'scores', providers: [] }).config!.getString(
          'name',
        ),
      ).to.equal('scores');
      const { problems } = parseConnectorConfig(scorer, valid, { name: 'other', providers: [] });
      expect(problems).to.deep.equal([
        {
          key: 'name',
          message:
            '"scores" does not match the connector name "other": remove it from the config or make them equal',
        },
      ]);
    });

    it('refuses an empty name', () => {
      expect(messageFor(parse({ name: '  ' }).problems, 'name')).to.equal('must not be empty');
    });
  });

  describe('documents and files', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'infer-connect-connector-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('accepts the {"name", "config"} shape and the flat shape', () => {
      const { name: _name, ...config } = valid;
      const wrapped = connectorDocument({ name: 'scores', config, tasks: [] });
      expect(wrapped).to.deep.equal({ name: 'scores', config: { ...config, name: 'scores' }, problems: [] });
      const flat = connectorDocument(valid);
      expect(flat).to.deep.equal({ name: 'scores', config: valid, problems: [] });
    });

    it('refuses documents that are not objects or whose config is not an object', () => {
      expect(connectorDocument([1]).problems[0]!.message).to.include('must be a JSON object');
      expect(connectorDocument({ name: 'x', config: 'a=b' }).problems).to.deep.equal([
        { key: 'config', message: 'must be a JSON object of config keys' },
      ]);
    });

    it('reads a connector file, and names the line and column of bad JSON', () => {
      const good = join(dir, 'scores.json');
      writeFileSync(good, JSON.stringify({ name: 'scores', config: { 'connector.class': 'Scorer' } }));
      expect(readConnectorConfigFile(good)).to.deep.equal({
        name: 'scores',
        config: { 'connector.class': 'Scorer', name: 'scores' },
      });
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, '{\n  "name": "scores",\n  "config": {"tasks.max": 1,}\n}');
      expect(readConnectorConfigFile(bad))
        .to.have.property('error')
        .that.matches(/not valid JSON.*line 3 column/);
    });

    it('reads a flat .properties connector file and refuses one without a name', () => {
      const props = join(dir, 'scores.properties');
      writeFileSync(props, 'name=scores\nconnector.class=Scorer\ntopics=transactions\n');
      expect(readConnectorConfigFile(props)).to.deep.include({ name: 'scores' });
      const nameless = join(dir, 'nameless.json');
      writeFileSync(nameless, JSON.stringify({ config: { 'connector.class': 'Scorer' } }));
      expect(readConnectorConfigFile(nameless)).to.have.property('error').that.includes('no connector name');
    });
  });

  it('matches topics.regex against whole topic names', () => {
    const { config } = parse({ 'topics.regex': 'tx-[0-9]+' }, ['topics']);
    const pattern = topicsPattern(config!)!;
    expect(pattern.test('tx-1')).to.equal(true);
    expect(pattern.test('tx-1-dlq')).to.equal(false);
    expect(topicsPattern(parse({}).config!)).to.equal(undefined);
  });
});
