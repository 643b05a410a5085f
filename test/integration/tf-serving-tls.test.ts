// TLS and mutual TLS to the model server, for real: census records scored by a TFServingInference
// task in a real worker (real Kafka and schema registry from the shared stack) through the dev
// model server's TLS port, and the settings that cannot work each failing the task within seconds
// with MODEL_SERVER_TLS_FAILED and the key to fix, instead of retrying UNAVAILABLE for ever.
//
// Certificates are made with openssl for this run: the test CA, a second CA nobody trusts, a server
// certificate for 127.0.0.1 only (SAN IP:127.0.0.1, so `localhost` is a name it does not hold) and
// client certificates signed by each CA. Two server.py processes of this test's own serve the
// census model: one with TLS, one with mutual TLS (client certificate required). The shared stack's
// model server is not touched.
import { readFileSync, rmSync } from 'node:fs';
import avro from 'avsc';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { builtinPlugins } from '../../connectors/index.js';
import { parseCsvLine } from '../../connectors/file/csv.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import {
  makeCertificate,
  startTlsModelServer,
  testClientCertificate,
  type CertificateFiles,
  type TlsModelServer,
} from '../helpers/model-server-tls.js';
import { makeTestPki, type TestPki } from '../helpers/secure-stack.js';
import { registryUrl, testKafka, uniqueName } from '../helpers/stack.js';
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

const RECORDS = 300;

/** The census test split's first `count` rows, typed as schemas/census.avsc has them. */
function censusRows(count: number): Array<Record<string, string | number>> {
  const lines = readFileSync(new URL('../../data/census/adult.test.csv', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const header = parseCsvLine(lines[0]!);
  const longs = new Set(censusSchema.fields.filter((f) => f.type === 'long').map((f) => f.name));
  return lines.slice(1, count + 1).map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      header.map((name, i) => [name, longs.has(name) ? Number(cells[i]) : cells[i]!]),
    );
  });
}

async function createCensusInput(registry: SchemaRegistry, rows: Array<Record<string, unknown>>) {
  const topic = uniqueName('census-tls');
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: censusText },
    { subject: `${topic}-value` },
  );
  const producer = testKafka().producer();
  await producer.connect();
  try {
    await producer.send({
      topic,
      messages: rows.map((row, i) => {
        const header = Buffer.alloc(5);
        header.writeInt32BE(id, 1);
        return { key: String(i), value: Buffer.concat([header, censusType.toBuffer(row)]) };
      }),
    });
  } finally {
    await producer.disconnect();
  }
  return topic;
}

/** Reads `topic` from the start until `count` records arrived; their keys and decoded values. */
async function readScored(registry: SchemaRegistry, topic: string, count: number) {
  const consumer = testKafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
  const records: Array<{ key: string; value: Record<string, unknown> }> = [];
  await waitFor(
    async () => {
      const admin = testKafka().admin();
      await admin.connect();
      try {
        return (await admin.listTopics()).includes(topic) || undefined;
      } finally {
        await admin.disconnect();
      }
    },
    30_000,
    `topic ${topic} to exist`,
  );
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      records.push({
        key: message.key!.toString(),
        value: (await registry.decode(message.value!)) as Record<string, unknown>,
      });
    },
  });
  try {
    await waitFor(
      () => records.length >= count,
      90_000,
      `${count} records on ${topic} (have ${records.length})`,
    );
    return records;
  } finally {
    await consumer.disconnect();
  }
}

async function predictedRows(server: TlsModelServer): Promise<number> {
  const stats = (await (await fetch(`${server.control}/stats`)).json()) as { instances: number };
  return stats.instances;
}

/** One measured failure case, for the table printed after the suite. */
interface Measured {
  case: string;
  sees: string;
  seconds: number;
}

