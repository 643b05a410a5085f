// gRPC client for TensorFlow Serving's PredictionService and ModelService, built from our
// own protos in proto/ (see proto/README.md).
//
// Contract: one TFServingClient owns one gRPC channel (one HTTP/2 connection at a time) to
// one target; every call carries a deadline; gRPC's own retries are off because the runtime
// alone decides what to retry, from the gRPC status. Every failed call rejects with a
// TFServingCallError carrying that status; an UNAVAILABLE whose connection failed because of the
// TLS settings (a handshake that cannot succeed) also carries what went wrong (`tlsFailure`).
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  shapeFromProto,
  type DataTypeName,
  type TensorProto,
  type TensorShapeProto,
} from './tensor-codec.js';

// ------------------------------------------------------------------------------ protos

/** The proto files that declare both services; their imports are resolved from the proto dir. */
export const SERVICE_PROTO_FILES = [
  'tensorflow_serving/apis/prediction_service.proto',
  'tensorflow_serving/apis/model_service.proto',
];

/**
 * The proto-loader options the client (and the codec's TensorProto type) assume:
 * snake_case field names as in the .proto files, int64 as JS numbers (a value beyond 2^53
 * comes out as an unsafe integer, which the codec rejects), enums as names, and the virtual
 * oneof fields (`version_choice`, `encoding`) set to the name of the field that is present.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  oneofs: true,
};

/**
 * The `proto/` directory at the package root. Found by walking up from this module to the
 * first directory holding package.json, so it works from sources (connectors/tf-serving/)
 * and from the build (dist/connectors/tf-serving/) alike.
 */
export function findProtoDir(moduleUrl: string = import.meta.url): string {
  const start = dirname(fileURLToPath(moduleUrl));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      const protoDir = join(dir, 'proto');
      if (!existsSync(join(protoDir, SERVICE_PROTO_FILES[0]!))) {
        throw new Error(`The package root ${dir} has no ${join('proto', SERVICE_PROTO_FILES[0]!)}`);
      }
      return protoDir;
    }
    if (dirname(dir) === dir) throw new Error(`No package.json above ${start}; cannot locate proto/`);
  }
}

const packageDefinitions = new Map<string, protoLoader.PackageDefinition>();

/**
 * The package definition of both services, loaded once per process. With `unpackAny`, Any
 * fields whose type is declared in our protos decode to that message's fields plus an
 * `@type` key (protobufjs's JSON mapping); the client uses this only for GetModelMetadata,
 * because the same mode also turns NaN and Infinity floats into strings.
 */
export function loadServiceDefinitions(options: { unpackAny?: boolean } = {}): protoLoader.PackageDefinition {
  const key = options.unpackAny === true ? 'unpack-any' : 'plain';
  let definition = packageDefinitions.get(key);
  if (definition === undefined) {
    definition = protoLoader.loadSync(SERVICE_PROTO_FILES, {
      ...PROTO_LOADER_OPTIONS,
      json: options.unpackAny === true,
      includeDirs: [findProtoDir()],
    });
    packageDefinitions.set(key, definition);
  }
  return definition;
}

// -------------------------------------------------------------------- wire message shapes

/** tensorflow.serving.ModelSpec as a proto-loader object. */
export interface ModelSpecProto {
  name?: string;
  version?: { value?: number | string } | null;
  version_label?: string;
  signature_name?: string;
  version_choice?: 'version' | 'version_label';
}

interface PredictRequestProto {
  model_spec: ModelSpecProto;
  inputs: Record<string, TensorProto>;
  output_filter?: string[];
}

interface PredictResponseProto {
  model_spec?: ModelSpecProto;
  outputs?: Record<string, TensorProto>;
}

interface GetModelMetadataRequestProto {
  model_spec: ModelSpecProto;
  metadata_field: string[];
}

interface TensorInfoProto {
  name?: string;
  coo_sparse?: {
    values_tensor_name?: string;
    indices_tensor_name?: string;
    dense_shape_tensor_name?: string;
  };
  encoding?: 'name' | 'coo_sparse';
  dtype?: DataTypeName | number;
  tensor_shape?: TensorShapeProto;
}

