// Secrets never leak (issue 12, item 6), against the real Kafka and registry: connectors fail and
// dead-letter records BECAUSE of `${env:...}` values, and the secret string must appear nowhere a
// user or another process can read it: REST answers (status traces, configs, connector lists with
// expand=info and expand=status, task configs, offsets, validation answers, error bodies), the
// worker's log at debug level, dead-letter headers, and the CLI's output.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import type { KafkaMessage } from 'kafkajs';
import { testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const cli = resolve(import.meta.dirname, '../../bin/infer-connect.js');
const SECRET = `s3cr3t-${Math.random().toString(36).slice(2, 10)}`;
const ENV = {
  sink: 'INFER_CONNECT_TEST_SECRET_SINK_PATH',
  source: 'INFER_CONNECT_TEST_SECRET_SOURCE_PATH',
  outside: 'INFER_CONNECT_TEST_SECRET_OUTSIDE_PATH',
};

async function readTopic(topic: string, count: number): Promise<KafkaMessage[]> {
  const consumer = testKafka().consumer({ groupId: uniqueName('secret-reader') });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: KafkaMessage[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void out.push(message) });
  try {
    await waitFor(() => out.length >= count, 60_000, `${count} records on ${topic}`);
    return out;
  } finally {
    await consumer.disconnect();
  }
}

