// The bad-config corpus (test/corpus/configs/*.jsonl, one case per line): every bad connector
// config goes through the three ways a user submits one, and every bad worker config through the
// two ways a worker reads one. Each must be refused with every problem, per key, saying how to fix
// it, and never crash. A case names the keys that must be reported and a phrase one of their
// messages must contain; `cli`, `create` and `validate` override that per path (a path may also
// accept the config: `{"valid": true}`).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { readWorkerConfigFile } from '../../runtime/config/worker-config.js';
import type { ConfigInfos } from '../../runtime/config/validation-report.js';
import { loadCorpus, startCorpusWorker } from '../corpus/corpus.js';

interface Expectation {
  keys?: string[];
  phrase?: string;
  status?: number;
  valid?: boolean;
}

interface ConnectorCase {
  case: string;
  document?: unknown;
  /** The file's text, when it is not a JSON document. */
  text?: string;
  /** The plugin in `PUT /connector-plugins/{plugin}/config/validate`; default: the config's connector.class. */
  plugin?: string;
  expect: Expectation & { keys: string[]; phrase: string };
  cli?: Expectation;
  create?: Expectation;
  validate?: Expectation;
}

interface WorkerCase {
  case: string;
  document?: unknown;
  text?: string;
  expect: { keys: string[]; phrase: string };
}

const REPO = new URL('../..', import.meta.url).pathname;
const CLI = join(REPO, 'bin/infer-connect.js');
/** Spawned CLIs at once: each is a Node process compiling TypeScript. */
const CLI_PARALLELISM = 3;
/** A CLI still running after this hung (e.g. on a FIFO): killed, and the case fails. */
const CLI_KILL_AFTER_MS = 30_000;
const UNSET_VARIABLE = 'INFER_CONNECT_CORPUS_UNSET';

const tmp = mkdtempSync(join(tmpdir(), 'infer-connect-config-corpus-'));
const connectorCases = loadCorpus<ConnectorCase>('configs/connectors.jsonl', tmp);
const workerCases = loadCorpus<WorkerCase>('configs/workers.jsonl', tmp);

interface CliRun {
  code: number | null;
  output: string;
  hung: boolean;
}

function runCli(args: string[]): Promise<CliRun> {
  const env = { ...process.env };
  delete env[UNSET_VARIABLE];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let hung = false;
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, CLI_KILL_AFTER_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, hung });
    });
  });
}

/** Runs `jobs` with at most `parallelism` at a time; results in job order. */
async function pool<T>(jobs: Array<() => Promise<T>>, parallelism: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallelism }, async () => {
      while (next < jobs.length) {
        const index = next++;
        results[index] = await jobs[index]!();
      }
    }),
  );
  return results;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function fileText(c: { document?: unknown; text?: string }): string {
  return c.text ?? JSON.stringify(c.document, null, 2);
}

/** The bodies of `POST /connectors` and `PUT .../config/validate` carrying the same config as the file. */
function requestBodies(c: ConnectorCase, index: number): { create: string; validate: string } {
  if (c.text !== undefined) return { create: c.text, validate: c.text };
  const doc = c.document;
  const fallbackName = `corpus-case-${index}`;
  if (!isObject(doc)) {
    return { create: JSON.stringify({ name: fallbackName, config: doc }), validate: JSON.stringify(doc) };
  }
  const wrapped = 'config' in doc && !('connector.class' in doc);
  if (!wrapped)
    return {
      create: JSON.stringify({ name: doc['name'] ?? fallbackName, config: doc }),
      validate: JSON.stringify(doc),
    };
  const config = doc['config'];
  const flat =
    isObject(config) && !('name' in config) && 'name' in doc ? { ...config, name: doc['name'] } : config;
  return { create: JSON.stringify(doc), validate: JSON.stringify(flat) };
}

function pluginOf(c: ConnectorCase): string {
  if (c.plugin) return c.plugin;
  const doc = c.document;
  const config = isObject(doc) && isObject(doc['config']) ? doc['config'] : doc;
  const className = isObject(config) ? config['connector.class'] : undefined;
  return typeof className === 'string' ? className : 'FileSink';
}

/** A Node stack frame in the output means something threw instead of reporting a problem. */
const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m;

function expectErrorBody(status: number, body: unknown, expected: Expectation): void {
  expect(body, 'Kafka Connect error body').to.have.all.keys('error_code', 'message');
  const { error_code: code, message } = body as { error_code: number; message: string };
  expect(code).to.equal(status);
  for (const key of expected.keys ?? []) expect(message, `the message names ${key}`).to.include(`${key}:`);
  if (expected.phrase !== undefined) expect(message).to.include(expected.phrase);
}

