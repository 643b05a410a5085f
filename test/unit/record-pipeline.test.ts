import { expect } from 'chai';
import type { KafkaMessage } from 'kafkajs';
import type { ProcessorPlugin } from '../../runtime/api.js';
import { defineConfig } from '../../runtime/config/config-spec.js';
import type { Converter } from '../../runtime/converters/converter.js';
import { createConverter } from '../../runtime/converters/index.js';
import { FatalError } from '../../runtime/errors.js';
import { RecordPipeline } from '../../runtime/record-pipeline.js';

const compatible = { type: 'record', name: 'Scored', fields: [] };
const incompatible = { type: 'record', name: 'ScoredV2', fields: [] };

/** Writes each value with the schema its content asks for. */
const scorer: ProcessorPlugin = {
  name: 'Scorer',
  kind: 'processor',
  version: '1',
  description: 'test',
  config: defineConfig([]),
  createTask: () => ({
    process: async (records) =>
      records.map((r) => [
        {
          topic: 'out',
          value: r.value,
          valueSchema: (String(r.value) === 'v2' ? incompatible : compatible) as never,
        },
      ]),
  }),
};

/** A value converter whose registry refuses one schema as incompatible, counting registrations. */
function refusingConverter() {
  const registrations: unknown[] = [];
  const converter: Converter = {
    isKey: false,
    toConnect: (_topic, payload) => ({ value: payload?.toString() ?? null }),
    prepareEncode: async (_topic, schema) => {
      registrations.push(schema);
      if (schema === (incompatible as never)) {
        throw new FatalError(
          'SCHEMA_INCOMPATIBLE',
          'The schema registry refused the schema for subject out-value: 409',
          {
            context: { subject: 'out-value' },
          },
        );
      }
    },
    fromConnect: (_topic, value) => Buffer.from(String(value)),
  };
  return { converter, registrations };
}

const message = (offset: number, value: string): KafkaMessage => ({
  offset: String(offset),
  key: null,
  value: Buffer.from(value),
  timestamp: '0',
  attributes: 0,
  headers: {},
});

describe('the record pipeline', () => {
  it('makes the records whose derived output schema the registry refuses bad records, and writes the rest', async () => {
    const { converter, registrations } = refusingConverter();
    const pipeline = new RecordPipeline({
      plugin: scorer,
      task: () => scorer.createTask({} as never) as never,
      keyConverter: createConverter('string', { isKey: true, registry: undefined, schemasEnable: false }),
      valueConverter: converter,
      now: () => 0,
      partitionFor: () => undefined,
      fits: () => ({ fits: true, size: 1, limit: 2 }),
      maxRecordBytes: 1_000,
    });
    const first = await pipeline.run('in', 0, [message(0, 'v1'), message(1, 'v2'), message(2, 'v1')]);
    expect(first.outputs.map((o) => o.index)).to.deep.equal([0, 2]);
    expect(first.failures).to.have.length(1);
    expect(first.failures[0]).to.include({ index: 1, stage: 'VALUE_CONVERTER' });
    expect((first.failures[0]!.error as FatalError).code).to.equal('OUTPUT_SCHEMA_REFUSED');
    // The refusal is remembered: the next chunk does not ask the registry about that schema again.
    const second = await pipeline.run('in', 0, [message(3, 'v2')]);
    expect(second.failures.map((f) => f.index)).to.deep.equal([0]);
    expect(registrations.filter((s) => s === incompatible)).to.have.length(1);
  });
});
