import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { openInferencePlugin } from '../../connectors/open-inference/index.js';
import { readOpenInferenceSettings, readRawInputContents } from '../../connectors/open-inference/config.js';
import { tfServingConfigSpec } from '../../connectors/tf-serving/config.js';
import { parseConfig } from '../../runtime/config/config-spec.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';

const baseConfig = {
  name: 'scores',
  'connector.class': 'OpenInference',
  topics: 'census',
  'output.topic': 'census-scored',
  'oip.target': '127.0.0.1:8510',
  'oip.model.name': 'census',
};

function parse(extra: Record<string, unknown>) {
  return parseConfig(connectorSpecFor(openInferencePlugin), { ...baseConfig, ...extra });
}

const oipKeys = openInferencePlugin.config.keys.map((k) => k.name);

describe('OpenInference config', () => {
  it('declares every key TFServingInference shares (input, output, batch, in-flight, rate limit, breaker) exactly as TF Serving does', () => {
    const shared = tfServingConfigSpec.keys.filter((k) => !k.name.startsWith('tfserving.'));
    expect(shared.length).to.be.greaterThan(15);
    for (const key of shared) {
      const own = openInferencePlugin.config.keys.find((k) => k.name === key.name);
      expect(own, key.name).to.not.equal(undefined);
      expect(own!.type).to.equal(key.type);
      expect(own!.default).to.deep.equal(key.default);
    }
  });

  it('names the protocol keys oip.*, leaves out what OIP has not (signatures, version labels, transport), and adds its own', () => {
    for (const key of [
      'oip.target',
      'oip.deadline.ms',
      'oip.startup.timeout.ms',
      'oip.tls.enable',
      'oip.tls.ca.file',
      'oip.status.policy',
      'oip.model.name',
      'oip.model.version',
      'oip.raw.input.contents',
      'oip.max.send.message.bytes',
    ])
      expect(oipKeys, key).to.include(key);
    expect(oipKeys.filter((k) => k.startsWith('tfserving.'))).to.deep.equal([]);
    expect(oipKeys).to.not.include.members([
      'oip.signature.name',
      'oip.model.version.label',
      'oip.transport',
    ]);
    expect(openInferencePlugin.config.keys.find((k) => k.name === 'oip.model.version')!.type).to.equal(
      'string',
    );
  });

  it('words every documentation string for the protocol: no TF Serving key, Predict call or TF Serving server in it', () => {
    for (const key of openInferencePlugin.config.keys) {
      expect(key.documentation, key.name).to.not.match(
        /tfserving\.|TensorFlow Serving|TF Serving|\bPredict\b|PredictRequest/,
      );
      for (const dependent of key.dependents ?? [])
        expect(oipKeys, `${key.name} -> ${dependent}`).to.include(dependent);
    }
  });

  it('reads a minimal config into the shared settings: the model with its one signature, and the defaults', () => {
    const { config, problems } = parse({});
    expect(problems).to.deep.equal([]);
    const settings = readOpenInferenceSettings(config!);
    expect(settings.target).to.equal('127.0.0.1:8510');
    expect(settings.model).to.deep.equal({ name: 'census', signatureName: 'ModelInfer' });
    expect(settings.batch).to.deep.equal({ maxRecords: 128, maxBytes: 4 * 1024 * 1024, maxWaitMs: 5 });
    expect(settings.tls).to.equal(false);
    expect(readRawInputContents(config!)).to.equal(false);
  });

  it('reads the oip.* keys: version, deadline, TLS, status policy overrides, raw contents', () => {
    const { config, problems } = parse({
      'oip.model.version': 'v2',
      'oip.deadline.ms': 1500,
      'oip.tls.enable': true,
      'oip.tls.ca.file': '/tmp/ca.pem',
      'oip.tls.server.name': 'models.internal',
      'oip.status.policy': 'INTERNAL=fatal',
      'oip.raw.input.contents': true,
    });
    expect(problems).to.deep.equal([]);
    const settings = readOpenInferenceSettings(config!);
    expect(settings.model).to.deep.equal({ name: 'census', versionLabel: 'v2', signatureName: 'ModelInfer' });
    expect(settings.deadlineMs).to.equal(1500);
    expect(settings.tls).to.deep.equal({ caFile: '/tmp/ca.pem', serverName: 'models.internal' });
    expect(settings.statusPolicy.outcomeOf('INTERNAL')).to.equal('fatal');
    expect(readRawInputContents(config!)).to.equal(true);
    expect(readOpenInferenceSettings(parse({ 'oip.model.version': '3' }).config!).model.version).to.equal(3);
  });

  it("checks the shared cross-key rules in the protocol's words, every problem at once", () => {
    const { problems } = parse({
      'oip.tls.ca.file': '/tmp/ca.pem',
      'batch.max.bytes': 100_000_000,
      'oip.status.policy': 'INTERNAL=explode',
      'oip.target': 'https://models:8510',
      'oip.model.version': 'two words',
    });
    const byKey = Object.fromEntries(problems.map((p) => [p.key, p.message]));
    expect(byKey['oip.tls.enable']).to.contain('oip.tls.enable is false');
    expect(byKey['batch.max.bytes']).to.contain('oip.max.send.message.bytes');
    expect(byKey['oip.status.policy']).to.contain('"explode"');
    expect(byKey['oip.target']).to.contain('set oip.tls.enable=true');
    expect(byKey['oip.model.version']).to.contain('without spaces');
    expect(JSON.stringify(problems)).to.not.contain('tfserving.');
  });

  it('accepts the example config/census-open-inference.json', () => {
    const example = JSON.parse(
      readFileSync(new URL('../../config/census-open-inference.json', import.meta.url), 'utf8'),
    ) as { name: string; config: Record<string, string> };
    const { problems } = parseConfig(connectorSpecFor(openInferencePlugin), {
      name: example.name,
      ...example.config,
    });
    expect(problems).to.deep.equal([]);
  });
});
