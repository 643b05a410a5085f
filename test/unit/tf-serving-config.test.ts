import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { parseConfig } from '../../runtime/config/config-spec.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { readInferenceSettings } from '../../connectors/tf-serving/config.js';

const baseConfig = {
  name: 'scores',
  'connector.class': 'TFServingInference',
  topics: 'census',
  'output.topic': 'census-scored',
  'tfserving.target': '127.0.0.1:8500',
  'tfserving.model.name': 'census',
};

function parse(extra: Record<string, unknown>) {
  return parseConfig(connectorSpecFor(tfServingInferencePlugin), { ...baseConfig, ...extra });
}

describe('TFServingInference config', () => {
  it('accepts a minimal config and fills every default', () => {
    const { config, problems } = parse({});
    expect(problems).to.deep.equal([]);
    const settings = readInferenceSettings(config!);
    expect(settings.model).to.deep.equal({ name: 'census', signatureName: 'serving_default' });
    expect(settings.batch).to.deep.equal({ maxRecords: 128, maxBytes: 4 * 1024 * 1024, maxWaitMs: 5 });
    expect(settings.maxSendMessageBytes).to.equal(64 * 1024 * 1024);
    expect(settings.outputFields).to.equal(undefined);
    expect(settings.metadataFields).to.deep.equal([]);
    expect(settings.tls).to.equal(false);
    expect(settings.inputFile).to.equal(undefined);
    expect(settings.inputNonFinitePolicy).to.equal('dead-letter');
  });

  it('refuses a version together with a version label', () => {
    const { problems } = parse({ 'tfserving.model.version': 2, 'tfserving.model.version.label': 'stable' });
    expect(problems).to.have.length(1);
    expect(problems[0]!.key).to.equal('tfserving.model.version');
    expect(problems[0]!.message).to.contain('keep one');
  });

  it('reports every bad key at once: status policy, mappings, TLS files without TLS, batch bytes above the message limit', () => {
    const { problems } = parse({
      'tfserving.status.policy': 'INTERNAL=explode',
      'input.mapping': 'age',
      'output.fields': 'probability=1bad',
      'output.metadata.fields': 'model.colour',
      'tfserving.tls.ca.file': '/tmp/ca.pem',
      'batch.max.bytes': 100_000_000,
    });
    const byKey = Object.fromEntries(problems.map((p) => [p.key, p.message]));
    expect(byKey['tfserving.status.policy']).to.contain('"explode"');
    expect(byKey['input.mapping']).to.contain('tensor=field.path');
    expect(byKey['output.fields']).to.contain('"1bad" is not a valid Avro field name');
    expect(byKey['output.metadata.fields']).to.contain('"model.colour" is not a metadata kind');
    expect(byKey['tfserving.tls.enable']).to.contain('tfserving.tls.enable is false');
    expect(byKey['batch.max.bytes']).to.contain('tfserving.max.send.message.bytes');
  });

  it('reads mappings, output names and metadata names with their defaults', () => {
    const { config, problems } = parse({
      'input.mapping': 'age=person.age, image_bytes=image',
      'input.file.fields': 'image',
      'input.file.base.dir': '/srv/images',
      'output.fields': 'probability=p_income,predicted_class',
      'output.metadata.fields': 'model.version=served_by,scored.at',
      'tfserving.model.version.label': 'stable',
    });
    expect(problems).to.deep.equal([]);
    const settings = readInferenceSettings(config!);
    expect([...settings.inputMapping]).to.deep.equal([
      ['age', 'person.age'],
      ['image_bytes', 'image'],
    ]);
    expect([...settings.inputFileFields]).to.deep.equal(['image']);
    expect(settings.inputFile).to.deep.equal({
      baseDir: '/srv/images',
      maxBytes: 16 * 1024 * 1024,
      readTimeoutMs: 5000,
      maxConcurrentReads: 2,
    });
    expect([...settings.outputFields!]).to.deep.equal([
      ['probability', 'p_income'],
      ['predicted_class', 'predicted_class'],
    ]);
    expect(settings.metadataFields).to.deep.equal([
      { kind: 'model.version', field: 'served_by' },
      { kind: 'scored.at', field: 'scored_at' },
    ]);
    expect(settings.model.versionLabel).to.equal('stable');
  });

  it('requires input.file.base.dir with input.file.fields, and keeps the file size within the gRPC message limit', () => {
    const { problems } = parse({
      'input.file.fields': 'path',
      'input.file.max.bytes': 100 * 1024 * 1024,
    });
    const byKey = Object.fromEntries(problems.map((p) => [p.key, p.message]));
    expect(byKey['input.file.base.dir']).to.contain(
      'input.file.fields is set, so input.file.base.dir is required',
    );
    expect(byKey['input.file.max.bytes']).to.contain('exceeds tfserving.max.send.message.bytes');
    const ok = parse({
      'input.file.fields': 'path',
      'input.file.base.dir': '/srv/images',
      'input.file.max.bytes': 1024,
      'input.file.read.timeout.ms': 250,
      'input.file.max.concurrent.reads': 1,
    });
    expect(ok.problems).to.deep.equal([]);
    expect(readInferenceSettings(ok.config!).inputFile).to.deep.equal({
      baseDir: '/srv/images',
      maxBytes: 1024,
      readTimeoutMs: 250,
      maxConcurrentReads: 1,
    });
  });

  it('refuses a target written as a URL, and accepts host:port and gRPC resolver targets', () => {
    for (const target of ['http://127.0.0.1:8500', 'https://models.example:443', '127.0.0.1 :8500']) {
      const { problems } = parse({ 'tfserving.target': target });
      expect(
        problems.map((p) => p.key),
        target,
      ).to.deep.equal(['tfserving.target']);
      expect(problems[0]!.message).to.contain('not host:port');
    }
    expect(parse({ 'tfserving.target': 'https://models.example:443' }).problems[0]!.message).to.contain(
      'tfserving.tls.enable=true',
    );
    for (const target of ['127.0.0.1:8500', 'models:8500', 'dns:///models:8500', 'unix:///run/tf.sock'])
      expect(parse({ 'tfserving.target': target }).problems, target).to.deep.equal([]);
  });

  it('takes input.nonfinite.policy dead-letter or pass, nothing else', () => {
    const pass = parse({ 'input.nonfinite.policy': 'pass' });
    expect(readInferenceSettings(pass.config!).inputNonFinitePolicy).to.equal('pass');
    const { problems } = parse({ 'input.nonfinite.policy': 'drop' });
    expect(problems.map((p) => p.key)).to.deep.equal(['input.nonfinite.policy']);
    expect(problems[0]!.message).to.contain('dead-letter').and.contain('pass');
  });

  it('refuses an output field that is also a metadata field', () => {
    const { problems } = parse({
      'output.fields': 'score=model_name',
      'output.metadata.fields': 'model.name',
    });
    expect(problems.map((p) => p.message).join()).to.contain('model_name named both');
  });

  for (const file of ['census-inference.json', 'image-inference.json']) {
    it(`accepts the example config/${file}`, () => {
      const document = JSON.parse(readFileSync(new URL(`../../config/${file}`, import.meta.url), 'utf8')) as {
        name: string;
        config: Record<string, unknown>;
      };
      const { problems } = parseConfig(connectorSpecFor(tfServingInferencePlugin), {
        name: document.name,
        ...document.config,
      });
      expect(problems).to.deep.equal([]);
    });
  }
});
