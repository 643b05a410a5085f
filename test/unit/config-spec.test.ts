import { expect } from 'chai';
import {
  defineConfig,
  MASK,
  mergeSpecs,
  parseConfig,
  type ConfigKey,
  type ConfigSpec,
} from '../../runtime/config/config-spec.js';

const key = (k: Partial<ConfigKey> & Pick<ConfigKey, 'name' | 'type'>): ConfigKey => ({
  documentation: `The ${k.name}. More detail that the required-key message leaves out.`,
  importance: 'medium',
  ...k,
});

const spec: ConfigSpec = defineConfig(
  [
    key({ name: 'count', type: 'int', default: 1, min: 1, max: 10 }),
    key({ name: 'size', type: 'long', default: 0 }),
    key({ name: 'ratio', type: 'double', default: 0.5 }),
    key({ name: 'enabled', type: 'boolean', default: false }),
    key({ name: 'names', type: 'list', default: [] }),
    key({ name: 'mode', type: 'string', default: 'fast', validValues: ['fast', 'slow'] }),
    key({ name: 'target', type: 'string' }),
    key({ name: 'token', type: 'password', default: null }),
    key({
      name: 'label',
      type: 'string',
      default: null,
      secret: true,
      validate: (v) => (String(v).startsWith('lbl-') ? undefined : `"${String(v)}" must start with lbl-`),
    }),
  ],
  [
    {
      keys: ['count', 'size'],
      check: (values) =>
        (values.get('size') as number) < (values.get('count') as number)
          ? 'size must be >= count'
          : undefined,
    },
  ],
);

