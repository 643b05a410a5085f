import { expect } from 'chai';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import {
  TFServingCallError,
  TFServingClient,
  findProtoDir,
  loadServiceDefinitions,
  toModelSpecProto,
  type ModelSpecProto,
  type TFServingClientOptions,
} from '../../connectors/tf-serving/grpc-client.js';
import { decodeTensor, encodeTensor, type TensorProto } from '../../connectors/tf-serving/tensor-codec.js';

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

  async start(): Promise<string> {
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
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
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