describe('TLS and mutual TLS to the model server (the dev model server with a TLS port)', function () {
  this.timeout(300_000);
  const registry = new SchemaRegistry({ host: registryUrl });
  const rows = censusRows(RECORDS);
  const measured: Measured[] = [];
  let pki: TestPki;
  let serverCertificate: CertificateFiles;
  let clientCertificate: CertificateFiles;
  let strangerCertificate: CertificateFiles;
  let tls: TlsModelServer | undefined;
  let mutualTls: TlsModelServer | undefined;
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  let input: string;

  before(async function () {
    this.timeout(240_000);
    pki = makeTestPki();
    serverCertificate = makeCertificate(pki, 'model-server', [
      'subjectAltName=IP:127.0.0.1',
      'extendedKeyUsage=serverAuth',
      'basicConstraints=CA:FALSE',
    ]);
    clientCertificate = testClientCertificate(pki);
    strangerCertificate = makeCertificate(pki, 'stranger', ['extendedKeyUsage=clientAuth'], 'other-ca');
    const started = await Promise.allSettled([
      startTlsModelServer({ server: serverCertificate, models: ['census'] }),
      startTlsModelServer({ server: serverCertificate, clientCaFile: pki.caFile, models: ['census'] }),
    ]);
    [tls, mutualTls] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    expect(tls!.log.join('\n')).to.contain(`tls=127.0.0.1:${tls!.tlsPort} client_auth=none`);
    expect(mutualTls!.log.join('\n')).to.contain(`tls=127.0.0.1:${mutualTls!.tlsPort} client_auth=required`);
    input = await createCensusInput(registry, rows);
    worker = await startTestWorker({}, plugins);
  });

  after(async () => {
    if (measured.length > 0) {
      const lines = measured.map((m) => `| ${m.case} | ${m.sees} | ${m.seconds.toFixed(2)} |`);
      console.log(
        ['', '| case | what the user sees | seconds |', '| --- | --- | --- |', ...lines, ''].join('\n'),
      );
    }
    await worker?.stop();
    await Promise.all([tls?.stop(), mutualTls?.stop()]);
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  const connectorConfig = (output: string, server: Record<string, string>): Record<string, unknown> => ({
    ...exampleConfig,
    topics: input,
    'output.topic': output,
    'errors.deadletterqueue.topic.name': `${output}-dlq`,
    'key.converter': 'string',
    ...server,
  });

  async function scoreOver(name: string, server: TlsModelServer, settings: Record<string, string>) {
    const output = uniqueName(`${name}-scored`);
    const before = await predictedRows(server);
    await worker!.worker.putConnectorConfig(name, connectorConfig(output, settings), false);
    try {
      const scored = await readScored(registry, output, RECORDS);
      expect(scored.map((r) => r.key)).to.deep.equal(rows.map((_, i) => String(i)));
      for (const { value } of scored) {
        expect(value.predicted_class).to.be.oneOf(['<=50K', '>50K']);
        expect(value.probability).to.be.within(0, 1);
        expect(value).to.include({ model_name: 'census', model_version: 1 });
      }
      // Scored by this server (its only client is this connector), not by the shared one.
      expect((await predictedRows(server)) - before).to.be.at.least(RECORDS);
      expect(worker!.worker.connectorStatus(name).tasks[0]?.state).to.equal('RUNNING');
    } finally {
      await worker!.worker.deleteConnector(name);
    }
  }

  it('scores census records over TLS, trusting the test CA with tfserving.tls.ca.file', async () => {
    await scoreOver('census-over-tls', tls!, {
      'tfserving.target': `127.0.0.1:${tls!.tlsPort}`,
      'tfserving.tls.enable': 'true',
      'tfserving.tls.ca.file': pki.caFile,
    });
  });

  it('scores census records over mutual TLS, with the client certificate the server requires', async () => {
    await scoreOver('census-over-mtls', mutualTls!, {
      'tfserving.target': `127.0.0.1:${mutualTls!.tlsPort}`,
      'tfserving.tls.enable': 'true',
      'tfserving.tls.ca.file': pki.caFile,
      'tfserving.tls.cert.file': clientCertificate.certFile,
      'tfserving.tls.key.file': clientCertificate.keyFile,
    });
  });

  it('fails the task within seconds with MODEL_SERVER_TLS_FAILED naming the key to fix, for each TLS setting that cannot work', async () => {
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      [
        'server certificate from an untrusted CA (tfserving.tls.ca.file = another CA)',
        {
          'tfserving.target': `127.0.0.1:${tls!.tlsPort}`,
          'tfserving.tls.enable': 'true',
          'tfserving.tls.ca.file': pki.otherCaFile,
        },
        /unable to verify the first certificate; the server certificate is not signed by a CA in tfserving\.tls\.ca\.file/,
      ],
      [
        'server certificate from an untrusted CA (no tfserving.tls.ca.file: default roots)',
        { 'tfserving.target': `127.0.0.1:${tls!.tlsPort}`, 'tfserving.tls.enable': 'true' },
        /not signed by a CA Node\.js trusts by default: set tfserving\.tls\.ca\.file/,
      ],
      [
        'mutual TLS server, no client certificate',
        {
          'tfserving.target': `127.0.0.1:${mutualTls!.tlsPort}`,
          'tfserving.tls.enable': 'true',
          'tfserving.tls.ca.file': pki.caFile,
        },
        /the server requires a client certificate \(mutual TLS\): set tfserving\.tls\.cert\.file and tfserving\.tls\.key\.file/,
      ],
      [
        'mutual TLS server, client certificate from another CA',
        {
          'tfserving.target': `127.0.0.1:${mutualTls!.tlsPort}`,
          'tfserving.tls.enable': 'true',
          'tfserving.tls.ca.file': pki.caFile,
          'tfserving.tls.cert.file': strangerCertificate.certFile,
          'tfserving.tls.key.file': strangerCertificate.keyFile,
        },
        /the server refused the client certificate tfserving\.tls\.cert\.file ".*stranger\.crt"/,
      ],
      [
        'hostname mismatch (target localhost, certificate for IP 127.0.0.1 only)',
        {
          'tfserving.target': `localhost:${tls!.tlsPort}`,
          'tfserving.tls.enable': 'true',
          'tfserving.tls.ca.file': pki.caFile,
        },
        /Hostname\/IP does not match certificate's altnames.*; the server certificate does not name "localhost": set tfserving\.target/,
      ],
      [
        'TLS to the plaintext port',
        {
          'tfserving.target': tls!.plainTarget,
          'tfserving.tls.enable': 'true',
          'tfserving.tls.ca.file': pki.caFile,
        },
        /wrong version number; the target does not speak TLS/,
      ],
      [
        'plaintext to the TLS port (tfserving.tls.enable=false)',
        { 'tfserving.target': `127.0.0.1:${tls!.tlsPort}`, 'tfserving.tls.enable': 'false' },
        /the target accepts only TLS: set tfserving\.tls\.enable=true/,
      ],
    ];
    for (const [name, settings, expected] of cases) {
      const connector = uniqueName('tls-fail');
      const started = Date.now();
      await worker!.worker.putConnectorConfig(
        connector,
        connectorConfig(`${connector}-scored`, settings),
        false,
      );
      try {
        const trace = await waitFor(
          () => {
            const task = worker!.worker.connectorStatus(connector).tasks[0];
            return task?.state === 'FAILED' ? (task.trace ?? '') : undefined;
          },
          60_000,
          `${name}: the task to fail`,
        );
        const seconds = (Date.now() - started) / 1000;
        expect(trace, name).to.match(expected);
        expect(trace, name).to.contain('[MODEL_SERVER_TLS_FAILED]');
        measured.push({ case: name, sees: `task FAILED: ${trace.split('\n')[0]}`, seconds });
      } finally {
        await worker!.worker.deleteConnector(connector);
      }
    }
  });
});