interface SignatureDefProto {
  inputs?: Record<string, TensorInfoProto>;
  outputs?: Record<string, TensorInfoProto>;
  method_name?: string;
}

/** With unpackAny, metadata["signature_def"] is a SignatureDefMap plus `@type`. */
interface GetModelMetadataResponseProto {
  model_spec?: ModelSpecProto;
  metadata?: Record<
    string,
    { '@type'?: string; type_url?: string; signature_def?: Record<string, SignatureDefProto> }
  >;
}

interface GetModelStatusRequestProto {
  model_spec: ModelSpecProto;
}

interface GetModelStatusResponseProto {
  model_version_status?: {
    version?: number | string;
    state?: ModelVersionState | number;
    status?: { error_code?: string | number; error_message?: string };
  }[];
}

// ----------------------------------------------------------------------- public shapes

/**
 * Which servable to call. Without `version` and `versionLabel` the server picks the latest
 * version; the two are mutually exclusive. An empty or absent `signatureName` means
 * "serving_default" on the server.
 */
export interface ModelSpec {
  name: string;
  version?: number;
  versionLabel?: string;
  signatureName?: string;
}

export function toModelSpecProto(spec: ModelSpec): ModelSpecProto {
  if (typeof spec.name !== 'string' || spec.name === '') {
    throw new Error('A model spec needs a non-empty model name');
  }
  const proto: ModelSpecProto = { name: spec.name };
  if (spec.version !== undefined && spec.versionLabel !== undefined) {
    throw new Error(
      `Model "${spec.name}": give either a version (${spec.version}) or a version label ("${spec.versionLabel}"), not both`,
    );
  }
  if (spec.version !== undefined) {
    if (!Number.isSafeInteger(spec.version) || spec.version < 0) {
      throw new Error(`Model "${spec.name}": version must be a non-negative integer, got ${spec.version}`);
    }
    proto.version = { value: spec.version };
  }
  if (spec.versionLabel !== undefined) proto.version_label = spec.versionLabel;
  if (spec.signatureName !== undefined) proto.signature_name = spec.signatureName;
  return proto;
}

/** The inverse of toModelSpecProto, for the spec a server reports back. */
export function fromModelSpecProto(proto: ModelSpecProto | undefined): ModelSpec {
  const spec: ModelSpec = { name: proto?.name ?? '' };
  const version = proto?.version?.value;
  if (version !== undefined && version !== null) spec.version = Number(version);
  if (proto?.version_label) spec.versionLabel = proto.version_label;
  if (proto?.signature_name) spec.signatureName = proto.signature_name;
  return spec;
}

function describeModel(spec: ModelSpec): string {
  const parts = [`model "${spec.name}"`];
  if (spec.version !== undefined) parts.push(`version ${spec.version}`);
  if (spec.versionLabel !== undefined) parts.push(`version label "${spec.versionLabel}"`);
  if (spec.signatureName) parts.push(`signature "${spec.signatureName}"`);
  return parts.join(', ');
}

export interface PredictRequest {
  model: ModelSpec;
  /** Input tensors keyed by signature input alias (build them with encodeTensor). */
  inputs: Record<string, TensorProto>;
  /** Output aliases to compute; empty or absent means all outputs of the signature. */
  outputFilter?: readonly string[];
}

export interface PredictResult {
  /** The servable that answered, with the version it resolved to. */
  model: ModelSpec;
  /** Output tensors keyed by signature output alias (read them with decodeTensor). */
  outputs: Record<string, TensorProto>;
}

/** One input or output of a signature. */
export interface TensorSpec {
  /** A number only for a dtype newer than our types.proto. */
  dtype: DataTypeName | number;
  /** Outermost first; -1 for a dimension known only at call time; undefined for unknown rank. */
  shape: number[] | undefined;
  /** `name` for a dense tensor; `coo_sparse` for a sparse one; undefined for other encodings. */
  encoding: 'name' | 'coo_sparse' | undefined;
  /** The tensor's name inside the graph (dense tensors only); informational. */
  graphTensorName: string | undefined;
}

export interface SignatureSpec {
  methodName: string;
  inputs: Record<string, TensorSpec>;
  outputs: Record<string, TensorSpec>;
}