describe('config spec', () => {
  it('parses every type from Kafka Connect strings and from JSON numbers, booleans and string arrays', () => {
    const { config, problems } = parseConfig(spec, {
      count: '3',
      size: 5000000000,
      ratio: '0.25',
      enabled: true,
      names: ['a', 'b'],
      target: 'x',
      label: 'lbl-1',
    });
    expect(problems).to.deep.equal([]);
    expect(config!.getNumber('count')).to.equal(3);
    expect(config!.getNumber('size')).to.equal(5000000000);
    expect(config!.getNumber('ratio')).to.equal(0.25);
    expect(config!.getBoolean('enabled')).to.equal(true);
    expect(config!.getList('names')).to.deep.equal(['a', 'b']);
    expect(config!.getString('mode')).to.equal('fast');
  });

  it('splits list strings on commas and drops blanks', () => {
    const { config } = parseConfig(spec, { target: 'x', names: ' a, b ,,c ', size: 5 });
    expect(config!.getList('names')).to.deep.equal(['a', 'b', 'c']);
  });

  it('reports every problem at once, each against its key', () => {
    const { config, problems } = parseConfig(spec, {
      count: 'three',
      ratio: 'half',
      enabled: 'yes',
      mode: 'medium',
    });
    expect(config).to.equal(undefined);
    expect(problems.map((p) => p.key)).to.have.members(['count', 'ratio', 'enabled', 'mode', 'target']);
    expect(problems.find((p) => p.key === 'mode')!.message).to.equal('"medium" is not one of: fast, slow');
    expect(problems.find((p) => p.key === 'count')!.message).to.equal('must be a whole number, got "three"');
  });

  it('says a required key is required, with the first sentence of its documentation', () => {
    const { problems } = parseConfig(spec, {});
    expect(problems).to.deep.include({ key: 'target', message: 'is required: The target.' });
  });

  it('refuses numbers outside their range or type', () => {
    const { problems } = parseConfig(spec, { target: 'x', count: 11, size: '1.5' });
    expect(problems).to.deep.include({ key: 'count', message: 'must be at most 10, got 11' });
    expect(problems).to.deep.include({ key: 'size', message: 'must be a whole number, got "1.5"' });
    const int32 = parseConfig(spec, { target: 'x', count: 2 ** 31 });
    expect(int32.problems[0]!.message).to.match(/must fit in 32 bits/);
  });

  it('runs cross-key rules only when their keys parsed, so one mistake is reported once', () => {
    const bad = parseConfig(spec, { target: 'x', count: 'many', size: 0 });
    expect(bad.problems.map((p) => p.key)).to.deep.equal(['count']);
    const crossed = parseConfig(spec, { target: 'x', count: 5, size: 2 });
    expect(crossed.problems).to.deep.equal([{ key: 'count', message: 'size must be >= count' }]);
  });

  it('refuses objects and mixed arrays with a hint to write a string', () => {
    const { problems } = parseConfig(spec, { target: { nested: true }, names: [1, 2] });
    expect(problems.find((p) => p.key === 'target')!.message).to.match(
      /must be a string, number or boolean.*object/,
    );
    expect(problems.find((p) => p.key === 'names')!.message).to.match(/an array/);
  });

  it('masks secret keys and keys named like passwords when showing a config', () => {
    const { config } = parseConfig(spec, {
      target: 'x',
      size: 5,
      token: 't0ps3cret',
      label: 'lbl-secret',
      'producer.override.sasl.password': 'pw',
    });
    expect(config!.masked()).to.deep.equal({
      target: 'x',
      size: '5',
      token: MASK,
      label: MASK,
      'producer.override.sasl.password': MASK,
    });
  });

  it('keeps secret values out of problem messages, even when a validator echoes them', () => {
    const { problems } = parseConfig(spec, { target: 'x', size: 5, label: 'not-a-label' });
    expect(problems).to.have.length(1);
    expect(problems[0]!.message).not.to.include('not-a-label');
    expect(problems[0]!.message).to.include(MASK);
  });

  it('names the reference, not the resolved value, when a resolved value is invalid', () => {
    const { problems } = parseConfig(
      spec,
      { target: 'x', size: 5, count: 'hunter2' },
      { references: { count: '${env:N}' } },
    );
    expect(problems).to.deep.equal([
      { key: 'count', message: 'must be a whole number, got the value resolved from ${env:N}' },
    ]);
  });

  it('shows references unresolved when masking a config that came from them', () => {
    const { config } = parseConfig(
      spec,
      { target: 'resolved-host', size: 1 },
      { references: { target: '${env:HOST}' } },
    );
    expect(config!.getString('target')).to.equal('resolved-host');
    expect(config!.masked()['target']).to.equal('${env:HOST}');
  });

  it('gives undeclared keys by prefix and refuses reading an undeclared key', () => {
    const { config } = parseConfig(spec, {
      target: 'x',
      size: 1,
      'consumer.override.max.poll.records': '10',
    });
    expect(config!.withPrefix('consumer.override.')).to.deep.equal({ 'max.poll.records': '10' });
    expect(() => config!.get('nope')).to.throw(/not declared/);
  });

  it('lets a later spec replace a key of an earlier one and keeps both specs rules', () => {
    const extra = defineConfig(
      [key({ name: 'count', type: 'int', default: 7 })],
      [{ keys: ['target'], check: (v) => (v.get('target') === 'bad' ? 'no' : undefined) }],
    );
    const merged = mergeSpecs(spec, extra);
    expect(merged.keys.filter((k) => k.name === 'count')).to.have.length(1);
    expect(merged.rules).to.have.length(2);
    const { config, problems } = parseConfig(merged, { target: 'bad', size: 100 });
    expect(config).to.equal(undefined);
    expect(problems).to.deep.equal([{ key: 'target', message: 'no' }]);
    expect(parseConfig(merged, { target: 'ok', size: 100 }).config!.getNumber('count')).to.equal(7);
  });

  it('refuses a spec that declares a key twice', () => {
    expect(() =>
      defineConfig([key({ name: 'a', type: 'string' }), key({ name: 'a', type: 'int' })]),
    ).to.throw(/declares "a" twice/);
  });
});
