// A connector from another package: the `infer-connect` command loads examples/uppercase-processor
// through the worker key `plugin.path`, lists it, and runs it in a pipeline against the real Kafka.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { createTopic, producePartitions, readTopic } from '../helpers/kafka-topics.js';
import { kafkaBootstrap, uniqueName } from '../helpers/stack.js';
import { waitFor } from '../helpers/worker.js';

const repo = resolve(import.meta.dirname, '../..');
const cli = join(repo, 'bin', 'infer-connect.js');
const examples = join(repo, 'examples');

/** The REST address a worker process logs once it started (`listeners` asks for any free port). */
function restAddressOf(child: ChildProcess): () => string | undefined {
  let address: string | undefined;
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as { msg?: string; rest?: string };
        if (entry.msg === 'worker started') address = entry.rest;
      } catch {
        // not a log line
      }
    }
  });
  return () => address;
}

describe('a plugin from another package, loaded through plugin.path', function () {
  this.timeout(120_000);

  it('`infer-connect plugins --plugin-path` lists it beside the built-ins, with the module it came from', () => {
    const result = spawnSync(process.execPath, [cli, 'plugins', '--json', '--plugin-path', examples], {
      encoding: 'utf8',
    });
    expect(result.status, result.stderr).to.equal(0);
    const listed = JSON.parse(result.stdout) as Array<{ class: string; type: string; source: string }>;
    expect(listed.map((p) => p.class)).to.include.members(['PassThrough', 'UppercaseProcessor']);
    expect(listed.find((p) => p.class === 'UppercaseProcessor')).to.deep.include({
      type: 'processor',
      source: join(examples, 'uppercase-processor', 'index.ts'),
    });
  });

  it('upper-cases string records end to end in a standalone worker, and GET /connector-plugins lists it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-connect-plugin-path-'));
    const input = uniqueName('upper-in');
    const output = `${input}-out`;
    await createTopic(input, 1);
    await createTopic(output, 1);
    const words = ['kafka', 'connect', 'plugin', 'Grüße', 'istanbul'];
    await producePartitions(input, [
      words.map((word, i) => ({
        key: `k${i}`,
        value: Buffer.from(word),
        headers: {},
        timestamp: String(Date.now()),
      })),
    ]);

    const workerFile = join(dir, 'worker.json');
    const connectorFile = join(dir, 'upper.json');
    writeFileSync(
      workerFile,
      JSON.stringify({
        'bootstrap.servers': kafkaBootstrap,
        listeners: 'http://127.0.0.1:0',
        'offset.storage.file.filename': join(dir, 'offsets.json'),
        'plugin.path': examples,
        'log.level': 'info',
      }),
    );
    writeFileSync(
      connectorFile,
      JSON.stringify({
        name: uniqueName('upper'),
        config: {
          'connector.class': 'com.example.connect.UppercaseProcessor',
          topics: input,
          'output.topic': output,
          'key.converter': 'string',
          'value.converter': 'string',
        },
      }),
    );
    const child = spawn(process.execPath, [cli, 'standalone', workerFile, connectorFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    const rest = restAddressOf(child);
    try {
      const url = await waitFor(rest, 60_000, 'the worker to log its REST address');
      const plugins = (await (await fetch(`${url}/connector-plugins`)).json()) as Array<{ class: string }>;
      expect(plugins.map((p) => p.class)).to.include('UppercaseProcessor');

      const records = await readTopic(output, words.length);
      expect(records.map((r) => [r.key, r.value?.toString()])).to.deep.equal([
        ['k0', 'KAFKA'],
        ['k1', 'CONNECT'],
        ['k2', 'PLUGIN'],
        ['k3', 'GRÜSSE'],
        ['k4', 'ISTANBUL'],
      ]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, 'the worker drains and exits 0 on SIGTERM').to.equal(0);
  });

  it('refuses to start, naming the module and the problem, when a plugin.path module is not a plugin', () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-connect-plugin-path-bad-'));
    const bad = join(dir, 'plugins', 'broken');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'index.mjs'), "export default { name: 'Broken' };\n");
    const workerFile = join(dir, 'worker.json');
    writeFileSync(
      workerFile,
      JSON.stringify({ 'bootstrap.servers': kafkaBootstrap, 'plugin.path': join(dir, 'plugins') }),
    );
    const connectorFile = join(dir, 'c.json');
    writeFileSync(
      connectorFile,
      JSON.stringify({
        name: 'c',
        config: { 'connector.class': 'PassThrough', topics: 't', 'output.topic': 'o' },
      }),
    );
    const result = spawnSync(process.execPath, [cli, 'standalone', workerFile, connectorFile], {
      encoding: 'utf8',
    });
    expect(result.status).to.equal(1);
    expect(result.stderr).to.include(`${join(bad, 'index.mjs')}: plugin "Broken": "kind" must be one of`);
    expect(result.stderr).not.to.match(/\n\s+at /);
  });
});