export interface ModelMetadata {
  model: ModelSpec;
  /** Keyed by signature name, e.g. "serving_default". */
  signatures: Record<string, SignatureSpec>;
}

export type ModelVersionState = 'UNKNOWN' | 'START' | 'LOADING' | 'AVAILABLE' | 'UNLOADING' | 'END';

export interface ModelVersionStatus {
  version: number;
  /** Only AVAILABLE serves requests. A number only for a state newer than our protos. */
  state: ModelVersionState | number;
  /** A tensorflow.error.Code name; "OK" unless the version failed. */
  errorCode: string;
  errorMessage: string;
}

export interface TlsOptions {
  /** PEM root certificates to trust; absent means Node's default root certificates. */
  ca?: Buffer | string;
  /** PEM client certificate chain, for mutual TLS; requires `key`. */
  cert?: Buffer | string;
  /** PEM private key of `cert`. */
  key?: Buffer | string;
  /**
   * The name the server's certificate must hold, when it is not the target's host (gRPC's
   * `grpc.ssl_target_name_override`); also sent as the TLS server name (SNI).
   */
  serverName?: string;
}

export interface TFServingClientOptions {
  /** host:port of the model server's gRPC endpoint. */
  target: string;
  /** TLS settings; absent or false means plaintext. */
  tls?: TlsOptions | false;
  /** Deadline of every call unless the call overrides it. */
  deadlineMs: number;
  /** Largest request message the client sends; larger ones fail with RESOURCE_EXHAUSTED. */
  maxSendMessageBytes: number;
  /** Largest response message the client accepts; larger ones fail with RESOURCE_EXHAUSTED. */
  maxReceiveMessageBytes: number;
  /** HTTP/2 keepalive pings; default DEFAULT_KEEPALIVE. */
  keepalive?: KeepaliveOptions;
}

/**
 * How the client notices a connection that died silently (a peer or middlebox gone without a FIN
 * or RST): while calls are in flight it pings every `timeMs`, and closes the connection when a ping
 * is not answered within `timeoutMs`; the calls on it then fail with UNAVAILABLE (retried) and the
 * next call reconnects. Without this, calls would keep going to the dead connection and each would
 * wait out its deadline until the OS gave up on the socket, which takes minutes.
 */
export interface KeepaliveOptions {
  timeMs: number;
  timeoutMs: number;
}

/**
 * 10 s / 5 s, pinging only while calls are in flight (`grpc.keepalive_permit_without_calls` 0).
 * Chosen to be accepted by a TensorFlow Serving left at gRPC's server defaults, which
 * tensorflow_model_server does not change (only `--grpc_channel_arguments` does): a ping counts
 * as a strike when it comes less than `grpc.http2.min_ping_interval_without_data_ms` (5 min; 2 h on
 * a connection without calls) after the previous one with nothing written by the server in
 * between, and the third strike (`grpc.http2.max_ping_strikes` 2) is answered with GOAWAY
 * "too_many_pings". Every answer the server writes clears the strikes, so pinging only during
 * calls stays clear of that unless calls are in flight and the server writes nothing for about
 * 40 s (a stall far beyond any deadline): it then closes the connection, its calls fail
 * RESOURCE_EXHAUSTED (retried by the default status policy), and grpc-js doubles its ping
 * interval for the channel. After an idle spell grpc-js pings as soon as the next call starts, so
 * a connection that died while idle is noticed within `timeoutMs` of that call. grpc-js has no
 * `grpc.http2.*` ping throttles of its own to set.
 */
export const DEFAULT_KEEPALIVE: Readonly<KeepaliveOptions> = Object.freeze({
  timeMs: 10_000,
  timeoutMs: 5_000,
});

export interface CallOptions {
  /** Overrides the client's deadline for this call. */
  deadlineMs?: number;
  /** Cancels the call (it then rejects with CANCELLED), e.g. when the task stops. */
  signal?: AbortSignal;
}

// ------------------------------------------------------------------------------- errors

export type TFServingMethod = 'Predict' | 'GetModelMetadata' | 'GetModelStatus';

