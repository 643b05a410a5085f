import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import type { Kafka, Message } from 'kafkajs';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../connectors/index.js';
import { AllowedDirectories } from '../../runtime/allowed-paths.js';
import type { ConnectorPlugin, SinkTask } from '../../runtime/api.js';
import { envConfigProvider } from '../../runtime/config/config-providers.js';
import { maskSecrets, MASK } from '../../runtime/config/config-spec.js';
import { checkConnectorConfig, connectorSpecFor } from '../../runtime/config/connector-config.js';
import { DeadLetterQueue } from '../../runtime/dead-letter-queue.js';
import { RecordError, traceOf } from '../../runtime/errors.js';
import type { ObservedState } from '../../runtime/herder.js';
import { createLogger, withRedaction } from '../../runtime/logger.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { createRestServer } from '../../runtime/rest-server.js';
import { SecretRedactor, secretsOf } from '../../runtime/secret-redaction.js';
import { RuntimeMetrics } from '../../runtime/task-metrics.js';
import type { TaskRunner } from '../../runtime/task-runner.js';
import { Worker, type RunnerFactoryInput } from '../../runtime/worker.js';
import { FakeHerder } from '../helpers/fake-herder.js';

const plugins = PluginRegistry.of(builtinPlugins);
const SECRET = 'Zq8-secret-7Hk2';
const JAAS =
  'org.apache.kafka.common.security.plain.PlainLoginModule required username="svc" password="jaas-pw-9931";';

/** A log destination the test can read, line by line. */
function logSink() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

