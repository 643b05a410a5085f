import { expect } from 'chai';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { sharedClients } from '../../connectors/tf-serving/client-pool.js';
import {
  TFServingCallError,
  TFServingClient,
  connectionErrorOf,
  findProtoDir,
  loadServiceDefinitions,
  tlsFailureInDetails,
  toModelSpecProto,
  type ModelSpecProto,
  type TFServingClientOptions,
  type TlsOptions,
} from '../../connectors/tf-serving/grpc-client.js';
import { decodeTensor, encodeTensor, type TensorProto } from '../../connectors/tf-serving/tensor-codec.js';
import { FatalError } from '../../runtime/errors.js';
import {
  makeCertificate,
  testClientCertificate,
  type CertificateFiles,
} from '../helpers/model-server-tls.js';
import { makeTestPki, type TestPki } from '../helpers/secure-stack.js';

const MiB = 1024 * 1024;

interface ReceivedCall {
  method: string;
  peer: string;
  modelSpec: ModelSpecProto;
}

/**
 * An in-process stand-in for TensorFlow Serving, served from our own protos. Behaviour by
 * model name: "slow" answers after 500 ms, "big" answers with a 5 MiB output, "missing" is
 * NOT_FOUND, "nosig" has metadata without a SignatureDefMap, "otherany" packs a ModelSpec in
 * its place; any other model echoes its
 * inputs back as outputs and reports itself as version 7.
 */
class FakeModelServer {
  readonly calls: ReceivedCall[] = [];
  private readonly server = new grpc.Server();
  private readonly pending = new Set<NodeJS.Timeout>();

