import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../connectors/index.js';
import { fileSinkPlugin } from '../../connectors/file/file-sink.js';
import { fileSourcePlugin } from '../../connectors/file/file-source.js';
import { AllowedDirectories } from '../../runtime/allowed-paths.js';
import type { SinkTask, SourceTask, TaskContext } from '../../runtime/api.js';
import {
  connectorConfigProviders,
  envConfigProvider,
  resolveVariables,
} from '../../runtime/config/config-providers.js';
import { checkConnectorConfig } from '../../runtime/config/connector-config.js';
import { validationReport } from '../../runtime/config/validation-report.js';
import { parseWorkerConfig, workerFileAccess } from '../../runtime/config/worker-config.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';
import { guardPlugin } from '../../runtime/guarded-plugin.js';
import { HerderError } from '../../runtime/herder.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { SecretRedactor } from '../../runtime/secret-redaction.js';
import { Worker } from '../../runtime/worker.js';
import type { Kafka } from 'kafkajs';
import { FakeRunnerFactory } from '../helpers/fake-runner.js';

const plugins = PluginRegistry.of(builtinPlugins);
const noKafka = new Proxy({} as Kafka, {
  get: (_target, property) => {
    throw new Error(`no Kafka in file access tests (kafka.${String(property)})`);
  },
});

