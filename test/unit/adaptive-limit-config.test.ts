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

describe('max.in.flight.requests config (fixed or auto)', () => {
  it('keeps accepting a whole number, 4 by default', () => {
    expect(readInferenceSettings(parse({}).config!).maxInFlight).to.deep.equal({ fixed: 4 });
    expect(readInferenceSettings(parse({ 'max.in.flight.requests': 16 }).config!).maxInFlight).to.deep.equal({
      fixed: 16,
    });
  });

  it('accepts auto with default bounds 1..64, and bounds of its own', () => {
    const auto = parse({ 'max.in.flight.requests': 'auto' });
    expect(auto.problems).to.deep.equal([]);
    expect(readInferenceSettings(auto.config!).maxInFlight).to.deep.equal({ auto: { min: 1, max: 64 } });
    const bounded = parse({
      'max.in.flight.requests': 'auto',
      'max.in.flight.requests.min': 2,
      'max.in.flight.requests.max': 32,
    });
    expect(readInferenceSettings(bounded.config!).maxInFlight).to.deep.equal({ auto: { min: 2, max: 32 } });
  });

  it('refuses anything but 1..1024 or auto, saying what it takes', () => {
    for (const bad of ['0', '1025', 'AUTO', '2.5', 'many']) {
      const { problems } = parse({ 'max.in.flight.requests': bad });
      expect(problems, bad).to.have.length(1);
      expect(problems[0]!.key).to.equal('max.in.flight.requests');
      expect(problems[0]!.message).to.contain('whole number from 1 to 1024, or auto');
    }
  });

  it('refuses a minimum above the maximum, naming both values and the fix', () => {
    const { problems } = parse({
      'max.in.flight.requests': 'auto',
      'max.in.flight.requests.min': 40,
      'max.in.flight.requests.max': 32,
    });
    expect(problems).to.have.length(1);
    expect(problems[0]!.key).to.equal('max.in.flight.requests.min');
    expect(problems[0]!.message).to.equal(
      'max.in.flight.requests.min (40) exceeds max.in.flight.requests.max (32): lower the minimum or raise the maximum',
    );
  });

  it('refuses bounds below 1', () => {
    const { problems } = parse({ 'max.in.flight.requests': 'auto', 'max.in.flight.requests.min': 0 });
    expect(problems.map((p) => p.key)).to.deep.equal(['max.in.flight.requests.min']);
  });
});
