import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { readInferenceSettings } from '../../connectors/tf-serving/config.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { parseConfig } from '../../runtime/config/config-spec.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';

const baseConfig = {
  name: 'scores',
  'connector.class': 'TFServingInference',
  topics: 'census',
  'output.topic': 'census-scored',
  'tfserving.target': '127.0.0.1:8501',
  'tfserving.model.name': 'census',
};

function parse(extra: Record<string, unknown>) {
  return parseConfig(connectorSpecFor(tfServingInferencePlugin), { ...baseConfig, ...extra });
}

describe('tfserving.transport', () => {
  it('defaults to gRPC, where the target stays host:port', () => {
    const { config, problems } = parse({ 'tfserving.target': '127.0.0.1:8500' });
    expect(problems).to.deep.equal([]);
    const settings = readInferenceSettings(config!);
    expect(settings.transport).to.equal('grpc');
    expect(settings.target).to.equal('127.0.0.1:8500');
  });

  it('with rest, gives the client pool the REST base URL: http, or https with TLS', () => {
    const plain = readInferenceSettings(parse({ 'tfserving.transport': 'rest' }).config!);
    expect(plain.transport).to.equal('rest');
    expect(plain.target).to.equal('http://127.0.0.1:8501');
    const { config, problems } = parse({
      'tfserving.transport': 'rest',
      'tfserving.tls.enable': true,
      'tfserving.tls.ca.file': '/etc/ca.pem',
    });
    expect(problems).to.deep.equal([]);
    const secure = readInferenceSettings(config!);
    expect(secure.target).to.equal('https://127.0.0.1:8501');
    expect(secure.tls).to.deep.equal({ caFile: '/etc/ca.pem' });
  });

  it('refuses an unknown transport and, with rest, a target that is not host:port', () => {
    expect(parse({ 'tfserving.transport': 'http' }).problems.map((p) => [p.key, p.message])).to.deep.equal([
      ['tfserving.transport', 'must be one of grpc, rest, got "http"'],
    ]);
    const { problems } = parse({ 'tfserving.transport': 'rest', 'tfserving.target': 'dns:///models:8501' });
    expect(problems).to.have.length(1);
    expect(problems[0]!.message).to.contain(
      'with tfserving.transport=rest, tfserving.target must be host:port',
    );
  });

  it('config/census-inference-rest.json is the census example over REST, valid as it is', () => {
    const example = JSON.parse(
      readFileSync(new URL('../../config/census-inference-rest.json', import.meta.url), 'utf8'),
    ) as {
      name: string;
      config: Record<string, string>;
    };
    const { config, problems } = parseConfig(connectorSpecFor(tfServingInferencePlugin), {
      name: example.name,
      ...example.config,
    });
    expect(problems).to.deep.equal([]);
    expect(readInferenceSettings(config!).target).to.equal('http://127.0.0.1:8501');
  });
});
