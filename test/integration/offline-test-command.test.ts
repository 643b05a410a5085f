// `infer-connect test` on the census example (config/census-test) against the real model server:
// the real command, the committed expected file, an altered one, and the same records through a
// real worker and Kafka, to show that what the command prints is what a deployment writes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import avro from 'avsc';
import { expect } from 'chai';
import { firstDifference, parseJsonExact } from '../../runtime/offline-test-report.js';
import { createTopic, producePartitions, readTopic } from '../helpers/kafka-topics.js';
import { registryUrl, uniqueName } from '../helpers/stack.js';
import { startTestWorker } from '../helpers/worker.js';

const repo = resolve(import.meta.dirname, '../..');
const cli = join(repo, 'bin', 'infer-connect.js');
const example = join(repo, 'config', 'census-test');
const connectorFile = join(example, 'census-inference.json');
const recordsFile = join(example, 'records.avro-jsonl');
const schemaFile = join(example, 'census-nullable-age.avsc');
const expectedFile = join(example, 'expected.jsonl');

/** Runs the command from the repository root, as the docs show it. */
function infer(...args: string[]) {
  return spawnSync(process.execPath, [cli, 'test', ...args], {
    cwd: repo,
    encoding: 'utf8',
    timeout: 90_000,
  });
}

const censusArgs = (...more: string[]) => [
  'config/census-test/census-inference.json',
  '--input',
  'config/census-test/records.avro-jsonl',
  '--input-format',
  'records',
  '--value-schema',
  'config/census-test/census-nullable-age.avsc',
  '--worker',
  'config/worker.json',
  '--ignore-fields',
  'scored_at',
  ...more,
];

type Line = Record<string, unknown> & { line: number };
const expectedLines = (): Line[] =>
  readFileSync(expectedFile, 'utf8')
    .trim()
    .split('\n')
    .map((text) => parseJsonExact(text) as Line);

describe('infer-connect test on the census example (real model server)', function () {
  this.timeout(180_000);

  it('matches the committed expected file: exit 0', () => {
    const result = infer(...censusArgs('--expect', 'config/census-test/expected.jsonl'));
    expect(result.status, result.stderr + result.stdout).to.equal(0);
    expect(result.stdout).to.equal(
      'all 21 inputs match config/census-test/expected.jsonl (float tolerance 0.000001, ignored fields scored_at)\n',
    );
  });

  it('exits 1 and shows the differing inputs when the expected file is altered', () => {
    const dir = mkdtempSync(join(tmpdir(), 'offline-test-census-'));
    const lines = expectedLines();
    const scored = lines.find((l) => 'outputs' in l)!;
    const output = (scored['outputs'] as Array<{ value: { probability: number } }>)[0]!;
    const original = output.value.probability;
    output.value.probability = original + 0.01;
    const letter = lines.find((l) => 'dead_letter' in l)!;
    (letter['dead_letter'] as { code: string }).code = 'MODEL_INPUT_TYPE_MISMATCH';
    const altered = join(dir, 'altered.jsonl');
    writeFileSync(altered, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');

    const result = infer(...censusArgs('--expect', altered));
    expect(result.status, result.stderr).to.equal(1);
    expect(result.stdout).to.include(
      `@@ input line ${scored.line}: outputs[0].value.probability: expected ${original + 0.01}, got ${original} @@`,
    );
    expect(result.stdout).to.include(
      `@@ input line ${letter.line}: dead_letter.code: expected "MODEL_INPUT_TYPE_MISMATCH", got "MODEL_INPUT_MISSING" @@`,
    );
    expect(result.stdout).to.include(`2 of 21 inputs differ from ${altered}`);
  });

  it('reports a model server that does not answer as a task failure at start for every input, exit 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'offline-test-census-down-'));
    const document = JSON.parse(readFileSync(connectorFile, 'utf8')) as { config: Record<string, string> };
    // Port 1 refuses connections: nothing of the shared stack is touched.
    document.config['tfserving.target'] = '127.0.0.1:1';
    document.config['tfserving.startup.timeout.ms'] = '1500';
    const down = join(dir, 'census-down.json');
    writeFileSync(down, JSON.stringify(document));
    const [, ...rest] = censusArgs('--output-format', 'json', '--log-level', 'error');
    const result = infer(down, ...rest);
    expect(result.status, result.stderr).to.equal(1);
    const outcomes = result.stdout
      .trim()
      .split('\n')
      .map((text) => JSON.parse(text) as { task_failed?: { code: string; stage: string } });
    expect(outcomes).to.have.length(21);
    for (const outcome of outcomes)
      expect(outcome.task_failed).to.deep.include({ code: 'TASK_START_FAILED', stage: 'TASK_START' });
  });

  it('prints the outcomes a real worker produces from the same records through Kafka: same values, same dead letter', async () => {
    const input = uniqueName('census-offline');
    await createTopic(input, 1);
    const registry = new SchemaRegistry({ host: registryUrl });
    const schemaText = readFileSync(schemaFile, 'utf8');
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: schemaText },
      { subject: `${input}-value` },
    );
    const type = avro.Type.forSchema(JSON.parse(schemaText) as avro.Schema);
    const records = readFileSync(recordsFile, 'utf8')
      .trim()
      .split('\n')
      .map((text) => JSON.parse(text) as { key: string; value: unknown });
    const header = Buffer.alloc(5);
    header.writeInt32BE(id, 1);
    await producePartitions(input, [
      records.map((r) => ({
        key: r.key,
        value: Buffer.concat([header, type.toBuffer(r.value)]),
        headers: {},
        timestamp: String(Date.now()),
      })),
    ]);

    const { config } = JSON.parse(readFileSync(connectorFile, 'utf8')) as { config: Record<string, string> };
    const worker = await startTestWorker();
    try {
      await worker.worker.putConnectorConfig(
        input,
        {
          ...config,
          topics: input,
          'output.topic': `${input}-scored`,
          'errors.deadletterqueue.topic.name': `${input}-dlq`,
        },
        false,
      );
      const written = await readTopic(`${input}-scored`, 20);
      const letters = await readTopic(`${input}-dlq`, 1);

      const expected = expectedLines();
      const byKey = new Map(records.map((r, i) => [r.key, expected[i]!]));
      for (const message of written) {
        const offline = byKey.get(message.key)!;
        const [output] = offline['outputs'] as Array<{ key: string; value: Record<string, unknown> }>;
        const { scored_at: _offlineAt, ...want } = output!.value;
        const { scored_at: _workerAt, ...got } = (await registry.decode(message.value!)) as Record<
          string,
          unknown
        >;
        expect(output!.key).to.equal(message.key);
        expect(firstDifference(want, { ...got }, 1e-6), `record ${message.key}`).to.equal(undefined);
      }
      expect(written.map((m) => m.key).sort()).to.deep.equal(
        records
          .filter((_, i) => 'outputs' in expected[i]!)
          .map((r) => r.key)
          .sort(),
      );
      const offlineLetter = expected.find((l) => 'dead_letter' in l)!['dead_letter'] as Record<
        string,
        string
      >;
      const letter = letters[0]!;
      expect(letter.key).to.equal(records[expected.findIndex((l) => 'dead_letter' in l)]!.key);
      expect(letter.headers['__connect.errors.error.code']?.toString()).to.equal(offlineLetter['code']);
      expect(letter.headers['__connect.errors.stage']?.toString()).to.equal(offlineLetter['stage']);
      expect(letter.headers['__connect.errors.class.name']?.toString()).to.equal(offlineLetter['class']);
    } finally {
      await worker.stop();
    }
  });
});
