import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { readCensusRows } from '../../dev/census.js';
import { uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const repo = resolve(import.meta.dirname, '../..');
const trainCsv = join(repo, 'data/census/adult.train.csv');
describe('census train split through FileSource -> Avro topic -> FileSink', function () {
  this.timeout(180_000);

  it('delivers every row exactly once, with equal field values, in file order', async () => {
    const worker = await startTestWorker();
    const topic = uniqueName('census-train');
    const out = join(worker.dir, 'census-train.jsonl');
    try {
      await worker.worker.putConnectorConfig(
        'train-source',
        {
          'connector.class': 'FileSource',
          file: trainCsv,
          format: 'csv',
          'value.schema.file': join(repo, 'schemas/census.avsc'),
          topic,
          'value.converter': 'avro',
        },
        false,
      );
      await worker.worker.putConnectorConfig(
        'train-sink',
        { 'connector.class': 'FileSink', topics: topic, file: out, 'value.converter': 'avro' },
        false,
      );
      const expected = readCensusRows('train');
      const lines = await waitFor(
        () => {
          if (!existsSync(out)) return undefined;
          const text = readFileSync(out, 'utf8').trimEnd().split('\n');
          return text.length >= expected.length ? text : undefined;
        },
        150_000,
        `${expected.length} lines in ${out}`,
      );
      // One partition: the sink sees the file's order exactly, and nothing twice.
      expect(lines.length).to.equal(expected.length);
      const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      for (let i = 0; i < rows.length; i++) {
        if (JSON.stringify(rows[i]) !== JSON.stringify(expected[i])) {
          expect(rows[i], `row ${i + 1}`).to.deep.equal(expected[i]);
        }
      }
      expect(worker.worker.connectorStatus('train-source').tasks[0]!.state).to.equal('RUNNING');
      expect(worker.worker.connectorStatus('train-sink').tasks[0]!.state).to.equal('RUNNING');
    } finally {
      await worker.stop();
    }
  });
});
