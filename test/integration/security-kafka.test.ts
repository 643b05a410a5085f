// The worker against secured servers, for real: a KRaft broker with SASL_SSL (SCRAM and PLAIN) and
// a mutual-TLS listener, nginx with TLS and basic auth in front of the dev stack's schema registry
// (test/helpers/secure-stack.ts), and the worker's own REST API over HTTPS with basic auth. The
// census pipeline runs end to end through them; wrong, untrusted and missing credentials end in
// a clear error, each measured (printed at the end; the suite's timeouts bound them).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { expect } from 'chai';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { builtinPlugins } from '../../connectors/index.js';
import { parseCsvLine } from '../../connectors/file/csv.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { CachedSchemaRegistry, UnreadableSchema } from '../../runtime/converters/schema-registry.js';
import { ConnectError } from '../../runtime/errors.js';
import { loadTls } from '../../runtime/kafka-security.js';
import {
  makeTestPki,
  startRegistryProxy,
  startSecureKafka,
  type RegistryProxy,
  type SecureKafka,
  type TestPki,
} from '../helpers/secure-stack.js';
import { modelServerTarget, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const plugins = builtinPlugins.includes(tfServingInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, tfServingInferencePlugin];
const censusText = readFileSync(new URL('../../schemas/census.avsc', import.meta.url), 'utf8');
const censusSchema = JSON.parse(censusText) as { fields: Array<{ name: string; type: unknown }> };
const censusType = avro.Type.forSchema(censusSchema as avro.Schema);
const exampleConfig = (
  JSON.parse(readFileSync(new URL('../../config/census-inference.json', import.meta.url), 'utf8')) as {
    config: Record<string, string>;
  }
).config;
const SCRAM = 'org.apache.kafka.common.security.scram.ScramLoginModule';
const PLAIN = 'org.apache.kafka.common.security.plain.PlainLoginModule';

type Row = Record<string, string | number>;

function testSplit(): Row[] {
  const lines = readFileSync(new URL('../../data/census/adult.test.csv', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const header = parseCsvLine(lines[0]!);
  const numeric = new Set(censusSchema.fields.filter((f) => f.type === 'long').map((f) => f.name));
  return lines.slice(1).map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      header.map((name, i) => [name, numeric.has(name) ? Number(cells[i]) : cells[i]!]),
    );
  });
}

const frame = (id: number, body: Buffer): Buffer => {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, body]);
};

/** One measured failure case, for the table printed after the suite. */
interface Measured {
  case: string;
  sees: string;
  seconds: number;
}