describe('file access is opt-in (allowed.paths)', () => {
  let root: string;
  let allowed: string;
  let outside: string;
  let paths: AllowedDirectories;

  const source = (extra: Record<string, unknown> = {}) => ({
    'connector.class': 'FileSource',
    name: 'src',
    file: join(allowed, 'in.csv'),
    'value.schema.file': join(allowed, 'row.avsc'),
    topic: 'rows',
    'value.converter': 'json',
    ...extra,
  });

  beforeEach(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'infer-connect-file-access-')));
    allowed = join(root, 'allowed');
    outside = join(root, 'outside');
    mkdirSync(allowed);
    mkdirSync(outside);
    writeFileSync(join(allowed, 'in.csv'), 'name\nada\n');
    writeFileSync(
      join(allowed, 'row.avsc'),
      JSON.stringify({ type: 'record', name: 'Row', fields: [{ name: 'name', type: 'string' }] }),
    );
    writeFileSync(join(outside, 'passwd'), 'root:x:0:0\n');
    paths = new AllowedDirectories([allowed]);
  });

  afterEach(() => rmSync(root, { recursive: true, force: true }));

  describe('validation', () => {
    it('reports every FileSource and FileSink path outside allowed.paths against its key, at once', () => {
      const { problems } = checkConnectorConfig(
        plugins,
        source({ file: join(outside, 'passwd'), 'value.schema.file': '/etc/hostname' }),
        { paths },
      );
      expect(problems.map((p) => p.key)).to.deep.equal(['file', 'value.schema.file']);
      expect(problems[0]!.message).to.equal(
        `"${join(outside, 'passwd')}" is outside allowed.paths (${allowed}); move it into one of them, or add the directory that holds it to allowed.paths in the worker config`,
      );
      const sink = checkConnectorConfig(
        plugins,
        {
          'connector.class': 'FileSink',
          name: 'sink',
          topics: 'in',
          file: `${allowed}/../outside/out.jsonl`,
        },
        { paths },
      );
      expect(sink.problems.map((p) => p.key)).to.deep.equal(['file']);
    });

    it('accepts paths inside, and does not check paths when no worker is given (infer-connect validate alone)', () => {
      expect(checkConnectorConfig(plugins, source(), { paths }).problems).to.deep.equal([]);
      expect(checkConnectorConfig(plugins, source({ file: join(outside, 'passwd') })).problems).to.deep.equal(
        [],
      );
    });

    it('names the reference, never the resolved path, when a path from ${env:...} is outside', () => {
      const secretPath = join(outside, 'token-7f3a9c');
      const { problems } = checkConnectorConfig(plugins, source({ file: '${env:SOURCE_FILE}' }), {
        paths,
        providers: [envConfigProvider({ SOURCE_FILE: secretPath })],
      });
      expect(problems).to.have.length(1);
      expect(problems[0]!.message).to.match(
        /^the value resolved from \$\{env:SOURCE_FILE\} is outside allowed\.paths/,
      );
      expect(problems[0]!.message).not.to.include('token-7f3a9c');
    });

    it('reports the path problem in PUT .../config/validate against the key, showing the value as given', () => {
      const report = validationReport(
        'FileSource',
        connectorSpecFor(fileSourcePlugin),
        source({ file: '/etc/passwd' }),
        {
          paths,
        },
      );
      const file = report.configs.find((c) => c.value.name === 'file')!.value;
      expect(report.error_count).to.equal(1);
      expect(file.value).to.equal('/etc/passwd');
      expect(file.errors[0]).to.match(/^"\/etc\/passwd" is outside allowed\.paths/);
    });
  });

  describe('the worker', () => {
    function worker(allowedPaths?: AllowedDirectories) {
      return new Worker({
        workerId: 'w',
        kafka: noKafka,
        plugins,
        metricsRegistry: new Registry(),
        logger: pino({ level: 'silent' }),
        settings: {
          workerId: 'w',
          offsetFlushIntervalMs: 1_000,
          partitionsConcurrency: 1,
          shutdownTimeoutMs: 1_000,
          maxRecordsPerCall: 500,
          consumerOverrides: {},
          producerOverrides: {},
        },
        schemaRegistryUrl: undefined,
        offsetStoreFile: join(root, 'offsets.json'),
        runnerFactory: new FakeRunnerFactory().create,
        ...(allowedPaths ? { allowedPaths } : {}),
      });
    }

    it('refuses to create a FileSource by default: no allowed.paths, no file access', async () => {
      let refused: unknown;
      try {
        await worker().putConnectorConfig('src', source(), false);
      } catch (error) {
        refused = error;
      }
      expect(refused).to.be.instanceOf(HerderError);
      expect((refused as HerderError).httpStatus).to.equal(400);
      expect((refused as HerderError).message).to.include(
        'file: "' + join(allowed, 'in.csv') + '" is not allowed: allowed.paths is empty',
      );
    });

    it('creates it when the files are inside allowed.paths, and validates against them', async () => {
      const w = worker(paths);
      const { created } = await w.putConnectorConfig('src', source(), false);
      expect(created).to.equal(true);
      const report = w.validateConfig('FileSink', {
        'connector.class': 'FileSink',
        topics: 'in',
        file: join(outside, 'out.jsonl'),
        'value.converter': 'json',
      });
      expect(report.configs.find((c) => c.value.name === 'file')!.value.errors).to.have.length(1);
      await w.stop();
    });
  });

  describe('task start', () => {
    const context = (config: Record<string, unknown>, withPaths = true): TaskContext => {
      const parsed = checkConnectorConfig(plugins, config, {});
      if (!parsed.config) throw new Error(JSON.stringify(parsed.problems));
      return {
        connectorName: 'c',
        taskId: 0,
        config: parsed.config,
        logger: pino({ level: 'silent' }),
        metrics: new Registry(),
        metricLabels: { connector: 'c', task: '0' },
        signal: new AbortController().signal,
        now: () => 0,
        ...(withPaths ? { paths } : {}),
      };
    };

    it('checks the paths again before the task is created: a file swapped for a link outside is refused', () => {
      const config = source();
      const ctx = context(config);
      rmSync(join(allowed, 'in.csv'));
      symlinkSync(join(outside, 'passwd'), join(allowed, 'in.csv'));
      const guarded = guardPlugin(fileSourcePlugin, { paths, secrets: new SecretRedactor() });
      expect(() => (guarded.createTask as (c: TaskContext) => unknown)(ctx)).to.throw(
        /^file ".*in\.csv" leads through a symbolic link to a place outside allowed\.paths/,
      );
    });

    it('gives the task the allow-list, and FileSource reads the file it resolves', async () => {
      const guarded = guardPlugin(fileSourcePlugin, { paths, secrets: new SecretRedactor() });
      const task = (guarded.createTask as (c: TaskContext) => SourceTask)({
        ...context(source()),
        offsetFor: () => undefined,
      } as TaskContext);
      await task.start!();
      const records = (await task.poll())!;
      expect(records.map((r) => ('value' in r ? r.value : r.error.message))).to.deep.equal([{ name: 'ada' }]);
      await task.stop!();
    });

    it('a FileSource or FileSink outside a worker (no allow-list in its context) touches no file', async () => {
      const sinkConfig = {
        'connector.class': 'FileSink',
        name: 'k',
        topics: 'in',
        file: join(allowed, 'o.jsonl'),
      };
      const sink = fileSinkPlugin.createTask(context(sinkConfig, false)) as SinkTask;
      let thrown: unknown;
      try {
        await sink.start!();
      } catch (error) {
        thrown = error;
      }
      expect((thrown as { code?: string }).code).to.equal('FILE_PATH_NOT_ALLOWED');
      expect(() => readFileSync(join(allowed, 'o.jsonl'))).to.throw(/ENOENT/);
    });
  });

  describe('${file:...} references in connector configs (config.providers.file.param.allowed.paths)', () => {
    beforeEach(() => {
      mkdirSync(join(root, 'secrets'));
      writeFileSync(join(root, 'secrets', 'kafka.properties'), 'password=s3cr3t-pw\n');
    });

    it('may read no file by default', () => {
      const providers = connectorConfigProviders(
        new AllowedDirectories([], {
          key: 'config.providers.file.param.allowed.paths',
          subject: 'connector configs may reference no file',
        }),
      );
      const ref = `\${file:${join(outside, 'passwd')}:root}`;
      const { problems, resolved } = resolveVariables({ topic: ref }, providers);
      expect(resolved).to.deep.equal([]);
      expect(problems[0]!.message).to.equal(
        `cannot resolve ${ref}: ${join(outside, 'passwd')} is not allowed: config.providers.file.param.allowed.paths is empty, ` +
          'so connector configs may reference no file on this worker; add the directory that holds it to ' +
          'config.providers.file.param.allowed.paths in the worker config',
      );
    });

    it('reads files inside the listed directories only, links judged by their target', () => {
      const { providers } = workerFileAccess(
        parseWorkerConfig(
          {
            'bootstrap.servers': 'k:9092',
            'config.providers.file.param.allowed.paths': join(root, 'secrets'),
          },
          { providers: [] },
        ).config!,
      );
      const inside = resolveVariables(
        { p: `\${file:${join(root, 'secrets', 'kafka.properties')}:password}` },
        providers,
      );
      expect(inside.values['p']).to.equal('s3cr3t-pw');
      expect(inside.resolved).to.deep.equal(['s3cr3t-pw']);
      symlinkSync(join(outside, 'passwd'), join(root, 'secrets', 'link.properties'));
      const viaLink = resolveVariables(
        { p: `\${file:${join(root, 'secrets', 'link.properties')}:root}` },
        providers,
      );
      expect(viaLink.problems[0]!.message).to.include('leads through a symbolic link');
    });
  });

  describe('the worker config', () => {
    const parse = (raw: Record<string, unknown>) =>
      parseWorkerConfig({ 'bootstrap.servers': 'k:9092', ...raw }, { providers: [] });

    it("refuses allowed.paths that reach the worker's own files: offsets, REST users, private keys", () => {
      const { problems } = parse({
        'allowed.paths': root,
        'offset.storage.file.filename': join(root, 'state', 'offsets.json'),
        'rest.basic.auth.users.file': join(root, 'users.properties'),
      });
      const messages = problems.filter((p) => p.key === 'allowed.paths').map((p) => p.message);
      expect(messages).to.have.length(2);
      expect(messages[0]).to.match(
        /^reaches offset\.storage\.file\.filename \(.*offsets\.json\), which connectors could then read or overwrite/,
      );
      expect(messages[1]).to.match(/^reaches rest\.basic\.auth\.users\.file/);
      expect(
        parse({ 'allowed.paths': allowed, 'offset.storage.file.filename': join(root, 'offsets.json') })
          .problems,
      ).to.deep.equal([]);
    });
  });
});
