import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type {
  ConnectRecord,
  OutputRecord,
  ProcessorPlugin,
  SinkPlugin,
  SourcePlugin,
} from '../../runtime/api.js';
import { defineConfig } from '../../runtime/config/config-spec.js';
import { FatalError, RecordError, RetriableError } from '../../runtime/errors.js';
import { offlineTestOptions, runOfflineTest, type OfflineTestOptions } from '../../runtime/offline-test.js';
import { parseJsonExact } from '../../runtime/offline-test-report.js';

/** What the fake scorer saw and how it behaves. */
interface ScorerState {
  created: number;
  started: number;
  stopped: number;
  calls: number;
  records: ConnectRecord[];
  /** Calls that throw MODEL_UNAVAILABLE before the scorer answers (Infinity: never answers). */
  transientCalls: number;
}

/**
 * A processor that scores `{"n": number}` values with `score = n / 3`; a value with `"bad": true`
 * is a bad record (MODEL_INPUT_MISSING on field n), one with `"fatal": true` fails the call.
 */
function scorerPlugin(state: ScorerState, outputSchema?: object): ProcessorPlugin {
  return {
    name: 'Scorer',
    kind: 'processor',
    version: '1',
    description: 'test scorer',
    config: defineConfig([]),
    createTask: (context) => {
      state.created++;
      const topic = context.config.getString('output.topic');
      return {
        start: async () => {
          state.started++;
        },
        process: async (records) => {
          state.calls++;
          if (state.calls <= state.transientCalls)
            throw new RetriableError('MODEL_UNAVAILABLE', 'the model server is unavailable', {
              stage: 'TASK_PROCESS',
            });
          state.records.push(...records);
          return records.map((record): OutputRecord[] | Error => {
            const value = record.value as { n: number; bad?: boolean; fatal?: boolean; leak?: boolean };
            if (value.fatal) throw new FatalError('MODEL_NOT_FOUND', 'model "m" is not served');
            if (value.leak)
              return new RecordError(
                'MODEL_INVALID_ARGUMENT',
                `refused with token ${String(context.config.originals['scorer.api.password'])}`,
                { stage: 'TASK_PROCESS' },
              );
            if (value.bad)
              return new RecordError('MODEL_INPUT_MISSING', 'Record has no usable value in field "n"', {
                stage: 'TASK_PROCESS',
                context: { field: 'n' },
              });
            return [
              {
                topic,
                key: record.key,
                value: { ...value, score: value.n / 3 },
                ...(outputSchema ? { valueSchema: outputSchema as never } : {}),
              },
            ];
          });
        },
        stop: async () => {
          state.stopped++;
        },
      };
    },
  };
}

const freshState = (transientCalls = 0): ScorerState => ({
  created: 0,
  started: 0,
  stopped: 0,
  calls: 0,
  records: [],
  transientCalls,
});