/**
 * A call that ended with a non-OK gRPC status. `code` is the numeric gRPC status (see
 * grpc.status) and `codeName` its name, e.g. "UNAVAILABLE"; the status policy classifies
 * failures by these. `cause` is the original @grpc/grpc-js error.
 */
export class TFServingCallError extends Error {
  readonly code: grpc.status;
  readonly codeName: string;
  readonly details: string;
  readonly method: TFServingMethod;
  readonly modelSpec: ModelSpec;
  /**
   * Set on an UNAVAILABLE call whose connection failed because of the TLS settings (a handshake
   * that cannot succeed as configured, or plaintext to a TLS-only port): retrying will not help.
   * Undefined otherwise.
   */
  readonly tlsFailure: TlsHandshakeFailure | undefined;

  constructor(
    fields: {
      code: grpc.status;
      details: string;
      method: TFServingMethod;
      modelSpec: ModelSpec;
      tlsFailure?: TlsHandshakeFailure | undefined;
    },
    options?: { cause?: unknown },
  ) {
    const codeName = grpc.status[fields.code] ?? `STATUS_${fields.code}`;
    super(
      `${fields.method} for ${describeModel(fields.modelSpec)} failed with ${codeName}: ${fields.details}`,
      options,
    );
    this.name = new.target.name;
    this.code = fields.code;
    this.codeName = codeName;
    this.details = fields.details;
    this.method = fields.method;
    this.modelSpec = fields.modelSpec;
    this.tlsFailure = fields.tlsFailure;
  }
}

// ------------------------------------------------------------------ TLS handshake failures
//
// grpc-js reports a connection that could not be set up as UNAVAILABLE, the same status as a
// server that is down, with the connection error only as text in the details ("No connection
// established. Last error: <error>. ..."). A handshake that fails on certificates fails the same
// way on every attempt, so the client tells the two apart: first by the error text (the table
// below), and where the text says only that the connection closed, by one TLS handshake of its
// own with the same settings (probeTlsHandshake; speaksTls for a plaintext channel). gRPC servers
// built on gRPC core (TF Serving, the dev model server) refuse a missing or untrusted client
// certificate by closing the connection right after a TLS 1.3 handshake, without an alert: only
// such a probe sees that.

/** What failed, which decides the setting to fix. */
export type TlsFailureKind =
  /** The server's certificate does not chain to a trusted CA (or expired, or is not valid yet). */
  | 'untrusted-server-certificate'
  /** The server's certificate does not name the host the client connected to. */
  | 'server-name-mismatch'
  /** The server refused the client certificate, or requires one and none was sent. */
  | 'client-certificate-refused'
  /** The target does not speak TLS (a plaintext port). */
  | 'not-tls'
  /** A plaintext channel reached a port that speaks only TLS. */
  | 'tls-required';

export interface TlsHandshakeFailure {
  kind: TlsFailureKind;
  /** The TLS error, e.g. `unable to verify the first certificate`. */
  reason: string;
}

/**
 * Connection errors that mean a handshake that cannot succeed, by the text grpc-js puts in the
 * details (Node's error codes and OpenSSL's messages, which grpc-js passes on without the code).
 * First match wins.
 */
export const TLS_FAILURE_PATTERNS: ReadonlyArray<{ pattern: RegExp; kind: TlsFailureKind }> = [
  {
    pattern: /ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match certificate's altnames/,
    kind: 'server-name-mismatch',
  },
  {
    pattern:
      /unable to verify the first certificate|unable to get (?:local )?issuer certificate|self[- ]signed certificate|certificate has expired|certificate is not yet valid|certificate signature failure|invalid CA certificate|certificate not trusted|certificate rejected|unsupported certificate purpose|CERT_[A-Z_]+|UNABLE_TO_[A-Z_]+/,
    kind: 'untrusted-server-certificate',
  },
  {
    pattern:
      /alert (?:certificate required|bad certificate|unknown ca|certificate unknown|certificate expired|certificate revoked|unsupported certificate|access denied|handshake failure)/i,
    kind: 'client-certificate-refused',
  },
  { pattern: /wrong version number|packet length too long|unknown protocol/i, kind: 'not-tls' },
];