describe('config corpus', function () {
  this.timeout(60_000);
  after(() => rmSync(tmp, { recursive: true, force: true }));

  describe(`connector configs (${connectorCases.length} cases): infer-connect validate, POST /connectors, PUT .../config/validate`, () => {
    let server: Awaited<ReturnType<typeof startCorpusWorker>>;
    let cliRuns: CliRun[];
    /** Connectors the cases expect to be created (a path that accepts the config). */
    const created: string[] = [];

    before(async function () {
      this.timeout(connectorCases.length * CLI_KILL_AFTER_MS);
      writeFileSync(join(tmp, 'secrets.properties'), 'path=/tmp/corpus-secret-path\n');
      writeFileSync(join(tmp, 'big.properties'), `path=${'x'.repeat(2 * 1024 * 1024)}\n`);
      execFileSync('mkfifo', [join(tmp, 'fifo')]);
      mkdirSync(join(tmp, 'connectors'));
      server = await startCorpusWorker();
      const files = connectorCases.map((c, i) => {
        const file = join(tmp, 'connectors', `case-${i}.json`);
        writeFileSync(file, fileText(c));
        return file;
      });
      cliRuns = await pool(
        files.map((file) => () => runCli(['validate', file])),
        CLI_PARALLELISM,
      );
    });

    after(() => server?.close());

    connectorCases.forEach((c, index) => {
      describe(c.case, () => {
        const cli = { ...c.expect, ...c.cli };
        const create = { ...c.expect, ...c.create };
        const validate = { ...c.expect, ...c.validate };
        const refuses = (e: Expectation, how: string) => (e.valid ? 'accepts it' : how);

        it(`infer-connect validate ${refuses(cli, 'exits 1 and lists every problem per key')}`, () => {
          const expected = cli;
          const run = cliRuns[index]!;
          expect(run.hung, 'the CLI hung and was killed').to.equal(false);
          expect(run.output).not.to.match(STACK_FRAME);
          if (expected.valid) {
            expect(run.code, run.output).to.equal(0);
            return;
          }
          expect(run.code, run.output).to.equal(1);
          for (const key of expected.keys) expect(run.output, `names ${key}`).to.include(key);
          expect(run.output).to.include(expected.phrase);
        });

        it(`POST /connectors ${refuses(create, `answers ${create.status ?? 400} with every problem per key`)}`, async () => {
          const expected = create;
          const response = await server.rest.app.inject({
            method: 'POST',
            url: '/connectors',
            headers: { 'content-type': 'application/json' },
            payload: requestBodies(c, index).create,
          });
          const body = response.json() as unknown;
          if (expected.valid) {
            expect(response.statusCode, response.body.slice(0, 500)).to.equal(201);
            created.push((body as { name: string }).name);
            return;
          }
          expect(response.statusCode, response.body.slice(0, 500)).to.equal(expected.status ?? 400);
          expectErrorBody(response.statusCode, body, expected);
        });

        it(`PUT /connector-plugins/{plugin}/config/validate ${refuses(validate, validate.status ? `answers ${validate.status}` : 'reports every problem per key')}`, async () => {
          const expected = validate;
          const response = await server.rest.app.inject({
            method: 'PUT',
            url: `/connector-plugins/${encodeURIComponent(pluginOf(c))}/config/validate`,
            headers: { 'content-type': 'application/json' },
            payload: requestBodies(c, index).validate,
          });
          const status = expected.status ?? 200;
          expect(response.statusCode, response.body.slice(0, 500)).to.equal(status);
          if (status !== 200) {
            expectErrorBody(status, response.json(), expected);
            return;
          }
          const report = response.json() as ConfigInfos;
          expect(report).to.have.all.keys('name', 'error_count', 'groups', 'configs');
          const errors = new Map(report.configs.map((info) => [info.value.name, info.value.errors]));
          const total = [...errors.values()].reduce((sum, list) => sum + list.length, 0);
          expect(report.error_count, 'error_count counts every error listed').to.equal(total);
          if (expected.valid) {
            expect(report.error_count, response.body.slice(0, 500)).to.equal(0);
            return;
          }
          for (const key of expected.keys)
            expect(errors.get(key) ?? [], `errors of ${key}`).to.have.length.above(0);
          const messages =
            expected.keys.length > 0
              ? expected.keys.flatMap((k) => errors.get(k) ?? [])
              : [...errors.values()].flat();
          expect(messages.join('\n')).to.include(expected.phrase);
        });
      });
    });

    it('after the corpus the worker answers GET / and holds only the connectors a path accepted', async () => {
      const response = await server.rest.app.inject({ method: 'GET', url: '/' });
      expect(response.statusCode).to.equal(200);
      expect(server.worker.connectorNames()).to.deep.equal([...created].sort());
    });
  });

  describe(`worker configs (${workerCases.length} cases): infer-connect standalone, readWorkerConfigFile`, () => {
    const dir = join(tmp, 'workers');
    /** A connector config that is itself invalid, so `standalone` can never start a worker. */
    const guard = join(tmp, 'guard-connector.json');
    let cliRuns: CliRun[];

    before(async function () {
      this.timeout(workerCases.length * CLI_KILL_AFTER_MS);
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        guard,
        JSON.stringify({ name: 'corpus-guard', config: { 'connector.class': 'FileSink' } }),
      );
      const files = workerCases.map((c, i) => {
        const file = join(dir, `case-${i}.json`);
        writeFileSync(file, fileText(c));
        return file;
      });
      cliRuns = await pool(
        files.map((file) => () => runCli(['standalone', file, guard])),
        CLI_PARALLELISM,
      );
    });

    workerCases.forEach((c, index) => {
      describe(c.case, () => {
        it('infer-connect standalone refuses to start and lists every problem per key', () => {
          const run = cliRuns[index]!;
          expect(run.hung, 'the CLI hung and was killed').to.equal(false);
          expect(run.code, run.output).to.equal(1);
          expect(run.output).not.to.match(STACK_FRAME);
          expect(run.output).to.include('refusing to start');
          for (const key of c.expect.keys) expect(run.output, `names ${key}`).to.include(`  ${key}: `);
          expect(run.output).to.include(c.expect.phrase);
        });

        it('readWorkerConfigFile reports every problem per key', () => {
          const { config, problems } = readWorkerConfigFile(join(dir, `case-${index}.json`));
          expect(config).to.equal(undefined);
          const keys = problems.map((p) => p.key);
          expect(keys).to.include.members(c.expect.keys);
          const messages = problems.filter((p) => c.expect.keys.includes(p.key)).map((p) => p.message);
          expect(messages.join('\n')).to.include(c.expect.phrase);
        });
      });
    });
  });
});
