// Real tooling against our worker: the `kc` CLI of kafka-connect-py (PyPI, pinned, installed into
// the cache on first use) drives a connector's whole lifecycle. Every command must exit 0 and
// have its effect, checked through our REST API (or kc's own output where that is the effect).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { ensureKc, kcTool } from '../../dev/kafka-connect/kc-cli.js';
import { createTopic } from '../helpers/kafka-topics.js';
import { testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const run = promisify(execFile);

describe('the kc CLI (kafka-connect-py) against our worker', function () {
  this.timeout(kcTool.timeoutMs + 180_000); // the first run installs kafka-connect-py
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let kcPath: string;
  const topic = uniqueName('kc-cli');
  const name = uniqueName('kc-cli-sink');

  before(async () => {
    kcPath = await ensureKc();
    worker = await startTestWorker();
    await createTopic(topic, 1);
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ value: '{"n": 1}' }] });
    await producer.disconnect();
  });

  after(() => worker?.stop());

  /** Runs kc against the worker; rejects (with its output) unless it exits 0. */
  async function kc(...args: string[]): Promise<string> {
    const { stdout } = await run(kcPath, ['--url', worker.url, ...args], { timeout: 60_000 });
    return stdout;
  }

  /** kc's output as JSON (its commands print the REST answer). */
  async function kcJson<T = unknown>(...args: string[]): Promise<T> {
    const out = await kc(...args);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new Error(`kc ${args.join(' ')} printed no JSON: ${out}`);
    }
  }

  const rest = async (path: string) => {
    const response = await fetch(`${worker.url}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const state = async () => {
    const { body } = await rest(`/connectors/${name}/status`);
    const status = body as { connector: { state: string }; tasks: Array<{ state: string }> };
    return `${status.connector.state}/${status.tasks.map((t) => t.state).join(',')}`;
  };

  it('lists, creates, reports, pauses, resumes, restarts, lists and resets topics, validates and deletes, each exiting 0', async () => {
    const config = {
      'connector.class': 'FileSink',
      topics: topic,
      file: join(worker.dir, 'out.jsonl'),
      'tasks.max': '1',
      'value.converter': 'json',
    };
    expect(await kcJson('list')).to.deep.equal([]);

    const file = join(worker.dir, 'connector.json');
    writeFileSync(file, JSON.stringify({ name, config }));
    const created = await kcJson<{ name: string }>('create', '--config-file', file);
    expect(created.name).to.equal(name);
    expect(await kcJson('list')).to.deep.equal([name]);
    await waitFor(async () => (await state()) === 'RUNNING/RUNNING', 60_000, 'the connector to run');

    const status = await kcJson<{ connector: { state: string } }>('status', name);
    expect(status.connector.state).to.equal('RUNNING');

    await kc('pause', name);
    await waitFor(async () => (await state()) === 'PAUSED/PAUSED', 30_000, 'the connector to pause');
    await kc('resume', name);
    await waitFor(async () => (await state()) === 'RUNNING/RUNNING', 30_000, 'the connector to resume');
    await kc('restart', name, '--include-tasks');
    await waitFor(
      async () => (await state()) === 'RUNNING/RUNNING',
      30_000,
      'the restarted connector to run',
    );

    // The sink consumed the record: its topic is active, until reset.
    const topics = await waitFor(
      async () => {
        const listed = await kcJson<Record<string, { topics: string[] }>>('list-topics', name);
        return listed[name]!.topics.length > 0 ? listed : undefined;
      },
      30_000,
      'the active topic',
    );
    expect(topics).to.deep.equal({ [name]: { topics: [topic] } });
    await kc('reset-topics', name);
    expect((await rest(`/connectors/${name}/topics`)).body).to.deep.equal({ [name]: { topics: [] } });

    // kc 1.0.0's validate-config sends the config JSON-encoded a second time (a JSON string, not
    // an object: `json.dumps` of the text it read), so no worker can validate it: real Kafka
    // Connect 4.1.1 answers 500, we answer 400 saying the body must be an object. kc exits 0 and
    // prints the HTTP error (docs/kafka-connect-compatibility.md, "Tools").
    const validation = await kc('validate-config', 'FileSink', '--config-data', JSON.stringify(config));
    expect(validation).to.match(
      /^400 Client Error: Bad Request for url: .*\/connector-plugins\/FileSink\/config\/validate/,
    );
    // The same request with the object body kc means to send answers the report.
    const response = await fetch(`${worker.url}/connector-plugins/FileSink/config/validate`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...config, name }),
    });
    expect(((await response.json()) as { error_count: number }).error_count).to.equal(0);

    await kc('delete', name);
    expect((await rest(`/connectors/${name}`)).status).to.equal(404);
    expect(await kcJson('list')).to.deep.equal([]);
  });
});