/**
 * Details that say the connection closed before it was set up, and nothing more: on a TLS channel
 * a probe handshake tells whether the server refused this client (see the top of this section).
 */
const INCONCLUSIVE_CONNECTION_FAILURE =
  /Last error: (?:Failed to connect|Client network socket disconnected before secure TLS connection was established|Error: socket hang up|Error: read ECONNRESET)/;

/** The connection error inside grpc-js's details, without Node's prefixes and OpenSSL's trace. */
export function connectionErrorOf(details: string): string {
  const inner = /Last error: ([\s\S]*?)(?:\. Resolution note:|$)/.exec(details)?.[1] ?? details;
  const reason = inner
    .replace(/^Error(?: \[[A-Z_]+\])?: /, '')
    .replace(/; if the root CA is installed locally.*$/s, '');
  // `40EDEBEDE57F0000:error:0A00010B:SSL routines:<function>:<reason>:<file>:<line>:`
  return (/SSL routines:[^:]*:([^:]+)/.exec(reason)?.[1] ?? reason).trim();
}

/** The handshake failure a call's UNAVAILABLE details name by themselves, if any. */
export function tlsFailureInDetails(details: string): TlsHandshakeFailure | undefined {
  const match = TLS_FAILURE_PATTERNS.find(({ pattern }) => pattern.test(details));
  return match === undefined ? undefined : { kind: match.kind, reason: connectionErrorOf(details) };
}

/** HTTP/2's client connection preface and an empty SETTINGS frame: what a gRPC client sends first. */
const HTTP2_CLIENT_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);

/**
 * One TLS handshake with `host:port` as the gRPC channel makes it (same certificates, server name
 * and ALPN), followed by the HTTP/2 preface. Resolves the handshake failure, or undefined when the
 * server answered over TLS, could not be reached, or did not answer within `timeoutMs`: those are
 * for the caller's retries. A server that completes the handshake and then closes the connection
 * before answering a byte has refused this client's certificate (or its lack of one).
 */
export function probeTlsHandshake(
  host: string,
  port: number,
  tls: TlsOptions,
  timeoutMs: number,
): Promise<TlsHandshakeFailure | undefined> {
  const options: ConnectionOptions = {
    host,
    port,
    ALPNProtocols: ['h2'],
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
    // Node checks the certificate against `servername`, else `host`; an IP is no server name.
    ...(tls.serverName !== undefined
      ? { servername: tls.serverName }
      : isIP(host) === 0
        ? { servername: host }
        : {}),
  };
  return new Promise((resolve) => {
    let handshakeDone = false;
    const socket = tlsConnect(options);
    const finish = (result: TlsHandshakeFailure | undefined) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(result);
    };
    const refused = (reason: string): TlsHandshakeFailure => ({ kind: 'client-certificate-refused', reason });
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.once('secureConnect', () => {
      handshakeDone = true;
      socket.write(HTTP2_CLIENT_PREFACE);
    });
    socket.once('data', () => finish(undefined));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const text = `${error.code ?? ''} ${error.message}`;
      const failure = tlsFailureInDetails(`Last error: ${text}`);
      if (failure !== undefined) finish({ kind: failure.kind, reason: connectionErrorOf(error.message) });
      else if (handshakeDone)
        finish(refused(`the server closed the connection after the TLS handshake (${error.message})`));
      else finish(undefined);
    });
    socket.once('close', () =>
      finish(
        handshakeDone
          ? refused('the server closed the connection right after the TLS handshake, before answering')
          : undefined,
      ),
    );
  });
}

/**
 * Whether `host:port` answers a TLS handshake (any certificate accepted): asked when a plaintext
 * channel's connection closed before HTTP/2 started, which is what a TLS-only port does with it.
 */
export function speaksTls(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    const finish = (answer: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('secureConnect', () => finish(true));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}

/** `host:port` (or `[v6]:port`, optionally after `dns:`/`ipv4:`/`ipv6:`), else undefined. */
function hostAndPort(target: string): { host: string; port: number } | undefined {
  const match = /^(?:(?:dns|ipv4|ipv6):(?:\/\/[^/]*\/)?)?(?:\[([^\]]+)\]|([^:/[\]]+)):(\d+)$/.exec(target);
  if (match === null) return undefined;
  return { host: match[1] ?? match[2]!, port: Number(match[3]) };
}