describe('secrets never leak', () => {
  describe("a connector's secret values", () => {
    it('are the values references resolved to, secret-named keys (JAAS passwords too), never short or plain values', () => {
      const { config } = checkConnectorConfig(
        plugins,
        {
          'connector.class': 'FileSink',
          name: 'sink',
          topics: 'in',
          file: '/data/${env:SUFFIX}/out.jsonl',
          'value.converter': 'json',
          'consumer.override.sasl.jaas.config': JAAS,
          'producer.override.ssl.keystore.key': '-----BEGIN PRIVATE KEY-----abc',
          'consumer.override.ssl.key.password': 'pw1',
          'consumer.override.client.rack': 'rack-a',
        },
        { providers: [envConfigProvider({ SUFFIX: SECRET })] },
      );
      expect(secretsOf(config!).sort()).to.deep.equal(
        [SECRET, `/data/${SECRET}/out.jsonl`, JAAS, 'jaas-pw-9931', '-----BEGIN PRIVATE KEY-----abc'].sort(),
      );
    });

    it('are masked in every config a REST answer shows, overrides and undeclared keys included', () => {
      const shown = maskSecrets(connectorSpecFor(plugins.find('FileSink')!), {
        'consumer.override.sasl.jaas.config': JAAS,
        'producer.override.sasl.jaas.config': JAAS,
        'producer.override.ssl.keystore.key': 'pem',
        'consumer.override.ssl.key.password': 'pw',
        'admin.override.basic.auth.user.info': 'u:p',
        'consumer.override.ssl.truststore.location': '/etc/ca.pem',
        file: '${env:SECRET_PATH}',
      });
      expect(shown).to.deep.equal({
        'consumer.override.sasl.jaas.config': MASK,
        'producer.override.sasl.jaas.config': MASK,
        'producer.override.ssl.keystore.key': MASK,
        'consumer.override.ssl.key.password': MASK,
        'admin.override.basic.auth.user.info': MASK,
        'consumer.override.ssl.truststore.location': '/etc/ca.pem',
        file: '${env:SECRET_PATH}',
      });
    });
  });

  describe('the redactor', () => {
    it('hides secrets in an error in place: message, stack, context and causes, keeping its class and code', () => {
      const secrets = new SecretRedactor();
      secrets.set('c', [SECRET, 'abc']);
      const cause = new Error(`connect to ${SECRET} failed`);
      const error = new RecordError('SOURCE_RECORD_MALFORMED', `line 3 of /in/${SECRET}.csv`, {
        cause,
        stage: 'TASK_POLL',
        context: { file: `/in/${SECRET}.csv`, line: 3 },
      });
      expect(secrets.redactError(error)).to.equal(error);
      expect(error).to.be.instanceOf(RecordError);
      expect(error.code).to.equal('SOURCE_RECORD_MALFORMED');
      expect(traceOf(error)).not.to.include(SECRET);
      expect(traceOf(error)).to.include(`line 3 of /in/${MASK}.csv`);
      expect(error.context).to.deep.equal({ file: `/in/${MASK}.csv`, line: 3 });
      expect(cause.message).to.equal(`connect to ${MASK} failed`);
      // "abc" is shorter than a secret can be: left alone.
      expect(secrets.redact('abc')).to.equal('abc');
    });

    it('hides the secrets of every connector and forgets those of a deleted one', () => {
      const secrets = new SecretRedactor();
      secrets.set('a', ['alpha-secret']);
      secrets.set('b', ['beta-secret']);
      expect(secrets.redact('alpha-secret beta-secret')).to.equal(`${MASK} ${MASK}`);
      secrets.forget('a');
      expect(secrets.redact('alpha-secret beta-secret')).to.equal(`alpha-secret ${MASK}`);
    });
  });

  describe('the log', () => {
    it('hides secrets in messages, errors, fields and their JSON-escaped form, at debug level, in child loggers', () => {
      const { lines, stream } = logSink();
      const secrets = new SecretRedactor();
      const logger = withRedaction(createLogger('debug', stream), secrets.redactJsonLine);
      secrets.set('c', [SECRET, 'quo"te\\back']);
      const child = logger.child({ connector: 'c' }).child({ task: 0 });
      child.debug({ file: `/x/${SECRET}` }, `opening ${SECRET}`);
      child.error({ err: new Error(`bad quo"te\\back and ${SECRET}`) }, 'task failed');
      expect(lines).to.have.length(2);
      for (const line of lines) {
        expect(line).not.to.include(SECRET);
        expect(line).not.to.include('quo\\"te\\\\back');
        expect(line).to.include(MASK);
      }
      expect(JSON.parse(lines[1]!).err.message).to.equal(`bad ${MASK} and ${MASK}`);
    });
  });

  describe('dead-letter headers', () => {
    it('carry the exception message, stack trace and context with secrets hidden', async () => {
      const sent: Message[] = [];
      const secrets = new SecretRedactor();
      secrets.set('c', [SECRET]);
      const dlq = new DeadLetterQueue({
        topic: 'dlq',
        contextHeaders: true,
        connectorName: 'c',
        taskId: 0,
        metrics: new RuntimeMetrics(new Registry()),
        labels: { connector: 'c', task: '0' },
        redact: secrets.redact,
      });
      await dlq.send(
        [
          {
            origin: { topic: 'in', partition: 0, offset: '7' },
            key: null,
            value: Buffer.from('raw'),
            stage: 'TASK_PUT',
            className: 'FileSink',
            error: new RecordError('MODEL_INPUT_MISSING', `cannot read /files/${SECRET}.jpg`, {
              context: { path: `/files/${SECRET}.jpg` },
            }),
          },
        ],
        {
          sendBatch: async ({ topicMessages }) => {
            for (const t of topicMessages ?? []) sent.push(...t.messages);
            return [];
          },
        },
      );
      const headers = Object.fromEntries(Object.entries(sent[0]!.headers!).map(([k, v]) => [k, String(v)]));
      expect(JSON.stringify(headers)).not.to.include(SECRET);
      expect(headers['__connect.errors.exception.message']).to.equal(`cannot read /files/${MASK}.jpg`);
      expect(headers['__connect.errors.exception.stacktrace']).to.include(`/files/${MASK}.jpg`);
      expect(headers['__connect.errors.path']).to.equal(`/files/${MASK}.jpg`);
      expect(headers['__connect.errors.topic']).to.equal('in');
    });
  });

  describe('the worker', () => {
    /** A runner that does what the real ones do with a task: start it, keep traceOf its failure, log it. */
    class StartOnlyRunner implements TaskRunner {
      state: ObservedState = 'UNASSIGNED';
      trace: string | undefined;
      constructor(private readonly deps: RunnerFactoryInput) {}
      get taskId() {
        return this.deps.taskId;
      }
      async start() {
        const { deps } = this;
        try {
          const task = (deps.plugin as ConnectorPlugin & { createTask(c: unknown): SinkTask }).createTask({
            connectorName: deps.connectorName,
            taskId: deps.taskId,
            config: deps.config,
            logger: deps.logger,
            metrics: deps.registry,
            metricLabels: { connector: deps.connectorName, task: String(deps.taskId) },
            signal: new AbortController().signal,
            now: () => 0,
          });
          await task.start?.();
          this.state = 'RUNNING';
        } catch (error) {
          this.trace = traceOf(error);
          deps.logger.error({ err: error }, 'task failed');
          this.state = 'FAILED';
        }
      }
      async pause() {}
      async resume() {}
      async stop() {
        if (this.state !== 'FAILED') this.state = 'STOPPED';
      }
      details() {
        return {};
      }
    }

    it('shows no secret in status traces, configs, errors or logs when a ${env:...} value fails a FileSink', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'infer-connect-secret-unit-'));
      // A path under a regular file cannot be created: the sink fails at start with the path in its error.
      const { writeFileSync } = await import('node:fs');
      writeFileSync(join(dir, 'blocker'), '');
      const secretPath = join(dir, 'blocker', SECRET, 'out.jsonl');
      const { lines, stream } = logSink();
      const worker = new Worker({
        workerId: 'w',
        kafka: {} as Kafka,
        plugins,
        metricsRegistry: new Registry(),
        logger: createLogger('debug', stream),
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
        offsetStoreFile: join(dir, 'offsets.json'),
        runnerFactory: (deps) => new StartOnlyRunner(deps),
        allowedPaths: new AllowedDirectories([dir]),
        configProviders: [
          envConfigProvider({ SECRET_PATH: secretPath, OUTSIDE_PATH: join('/elsewhere', SECRET) }),
        ],
      });
      const config = {
        'connector.class': 'FileSink',
        topics: 'in',
        file: '${env:SECRET_PATH}',
        'value.converter': 'json',
      };
      await worker.putConnectorConfig('leaky', config, false);
      const status = worker.connectorStatus('leaky');
      expect(status.tasks[0]!.state).to.equal('FAILED');
      expect(status.tasks[0]!.trace).to.match(/ENOTDIR/);
      expect(status.tasks[0]!.trace).to.include(MASK);
      const answers = JSON.stringify([
        status,
        worker.connectorConfig('leaky'),
        worker.connectorInfo('leaky'),
        worker.taskConfigs('leaky'),
        worker.validateConfig('FileSink', { ...config, file: '${env:OUTSIDE_PATH}' }),
      ]);
      expect(answers).to.include('the value resolved from ${env:OUTSIDE_PATH} is outside allowed.paths');
      expect(answers).not.to.include(SECRET);
      expect(worker.connectorConfig('leaky')['file']).to.equal('${env:SECRET_PATH}');
      await worker.stop();
      expect(lines.some((line) => line.includes('"task failed"'))).to.equal(true);
      expect(lines.join('\n')).not.to.include(SECRET);
    });

    it('hides secrets in a trace a runner stored unredacted', async () => {
      const worker = new Worker({
        workerId: 'w',
        kafka: {} as Kafka,
        plugins,
        metricsRegistry: new Registry(),
        logger: createLogger('silent'),
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
        offsetStoreFile: join(mkdtempSync(join(tmpdir(), 'infer-connect-secret-unit-')), 'o.json'),
        runnerFactory: (deps) =>
          ({
            taskId: deps.taskId,
            state: 'FAILED',
            trace: `FatalError: cannot reach ${SECRET}:8500`,
            start: async () => undefined,
            pause: async () => undefined,
            resume: async () => undefined,
            stop: async () => undefined,
            details: () => ({ target: `${SECRET}:8500` }),
          }) satisfies TaskRunner,
        configProviders: [envConfigProvider({ TARGET: SECRET })],
      });
      await worker.putConnectorConfig(
        'p',
        {
          'connector.class': 'PassThrough',
          topics: 'in',
          'output.topic': '${env:TARGET}',
          'key.converter': 'string',
          'value.converter': 'string',
        },
        false,
      );
      const task = worker.taskStatus('p', 0);
      expect(task.trace).to.equal(`FatalError: cannot reach ${MASK}:8500`);
      expect(task.details).to.deep.equal({ target: `${MASK}:8500` });
      await worker.stop();
    });
  });

  describe('the REST API', () => {
    it('hides secrets in the message of any error it answers', async () => {
      const herder = new FakeHerder();
      herder.connectorStatus = () => {
        throw new Error(`lookup of ${SECRET} failed`);
      };
      const secrets = new SecretRedactor();
      secrets.set('c', [SECRET]);
      const server = createRestServer({
        herder,
        metrics: new Registry(),
        logger: createLogger('silent'),
        redact: secrets.redact,
      });
      const response = await server.app.inject({ method: 'GET', url: '/connectors/c/status' });
      expect(response.statusCode).to.equal(500);
      expect(response.json()).to.deep.equal({ error_code: 500, message: `lookup of ${MASK} failed` });
      await server.close();
    });
  });
});
