// gRPC client for TensorFlow Serving's PredictionService and ModelService, built from our
// own protos in proto/ (see proto/README.md).
//
// Contract: one TFServingClient owns one gRPC channel (one HTTP/2 connection at a time) to
// one target; every call carries a deadline; gRPC's own retries are off because the runtime
// alone decides what to retry, from the gRPC status. Every failed call rejects with a
// TFServingCallError carrying that status.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
  /** PEM root certificates to trust; absent means the system's default roots. */
  ca?: Buffer | string;
  /** PEM client certificate chain, for mutual TLS; requires `key`. */
  cert?: Buffer | string;
  /** PEM private key of `cert`. */
  key?: Buffer | string;
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

  constructor(
    fields: { code: grpc.status; details: string; method: TFServingMethod; modelSpec: ModelSpec },
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
    this.channel = new grpc.Channel(options.target, credentials, {
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
    const fail = (code: grpc.status, details: string, cause?: unknown) =>
      new TFServingCallError({ code, details, method: methodName, modelSpec: model }, { cause });
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
          if (error) reject(fail(error.code, error.details, error));
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