describe('infer-connect test (offline connector test)', () => {
  let dir: string;
  let state: ScorerState;
  let stdout: string;
  let stderr: string;
  let clock: number;
  let sleeps: number[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'offline-test-'));
    state = freshState();
    stdout = '';
    stderr = '';
    clock = 1_000_000;
    sleeps = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  const connector = (config: Record<string, unknown> = {}): string =>
    file(
      'connector.json',
      JSON.stringify({
        name: 'scoring',
        config: {
          'connector.class': 'Scorer',
          topics: 'numbers',
          'output.topic': 'scored',
          'key.converter': 'string',
          'value.converter': 'json',
          'errors.tolerance': 'all',
          'errors.deadletterqueue.topic.name': 'numbers-dlq',
          ...config,
        },
      }),
    );

  const run = (
    options: Partial<OfflineTestOptions> & { input: string },
    plugins: ReadonlyArray<ProcessorPlugin | SinkPlugin | SourcePlugin> = [scorerPlugin(state)],
  ): Promise<number> =>
    runOfflineTest(
      plugins,
      {
        connectorFile: options.connectorFile ?? connector(),
        inputFormat: 'values',
        floatTolerance: 1e-6,
        ignoreFields: [],
        outputFormat: 'json',
        timeoutMs: 30_000,
        logLevel: 'error',
        ...options,
      },
      {
        stdout: (text) => (stdout += text),
        stderr: (text) => (stderr += text),
        now: () => clock,
        sleep: async (ms) => {
          sleeps.push(ms);
          clock += ms;
          return true;
        },
        logDestination: new Writable({ write: (_chunk, _encoding, done) => done() }),
      },
    );

  const outcomes = () =>
    stdout
      .trim()
      .split('\n')
      .map((line) => parseJsonExact(line) as Record<string, unknown>);

  it('prints one JSON line per input with the output records the connector would write', async () => {
    const input = file('in.jsonl', '{"n": 3}\n\n{"n": 1.5}\n');
    const code = await run({ input });
    expect(code).to.equal(0);
    expect(outcomes()).to.deep.equal([
      { line: 1, outputs: [{ topic: 'scored', key: null, value: { n: 3, score: 1 } }] },
      { line: 3, outputs: [{ topic: 'scored', key: null, value: { n: 1.5, score: 0.5 } }] },
    ]);
    expect(state.records.map((r) => [r.topic, r.partition, r.offset, r.timestamp])).to.deep.equal([
      ['numbers', 0, '0', '1000000'],
      ['numbers', 0, '1', '1000000'],
    ]);
    expect(state.stopped).to.equal(1);
  });

  it('hands the task the key, headers, topic, partition, offset and timestamp of records-format lines', async () => {
    const input = file(
      'in.jsonl',
      '{"key": "a", "value": {"n": 6}, "headers": {"trace": "t1"}, "partition": 2, "offset": 40, "timestamp": 5}\n' +
        '{"key": "b", "value": {"n": 9}, "partition": 2}\n',
    );
    expect(await run({ input, inputFormat: 'records' })).to.equal(0);
    const [first, second] = state.records;
    expect(first).to.include({ key: 'a', partition: 2, offset: '40', timestamp: '5' });
    expect(first!.headers['trace']?.toString()).to.equal('t1');
    expect(second).to.include({ key: 'b', partition: 2, offset: '41' });
    expect(outcomes()[0]).to.deep.equal({
      line: 1,
      outputs: [{ topic: 'scored', key: 'a', value: { n: 6, score: 2 } }],
    });
  });

  it("builds the converters as the worker does: Kafka Connect's JsonConverter class (schemas.enable by default) hands the task the payload", async () => {
    const input = file('in.jsonl', '{"n": 3}\n');
    const connectorFile = connector({ 'value.converter': 'org.apache.kafka.connect.json.JsonConverter' });
    expect(await run({ input, connectorFile }), stderr).to.equal(0);
    expect(state.records[0]!.value).to.deep.equal({ n: 3 });
    expect(JSON.parse(state.records[0]!.rawValue!.toString())).to.have.keys('schema', 'payload');
    expect(outcomes()[0]).to.deep.equal({
      line: 1,
      outputs: [{ topic: 'scored', key: null, value: { n: 3, score: 1 } }],
    });
  });

  it('with errors.tolerance=all a bad record gets a dead-letter decision with code, stage, class and context; the others are written', async () => {
    const input = file('in.jsonl', '{"n": 3}\n{"n": 1, "bad": true}\n{"n": 6}\n');
    expect(await run({ input })).to.equal(0);
    const [, bad, after] = outcomes();
    expect(bad).to.deep.equal({
      line: 2,
      dead_letter: {
        topic: 'numbers-dlq',
        code: 'MODEL_INPUT_MISSING',
        stage: 'TASK_PROCESS',
        message: 'Record has no usable value in field "n"',
        class: 'Scorer',
        context: { field: 'n' },
      },
    });
    expect(after).to.have.property('outputs');
    expect(stderr).to.include('3 inputs: 2 with outputs (2 records), 1 dead letter');
  });

  it('hides the config secrets in the dead-letter message it prints', async () => {
    const input = file('in.jsonl', '{"n": 1, "leak": true}\n');
    const connectorFile = connector({ 'scorer.api.password': 'hunter2-very-secret' });
    expect(await run({ input, connectorFile })).to.equal(0);
    expect(stdout).to.include('refused with token [hidden]');
    expect(stdout).not.to.include('hunter2');
  });

  it('with errors.tolerance=none a bad record fails the task: what came before is written, nothing after is processed, exit 1', async () => {
    const input = file('in.jsonl', '{"n": 3}\n{"n": 1, "bad": true}\n{"n": 6}\n');
    const connectorFile = connector({
      'errors.tolerance': 'none',
      'errors.deadletterqueue.topic.name': '',
    });
    expect(await run({ input, connectorFile })).to.equal(1);
    const [before, bad, after] = outcomes();
    expect(before).to.have.property('outputs');
    expect(bad!['task_failed']).to.deep.include({ code: 'MODEL_INPUT_MISSING', stage: 'TASK_PROCESS' });
    expect(after).to.deep.equal({ line: 3, not_processed: 'the task failed at line 2' });
  });

  it('with errors.tolerance=all and no dead-letter topic the decision says the record is skipped (topic null)', async () => {
    const input = file('in.jsonl', '{"n": 1, "bad": true}\n');
    const connectorFile = connector({ 'errors.deadletterqueue.topic.name': '' });
    expect(await run({ input, connectorFile, outputFormat: 'pretty' })).to.equal(0);
    expect(stdout).to.include(
      'line 1    -> skipped (errors.tolerance=all, no dead-letter topic): MODEL_INPUT_MISSING',
    );
  });

  it('a task call that throws a fatal error fails the task for its records; later inputs are not processed', async () => {
    const input = file('in.jsonl', '{"n": 3}\n{"n": 1, "fatal": true}\n');
    const code = await run({ input });
    expect(code).to.equal(1);
    expect(outcomes().map((o) => (o['task_failed'] as { code: string } | undefined)?.code)).to.deep.equal([
      'MODEL_NOT_FOUND',
      'MODEL_NOT_FOUND',
    ]);
  });

  it('retries a transient failure on the runtime backoff and prints the outputs once the model answers', async () => {
    state = freshState(2);
    const input = file('in.jsonl', '{"n": 3}\n');
    expect(await run({ input }, [scorerPlugin(state)])).to.equal(0);
    expect(sleeps).to.deep.equal([300, 600]);
    expect(outcomes()[0]).to.have.property('outputs');
  });

  it('reports a transient failure that outlasts --timeout-ms for its records, with the attempts made, and exits 1', async () => {
    state = freshState(Number.POSITIVE_INFINITY);
    const input = file('in.jsonl', '{"n": 3}\n{"n": 6}\n');
    expect(await run({ input, timeoutMs: 1_000 }, [scorerPlugin(state)])).to.equal(1);
    expect(sleeps).to.deep.equal([300, 600]);
    expect(outcomes()[1]).to.deep.equal({
      line: 2,
      retry_timeout: {
        code: 'MODEL_UNAVAILABLE',
        stage: 'TASK_PROCESS',
        message: 'the model server is unavailable',
        attempts: 3,
      },
    });
  });

  it('reports every bad input line with its line number and runs nothing', async () => {
    const input = file(
      'in.jsonl',
      '{"value": {"n": 1}}\n{"value": \n{"value": {"n": 2}, "colour": "red"}\n{"key": "k"}\n{"topic": "other", "value": 1}\n',
    );
    expect(await run({ input, inputFormat: 'records' })).to.equal(1);
    expect(stdout).to.equal('');
    expect(stderr).to.include('4 problem(s)');
    expect(stderr).to.match(/line 2: not valid JSON/);
    expect(stderr).to.include('line 3: unknown field(s) "colour"');
    expect(stderr).to.include('line 4: "value" is missing');
    expect(stderr).to.include('line 5: topic "other" is not consumed by this connector (topics numbers)');
    expect(state.created).to.equal(0);
  });

  it('refuses a bad config with every problem per key, as standalone does, before reading the inputs', async () => {
    const input = file('in.jsonl', '{"n": 1}\n');
    const connectorFile = connector({ 'output.topic': 'numbers', 'errors.tolerance': 'some' });
    expect(await run({ input, connectorFile })).to.equal(1);
    expect(stderr).to.include('problem(s)');
    expect(stderr).to.match(/ {2}output\.topic: .*also listed in topics/);
    expect(stderr).to.match(/ {2}errors\.tolerance: /);
    expect(state.created).to.equal(0);
  });

  it('runs a sink connector: each record is written (put and flushed) or gets its dead-letter decision', async () => {
    const put: unknown[] = [];
    let flushes = 0;
    const sink: SinkPlugin = {
      name: 'Collector',
      kind: 'sink',
      version: '1',
      description: 'test sink',
      config: defineConfig([]),
      createTask: () => ({
        put: async (records) => {
          put.push(...records.map((r) => r.value));
          return records.map((r) =>
            (r.value as { n: number }).n < 0
              ? new RecordError('SOURCE_RECORD_MALFORMED', 'negative', { stage: 'TASK_PUT' })
              : undefined,
          );
        },
        flush: async () => {
          flushes++;
        },
      }),
    };
    const connectorFile = file(
      'sink.json',
      JSON.stringify({
        name: 'collect',
        config: {
          'connector.class': 'Collector',
          topics: 'numbers',
          'value.converter': 'json',
          'errors.tolerance': 'all',
        },
      }),
    );
    const input = file('in.jsonl', '{"n": 1}\n{"n": -1}\n');
    expect(await run({ input, connectorFile }, [sink])).to.equal(0);
    expect(put).to.deep.equal([{ n: 1 }, { n: -1 }]);
    expect(flushes).to.equal(1);
    expect(outcomes()).to.deep.equal([
      { line: 1, written: true },
      {
        line: 2,
        dead_letter: {
          topic: null,
          code: 'SOURCE_RECORD_MALFORMED',
          stage: 'TASK_PUT',
          message: 'negative',
          class: 'Collector',
        },
      },
    ]);
  });

  it('refuses a source connector: it reads its own input', async () => {
    const source: SourcePlugin = {
      name: 'Numbers',
      kind: 'source',
      version: '1',
      description: 'test source',
      config: defineConfig([]),
      createTask: () => ({ poll: async () => null }),
    };
    const connectorFile = file(
      'source.json',
      JSON.stringify({ name: 'numbers', config: { 'connector.class': 'Numbers' } }),
    );
    expect(await run({ input: file('in.jsonl', '1\n'), connectorFile }, [source])).to.equal(1);
    expect(stderr).to.include('Numbers is a source connector');
  });

  it('reads the command-line options with their documented defaults and refuses bad values, all at once', () => {
    expect(
      offlineTestOptions('c.json', { input: 'in.jsonl', ignoreFields: 'scored_at, model_version' }),
    ).to.deep.equal({
      connectorFile: 'c.json',
      input: 'in.jsonl',
      inputFormat: 'values',
      valueSchema: undefined,
      keySchema: undefined,
      worker: undefined,
      expect: undefined,
      floatTolerance: 1e-6,
      ignoreFields: ['scored_at', 'model_version'],
      outputFormat: 'pretty',
      timeoutMs: 30_000,
      logLevel: 'warn',
    });
    expect(
      offlineTestOptions('c.json', {
        input: 'in.jsonl',
        timeoutMs: '-1',
        floatTolerance: 'tiny',
        outputFormat: 'xml',
      }),
    ).to.deep.equal({
      error:
        '--float-tolerance must be a non-negative number, not "tiny"\n' +
        '--output-format must be one of json, pretty, not "xml"\n' +
        '--timeout-ms must be a non-negative number, not "-1"',
    });
  });

  describe('with --expect', () => {
    const recorded = async (input: string): Promise<string> => {
      expect(await run({ input })).to.equal(0);
      const text = stdout;
      stdout = '';
      return text;
    };

    it('exits 0 when every outcome matches the expected file, messages aside', async () => {
      const input = file('in.jsonl', '{"n": 3}\n{"n": 1, "bad": true}\n');
      const expected = file(
        'expected.jsonl',
        (await recorded(input)).replace('no usable value', 'a reworded message'),
      );
      expect(await run({ input, expect: expected })).to.equal(0);
      expect(stdout).to.equal(`all 2 inputs match ${expected} (float tolerance 0.000001)\n`);
    });

    it('exits 1 and prints a hunk per differing input: a number beyond the tolerance, a different dead-letter code', async () => {
      const input = file('in.jsonl', '{"n": 3}\n{"n": 1, "bad": true}\n{"n": 6}\n');
      const expected = file(
        'expected.jsonl',
        (await recorded(input))
          .replace('"score":1}', '"score":1.001}')
          .replace('MODEL_INPUT_MISSING', 'MODEL_INPUT_TYPE_MISMATCH'),
      );
      expect(await run({ input, expect: expected })).to.equal(1);
      expect(stdout).to.include(`--- ${expected}\n+++ actual (${input})\n`);
      expect(stdout).to.include('@@ input line 1: outputs[0].value.score: expected 1.001, got 1 @@');
      expect(stdout).to.include(
        '@@ input line 2: dead_letter.code: expected "MODEL_INPUT_TYPE_MISMATCH", got "MODEL_INPUT_MISSING" @@\n' +
          '-{"line":2,"dead_letter":{"topic":"numbers-dlq","code":"MODEL_INPUT_TYPE_MISMATCH","stage":"TASK_PROCESS"}}\n' +
          '+{"line":2,"dead_letter":{"topic":"numbers-dlq","code":"MODEL_INPUT_MISSING","stage":"TASK_PROCESS"}}\n',
      );
      expect(stdout).to.include('2 of 3 inputs differ');
    });

    it('accepts numbers within --float-tolerance and leaves --ignore-fields out', async () => {
      const input = file('in.jsonl', '{"n": 3}\n');
      const expected = file(
        'expected.jsonl',
        (await recorded(input)).replace('"score":1}', '"score":1.0000004,"scored_at":12}'),
      );
      expect(await run({ input, expect: expected })).to.equal(1);
      stdout = '';
      expect(await run({ input, expect: expected, ignoreFields: ['scored_at'] })).to.equal(0);
      stdout = '';
      expect(
        await run({ input, expect: expected, ignoreFields: ['scored_at'], floatTolerance: 1e-9 }),
      ).to.equal(1);
    });

    it('counts an input without an expected line, and an expected line without an input, as differences', async () => {
      const input = file('in.jsonl', '{"n": 3}\n{"n": 6}\n');
      const [first] = (await recorded(input)).split('\n');
      const expected = file('expected.jsonl', `${first}\n{"line": 9, "written": true}\n`);
      expect(await run({ input, expect: expected })).to.equal(1);
      expect(stdout).to.include('@@ input line 2: no expected outcome @@');
      expect(stdout).to.include('@@ input line 9: no such input @@');
      expect(stdout).to.include('2 of 2 inputs differ');
    });

    it('refuses a malformed expected file with its line numbers before running', async () => {
      const input = file('in.jsonl', '{"n": 3}\n');
      const expected = file('expected.jsonl', '{"line": 1, "outputs": []}\n{"outputs": []}\nnot json\n');
      expect(await run({ input, expect: expected })).to.equal(1);
      expect(stderr).to.include(`${expected} line 2: has no "line"`);
      expect(stderr).to.include(`${expected} line 3: not valid JSON`);
      expect(state.created).to.equal(0);
    });
  });

  describe('with value.converter=avro and --value-schema', () => {
    const schema = {
      type: 'record',
      name: 'Numbers',
      fields: [
        { name: 'n', type: 'double' },
        { name: 'id', type: 'long' },
      ],
    };
    const output = {
      type: 'record',
      name: 'Scored',
      fields: [
        { name: 'n', type: 'double' },
        { name: 'id', type: 'long' },
        { name: 'score', type: 'double' },
      ],
    };

    it('hands the task Avro values with a SchemaRef (registry id and parsed type) and prints the Avro-encoded outputs', async () => {
      const connectorFile = connector({ 'value.converter': 'avro' });
      const valueSchema = file('numbers.avsc', JSON.stringify(schema));
      const input = file('in.avro-jsonl', '{"n": 3, "id": 7}\n');
      const code = await run({ input, connectorFile, valueSchema }, [scorerPlugin(state, output)]);
      expect(code, stderr).to.equal(0);
      const record = state.records[0]!;
      expect(record.valueSchema?.id).to.be.a('number');
      expect(record.valueSchema?.type.name).to.equal('Numbers');
      expect(record.rawValue?.[0]).to.equal(0); // Confluent framing: magic byte 0
      expect(outcomes()).to.deep.equal([
        { line: 1, outputs: [{ topic: 'scored', key: null, value: { n: 3, id: 7, score: 1 } }] },
      ]);
    });

    it('with auto.register.schemas=false the output schema is taken as registered: a real registry is not asked', async () => {
      const connectorFile = connector({
        'value.converter': 'avro',
        'value.converter.auto.register.schemas': 'false',
      });
      const valueSchema = file('numbers.avsc', JSON.stringify(schema));
      const input = file('in.avro-jsonl', '{"n": 6, "id": 1}\n');
      expect(
        await run({ input, connectorFile, valueSchema }, [scorerPlugin(state, output)]),
        stderr,
      ).to.equal(0);
      expect(outcomes()[0]).to.deep.equal({
        line: 1,
        outputs: [{ topic: 'scored', key: null, value: { n: 6, id: 1, score: 2 } }],
      });
    });

    it('reports a recorded value that does not fit the schema with its line, and one without --value-schema at all', async () => {
      const connectorFile = connector({ 'value.converter': 'avro' });
      const valueSchema = file('numbers.avsc', JSON.stringify(schema));
      const input = file('in.avro-jsonl', '{"n": 3, "id": 7}\n{"n": "three", "id": 7}\n');
      expect(await run({ input, connectorFile, valueSchema })).to.equal(1);
      expect(stderr).to.match(/line 2: the value cannot be written with value\.converter=avro/);
      stderr = '';
      expect(await run({ input, connectorFile })).to.equal(1);
      expect(stderr).to.include(
        'value.converter=avro: give the writer schema of the recorded values with --value-schema',
      );
      expect(state.created).to.equal(0);
    });
  });
});