  async start(credentials = grpc.ServerCredentials.createInsecure()): Promise<string> {
    const definitions = loadServiceDefinitions();
    const serviceOf = (name: string) => definitions[name] as protoLoader.ServiceDefinition;
    this.server.addService(serviceOf('tensorflow.serving.PredictionService'), {
      Predict: (
        call: grpc.ServerUnaryCall<
          { model_spec: ModelSpecProto; inputs?: Record<string, TensorProto> },
          unknown
        >,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const spec = this.record('Predict', call);
        const answeredBy = { name: spec.name, signature_name: spec.signature_name, version: { value: 7 } };
        const respond = () => callback(null, { model_spec: answeredBy, outputs: call.request.inputs ?? {} });
        if (spec.name === 'missing')
          callback({
            code: grpc.status.NOT_FOUND,
            details: 'Servable not found for request: Latest(missing)',
          });
        else if (spec.name === 'slow') this.later(500, respond);
        else if (spec.name === 'big') {
          const content = Buffer.alloc(5 * MiB, 1);
          callback(null, {
            outputs: {
              blob: {
                dtype: 'DT_UINT8',
                tensor_shape: { dim: [{ size: content.length }] },
                tensor_content: content,
              },
            },
          });
        } else respond();
      },
      GetModelMetadata: (
        call: grpc.ServerUnaryCall<{ model_spec: ModelSpecProto }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const spec = this.record('GetModelMetadata', call);
        if (spec.name === 'nosig') {
          callback(null, { model_spec: spec, metadata: {} });
          return;
        }
        if (spec.name === 'otherany') {
          const other = { '@type': 'type.googleapis.com/tensorflow.serving.ModelSpec', name: 'x' };
          callback(null, { model_spec: spec, metadata: { signature_def: other } });
          return;
        }
        const vector = (dtype: string) => ({ dtype, tensor_shape: { dim: [{ size: -1 }] } });
        callback(null, {
          model_spec: { name: spec.name, version: { value: 3 } },
          metadata: {
            // Packed the way TensorFlow Serving packs it: an Any with this type URL.
            signature_def: {
              '@type': 'type.googleapis.com/tensorflow.serving.SignatureDefMap',
              signature_def: {
                serving_default: {
                  method_name: 'tensorflow/serving/predict',
                  inputs: {
                    age: { name: 'serving_default_age:0', ...vector('DT_INT64') },
                    sex: { name: 'serving_default_sex:0', ...vector('DT_STRING') },
                  },
                  outputs: { probability: { name: 'StatefulPartitionedCall:0', ...vector('DT_FLOAT') } },
                },
                image: {
                  method_name: 'tensorflow/serving/predict',
                  inputs: { pixels: { name: 'x:0', dtype: 'DT_HALF', tensor_shape: { unknown_rank: true } } },
                  outputs: {},
                },
              },
            },
          },
        });
      },
    });
    this.server.addService(serviceOf('tensorflow.serving.ModelService'), {
      GetModelStatus: (
        call: grpc.ServerUnaryCall<{ model_spec: ModelSpecProto }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        this.record('GetModelStatus', call);
        callback(null, {
          model_version_status: [
            { version: 2, state: 'AVAILABLE', status: { error_code: 'OK' } },
            { version: 1, state: 'END', status: { error_code: 'NOT_FOUND', error_message: 'unloaded' } },
          ],
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', credentials, (error, boundPort) =>
        error ? reject(error) : resolve(boundPort),
      ),
    );
    return `127.0.0.1:${port}`;
  }

  stop(): void {
    for (const timer of this.pending) clearTimeout(timer);
    this.server.forceShutdown();
  }

  private record(
    method: string,
    call: grpc.ServerUnaryCall<{ model_spec: ModelSpecProto }, unknown>,
  ): ModelSpecProto {
    this.calls.push({ method, peer: call.getPeer(), modelSpec: call.request.model_spec });
    return call.request.model_spec;
  }

  private later(ms: number, action: () => void): void {
    const timer = setTimeout(() => {
      this.pending.delete(timer);
      action();
    }, ms);
    this.pending.add(timer);
  }
}

/**
 * A TCP proxy to `target` that can go silent: after `blackhole()` it drops every byte both ways
 * but keeps the sockets open, like a peer or middlebox that vanished without a FIN or RST.
 */
async function silentProxy(target: string) {
  const sockets = new Set<Socket>();
  let silent = false;
  const [host, port] = target.split(':') as [string, string];
  const server = createServer((downstream) => {
    const upstream = connect(Number(port), host);
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        downstream.destroy();
        upstream.destroy();
      });
    }
    downstream.on('data', (bytes) => void (silent || upstream.write(bytes)));
    upstream.on('data', (bytes) => void (silent || downstream.write(bytes)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    target: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    blackhole: () => void (silent = true),
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

describe('TFServingClient', () => {
  const fake = new FakeModelServer();
  let target: string;
  const clients: TFServingClient[] = [];

  function client(overrides: Partial<TFServingClientOptions> = {}): TFServingClient {
    const created = new TFServingClient({
      target,
      deadlineMs: 2000,
      maxSendMessageBytes: 4 * MiB,
      maxReceiveMessageBytes: 4 * MiB,
      ...overrides,
    });
    clients.push(created);
    return created;
  }

  before(async () => {
    target = await fake.start();
  });
  beforeEach(() => {
    fake.calls.length = 0;
  });
  afterEach(() => {
    for (const created of clients.splice(0)) created.close();
  });
  after(() => fake.stop());

  it('sends a Predict request and returns the outputs with the version that answered', async () => {
    const result = await client().predict({
      model: { name: 'echo', versionLabel: 'stable', signatureName: 'serving_default' },
      inputs: { age: encodeTensor('DT_INT64', [2], [39, 50]) },
    });
    expect(result.model).to.deep.equal({ name: 'echo', version: 7, signatureName: 'serving_default' });
    expect(decodeTensor(result.outputs.age!)).to.deep.equal({
      dtype: 'DT_INT64',
      shape: [2],
      values: [39, 50],
    });
    expect(fake.calls[0]!.modelSpec).to.deep.include({
      name: 'echo',
      version_label: 'stable',
      version_choice: 'version_label',
    });
  });

  it('fails a call that outlives its deadline with DEADLINE_EXCEEDED', async () => {
    const started = Date.now();
    const error = await rejectionOf(
      client({ deadlineMs: 100 }).predict({ model: { name: 'slow' }, inputs: {} }),
    );
    expect(Date.now() - started).to.be.below(450);
    expect(error).to.be.instanceOf(TFServingCallError);
    const callError = error as TFServingCallError;
    expect(callError.name).to.equal('TFServingCallError');
    expect(callError.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
    expect(callError.codeName).to.equal('DEADLINE_EXCEEDED');
    expect(callError.method).to.equal('Predict');
    expect(callError.modelSpec).to.deep.equal({ name: 'slow' });
    expect(callError.message).to.match(/^Predict for model "slow" failed with DEADLINE_EXCEEDED: /);
  });

  it('lets one call extend the deadline', async () => {
    const result = await client({ deadlineMs: 100 }).predict(
      { model: { name: 'slow' }, inputs: {} },
      { deadlineMs: 3000 },
    );
    expect(result.model.version).to.equal(7);
  });

  it('reports a server status as TFServingCallError with code, name and details', async () => {
    const error = (await rejectionOf(
      client().predict({ model: { name: 'missing', version: 4 }, inputs: {} }),
    )) as TFServingCallError;
    expect(error).to.be.instanceOf(TFServingCallError);
    expect(error.code).to.equal(grpc.status.NOT_FOUND);
    expect(error.codeName).to.equal('NOT_FOUND');
    expect(error.details).to.equal('Servable not found for request: Latest(missing)');
    expect(error.modelSpec).to.deep.equal({ name: 'missing', version: 4 });
    expect(error.message).to.equal(
      'Predict for model "missing", version 4 failed with NOT_FOUND: Servable not found for request: Latest(missing)',
    );
  });

  it('cancels a call when its AbortSignal fires', async () => {
    const controller = new AbortController();
    const pending = client().predict({ model: { name: 'slow' }, inputs: {} }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    const error = (await rejectionOf(pending)) as TFServingCallError;
    expect(error.codeName).to.equal('CANCELLED');
  });

  it('unpacks the SignatureDefMap from the metadata Any into signatures', async () => {
    const metadata = await client().getModelMetadata({ name: 'census' });
    expect(metadata.model).to.deep.equal({ name: 'census', version: 3 });
    expect(Object.keys(metadata.signatures)).to.have.members(['serving_default', 'image']);
    const signature = metadata.signatures.serving_default!;
    expect(signature.methodName).to.equal('tensorflow/serving/predict');
    expect(signature.inputs).to.deep.equal({
      age: { dtype: 'DT_INT64', shape: [-1], encoding: 'name', graphTensorName: 'serving_default_age:0' },
      sex: { dtype: 'DT_STRING', shape: [-1], encoding: 'name', graphTensorName: 'serving_default_sex:0' },
    });
    expect(signature.outputs.probability).to.deep.include({ dtype: 'DT_FLOAT', shape: [-1] });
    expect(metadata.signatures.image!.inputs.pixels).to.deep.include({ dtype: 'DT_HALF', shape: undefined });
    expect(fake.calls[0]!.method).to.equal('GetModelMetadata');
  });

  it('rejects metadata that carries no SignatureDefMap, or another message in its place', async () => {
    const missing = await rejectionOf(client().getModelMetadata({ name: 'nosig' }));
    expect((missing as Error).message).to.equal(
      'GetModelMetadata for model "nosig" returned nothing under "signature_def"; expected a tensorflow.serving.SignatureDefMap',
    );
    const other = await rejectionOf(client().getModelMetadata({ name: 'otherany' }));
    expect((other as Error).message).to.contain(
      'returned an Any of type "type.googleapis.com/tensorflow.serving.ModelSpec" under "signature_def"',
    );
  });

  it('reports the state of each model version', async () => {
    const statuses = await client().getModelStatus({ name: 'census' });
    expect(statuses).to.deep.equal([
      { version: 2, state: 'AVAILABLE', errorCode: 'OK', errorMessage: '' },
      { version: 1, state: 'END', errorCode: 'NOT_FOUND', errorMessage: 'unloaded' },
    ]);
  });

  it('sends every call of one client over one connection, and another client over its own', async () => {
    const first = client();
    await first.predict({ model: { name: 'echo' }, inputs: {} });
    await first.getModelMetadata({ name: 'echo' });
    await first.getModelStatus({ name: 'echo' });
    await Promise.all([1, 2, 3].map(() => first.predict({ model: { name: 'echo' }, inputs: {} })));
    await client().predict({ model: { name: 'echo' }, inputs: {} });

    const peers = fake.calls.map((call) => call.peer);
    expect(fake.calls.map((call) => call.method)).to.include.members([
      'Predict',
      'GetModelMetadata',
      'GetModelStatus',
    ]);
    expect(new Set(peers.slice(0, 6)).size).to.equal(1);
    expect(peers[6]).to.not.equal(peers[0]);
  });

  it('accepts a response larger than 4 MiB only when maxReceiveMessageBytes allows it', async () => {
    const tooSmall = (await rejectionOf(
      client({ maxReceiveMessageBytes: 4 * MiB }).predict({ model: { name: 'big' }, inputs: {} }),
    )) as TFServingCallError;
    expect(tooSmall).to.be.instanceOf(TFServingCallError);
    expect(tooSmall.codeName).to.equal('RESOURCE_EXHAUSTED');

    const result = await client({ maxReceiveMessageBytes: 8 * MiB }).predict({
      model: { name: 'big' },
      inputs: {},
    });
    const blob = decodeTensor(result.outputs.blob!);
    expect(blob.shape).to.deep.equal([5 * MiB]);
    expect(blob.values[5 * MiB - 1]).to.equal(1);
  });

  it('refuses to send a request larger than maxSendMessageBytes', async () => {
    const inputs = { blob: encodeTensor('DT_STRING', [1], [Buffer.alloc(2 * MiB)]) };
    const error = (await rejectionOf(
      client({ maxSendMessageBytes: 1 * MiB }).predict({ model: { name: 'echo' }, inputs }),
    )) as TFServingCallError;
    expect(error.codeName).to.equal('RESOURCE_EXHAUSTED');
    expect(fake.calls).to.have.length(0);
  });

  it('rejects calls after close without sending them, and closes idempotently', async () => {
    const closing = client();
    closing.close();
    closing.close();
    const error = await rejectionOf(closing.predict({ model: { name: 'echo' }, inputs: {} }));
    expect((error as Error).message).to.match(/is closed; Predict was not sent/);
    expect(fake.calls).to.have.length(0);
  });

  it('closes a connection that stopped answering pings: the call fails UNAVAILABLE (retried) instead of waiting out its deadline', async () => {
    const proxy = await silentProxy(target);
    try {
      const quick = client({
        target: proxy.target,
        deadlineMs: 1500,
        keepalive: { timeMs: 100, timeoutMs: 100 },
      });
      await quick.predict({ model: { name: 'echo' }, inputs: {} });
      proxy.blackhole();
      const error = (await rejectionOf(
        quick.predict({ model: { name: 'echo' }, inputs: {} }),
      )) as TFServingCallError;
      expect(error).to.be.instanceOf(TFServingCallError);
      expect(error.codeName).to.equal('UNAVAILABLE');
    } finally {
      proxy.close();
    }
  });

  it('validates its options', () => {
    expect(() => client({ deadlineMs: 0 })).to.throw(/deadlineMs must be a positive integer, got 0/);
    expect(() => client({ keepalive: { timeMs: 0, timeoutMs: 5000 } })).to.throw(
      /keepalive.timeMs must be a positive integer, got 0/,
    );
    expect(() => client({ maxReceiveMessageBytes: 1.5 })).to.throw(
      /maxReceiveMessageBytes must be a positive integer/,
    );
    expect(() => client({ target: '' })).to.throw(/target must be host:port/);
    expect(() => client({ tls: { cert: 'x' } })).to.throw(/needs both cert and key/);
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('TFServingClient over TLS', function () {
  // openssl makes the certificates (a second or two).
  this.timeout(30_000);
  let pki: TestPki;
  let ipOnly: CertificateFiles;
  let clientCertificate: CertificateFiles;
  let stranger: CertificateFiles;
  const tlsServer = new FakeModelServer();
  const mutualTlsServer = new FakeModelServer();
  const plainServer = new FakeModelServer();
  let tlsTarget: string;
  let mutualTlsTarget: string;
  let plainTarget: string;
  const clients: TFServingClient[] = [];
  const read = (file: string) => readFileSync(file);

  function client(target: string, tls: TlsOptions | false): TFServingClient {
    const created = new TFServingClient({
      target,
      tls,
      deadlineMs: 5000,
      maxSendMessageBytes: MiB,
      maxReceiveMessageBytes: MiB,
    });
    clients.push(created);
    return created;
  }
  const metadata = (target: string, tls: TlsOptions | false) =>
    client(target, tls).getModelMetadata({ name: 'census' });
  const failureOf = async (target: string, tls: TlsOptions | false) => {
    const error = await rejectionOf(metadata(target, tls));
    expect(error).to.be.instanceOf(TFServingCallError);
    expect((error as TFServingCallError).codeName).to.equal('UNAVAILABLE');
    return (error as TFServingCallError).tlsFailure;
  };

  before(async () => {
    pki = makeTestPki();
    ipOnly = makeCertificate(pki, 'server-ip', [
      'subjectAltName=IP:127.0.0.1',
      'extendedKeyUsage=serverAuth',
      'basicConstraints=CA:FALSE',
    ]);
    clientCertificate = testClientCertificate(pki);
    stranger = makeCertificate(pki, 'stranger', ['extendedKeyUsage=clientAuth'], 'other-ca');
    const keyCertPairs = [{ private_key: read(ipOnly.keyFile), cert_chain: read(ipOnly.certFile) }];
    tlsTarget = await tlsServer.start(grpc.ServerCredentials.createSsl(null, keyCertPairs));
    mutualTlsTarget = await mutualTlsServer.start(
      grpc.ServerCredentials.createSsl(read(pki.caFile), keyCertPairs, true),
    );
    plainTarget = await plainServer.start();
  });
  beforeEach(() => {
    for (const server of [tlsServer, mutualTlsServer, plainServer]) server.calls.length = 0;
  });
  afterEach(() => {
    for (const created of clients.splice(0)) created.close();
  });
  after(() => {
    for (const server of [tlsServer, mutualTlsServer, plainServer]) server.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('calls a TLS server whose certificate the CA file vouches for', async () => {
    const answer = await metadata(tlsTarget, { ca: read(pki.caFile) });
    expect(answer.model.version).to.equal(3);
  });

  it('calls a mutual-TLS server with a client certificate its CA signed', async () => {
    const answer = await metadata(mutualTlsTarget, {
      ca: read(pki.caFile),
      cert: read(clientCertificate.certFile),
      key: read(clientCertificate.keyFile),
    });
    expect(answer.model.version).to.equal(3);
    expect(mutualTlsServer.calls).to.have.length(1);
  });

  it('names a server certificate no trusted CA signed, with another CA file or with the default roots', async () => {
    for (const tls of [{ ca: read(pki.otherCaFile) }, {}]) {
      expect(await failureOf(tlsTarget, tls)).to.deep.equal({
        kind: 'untrusted-server-certificate',
        reason: 'unable to verify the first certificate',
      });
    }
  });

  it('names a server certificate that does not hold the target host, and connects when serverName is a name it holds', async () => {
    const port = tlsTarget.split(':')[1]!;
    const failure = await failureOf(`localhost:${port}`, { ca: read(pki.caFile) });
    expect(failure?.kind).to.equal('server-name-mismatch');
    expect(failure?.reason).to.match(/^Hostname\/IP does not match certificate's altnames: Host: localhost/);
    const answer = await metadata(`localhost:${port}`, { ca: read(pki.caFile), serverName: '127.0.0.1' });
    expect(answer.model.name).to.equal('census');
  });

  it('names a client certificate the server requires and did not get, or does not trust', async () => {
    expect((await failureOf(mutualTlsTarget, { ca: read(pki.caFile) }))?.kind).to.equal(
      'client-certificate-refused',
    );
    const refused = await failureOf(mutualTlsTarget, {
      ca: read(pki.caFile),
      cert: read(stranger.certFile),
      key: read(stranger.keyFile),
    });
    expect(refused?.kind).to.equal('client-certificate-refused');
    expect(mutualTlsServer.calls).to.have.length(0);
  });

  it('takes a server that closes the connection right after the TLS handshake (gRPC core refusing a client certificate) as refusing this client', async () => {
    // What TF Serving and the dev model server do with a missing or untrusted client certificate:
    // the TLS 1.3 handshake completes on the client's side, then the connection closes, no alert.
    const closing = createTlsServer(
      { key: read(ipOnly.keyFile), cert: read(ipOnly.certFile), ALPNProtocols: ['h2'] },
      (socket) => socket.destroy(),
    );
    await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
    try {
      const failure = await failureOf(`127.0.0.1:${(closing.address() as AddressInfo).port}`, {
        ca: read(pki.caFile),
      });
      expect(failure).to.deep.equal({
        kind: 'client-certificate-refused',
        reason: 'the server closed the connection right after the TLS handshake, before answering',
      });
    } finally {
      closing.close();
    }
  });

  it('names a plaintext port reached with TLS, and a TLS port reached without', async () => {
    expect(await failureOf(plainTarget, { ca: read(pki.caFile) })).to.deep.equal({
      kind: 'not-tls',
      reason: 'wrong version number',
    });
    expect((await failureOf(tlsTarget, false))?.kind).to.equal('tls-required');
  });

  it('leaves a server that is down to the retries: UNAVAILABLE without a TLS failure', async () => {
    const port = await closedPort();
    expect(await failureOf(`127.0.0.1:${port}`, { ca: read(pki.caFile) })).to.equal(undefined);
    expect(await failureOf(`127.0.0.1:${port}`, false)).to.equal(undefined);
  });

  it('rejects calls through the shared pool with FatalError MODEL_SERVER_TLS_FAILED naming the key to fix', async () => {
    const request = (tls: { caFile?: string; certFile?: string; keyFile?: string }, target = tlsTarget) => ({
      target,
      tls,
      maxSendMessageBytes: MiB,
      maxReceiveMessageBytes: MiB,
      deadlineMs: 5000,
    });
    const cases: Array<[ReturnType<typeof request>, string]> = [
      [
        request({ caFile: pki.otherCaFile }),
        `certificate is not signed by a CA in tfserving.tls.ca.file "${pki.otherCaFile}"`,
      ],
      [
        request({ caFile: pki.caFile }, mutualTlsTarget),
        'the server requires a client certificate (mutual TLS): set tfserving.tls.cert.file and tfserving.tls.key.file',
      ],
      [
        request(
          { caFile: pki.caFile, certFile: stranger.certFile, keyFile: stranger.keyFile },
          mutualTlsTarget,
        ),
        `the server refused the client certificate tfserving.tls.cert.file "${stranger.certFile}"`,
      ],
      [
        request({ caFile: pki.caFile }, `localhost:${tlsTarget.split(':')[1]!}`),
        'the server certificate does not name "localhost": set tfserving.target',
      ],
    ];
    for (const [clientRequest, hint] of cases) {
      const lease = await sharedClients(clientRequest);
      try {
        const error = await rejectionOf(lease.client.predict({ model: { name: 'census' }, inputs: {} }));
        expect(error).to.be.instanceOf(FatalError);
        expect((error as FatalError).code).to.equal('MODEL_SERVER_TLS_FAILED');
        expect((error as FatalError).message).to.contain(
          `TLS connection to the model server ${clientRequest.target} failed: `,
        );
        expect((error as FatalError).message).to.contain(hint);
        expect((error as FatalError).cause).to.be.instanceOf(TFServingCallError);
      } finally {
        lease.release();
      }
    }
  });
});

describe('TLS failures in grpc-js connection errors', () => {
  // The details grpc-js gives an UNAVAILABLE call whose connection failed (as seen with 1.14).
  const details = (error: string) => `No connection established. Last error: ${error}. Resolution note: `;

  it('takes the TLS error out of the details, without Node prefixes, advice or the OpenSSL trace', () => {
    expect(
      connectionErrorOf(
        details(
          'Error: unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca',
        ),
      ),
    ).to.equal('unable to verify the first certificate');
    expect(
      connectionErrorOf(
        details(
          'Error: 40EDEBEDE57F0000:error:0A00010B:SSL routines:tls_validate_record_header:wrong version number:../deps/openssl/openssl/ssl/record/methods/tlsany_meth.c:77:\n',
        ),
      ),
    ).to.equal('wrong version number');
  });

  it('classifies certificate, name, client certificate and protocol errors, and nothing else', () => {
    const kinds = [
      "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: Host: localhost. is not cert's CN: x",
      'Error: self-signed certificate in certificate chain',
      'Error: certificate has expired',
      'Error: unable to get local issuer certificate',
      'Error: 40ED:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../ssl.c:1:',
      'Error: 40ED:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../ssl.c:1:',
      'Error: 40ED:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl.c:1:',
      'Error: connect ECONNREFUSED 127.0.0.1:8500',
      'Failed to connect (2026-12-01T04:14:21.771Z)',
      'Error: read ECONNRESET',
    ].map((error) => tlsFailureInDetails(details(error))?.kind);
    expect(kinds).to.deep.equal([
      'server-name-mismatch',
      'untrusted-server-certificate',
      'untrusted-server-certificate',
      'untrusted-server-certificate',
      'client-certificate-refused',
      'client-certificate-refused',
      'not-tls',
      undefined,
      undefined,
      undefined,
    ]);
  });
});

describe('proto directory lookup', () => {
  const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

  it('finds proto/ at the package root from the sources and from the compiled dist/ tree', () => {
    const expected = join(packageRoot, 'proto');
    expect(findProtoDir()).to.equal(expected);
    const compiled = pathToFileURL(
      join(packageRoot, 'dist', 'connectors', 'tf-serving', 'grpc-client.js'),
    ).href;
    expect(findProtoDir(compiled)).to.equal(expected);
  });

  it('says so when no package root is above the module', () => {
    expect(() => findProtoDir('file:///nowhere/grpc-client.js')).to.throw(/No package.json above \/nowhere/);
  });
});

describe('model spec helper', () => {
  it('maps a version number to the Int64Value and a label to version_label', () => {
    expect(toModelSpecProto({ name: 'null', version: 2, signatureName: 's' })).to.deep.equal({
      name: 'null',
      version: { value: 2 },
      signature_name: 's',
    });
    expect(toModelSpecProto({ name: 'null', versionLabel: 'canary' })).to.deep.equal({
      name: 'null',
      version_label: 'canary',
    });
  });

  it('rejects a version together with a label, a bad version and an empty name', () => {
    expect(() => toModelSpecProto({ name: 'm', version: 1, versionLabel: 'x' })).to.throw(
      /either a version \(1\) or a version label \("x"\), not both/,
    );
    expect(() => toModelSpecProto({ name: 'm', version: -1 })).to.throw(/non-negative integer, got -1/);
    expect(() => toModelSpecProto({ name: '' })).to.throw(/non-empty model name/);
  });
});
