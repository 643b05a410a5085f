import { expect } from 'chai';
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { sharedClients } from '../../connectors/tf-serving/client-pool.js';
import { TFServingCallError, type PredictRequest } from '../../connectors/tf-serving/grpc-client.js';
import {
  HTTP_STATUS_TO_GRPC,
  TFServingRestClient,
  parseServingJson,
  predictRequestBody,
  type TFServingRestClientOptions,
} from '../../connectors/tf-serving/rest-client.js';
import { decodeTensor, encodeTensor } from '../../connectors/tf-serving/tensor-codec.js';
import { FatalError } from '../../runtime/errors.js';
import { makeCertificate } from '../helpers/model-server-tls.js';
import { makeTestPki, type TestPki } from '../helpers/secure-stack.js';

interface Received {
  method: string;
  path: string;
  body: string;
}

type Route = (request: Received, response: ServerResponse) => void;

/**
 * An in-process stand-in for TF Serving's REST API: answers from `routes` (first matching path
 * pattern wins), records every request. Unless a test says otherwise, model "m" has versions 3 and
 * 5 (label "stable" -> 3) and a signature with outputs `score` (DT_FLOAT) and `id` (DT_INT64).
 */
class FakeRestServer {
  readonly received: Received[] = [];
  routes: [RegExp, Route][] = [];
  private readonly server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = {
        method: req.method ?? '',
        path: req.url ?? '',
        body: Buffer.concat(chunks).toString(),
      };
      this.received.push(request);
      const route = this.routes.find(([pattern]) => pattern.test(`${request.method} ${request.path}`));
      if (route === undefined) json(res, 404, { error: `no route for ${request.method} ${request.path}` });
      else route[1](request, res);
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  predictPaths(): string[] {
    return this.received.filter((r) => r.method === 'POST').map((r) => r.path);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  raw(res, status, JSON.stringify(body));
}

function raw(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const tensorInfo = (dtype: string) => ({ dtype, tensor_shape: { dim: [{ size: '-1' }] }, name: 'x:0' });

function metadata(version: number, outputs: Record<string, string>) {
  return {
    model_spec: { name: 'm', version: String(version) },
    metadata: {
      signature_def: {
        signature_def: {
          serving_default: {
            inputs: { x: tensorInfo('DT_FLOAT') },
            outputs: Object.fromEntries(
              Object.entries(outputs).map(([alias, dtype]) => [alias, tensorInfo(dtype)]),
            ),
            method_name: 'tensorflow/serving/predict',
          },
        },
      },
    },
  };
}

const statusOf = (...versions: number[]) => ({
  model_version_status: versions.map((v) => ({
    version: String(v),
    state: 'AVAILABLE',
    status: { error_code: 'OK', error_message: '' },
  })),
});

const predictCall = (
  model: PredictRequest['model'] = { name: 'm', signatureName: 'serving_default' },
): PredictRequest => ({
  model,
  inputs: { x: encodeTensor('DT_FLOAT', [2], [0.5, 1.5]) },
});

async function failureOf(promise: Promise<unknown>): Promise<TFServingCallError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(TFServingCallError);
    return error as TFServingCallError;
  }
  throw new Error('expected the call to fail');
}