describe('secured Kafka, schema registry and REST API (SASL_SSL, mutual TLS, basic auth over TLS)', function () {
  this.timeout(240_000);
  let pki: TestPki;
  let kafka: SecureKafka;
  let proxy: RegistryProxy;
  let dir: string;
  let secrets: string;
  let setup: Kafka;
  const measured: Measured[] = [];
  const restUser = 'operator';
  const restPassword = `rest-${Date.now().toString(36)}`;

  before(async function () {
    this.timeout(180_000);
    pki = makeTestPki();
    [kafka, proxy] = await Promise.all([startSecureKafka(pki), startRegistryProxy(pki)]);
    dir = mkdtempSync(join(tmpdir(), 'infer-connect-secure-'));
    // Secrets come from a file through ${file:...}, as in production.
    secrets = join(dir, 'secrets.properties');
    writeFileSync(
      secrets,
      [
        `kafka.password=${kafka.users.scram512.password}`,
        `plain.password=${kafka.users.plain.password}`,
        `registry.user.info=${proxy.user}:${proxy.password}`,
        `client.key.password=${pki.clientKeyPassword}`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'rest-users.properties'), `${restUser}: ${restPassword}\n`);
    writeFileSync(
      join(dir, 'server-keystore.pem'),
      readFileSync(pki.serverKeyFile, 'utf8') + readFileSync(pki.serverCertFile, 'utf8'),
    );
    setup = new Kafka({
      clientId: 'secure-test-setup',
      brokers: [kafka.plaintext],
      logLevel: logLevel.NOTHING,
    });
  });

  after(async () => {
    if (measured.length > 0) {
      const lines = measured.map((m) => `| ${m.case} | ${m.sees} | ${m.seconds.toFixed(2)} |`);
      console.log(
        ['', '| case | what the user sees | seconds |', '| --- | --- | --- |', ...lines, ''].join('\n'),
      );
    }
    await proxy?.stop();
    await kafka?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ref = (key: string) => `\${file:${secrets}:${key}}`;
  const secureWorkerConfig = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    'bootstrap.servers': kafka.saslSsl,
    'security.protocol': 'SASL_SSL',
    'sasl.mechanism': 'SCRAM-SHA-512',
    'sasl.jaas.config': `${SCRAM} required username="${kafka.users.scram512.username}" password="${ref('kafka.password')}";`,
    'ssl.truststore.location': pki.caFile,
    'schema.registry.url': proxy.url,
    'basic.auth.credentials.source': 'USER_INFO',
    'schema.registry.basic.auth.user.info': ref('registry.user.info'),
    'schema.registry.ssl.truststore.location': pki.caFile,
    ...extra,
  });

  /** A registry client through nginx (TLS + basic auth), for the test's own schema work. */
  const registry = () =>
    new CachedSchemaRegistry({
      url: proxy.url,
      auth: `${proxy.user}:${proxy.password}`,
      tls: loadTls({ 'ssl.truststore.location': pki.caFile }, (k) => k, 'client').material!,
    });

  async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = setup.admin();
    await admin.connect();
    try {
      return await fn(admin);
    } finally {
      await admin.disconnect();
    }
  }

  async function createInput(rows: Row[], schemaId: number): Promise<string> {
    const topic = uniqueName('secure-census');
    await withAdmin((admin) =>
      admin.createTopics({
        topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
        waitForLeaders: true,
      }),
    );
    const producer = setup.producer();
    await producer.connect();
    try {
      const messages = rows.map((row, i) => ({
        key: String(i),
        value: frame(schemaId, censusType.toBuffer(row)),
        partition: i % 3,
      }));
      for (let i = 0; i < messages.length; i += 2000)
        await producer.send({ topic, messages: messages.slice(i, i + 2000) });
    } finally {
      await producer.disconnect();
    }
    return topic;
  }

  async function readAll(
    topic: string,
    count: number,
    timeoutMs: number,
  ): Promise<Array<{ key: string; value: Buffer }>> {
    await waitFor(
      () => withAdmin(async (admin) => (await admin.listTopics()).includes(topic)),
      60_000,
      `${topic}`,
    );
    const consumer = setup.consumer({ groupId: uniqueName('secure-reader'), maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const out: Array<{ key: string; value: Buffer }> = [];
    await consumer.run({
      eachMessage: async ({ message }) =>
        void out.push({ key: message.key!.toString(), value: message.value! }),
    });
    try {
      await waitFor(
        () => out.length >= count,
        timeoutMs,
        `${count} records on ${topic} (have ${out.length})`,
      );
      return out;
    } finally {
      await consumer.disconnect();
    }
  }

  const connectorConfig = (input: string) => ({
    ...exampleConfig,
    topics: input,
    'output.topic': `${input}-scored`,
    'errors.deadletterqueue.topic.name': `${input}-dlq`,
    'tfserving.target': modelServerTarget,
    'key.converter': 'string',
  });

  /** GET over HTTPS trusting the test CA: the status and body text. */
  const httpsGet = (url: string, authorization?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = httpsRequest(
        url,
        { ca: readFileSync(pki.caFile), headers: authorization ? { authorization } : {}, agent: false },
        (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => resolve({ status: response.statusCode!, body }));
        },
      );
      request.on('error', reject);
      request.end();
    });

  it('scores the census test split end to end over SASL_SSL with registry basic auth over TLS, and leaks no secret', async function () {
    this.timeout(300_000);
    const rows = testSplit();
    const client = registry();
    const schemaId = await client.register(
      `${uniqueName('secure-census')}-value`,
      JSON.parse(censusText) as object,
    );
    const input = await createInput(rows, schemaId);
    const started = Date.now();
    const worker = await startTestWorker(
      secureWorkerConfig({
        listeners: 'https://127.0.0.1:0',
        'listeners.https.ssl.keystore.location': join(dir, 'server-keystore.pem'),
        'rest.basic.auth.users.file': join(dir, 'rest-users.properties'),
        'log.level': 'debug',
      }),
      plugins,
    );
    try {
      await worker.worker.putConnectorConfig('secure-census', connectorConfig(input), false);
      const scored = await readAll(`${input}-scored`, rows.length, 200_000);
      const seconds = (Date.now() - started) / 1000;
      expect(new Set(scored.map((m) => m.key)).size).to.equal(rows.length);
      let correct = 0;
      for (const message of scored) {
        const schema = await client.schemaById(message.value.readInt32BE(1));
        if (schema instanceof UnreadableSchema) throw new Error(schema.reason);
        const value = schema.type.fromBuffer(message.value.subarray(5)) as { predicted_class: string };
        if (value.predicted_class === rows[Number(message.key)]!.income) correct++;
      }
      const accuracy = correct / rows.length;
      const offline = (
        JSON.parse(
          readFileSync(
            join(homedir(), '.cache/infer-connect/models/census/1/assets.extra/metrics.json'),
            'utf8',
          ),
        ) as { accuracy: number }
      ).accuracy;
      console.log(
        `      secure census: ${scored.length} records scored over SASL_SSL (SCRAM-SHA-512, TLS trust from a PEM CA) ` +
          `with schema registry basic auth over TLS (nginx), REST over HTTPS with basic auth, in ${seconds.toFixed(1)} s ` +
          `(worker start to last record); accuracy ${(accuracy * 100).toFixed(2)}% (offline ${(offline * 100).toFixed(2)}%)`,
      );
      expect(Math.abs(accuracy - offline)).to.be.below(0.001);

      // The REST API over HTTPS: 401 without or with wrong credentials, 200 with the right ones.
      const missing = await httpsGet(`${worker.url}/connectors`);
      expect(missing.status).to.equal(401);
      expect(JSON.parse(missing.body)).to.deep.equal({
        error_code: 401,
        message: 'User cannot access the resource.',
      });
      const wrong = await httpsGet(
        `${worker.url}/connectors`,
        `Basic ${Buffer.from(`${restUser}:nope`).toString('base64')}`,
      );
      expect(wrong.status).to.equal(401);
      const status = await httpsGet(
        `${worker.url}/connectors/secure-census/status`,
        `Basic ${Buffer.from(`${restUser}:${restPassword}`).toString('base64')}`,
      );
      expect(status.status).to.equal(200);
      expect(JSON.parse(status.body)).to.have.nested.property('tasks[0].state', 'RUNNING');
    } finally {
      await worker.stop();
    }
    const log = readFileSync(join(worker.dir, 'worker.log'), 'utf8');
    expect(log).to.include('"msg":"worker security"');
    for (const secret of [kafka.users.scram512.password, proxy.password, restPassword, pki.clientKeyPassword])
      expect(log.includes(secret), 'a secret in the worker log').to.equal(false);
  });

  it('connects with PLAIN over SASL_SSL and with a client certificate (encrypted PEM key) over mutual TLS', async () => {
    const plain = await startTestWorker(
      secureWorkerConfig({
        'sasl.mechanism': 'PLAIN',
        'sasl.jaas.config': `${PLAIN} required username="${kafka.users.plain.username}" password="${ref('plain.password')}";`,
      }),
      plugins,
    );
    const mutual = await startTestWorker(
      {
        'bootstrap.servers': kafka.mutualTls,
        'security.protocol': 'SSL',
        'ssl.truststore.location': pki.caFile,
        'ssl.keystore.location': pki.clientKeystoreFile,
        'ssl.key.password': ref('client.key.password'),
      },
      plugins,
    );
    try {
      const [a, b] = await Promise.all([plain.worker.serverInfo(), mutual.worker.serverInfo()]);
      expect(a.kafka_cluster_id).to.be.a('string').and.not.equal('');
      expect(b.kafka_cluster_id).to.equal(a.kafka_cluster_id);
    } finally {
      await Promise.all([plain.stop(), mutual.stop()]);
    }
  });

  /** Starts a worker that must fail; resolves the error and how long the failure took. */
  async function failedStart(config: Record<string, unknown>): Promise<{ error: Error; seconds: number }> {
    const started = Date.now();
    try {
      const worker = await startTestWorker(config, plugins);
      await worker.stop();
    } catch (error) {
      return { error: error as Error, seconds: (Date.now() - started) / 1000 };
    }
    throw new Error('the worker started');
  }

  it('refuses to start with a wrong Kafka password, an untrusted broker certificate or no credential, at once and saying why', async () => {
    const wrong = await failedStart(
      secureWorkerConfig({
        'sasl.jaas.config': `${SCRAM} required username="alice" password="not-the-password";`,
      }),
    );
    expect((wrong.error as ConnectError).code).to.equal('KAFKA_AUTHENTICATION_FAILED');
    expect(wrong.error.message).to.include('user=alice').and.not.include('not-the-password');
    measured.push({
      case: 'Kafka: wrong SCRAM password',
      sees: `worker does not start: ${wrong.error.message}`,
      seconds: wrong.seconds,
    });

    const { 'ssl.truststore.location': _, ...untrustedConfig } = secureWorkerConfig();
    const untrusted = await failedStart(untrustedConfig);
    expect((untrusted.error as ConnectError).code).to.equal('KAFKA_TLS_FAILED');
    expect(untrusted.error.message).to.match(/set ssl.truststore.location/);
    measured.push({
      case: 'Kafka: broker certificate not trusted (no truststore)',
      sees: `worker does not start: ${untrusted.error.message}`,
      seconds: untrusted.seconds,
    });

    const { 'sasl.jaas.config': __, ...missingConfig } = secureWorkerConfig();
    const missing = await failedStart(missingConfig);
    expect(missing.error.message).to.match(/sasl.jaas.config.*is required with security.protocol=SASL_SSL/);
    measured.push({
      case: 'Kafka: no sasl.jaas.config with SASL_SSL',
      sees: `config refused before start: ${missing.error.message.replace(/^test worker config invalid: /, '')}`,
      seconds: missing.seconds,
    });

    const noCertificate = await failedStart({
      'bootstrap.servers': kafka.mutualTls,
      'security.protocol': 'SSL',
      'ssl.truststore.location': pki.caFile,
    });
    expect((noCertificate.error as ConnectError).code).to.equal('KAFKA_TLS_FAILED');
    measured.push({
      case: 'Kafka: mutual TLS listener, no client certificate',
      sees: `worker does not start: ${noCertificate.error.message}`,
      seconds: noCertificate.seconds,
    });
  });

  it('fails the task with the cause when the registry refuses the credentials, is not trusted or gets none', async () => {
    const rows = testSplit().slice(0, 10);
    const schemaId = await registry().register(
      `${uniqueName('secure-fail')}-value`,
      JSON.parse(censusText) as object,
    );
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      [
        'registry: wrong basic-auth password',
        { 'schema.registry.basic.auth.user.info': `${proxy.user}:wrong` },
        /answered HTTP 401.*set schema.registry.basic.auth.user.info/,
      ],
      [
        'registry: certificate not trusted (no truststore)',
        { 'schema.registry.ssl.truststore.location': undefined },
        /TLS handshake.*set schema.registry.ssl.truststore.location/,
      ],
      [
        'registry: no credentials',
        { 'basic.auth.credentials.source': undefined, 'schema.registry.basic.auth.user.info': undefined },
        /answered HTTP 401/,
      ],
    ];
    for (const [name, change, expected] of cases) {
      const config = secureWorkerConfig();
      for (const [key, value] of Object.entries(change)) {
        if (value === undefined) delete config[key];
        else config[key] = value;
      }
      const input = await createInput(rows, schemaId);
      const worker = await startTestWorker(config, plugins);
      try {
        const started = Date.now();
        await worker.worker.putConnectorConfig('secure-fail', connectorConfig(input), false);
        let trace: string | undefined;
        for (;;) {
          const task = worker.worker.connectorStatus('secure-fail').tasks[0];
          if (task?.state === 'FAILED') {
            trace = task.trace;
            break;
          }
          if (Date.now() - started > 60_000) throw new Error(`${name}: the task did not fail`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const seconds = (Date.now() - started) / 1000;
        expect(trace, name).to.match(expected);
        expect(trace).not.to.include(proxy.password);
        measured.push({ case: name, sees: `task FAILED: ${trace!.split('\n')[0]}`, seconds });
      } finally {
        await worker.stop();
      }
    }
  });
});