async function rest(base: string, method: string, path: string, body?: unknown) {
  const response = await fetch(new URL(path, base), {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, text: await response.text() };
}

describe('secrets never leak: connectors that fail because of ${env:...} values', function () {
  this.timeout(180_000);

  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  let scratch: string;

  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'infer-connect-secrets-'));
  });

  after(async () => {
    await worker?.stop();
    for (const name of Object.values(ENV)) delete process.env[name];
    rmSync(scratch, { recursive: true, force: true });
  });

  it('shows the secret in no REST answer, log line at debug level, dead-letter header or CLI output', async () => {
    worker = await startTestWorker({ 'log.level': 'debug' });
    const { dir, url } = worker;
    // The sink's file lies under a regular file: creating its directory fails (ENOTDIR) with the path.
    writeFileSync(join(dir, 'blocker'), '');
    process.env[ENV.sink] = join(dir, 'blocker', SECRET, 'out.jsonl');
    // The source reads a file in a directory named by the secret; its malformed line names the path.
    mkdirSync(join(dir, SECRET));
    writeFileSync(join(dir, SECRET, 'rows.csv'), 'name,age\nada,36\nbob,not-a-number\n');
    writeFileSync(
      join(dir, 'row.avsc'),
      JSON.stringify({
        type: 'record',
        name: 'Row',
        fields: [
          { name: 'name', type: 'string' },
          { name: 'age', type: 'int' },
        ],
      }),
    );
    process.env[ENV.source] = join(dir, SECRET, 'rows.csv');
    process.env[ENV.outside] = join('/var/lib', SECRET, 'out.jsonl');

    const topic = uniqueName('secret-rows');
    const dlq = uniqueName('secret-rows-dlq');
    const sink = await rest(url, 'POST', '/connectors', {
      name: 'secret-sink',
      config: {
        'connector.class': 'FileSink',
        topics: topic,
        file: `\${env:${ENV.sink}}`,
        'value.converter': 'json',
        'consumer.override.sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="\${env:${ENV.sink}}";`,
      },
    });
    // A worker without Kafka security refuses the JAAS override, with the reason and no value.
    expect(sink.status).to.equal(400);
    expect(sink.text).to.include('consumer.override.sasl.jaas.config');
    expect(sink.text).not.to.include(SECRET);
    expect(
      (
        await rest(url, 'POST', '/connectors', {
          name: 'secret-sink',
          config: {
            'connector.class': 'FileSink',
            topics: topic,
            file: `\${env:${ENV.sink}}`,
            'value.converter': 'json',
          },
        })
      ).status,
    ).to.equal(201);
    expect(
      (
        await rest(url, 'POST', '/connectors', {
          name: 'secret-source',
          config: {
            'connector.class': 'FileSource',
            file: `\${env:${ENV.source}}`,
            'value.schema.file': join(dir, 'row.avsc'),
            topic,
            'value.converter': 'json',
            'errors.tolerance': 'all',
            'errors.deadletterqueue.topic.name': dlq,
            'errors.deadletterqueue.topic.replication.factor': '1',
            'errors.deadletterqueue.context.headers.enable': 'true',
            'errors.log.enable': 'true',
          },
        })
      ).status,
    ).to.equal(201);

    // The sink fails at start because of the secret path; the source dead-letters the bad line.
    const sinkStatus = await waitFor(
      async () => {
        const status = await rest(url, 'GET', '/connectors/secret-sink/status');
        return status.text.includes('"FAILED"') ? status : undefined;
      },
      60_000,
      'the sink task FAILED',
    );
    expect(sinkStatus.text).to.include('ENOTDIR');
    expect(sinkStatus.text).to.include('[hidden]');
    const [letter] = await readTopic(dlq, 1);
    const headers = Object.fromEntries(
      Object.entries(letter!.headers ?? {}).map(([key, value]) => [key, String(value)]),
    );
    expect(headers['__connect.errors.exception.message']).to.match(
      /^\[hidden\] line 3: field "age" must be a whole number/,
    );
    expect(letter!.value!.toString()).to.equal('bob,not-a-number');
    const [good] = await readTopic(topic, 1);
    expect(JSON.parse(good!.value!.toString())).to.deep.equal({ name: 'ada', age: 36 });

    // Every answer that could carry it.
    const answers = [
      sinkStatus,
      await rest(url, 'GET', '/connectors/secret-source/status'),
      await rest(url, 'GET', '/connectors/secret-sink/tasks/0/status'),
      await rest(url, 'GET', '/connectors/secret-sink/config'),
      await rest(url, 'GET', '/connectors/secret-source'),
      await rest(url, 'GET', '/connectors/secret-source/tasks'),
      await rest(url, 'GET', '/connectors?expand=info&expand=status'),
      await rest(url, 'GET', '/connectors/secret-source/offsets'),
      await rest(url, 'PUT', '/connector-plugins/FileSink/config/validate', {
        'connector.class': 'FileSink',
        topics: topic,
        file: `\${env:${ENV.outside}}`,
      }),
      await rest(url, 'POST', '/connectors', {
        name: 'secret-outside',
        config: { 'connector.class': 'FileSink', topics: topic, file: `\${env:${ENV.outside}}` },
      }),
    ];
    for (const answer of answers) expect(answer.text).not.to.include(SECRET);
    expect(answers[3]!.text).to.include(`\${env:${ENV.sink}}`);
    expect(answers[7]!.text).to.include('[hidden]');
    expect(answers[8]!.text).to.include(
      `the value resolved from \${env:${ENV.outside}} is outside allowed.paths`,
    );
    expect(answers[9]!.status).to.equal(400);

    // The CLI: `validate --worker` refuses the outside path without printing it.
    const workerFile = join(scratch, 'worker.json');
    const connectorFile = join(scratch, 'sink.json');
    writeFileSync(
      workerFile,
      JSON.stringify({ 'bootstrap.servers': '127.0.0.1:9092', 'allowed.paths': dir }),
    );
    writeFileSync(
      connectorFile,
      JSON.stringify({
        name: 'cli-sink',
        config: {
          'connector.class': 'FileSink',
          topics: 't',
          file: `\${env:${ENV.outside}}`,
          'value.converter': 'json',
        },
      }),
    );
    const run = spawnSync(process.execPath, [cli, 'validate', '--worker', workerFile, connectorFile], {
      encoding: 'utf8',
      env: { ...process.env },
    });
    expect(run.status, run.stderr).to.equal(1);
    expect(run.stdout + run.stderr).to.include(
      `the value resolved from \${env:${ENV.outside}} is outside allowed.paths`,
    );
    expect(run.stdout + run.stderr).not.to.include(SECRET);

    // The worker's log, at debug level, after everything above was logged.
    await worker.stop();
    const log = readFileSync(join(dir, 'worker.log'), 'utf8');
    worker = undefined;
    expect(log).to.include('"task failed"');
    expect(log).to.include('source record skipped');
    expect(log).to.include('[hidden]');
    expect(log).not.to.include(SECRET);
  });
});