describe('TFServingRestClient', () => {
  let server: FakeRestServer;
  let baseUrl: string;
  let client: TFServingRestClient;
  let clock: number;
  const makeClient = (options: Partial<TFServingRestClientOptions> = {}) =>
    new TFServingRestClient({
      baseUrl,
      deadlineMs: 2000,
      maxSendMessageBytes: 1024 * 1024,
      maxReceiveMessageBytes: 1024 * 1024,
      now: () => clock,
      ...options,
    });

  beforeEach(async () => {
    server = new FakeRestServer();
    baseUrl = await server.start();
    clock = 1_000;
    server.routes = [
      [/^GET \/v1\/models\/m\/labels\/stable$/, (_q, res) => json(res, 200, statusOf(3))],
      [/^GET \/v1\/models\/m$/, (_q, res) => json(res, 200, statusOf(3, 5))],
      [
        /^GET \/v1\/models\/m\/versions\/(\d+)\/metadata$/,
        (q, res) =>
          json(
            res,
            200,
            metadata(Number(/versions\/(\d+)/.exec(q.path)![1]), { score: 'DT_FLOAT', id: 'DT_INT64' }),
          ),
      ],
      [
        /^POST \/v1\/models\/m\/versions\/\d+:predict$/,
        (_q, res) => raw(res, 200, '{"outputs": {"score": [0.25, 0.75], "id": [9007199254740993, -4]}}'),
      ],
    ];
    client = makeClient();
  });

  afterEach(async () => {
    client.close();
    await server.stop();
  });

  it('sends the latest version a columnar predict and answers with that version, output dtypes from its signature', async () => {
    const result = await client.predict(predictCall());
    expect(result.model).to.deep.equal({ name: 'm', version: 5, signatureName: 'serving_default' });
    expect(server.predictPaths()).to.deep.equal(['/v1/models/m/versions/5:predict']);
    expect(JSON.parse(server.received.find((r) => r.method === 'POST')!.body)).to.deep.equal({
      signature_name: 'serving_default',
      inputs: { x: [0.5, 1.5] },
    });
    expect(decodeTensor(result.outputs.score!)).to.deep.equal({
      dtype: 'DT_FLOAT',
      shape: [2],
      values: [0.25, 0.75],
    });
    // Beyond 2^53: the exact decimal, as protobufjs gives int64 values it cannot hold in a number.
    expect(result.outputs.id!.int64_val).to.deep.equal(['9007199254740993', -4]);
  });

  it('resolves a version label from the model status and keeps the answer for versionRefreshMs', async () => {
    const model = { name: 'm', versionLabel: 'stable', signatureName: 'serving_default' };
    expect((await client.predict(predictCall(model))).model.version).to.equal(3);
    clock += 999;
    await client.predict(predictCall(model));
    expect(server.received.filter((r) => r.path === '/v1/models/m/labels/stable')).to.have.length(1);
    clock += 1;
    await client.predict(predictCall(model));
    expect(server.received.filter((r) => r.path === '/v1/models/m/labels/stable')).to.have.length(2);
    expect(server.predictPaths()).to.deep.equal(Array(3).fill('/v1/models/m/versions/3:predict'));
  });

  it('sends a pinned version straight to that version, without asking the status', async () => {
    await client.predict(predictCall({ name: 'm', version: 3, signatureName: 'serving_default' }));
    expect(server.received.map((r) => `${r.method} ${r.path}`)).to.deep.equal([
      'POST /v1/models/m/versions/3:predict',
      'GET /v1/models/m/versions/3/metadata',
    ]);
  });

  it('resolves the version again once when the version it resolved went away (NOT_FOUND)', async () => {
    await client.predict(predictCall());
    server.routes.unshift(
      [/^GET \/v1\/models\/m$/, (_q, res) => json(res, 200, statusOf(6))],
      [
        /^POST \/v1\/models\/m\/versions\/5:predict$/,
        (_q, res) => json(res, 404, { error: 'Servable not found for request: Specific(m, 5)' }),
      ],
    );
    // Version 5 is still the cached answer for "latest": the call goes there first.
    const result = await client.predict(predictCall());
    expect(result.model.version).to.equal(6);
    expect(server.predictPaths()).to.deep.equal([
      '/v1/models/m/versions/5:predict',
      '/v1/models/m/versions/5:predict',
      '/v1/models/m/versions/6:predict',
    ]);
  });

  it('maps every HTTP status TF Serving answers to the gRPC status the policy classifies, with the error JSON as details', async () => {
    const expected: Record<number, string> = {
      400: 'INVALID_ARGUMENT',
      401: 'UNAUTHENTICATED',
      403: 'PERMISSION_DENIED',
      404: 'NOT_FOUND',
      409: 'ABORTED',
      429: 'RESOURCE_EXHAUSTED',
      499: 'CANCELLED',
      500: 'INTERNAL',
      501: 'UNIMPLEMENTED',
      502: 'UNAVAILABLE',
      503: 'UNAVAILABLE',
      504: 'DEADLINE_EXCEEDED',
      418: 'UNKNOWN',
    };
    let status = 0;
    server.routes.unshift([/:predict$/, (_q, res) => json(res, status, { error: `failure ${status}` })]);
    const pinned = { name: 'm', version: 3, signatureName: 'serving_default' };
    const seen: Record<number, string> = {};
    for (const code of Object.keys(expected).map(Number)) {
      status = code;
      const error = await failureOf(client.predict(predictCall(pinned)));
      expect(error.details).to.equal(`failure ${code}`);
      expect(error.method).to.equal('Predict');
      seen[code] = error.codeName;
    }
    expect(seen).to.deep.equal(expected);
    for (const [code, name] of Object.entries(HTTP_STATUS_TO_GRPC))
      expect(expected[Number(code)] ?? name).to.equal(name);
  });

  it('keeps the body of a failure that is not TF Serving error JSON, shortened, as details', async () => {
    server.routes.unshift([/:predict$/, (_q, res) => raw(res, 502, '<html>bad gateway</html>')]);
    const error = await failureOf(
      client.predict(predictCall({ name: 'm', version: 3, signatureName: 'serving_default' })),
    );
    expect(error.codeName).to.equal('UNAVAILABLE');
    expect(error.details).to.equal('HTTP 502: <html>bad gateway</html>');
  });

  it('reads the single-output answer, where outputs is the tensor itself', async () => {
    server.routes.unshift(
      [/metadata$/, (_q, res) => json(res, 200, metadata(5, { probs: 'DT_DOUBLE' }))],
      [/:predict$/, (_q, res) => raw(res, 200, '{"outputs": [[0.1, 0.9], [0.7, 0.3]]}')],
    );
    const result = await client.predict(predictCall());
    expect(decodeTensor(result.outputs.probs!)).to.deep.equal({
      dtype: 'DT_DOUBLE',
      shape: [2, 2],
      values: [0.1, 0.9, 0.7, 0.3],
    });
  });

  it('keeps only the outputs the request filtered on (REST has no output filter)', async () => {
    const result = await client.predict({ ...predictCall(), outputFilter: ['score'] });
    expect(Object.keys(result.outputs)).to.deep.equal(['score']);
  });

  it('writes bytes that are not UTF-8 as {"b64": ...}, UTF-8 strings as strings, and 64-bit integers exactly', () => {
    const body = predictRequestBody('s', {
      text: encodeTensor('DT_STRING', [2], ['héllo', new Uint8Array([0xff, 0x00, 0xd8])]),
      big: encodeTensor('DT_INT64', [1, 2], [2n ** 62n + 1n, -7]),
      flag: encodeTensor('DT_BOOL', [], [true]),
      nan: encodeTensor('DT_FLOAT', [3], [Number.NaN, Infinity, -Infinity]),
      empty: encodeTensor('DT_INT32', [2, 0], []),
    });
    expect(body).to.equal(
      '{"signature_name":"s","inputs":{"text":["héllo",{"b64":"/wDY"}],"big":[[4611686018427387905,-7]],' +
        '"flag":true,"nan":[NaN,Infinity,-Infinity],"empty":[[],[]]}}',
    );
  });

  it('reads string outputs given as strings or {"b64": ...}, and NaN and Infinity as TF Serving writes them', async () => {
    server.routes.unshift(
      [/metadata$/, (_q, res) => json(res, 200, metadata(5, { label: 'DT_STRING', score: 'DT_FLOAT' }))],
      [
        /:predict$/,
        (_q, res) =>
          raw(
            res,
            200,
            '{"outputs": {"label": ["NaN is a word", {"b64": "/wDY"}], "score": [NaN, -Infinity]}}',
          ),
      ],
    );
    const result = await client.predict(predictCall());
    expect(result.outputs.label!.string_val).to.deep.equal([
      Buffer.from('NaN is a word'),
      Buffer.from([0xff, 0x00, 0xd8]),
    ]);
    expect(result.outputs.score!.float_val).to.deep.equal([Number.NaN, -Infinity]);
  });

  it('parses integers beyond 2^53 exactly anywhere in an answer, and leaves other numbers as they are', () => {
    expect(
      parseServingJson('{"a": [12345678901234567890, 1.5e300, 3], "b": "12345678901234567890"}'),
    ).to.deep.equal({
      a: ['12345678901234567890', 1.5e300, 3],
      b: '12345678901234567890',
    });
  });

  it('fails an answer that does not fit the signature with INTERNAL (retried), naming the output', async () => {
    server.routes.unshift([
      /:predict$/,
      (_q, res) => raw(res, 200, '{"outputs": {"score": [[1], 2], "id": [1, 2]}}'),
    ]);
    const error = await failureOf(client.predict(predictCall()));
    expect(error.codeName).to.equal('INTERNAL');
    expect(error.details).to.match(/output "score" is a ragged list/);
  });

  it('fails a call that outlives its deadline with DEADLINE_EXCEEDED', async () => {
    server.routes.unshift([/:predict$/, () => undefined]); // never answers
    const error = await failureOf(
      client.predict(predictCall({ name: 'm', version: 3, signatureName: 'serving_default' }), {
        deadlineMs: 50,
      }),
    );
    expect(error.codeName).to.equal('DEADLINE_EXCEEDED');
  });

  it('cancels a call when its AbortSignal fires (CANCELLED)', async () => {
    server.routes.unshift([/:predict$/, () => undefined]);
    const abort = new AbortController();
    const call = client.predict(predictCall({ name: 'm', version: 3, signatureName: 'serving_default' }), {
      signal: abort.signal,
    });
    while (server.predictPaths().length === 0) await new Promise((resolve) => setImmediate(resolve));
    abort.abort();
    expect((await failureOf(call)).codeName).to.equal('CANCELLED');
  });

  it('refuses an answer larger than maxReceiveMessageBytes, declared or streamed, with RESOURCE_EXHAUSTED', async () => {
    const big = `{"outputs": {"score": [${Array(300).fill('0.5').join(',')}], "id": [1]}}`;
    let chunked = false;
    server.routes.unshift([
      /:predict$/,
      (_q, res) => {
        if (chunked) {
          res.writeHead(200, { 'content-type': 'application/json' }); // no content-length
          res.write(big.slice(0, 600));
          res.end(big.slice(600));
        } else raw(res, 200, big);
      },
    ]);
    const small = makeClient({ maxReceiveMessageBytes: 1024 });
    try {
      const pinned = { name: 'm', version: 3, signatureName: 'serving_default' };
      const declared = await failureOf(small.predict(predictCall(pinned)));
      expect(declared.codeName).to.equal('RESOURCE_EXHAUSTED');
      expect(declared.details).to.match(/^Received message larger than max \(\d+ vs\. 1024\)/);
      chunked = true;
      const streamed = await failureOf(small.predict(predictCall(pinned)));
      expect(streamed.codeName).to.equal('RESOURCE_EXHAUSTED');
    } finally {
      small.close();
    }
  });

  it('refuses to send a request larger than maxSendMessageBytes, without sending it', async () => {
    const small = makeClient({ maxSendMessageBytes: 1024 });
    try {
      const inputs = { x: encodeTensor('DT_FLOAT', [400], Array<number>(400).fill(0.5)) };
      const error = await failureOf(
        small.predict({ model: { name: 'm', version: 3, signatureName: 'serving_default' }, inputs }),
      );
      expect(error.codeName).to.equal('RESOURCE_EXHAUSTED');
      expect(server.received).to.have.length(0);
    } finally {
      small.close();
    }
  });

  it('fails with UNAVAILABLE when nothing listens on the port (retried, counted by the breaker)', async () => {
    await server.stop();
    const error = await failureOf(
      client.predict(predictCall({ name: 'm', version: 3, signatureName: 'serving_default' })),
    );
    expect(error.codeName).to.equal('UNAVAILABLE');
    expect(error.details).to.match(/ECONNREFUSED/);
    server = new FakeRestServer(); // for afterEach
    await server.start();
  });

  it('reads the metadata JSON (metadata.signature_def.signature_def) into signatures, with the version', async () => {
    server.routes.unshift([
      /^GET \/v1\/models\/m\/metadata$/,
      (_q, res) => json(res, 200, metadata(5, { score: 'DT_FLOAT' })),
    ]);
    const read = await client.getModelMetadata({ name: 'm' });
    expect(read.model).to.deep.equal({ name: 'm', version: 5 });
    expect(read.signatures.serving_default).to.deep.equal({
      methodName: 'tensorflow/serving/predict',
      inputs: { x: { dtype: 'DT_FLOAT', shape: [-1], encoding: 'name', graphTensorName: 'x:0' } },
      outputs: { score: { dtype: 'DT_FLOAT', shape: [-1], encoding: 'name', graphTensorName: 'x:0' } },
    });
  });

  it('reports the model status of each version', async () => {
    expect(await client.getModelStatus({ name: 'm' })).to.deep.equal([
      { version: 3, state: 'AVAILABLE', errorCode: 'OK', errorMessage: '' },
      { version: 5, state: 'AVAILABLE', errorCode: 'OK', errorMessage: '' },
    ]);
  });

  it('rejects calls after close without sending them', async () => {
    client.close();
    client.close();
    let error: unknown;
    await client.getModelStatus({ name: 'm' }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/is closed/);
    expect(server.received).to.have.length(0);
  });

  it('validates its options', () => {
    expect(() => makeClient({ baseUrl: '127.0.0.1:8501' })).to.throw(/http:\/\/host:port/);
    expect(() => makeClient({ baseUrl: `${baseUrl}/v1` })).to.throw(/http:\/\/host:port/);
    expect(() => makeClient({ tls: { ca: 'x' } })).to.throw(/https/);
    expect(() => makeClient({ deadlineMs: 0 })).to.throw(/deadlineMs/);
  });

  it('is what the shared client pool opens for an http:// target, one per target', async () => {
    const lease = await sharedClients({
      target: baseUrl,
      tls: false,
      maxSendMessageBytes: 1024 * 1024,
      maxReceiveMessageBytes: 1024 * 1024,
      deadlineMs: 2000,
    });
    try {
      const result = await lease.client.predict(
        predictCall({ name: 'm', version: 5, signatureName: 'serving_default' }),
      );
      expect(result.model.version).to.equal(5);
      expect(server.predictPaths()).to.deep.equal(['/v1/models/m/versions/5:predict']);
    } finally {
      lease.release();
    }
  });
});

