import { expect } from 'chai';
import type { ProcessorPlugin } from '../../runtime/api.js';
import { envConfigProvider } from '../../runtime/config/config-providers.js';
import { defineConfig, MASK } from '../../runtime/config/config-spec.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';
import { describeSpec, formatProblems, validationReport } from '../../runtime/config/validation-report.js';

const scorer: ProcessorPlugin = {
  name: 'Scorer',
  kind: 'processor',
  version: '1.0.0',
  description: 'Scores records.',
  config: defineConfig([
    {
      name: 'model.name',
      type: 'string',
      importance: 'high',
      group: 'Model',
      displayName: 'Model name',
      documentation: 'The model to call.',
    },
    {
      name: 'model.api.key',
      type: 'password',
      default: null,
      importance: 'medium',
      documentation: 'API key.',
    },
    {
      name: 'model.timeout.ms',
      type: 'long',
      default: 5000,
      min: 1,
      importance: 'low',
      documentation: 'Deadline.',
    },
  ]),
  createTask: () => {
    throw new Error('not used');
  },
};
const spec = connectorSpecFor(scorer);

describe('config validation report', () => {
  describe('plugin config description', () => {
    const infos = describeSpec(spec);
    const info = (name: string) => infos.find((i) => i.name === name)!;

    it('describes every key in Kafka Connect shape, with uppercase types and string defaults', () => {
      expect(infos.map((i) => i.name)).to.deep.equal(spec.keys.map((k) => k.name));
      expect(info('model.name')).to.deep.equal({
        name: 'model.name',
        type: 'STRING',
        required: true,
        default_value: null,
        importance: 'HIGH',
        documentation: 'The model to call.',
        group: 'Model',
        width: 'NONE',
        display_name: 'Model name',
        dependents: [],
        order: 1,
      });
      expect(info('tasks.max')).to.include({
        type: 'INT',
        required: false,
        default_value: '1',
        importance: 'HIGH',
      });
      expect(info('model.timeout.ms')).to.include({
        type: 'LONG',
        default_value: '5000',
        group: null,
        order: -1,
      });
      expect(info('model.api.key')).to.include({ type: 'PASSWORD', default_value: null });
      expect(info('errors.deadletterqueue.topic.name').dependents).to.include(
        'errors.deadletterqueue.context.headers.enable',
      );
    });

    it('numbers keys within their group from 1', () => {
      const errorGroup = infos.filter((i) => i.group === 'Error Handling');
      expect(errorGroup.map((i) => i.order)).to.deep.equal(errorGroup.map((_, index) => index + 1));
    });
  });

  describe('validate response', () => {
    it('counts every problem and attaches each to its key', () => {
      const report = validationReport('Scorer', spec, {
        name: 'scores',
        'connector.class': 'Scorer',
        topics: 'in',
        'tasks.max': 0,
        'errors.tolerance': 'maybe',
      });
      const errorsOf = (name: string) => report.configs.find((c) => c.value.name === name)!.value.errors;
      expect(report.name).to.equal('Scorer');
      expect(report.error_count).to.equal(4);
      expect(errorsOf('tasks.max')).to.deep.equal(['must be at least 1, got 0']);
      expect(errorsOf('errors.tolerance')).to.deep.equal(['"maybe" is not one of: none, all']);
      expect(errorsOf('output.topic')).to.have.length(1);
      expect(errorsOf('model.name')).to.have.length(1);
      expect(errorsOf('topics')).to.deep.equal([]);
      expect(report.groups).to.deep.equal(['Common', 'Converters', 'Processing', 'Error Handling', 'Model']);
    });

    it('shows given values, defaults for the rest, recommended values, and masks secrets', () => {
      const report = validationReport('Scorer', spec, {
        'connector.class': 'Scorer',
        'tasks.max': 2,
        'model.api.key': 'k-live-123',
      });
      const valueOf = (name: string) => report.configs.find((c) => c.value.name === name)!.value;
      expect(valueOf('tasks.max').value).to.equal('2');
      expect(valueOf('value.converter')).to.include({ value: 'avro', visible: true });
      expect(valueOf('value.converter').recommended_values).to.deep.equal([
        'avro',
        'json',
        'string',
        'bytes',
        'io.confluent.connect.avro.AvroConverter',
        'org.apache.kafka.connect.json.JsonConverter',
        'org.apache.kafka.connect.storage.StringConverter',
        'org.apache.kafka.connect.converters.ByteArrayConverter',
      ]);
      expect(valueOf('model.api.key').value).to.equal(MASK);
      expect(valueOf('name').value).to.equal(null);
      expect(JSON.stringify(report)).not.to.include('k-live-123');
    });

    it('validates resolved references but shows them unresolved', () => {
      const report = validationReport(
        'Scorer',
        spec,
        { 'connector.class': 'Scorer', 'tasks.max': '${env:TASKS}', 'model.name': '${env:NOPE}' },
        { providers: [envConfigProvider({ TASKS: 'lots' })] },
      );
      const valueOf = (name: string) => report.configs.find((c) => c.value.name === name)!.value;
      expect(valueOf('tasks.max')).to.deep.include({
        value: '${env:TASKS}',
        errors: ['must be a whole number, got the value resolved from ${env:TASKS}'],
      });
      expect(valueOf('model.name').errors).to.deep.equal([
        'cannot resolve ${env:NOPE}: environment variable NOPE is not set',
      ]);
      expect(JSON.stringify(report)).not.to.include('lots');
    });

    it('reports problems of undeclared keys too, so error_count matches the listed errors', () => {
      const report = validationReport('Scorer', spec, {
        name: 'scores',
        'connector.class': 'Scorer',
        topics: 'in',
        'output.topic': 'out',
        'model.name': 'm',
        'consumer.override.fetch': { nested: 1 },
      });
      expect(report.error_count).to.equal(1);
      const listed = report.configs.flatMap((c) => c.value.errors);
      expect(listed).to.have.length(1);
      expect(report.configs.at(-1)!.value.name).to.equal('consumer.override.fetch');
    });
  });

  it('formats problems for the CLI as one line per key', () => {
    expect(
      formatProblems([
        { key: 'tasks.max', message: 'must be at least 1, got 0' },
        { key: 'topics', message: 'first' },
        { key: 'topics', message: 'second' },
      ]),
    ).to.equal('  tasks.max: must be at least 1, got 0\n  topics: first; second');
  });
});