/** How long a diagnosing handshake may take before the failure is left to the caller's retries. */
export const TLS_PROBE_TIMEOUT_MS = 3_000;

/** `promise`'s value, or undefined as soon as `signal` aborts. */
function settledUnlessAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T | undefined> {
  if (signal === undefined) return promise;
  return new Promise((resolve, reject) => {
    const abort = () => resolve(undefined);
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/**
 * Diagnoses the UNAVAILABLE failures of one channel (`tls` undefined for plaintext), probing at
 * most once per connection failure: grpc-js repeats the same details on every call until it
 * tries to connect again.
 */
class TlsDiagnosis {
  private last: { details: string; failure: Promise<TlsHandshakeFailure | undefined> } | undefined;

  constructor(
    private readonly target: string,
    private readonly tls: TlsOptions | undefined,
  ) {}

  failureOf(details: string): Promise<TlsHandshakeFailure | undefined> {
    if (this.tls !== undefined) {
      const inDetails = tlsFailureInDetails(details);
      if (inDetails !== undefined) return Promise.resolve(inDetails);
    }
    if (!INCONCLUSIVE_CONNECTION_FAILURE.test(details)) return Promise.resolve(undefined);
    if (this.last?.details !== details) this.last = { details, failure: this.probe() };
    return this.last.failure;
  }

  private async probe(): Promise<TlsHandshakeFailure | undefined> {
    const address = hostAndPort(this.target);
    if (address === undefined) return undefined;
    if (this.tls !== undefined)
      return probeTlsHandshake(address.host, address.port, this.tls, TLS_PROBE_TIMEOUT_MS);
    return (await speaksTls(address.host, address.port, TLS_PROBE_TIMEOUT_MS))
      ? { kind: 'tls-required', reason: 'the server answered with a TLS handshake' }
      : undefined;
  }
}

// ------------------------------------------------------------------------------- client

function methodDefinition<Request, Response>(
  definitions: protoLoader.PackageDefinition,
  service: string,
  method: string,
): protoLoader.MethodDefinition<Request, Response> {
  const serviceDefinition = definitions[service] as protoLoader.ServiceDefinition | undefined;
  const definition = serviceDefinition?.[method];
  if (definition === undefined) throw new Error(`The protos in proto/ declare no ${service}/${method}`);
  // proto-loader types every method as object -> object; the shapes above describe what our
  // loader options produce for these messages.
  return definition as unknown as protoLoader.MethodDefinition<Request, Response>;
}

function checkPositiveInteger(value: unknown, option: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`TFServingClient option ${option} must be a positive integer, got ${String(value)}`);
  }
}

function createCredentials(tls: TlsOptions | false | undefined): grpc.ChannelCredentials {
  if (tls === undefined || tls === false) return grpc.credentials.createInsecure();
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error(
      'TFServingClient option tls needs both cert and key for a client certificate, or neither',
    );
  }
  const pem = (value: Buffer | string | undefined) =>
    value === undefined ? null : Buffer.isBuffer(value) ? value : Buffer.from(value);
  return grpc.credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

function checkServerName(tls: TlsOptions | false | undefined): void {
  if (tls && tls.serverName !== undefined && (typeof tls.serverName !== 'string' || tls.serverName === '')) {
    throw new Error('TFServingClient option tls.serverName must be a non-empty host name when given');
  }
}

const PREDICTION_SERVICE = 'tensorflow.serving.PredictionService';
const MODEL_SERVICE = 'tensorflow.serving.ModelService';

export class TFServingClient {
  readonly target: string;
  private readonly deadlineMs: number;
  private readonly channel: grpc.Channel;
  // Both stubs are bound to `channel`; calls go through makeUnaryRequest with the method
  // definitions below, which keeps request and response types checked.
  private readonly predictionService: grpc.Client;
  private readonly modelService: grpc.Client;
  private readonly predictMethod: protoLoader.MethodDefinition<PredictRequestProto, PredictResponseProto>;
  private readonly metadataMethod: protoLoader.MethodDefinition<
    GetModelMetadataRequestProto,
    GetModelMetadataResponseProto
  >;
  private readonly statusMethod: protoLoader.MethodDefinition<
    GetModelStatusRequestProto,
    GetModelStatusResponseProto
  >;
  /** Tells connection failures the TLS settings cause from a server that is down. */
  private readonly tlsDiagnosis: TlsDiagnosis;
  private closed = false;

  constructor(options: TFServingClientOptions) {
    if (typeof options.target !== 'string' || options.target === '') {
      throw new Error('TFServingClient option target must be host:port');
    }
    checkPositiveInteger(options.deadlineMs, 'deadlineMs');
    checkPositiveInteger(options.maxSendMessageBytes, 'maxSendMessageBytes');
    checkPositiveInteger(options.maxReceiveMessageBytes, 'maxReceiveMessageBytes');
    const keepalive = options.keepalive ?? DEFAULT_KEEPALIVE;
    checkPositiveInteger(keepalive.timeMs, 'keepalive.timeMs');
    checkPositiveInteger(keepalive.timeoutMs, 'keepalive.timeoutMs');
    checkServerName(options.tls);
    this.target = options.target;
    this.deadlineMs = options.deadlineMs;

    const plain = loadServiceDefinitions();
    this.predictMethod = methodDefinition(plain, PREDICTION_SERVICE, 'Predict');
    this.statusMethod = methodDefinition(plain, MODEL_SERVICE, 'GetModelStatus');
    this.metadataMethod = methodDefinition(
      loadServiceDefinitions({ unpackAny: true }),
      PREDICTION_SERVICE,
      'GetModelMetadata',
    );

    const credentials = createCredentials(options.tls);
    const tls = options.tls === undefined || options.tls === false ? undefined : options.tls;
    this.tlsDiagnosis = new TlsDiagnosis(options.target, tls);
    this.channel = new grpc.Channel(options.target, credentials, {
      ...(tls?.serverName !== undefined ? { 'grpc.ssl_target_name_override': tls.serverName } : {}),
      'grpc.enable_retries': 0,
      // grpc-js otherwise shares connections between all channels to the same target through
      // a process-wide pool; a local pool makes the connection this client's own, so close()
      // releases it and each client's load stays on its own connection.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_send_message_length': options.maxSendMessageBytes,
      'grpc.max_receive_message_length': options.maxReceiveMessageBytes,
      'grpc.keepalive_time_ms': keepalive.timeMs,
      'grpc.keepalive_timeout_ms': keepalive.timeoutMs,
      'grpc.keepalive_permit_without_calls': 0,
    });
    this.predictionService = new grpc.Client(options.target, credentials, { channelOverride: this.channel });
    this.modelService = new grpc.Client(options.target, credentials, { channelOverride: this.channel });
  }

  /** Runs the model on a batch. Rejects with TFServingCallError on any non-OK status. */
  async predict(request: PredictRequest, options?: CallOptions): Promise<PredictResult> {
    const message: PredictRequestProto = {
      model_spec: toModelSpecProto(request.model),
      inputs: request.inputs,
    };
    if (request.outputFilter !== undefined && request.outputFilter.length > 0) {
      message.output_filter = [...request.outputFilter];
    }
    const response = await this.call(
      this.predictionService,
      this.predictMethod,
      'Predict',
      request.model,
      message,
      options,
    );
    return { model: fromModelSpecProto(response.model_spec), outputs: response.outputs ?? {} };
  }

  /**
   * The model's signatures, from metadata field "signature_def" (a SignatureDefMap packed in
   * an Any). Rejects with TFServingCallError on a non-OK status, and with an Error when the
   * server answers without a SignatureDefMap.
   */
  async getModelMetadata(model: ModelSpec, options?: CallOptions): Promise<ModelMetadata> {
    const response = await this.call(
      this.predictionService,
      this.metadataMethod,
      'GetModelMetadata',
      model,
      { model_spec: toModelSpecProto(model), metadata_field: ['signature_def'] },
      options,
    );
    const packed = response.metadata?.signature_def;
    // Unpacked Anys carry `@type`; one whose type is not in our protos keeps `type_url`.
    const typeUrl = packed?.['@type'] ?? packed?.type_url;
    if (packed === undefined || typeUrl?.endsWith('/tensorflow.serving.SignatureDefMap') !== true) {
      const found = packed === undefined ? 'nothing' : `an Any of type "${typeUrl ?? ''}"`;
      throw new Error(
        `GetModelMetadata for ${describeModel(model)} returned ${found} under "signature_def"; expected a tensorflow.serving.SignatureDefMap`,
      );
    }
    const signatures: Record<string, SignatureSpec> = {};
    for (const [name, signature] of Object.entries(packed.signature_def ?? {})) {
      signatures[name] = {
        methodName: signature.method_name ?? '',
        inputs: tensorSpecs(signature.inputs),
        outputs: tensorSpecs(signature.outputs),
      };
    }
    return { model: fromModelSpecProto(response.model_spec), signatures };
  }

  /**
   * The state of each version of the model (only the selected version when `model` names one).
   * Rejects with TFServingCallError on a non-OK status (NOT_FOUND for an unknown model).
   */
  async getModelStatus(model: ModelSpec, options?: CallOptions): Promise<ModelVersionStatus[]> {
    const response = await this.call(
      this.modelService,
      this.statusMethod,
      'GetModelStatus',
      model,
      { model_spec: toModelSpecProto(model) },
      options,
    );
    return (response.model_version_status ?? []).map((status) => ({
      version: Number(status.version ?? 0),
      state: status.state ?? 'UNKNOWN',
      errorCode: String(status.status?.error_code ?? 'OK'),
      errorMessage: status.status?.error_message ?? '',
    }));
  }

  /**
   * Closes the channel. Idempotent. Call it once in-flight calls have settled; later calls
   * reject without reaching the network.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.close();
  }

  private call<Request, Response>(
    stub: grpc.Client,
    method: protoLoader.MethodDefinition<Request, Response>,
    methodName: TFServingMethod,
    model: ModelSpec,
    request: Request,
    options: CallOptions | undefined,
  ): Promise<Response> {
    if (this.closed) {
      return Promise.reject(
        new Error(`TFServingClient for ${this.target} is closed; ${methodName} was not sent`),
      );
    }
    const deadlineMs = options?.deadlineMs ?? this.deadlineMs;
    const signal = options?.signal;
    const fail = (code: grpc.status, details: string, cause?: unknown, tlsFailure?: TlsHandshakeFailure) =>
      new TFServingCallError({ code, details, method: methodName, modelSpec: model, tlsFailure }, { cause });
    // An UNAVAILABLE waits for the diagnosis of its connection failure (a probe handshake at
    // most, see TlsDiagnosis) unless the caller gives up meanwhile.
    const failWithTlsDiagnosis = async (error: grpc.ServiceError): Promise<TFServingCallError> => {
      const diagnosis =
        error.code === grpc.status.UNAVAILABLE && !this.closed && signal?.aborted !== true
          ? this.tlsDiagnosis.failureOf(error.details)
          : undefined;
      const tlsFailure = diagnosis && (await settledUnlessAborted(diagnosis, signal).catch(() => undefined));
      return fail(error.code, error.details, error, tlsFailure);
    };
    if (signal?.aborted === true) {
      return Promise.reject(fail(grpc.status.CANCELLED, 'Cancelled by the caller before the call started'));
    }
    return new Promise<Response>((resolve, reject) => {
      const call = stub.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (error, response) => {
          signal?.removeEventListener('abort', cancel);
          if (error) void failWithTlsDiagnosis(error).then(reject);
          else if (response === undefined) reject(fail(grpc.status.INTERNAL, 'Empty response'));
          else resolve(response);
        },
      );
      const cancel = () => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
    });
  }
}

function tensorSpecs(infos: Record<string, TensorInfoProto> | undefined): Record<string, TensorSpec> {
  const specs: Record<string, TensorSpec> = {};
  for (const [alias, info] of Object.entries(infos ?? {})) {
    specs[alias] = {
      dtype: info.dtype ?? 'DT_INVALID',
      shape: shapeFromProto(info.tensor_shape),
      encoding: info.encoding,
      graphTensorName: info.name,
    };
  }
  return specs;
}