describe('TFServingRestClient over HTTPS (tfserving.tls.* with tfserving.transport=rest)', function () {
  // openssl makes the certificates (a second or two).
  this.timeout(30_000);
  let pki: TestPki;
  let server: ReturnType<typeof createHttpsServer>;
  let baseUrl: string;

  before(async () => {
    pki = makeTestPki();
    const certificate = makeCertificate(pki, 'rest-server-ip', [
      'subjectAltName=IP:127.0.0.1',
      'extendedKeyUsage=serverAuth',
      'basicConstraints=CA:FALSE',
    ]);
    server = createHttpsServer(
      { cert: readFileSync(certificate.certFile), key: readFileSync(certificate.keyFile) },
      (_req, res) => json(res, 200, statusOf(4)),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  const options = { deadlineMs: 5000, maxSendMessageBytes: 1 << 20, maxReceiveMessageBytes: 1 << 20 };

  it('calls an HTTPS server whose certificate the CA file vouches for', async () => {
    const client = new TFServingRestClient({ ...options, baseUrl, tls: { ca: readFileSync(pki.caFile) } });
    try {
      expect((await client.getModelStatus({ name: 'm' }))[0]!.version).to.equal(4);
    } finally {
      client.close();
    }
  });

  it('names a server certificate no trusted CA signed, and the client pool turns it into MODEL_SERVER_TLS_FAILED', async () => {
    const client = new TFServingRestClient({
      ...options,
      baseUrl,
      tls: { ca: readFileSync(pki.otherCaFile) },
    });
    try {
      const error = await failureOf(client.getModelStatus({ name: 'm' }));
      expect(error.codeName).to.equal('UNAVAILABLE');
      expect(error.tlsFailure?.kind).to.equal('untrusted-server-certificate');
    } finally {
      client.close();
    }
    const lease = await sharedClients({
      target: baseUrl,
      tls: { caFile: pki.otherCaFile },
      ...options,
    });
    try {
      let error: unknown;
      await lease.client.getModelMetadata({ name: 'm' }).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(FatalError);
      expect((error as FatalError).code).to.equal('MODEL_SERVER_TLS_FAILED');
      expect((error as FatalError).message).to.contain('tfserving.tls.ca.file');
    } finally {
      lease.release();
    }
  });
});
