// The example plugin on its own: its task is built from connector config text through the
// runtime's real config spec (the keys every processor has plus `uppercase.locale`).
// test/integration/plugin-path.test.ts runs it in a worker against Kafka.
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { ConnectRecord, OutputRecord } from 'infer-connect/api';
import { RecordError } from 'infer-connect/api';
// The contract has no config parser of its own yet; in this repository the test reaches for the
// runtime's (a published plugin would take it from a test helper of the package).
import { checkConnectorConfig } from '../../../runtime/config/connector-config.js';
import plugin, { VALUE_NOT_TEXT } from '../index.js';

const lookup = {
  find: (name: string) => ([plugin.name, ...(plugin.aliases ?? [])].includes(name) ? plugin : undefined),
  unknownPluginMessage: (name: string) => `no connector plugin named "${name}"`,
};

function check(extra: Record<string, unknown> = {}) {
  return checkConnectorConfig(
    lookup,
    {
      'connector.class': 'UppercaseProcessor',
      topics: 'words',
      'output.topic': 'words-upper',
      'value.converter': 'string',
      ...extra,
    },
    { name: 'upper' },
  );
}

function taskFor(extra: Record<string, unknown> = {}) {
  const { config, problems } = check(extra);
  if (!config) throw new Error(`config invalid: ${JSON.stringify(problems)}`);
  return plugin.createTask({
    connectorName: 'upper',
    taskId: 0,
    config,
    logger: pino({ level: 'silent' }),
    metrics: new Registry(),
    metricLabels: { connector: 'upper', task: '0' },
    signal: new AbortController().signal,
    now: () => 0,
  });
}

const record = (value: unknown, offset = 0): ConnectRecord => ({
  topic: 'words',
  partition: 0,
  offset: String(offset),
  timestamp: '0',
  key: 'k',
  value,
  headers: { trace: Buffer.from('t1') },
  rawKey: Buffer.from('k'),
  rawValue: typeof value === 'string' ? Buffer.from(value) : null,
});

describe('UppercaseProcessor', () => {
  it('writes each string value upper-cased to output.topic with the key bytes and headers unchanged', async () => {
    const results = await taskFor().process([record('hello', 0), record('Grüße', 1)]);
    expect(results).to.deep.equal([
      [
        {
          topic: 'words-upper',
          rawKey: Buffer.from('k'),
          value: 'HELLO',
          headers: { trace: Buffer.from('t1') },
        },
      ],
      [
        {
          topic: 'words-upper',
          rawKey: Buffer.from('k'),
          value: 'GRÜSSE',
          headers: { trace: Buffer.from('t1') },
        },
      ],
    ]);
  });

  it('applies the case rules of uppercase.locale', async () => {
    const [turkish] = await taskFor({ 'uppercase.locale': 'tr' }).process([record('istanbul')]);
    const [neutral] = await taskFor().process([record('istanbul')]);
    expect((turkish as OutputRecord[])[0]!.value).to.equal('İSTANBUL');
    expect((neutral as OutputRecord[])[0]!.value).to.equal('ISTANBUL');
  });

  it('refuses a locale that is not a language tag, against the key', () => {
    const { config, problems } = check({ 'uppercase.locale': 'not a locale!' });
    expect(config).to.equal(undefined);
    expect(problems).to.have.length(1);
    expect(problems[0]!.key).to.equal('uppercase.locale');
    expect(problems[0]!.message).to.match(/not a BCP 47 language tag/);
  });

  it('fails only a record whose value is not text, with its own code, and keeps a null value null', async () => {
    const results = await taskFor().process([record(Buffer.from([1, 2])), record(null, 1), record('ok', 2)]);
    expect(results[0]).to.be.instanceOf(RecordError);
    expect((results[0] as RecordError).code).to.equal(VALUE_NOT_TEXT);
    expect((results[0] as RecordError).message).to.match(/words-0@0 is bytes/);
    expect((results[1] as OutputRecord[])[0]!.value).to.equal(null);
    expect((results[2] as OutputRecord[])[0]!.value).to.equal('OK');
  });
});
