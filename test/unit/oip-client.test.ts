// The OIP client against an in-process gRPC server implementing inference.GRPCInferenceService
// from the vendored proto: what goes over the wire, and how answers and failures come back.
import { readFileSync, rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { expect } from 'chai';
import { OipCallError, OipClient, OIP_PROTO_FILE } from '../../connectors/open-inference/oip-client.js';
import { oipClients, sharedOipClientCount } from '../../connectors/open-inference/oip-client-pool.js';
import { FatalError } from '../../runtime/api.js';
import { makeTestPki, type TestPki } from '../helpers/secure-stack.js';
import {
  rawOf,
  type ModelInferRequestProto,
  type ModelInferResponseProto,
} from '../../connectors/open-inference/oip-codec.js';
import {
  TFServingCallError,
  findProtoDir,
  PROTO_LOADER_OPTIONS,
} from '../../connectors/tf-serving/grpc-client.js';
import { decodeTensor, encodeTensor } from '../../connectors/tf-serving/tensor-codec.js';

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => void;

/** A model server speaking OIP, whose answers each test sets. */
class FakeOipServer {
  readonly server = new grpc.Server();
  ready = true;
  versions: string[] = [];
  requests: ModelInferRequestProto[] = [];
  answer: (request: ModelInferRequestProto) => ModelInferResponseProto | grpc.ServiceError = () => ({});

  async start(credentials = grpc.ServerCredentials.createInsecure()): Promise<string> {
    const definition = protoLoader.loadSync(OIP_PROTO_FILE, {
      ...PROTO_LOADER_OPTIONS,
      includeDirs: [findProtoDir()],
    });
    const service = definition['inference.GRPCInferenceService'] as grpc.ServiceDefinition;
    const notFound = (name: string): grpc.ServiceError =>
      Object.assign(new Error(`Model ${name} not found`), {
        code: grpc.status.NOT_FOUND,
        details: `Model ${name} not found`,
        metadata: new grpc.Metadata(),
      });
    const modelReady: Unary<{ name: string }, { ready: boolean }> = (call, callback) =>
      call.request.name === 'census'
        ? callback(null, { ready: this.ready })
        : callback(notFound(call.request.name));
    const modelMetadata: Unary<{ name: string }, object> = (call, callback) =>
      call.request.name === 'census'
        ? callback(null, {
            name: 'census',
            versions: this.versions,
            platform: 'sklearn',
            inputs: [{ name: 'age', datatype: 'INT64', shape: [-1] }],
            outputs: [{ name: 'score', datatype: 'FP32', shape: [-1] }],
          })
        : callback(notFound(call.request.name));
    const modelInfer: Unary<ModelInferRequestProto, ModelInferResponseProto> = (call, callback) => {
      this.requests.push(call.request);
      const answer = this.answer(call.request);
      if (answer instanceof Error) callback(answer);
      else callback(null, answer);
    };
    this.server.addService(service, {
      ServerLive: ((_call, callback) => callback(null, { live: true })) as Unary<object, object>,
      ServerReady: ((_call, callback) => callback(null, { ready: this.ready })) as Unary<object, object>,
      ModelReady: modelReady,
      ModelMetadata: modelMetadata,
      ModelInfer: modelInfer,
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', credentials, (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    return `127.0.0.1:${port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

const rejected = (code: grpc.status, details: string): grpc.ServiceError =>
  Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });

describe('OIP client (in-process OIP server)', () => {
  let server: FakeOipServer;
  let client: OipClient;
  let target: string;

  beforeEach(async () => {
    server = new FakeOipServer();
    target = await server.start();
    client = new OipClient({
      target,
      deadlineMs: 2000,
      maxSendMessageBytes: 1 << 20,
      maxReceiveMessageBytes: 1 << 20,
    });
  });

  afterEach(async () => {
    client.close();
    await server.stop();
  });

  it('answers liveness and readiness', async () => {
    expect(await client.serverLive()).to.equal(true);
    expect(await client.serverReady()).to.equal(true);
    expect(await client.modelReady({ name: 'census' })).to.equal(true);
  });

  it("reads ModelMetadata into one signature of the model's tensors", async () => {
    const metadata = await client.getModelMetadata({ name: 'census' });
    expect(metadata.signatures.ModelInfer!.inputs.age).to.deep.include({ dtype: 'DT_INT64', shape: [-1] });
    expect(metadata.signatures.ModelInfer!.outputs.score).to.deep.include({ dtype: 'DT_FLOAT' });
  });

  it('rejects a model the server does not have with NOT_FOUND, which the status policy makes fatal', async () => {
    const error = await client.getModelMetadata({ name: 'nope' }).then(
      () => expect.fail('resolved'),
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(OipCallError).and.instanceOf(TFServingCallError);
    expect((error as OipCallError).codeName).to.equal('NOT_FOUND');
    expect((error as OipCallError).oipMethod).to.equal('ModelMetadata');
    expect((error as Error).message).to.match(/^ModelMetadata for model "nope" failed with NOT_FOUND/);
  });

  it('rejects a version the server does not list for the model with NOT_FOUND, naming the versions it has', async () => {
    server.versions = ['1', '2'];
    const error = (await client
      .getModelMetadata({ name: 'census', version: 7 })
      .catch((e: unknown) => e)) as OipCallError;
    expect(error.codeName).to.equal('NOT_FOUND');
    expect(error.details).to.contain('versions 1, 2').and.contain('"7"');
    expect((await client.getModelMetadata({ name: 'census', version: 2 })).model).to.deep.equal({
      name: 'census',
      version: 2,
    });
  });

  it('rejects a model that is not ready with UNAVAILABLE, which start-up retries', async () => {
    server.ready = false;
    const error = (await client
      .getModelMetadata({ name: 'census' })
      .catch((e: unknown) => e)) as OipCallError;
    expect(error.codeName).to.equal('UNAVAILABLE');
    expect(error.oipMethod).to.equal('ModelReady');
  });

  it('sends a batch as ModelInfer with typed contents and reads the answer back as TensorProtos', async () => {
    server.answer = (request) => ({
      model_name: 'census',
      model_version: '4',
      outputs: [
        {
          name: 'score',
          datatype: 'FP32',
          shape: [2],
          contents: {
            fp32_contents: request.inputs[0]!.contents!.int64_contents!.map((v) => Number(v) / 100),
          },
        },
      ],
    });
    const result = await client.predict({
      model: { name: 'census' },
      inputs: { age: encodeTensor('DT_INT64', [2], [25, 50]) },
      outputFilter: ['score'],
    });
    const [request] = server.requests;
    expect(request!.model_name).to.equal('census');
    expect(request!.inputs[0]).to.deep.include({ name: 'age', datatype: 'INT64', shape: [2] });
    expect(request!.outputs!.map((o) => o.name)).to.deep.equal(['score']);
    expect(request!.raw_input_contents ?? []).to.deep.equal([]);
    expect(result.model).to.deep.equal({ name: 'census', version: 4 });
    expect(decodeTensor(result.outputs.score!).values).to.deep.equal([0.25, 0.5]);
  });

  it('sends raw_input_contents when configured, and reads raw_output_contents answers', async () => {
    const raw = new OipClient({
      target,
      deadlineMs: 2000,
      maxSendMessageBytes: 1 << 20,
      maxReceiveMessageBytes: 1 << 20,
      rawInputContents: true,
    });
    try {
      server.answer = () => ({
        model_name: 'census',
        outputs: [{ name: 'label', datatype: 'BYTES', shape: [2] }],
        raw_output_contents: [rawOf('BYTES', ['<=50K', '>50K'])],
      });
      const result = await raw.predict({
        model: { name: 'census' },
        inputs: { age: encodeTensor('DT_INT64', [2], [25, 50]) },
      });
      const [request] = server.requests;
      expect(request!.inputs[0]!.contents ?? undefined).to.equal(undefined);
      expect(Buffer.from(request!.raw_input_contents![0]!).readBigInt64LE(8)).to.equal(50n);
      expect(decodeTensor(result.outputs.label!).values.map(String)).to.deep.equal(['<=50K', '>50K']);
    } finally {
      raw.close();
    }
  });

  it("rejects with the server's status and details, for the status policy to classify", async () => {
    server.answer = () => rejected(grpc.status.INVALID_ARGUMENT, 'age out of range');
    const error = (await client
      .predict({ model: { name: 'census' }, inputs: { age: encodeTensor('DT_INT64', [1], [200]) } })
      .catch((e: unknown) => e)) as OipCallError;
    expect(error.codeName).to.equal('INVALID_ARGUMENT');
    expect(error.details).to.equal('age out of range');
    expect(error.method).to.equal('Predict');
    expect(error.message).to.match(/^ModelInfer for model "census" failed with INVALID_ARGUMENT/);
  });

  it('turns an answer it cannot read into INTERNAL (retried by default), naming what is wrong', async () => {
    server.answer = () => ({
      outputs: [{ name: 'score', datatype: 'FP32', shape: [3], contents: { fp32_contents: [1] } }],
    });
    const error = (await client
      .predict({ model: { name: 'census' }, inputs: { age: encodeTensor('DT_INT64', [3], [1, 2, 3]) } })
      .catch((e: unknown) => e)) as OipCallError;
    expect(error.codeName).to.equal('INTERNAL');
    expect(error.details).to.contain('needs 3 values, got 1');
  });

  it('rejects UNAVAILABLE when no server listens, and CANCELLED when the caller aborts first', async () => {
    await server.stop();
    const error = (await client.serverLive({ deadlineMs: 500 }).catch((e: unknown) => e)) as OipCallError;
    expect(['UNAVAILABLE', 'DEADLINE_EXCEEDED']).to.include(error.codeName);
    const aborted = new AbortController();
    aborted.abort();
    const cancelled = (await client
      .serverLive({ signal: aborted.signal })
      .catch((e: unknown) => e)) as OipCallError;
    expect(cancelled.codeName).to.equal('CANCELLED');
  });
});

describe('OIP client pool over TLS', function () {
  this.timeout(30_000);
  let pki: TestPki;
  let server: FakeOipServer;
  let target: string;

  before(() => {
    pki = makeTestPki();
  });
  after(() => rmSync(pki.dir, { recursive: true, force: true }));

  beforeEach(async () => {
    server = new FakeOipServer();
    target = await server.start(
      grpc.ServerCredentials.createSsl(null, [
        { private_key: readFileSync(pki.serverKeyFile), cert_chain: readFileSync(pki.serverCertFile) },
      ]),
    );
  });
  afterEach(() => server.stop());

  const request = (tls: { caFile?: string }) => ({
    target,
    tls,
    maxSendMessageBytes: 1 << 20,
    maxReceiveMessageBytes: 1 << 20,
    deadlineMs: 2000,
  });

  it('calls a TLS server whose certificate the configured CA signed, and shares one client per target until the last release', async () => {
    const connect = oipClients(false);
    const first = await connect(request({ caFile: pki.caFile }));
    const second = await connect(request({ caFile: pki.caFile }));
    expect(sharedOipClientCount()).to.equal(1);
    const metadata = await first.client.getModelMetadata({ name: 'census' });
    expect(Object.keys(metadata.signatures.ModelInfer!.inputs)).to.deep.equal(['age']);
    first.release();
    expect(sharedOipClientCount()).to.equal(1);
    second.release();
    expect(sharedOipClientCount()).to.equal(0);
  });

  it('fails with MODEL_SERVER_TLS_FAILED naming oip.tls.ca.file when the server certificate is not signed by that CA', async () => {
    const lease = await oipClients(false)(request({ caFile: pki.otherCaFile }));
    try {
      const error = await lease.client.getModelMetadata({ name: 'census' }).then(
        () => expect.fail('resolved'),
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(FatalError);
      expect((error as FatalError).code).to.equal('MODEL_SERVER_TLS_FAILED');
      expect((error as Error).message)
        .to.contain('oip.tls.ca.file')
        .and.not.contain('tfserving.');
    } finally {
      lease.release();
    }
  });

  it('fails the lease with CONFIG_INVALID naming oip.tls.ca.file when the CA file cannot be read', async () => {
    const error = await oipClients(false)(request({ caFile: '/nonexistent/ca.pem' })).then(
      () => expect.fail('resolved'),
      (e: unknown) => e,
    );
    expect((error as FatalError).code).to.equal('CONFIG_INVALID');
    expect((error as Error).message).to.contain('oip.tls.ca.file "/nonexistent/ca.pem"');
  });
});
