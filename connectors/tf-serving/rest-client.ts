// Client for TensorFlow Serving's REST API (port 8501 by default), with the same surface and the
// same failures as the gRPC client (grpc-client.ts), so the task's batching, bisection, breaker,
// limiter and status policy apply unchanged with `tfserving.transport=rest`.
//
// Contract: one TFServingRestClient owns one keep-alive HTTP(S) agent to one base URL
// (`http://host:port`, or `https://host:port` with the tfserving.tls.* files); every call carries a
// deadline; nothing is retried here. Every failed call rejects with a TFServingCallError whose
// status is the gRPC status TF Serving's HTTP answer stands for (HTTP_STATUS_TO_GRPC), so the
// status policy classifies REST and gRPC failures from one table.
//
// Wire format (TF Serving's documented REST API, https://www.tensorflow.org/tfx/serving/api_rest):
// - Predict: `POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict` with the columnar request
//   `{"signature_name": ..., "inputs": {alias: nested arrays}}`; the answer is
//   `{"outputs": {alias: nested arrays}}`, or `{"outputs": nested arrays}` when the signature has one
//   output (json_tensor.cc writes a lone output tensor without its alias). REST has no output
//   filter: every output comes back and the client keeps the requested ones.
// - DT_STRING goes as a JSON string when its bytes are UTF-8 and as `{"b64": ...}` otherwise; the
//   answer's strings come back as bytes either way. 64-bit integers stay exact both ways: the
//   request is written by our own serializer (a decimal string from the codec goes out as a bare
//   number), and answer integers beyond 2^53 come back as decimal strings in int64_val, as the
//   gRPC client's protobufjs does. NaN and ±Infinity are written and read as TF Serving's JSON
//   does (bare `NaN`, `Infinity`, `-Infinity`, which RapidJSON allows), not as JSON's null.
// - The REST answer names neither the version that answered nor the dtypes of its outputs. So the
//   client resolves a label or "latest" to a version number itself (from the model status,
//   `GET /v1/models/{name}[/labels/{l}]`, cached for `versionRefreshMs`), sends the predict to that
//   version, and types the outputs from that version's signature (`GET .../metadata`, cached per
//   version). A moving version is therefore followed within `versionRefreshMs`; a version that went
//   away in between (NOT_FOUND) is resolved again once before the call fails.
import { Buffer, isUtf8 } from 'node:buffer';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  TFServingCallError,
  tlsFailureInDetails,
  toModelSpecProto,
  type CallOptions,
  type ModelMetadata,
  type ModelSpec,
  type ModelVersionStatus,
  type PredictRequest,
  type PredictResult,
  type SignatureSpec,
  type TFServingMethod,
  type TensorSpec,
  type TlsOptions,
} from './grpc-client.js';
import {
  bfloat16BitsToNumber,
  dataTypeName,
  decodeTensor,
  elementCount,
  halfBitsToNumber,
  shapeFromProto,
  shapeToProto,
  type DataTypeName,
  type TensorProto,
  type TensorShapeProto,
} from './tensor-codec.js';

const DEFAULT_SIGNATURE = 'serving_default';

// ------------------------------------------------------------------------------ status mapping

/**
 * HTTP status -> the gRPC status it stands for. TF Serving's REST server answers every failure with
 * the HTTP status of its tensorflow error code (ToHTTPStatusCode in
 * tensorflow_serving/model_servers/http_server.cc): CANCELLED 499, UNKNOWN/INTERNAL/DATA_LOSS 500,
 * INVALID_ARGUMENT/FAILED_PRECONDITION/OUT_OF_RANGE 400, DEADLINE_EXCEEDED 504, NOT_FOUND 404,
 * ALREADY_EXISTS/ABORTED 409, PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429, UNIMPLEMENTED 501,
 * UNAVAILABLE 503, UNAUTHENTICATED 401. Where several codes share a status the most common one of a
 * Predict is taken: 400 INVALID_ARGUMENT (a bad row: bisected to the DLQ; a missing signature is
 * caught at start from the metadata instead), 500 INTERNAL (retried, as UNKNOWN and DATA_LOSS are by
 * default), 409 ABORTED. The other rows are what a proxy in front of TF Serving answers, read as gRPC
 * reads HTTP statuses (gRPC's http-grpc-status-mapping.md): 502 UNAVAILABLE; plus 408
 * DEADLINE_EXCEEDED and 413 RESOURCE_EXHAUSTED. Any other status is UNKNOWN (retried).
 */
export const HTTP_STATUS_TO_GRPC: Readonly<Record<number, keyof typeof GrpcStatus>> = Object.freeze({
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  408: 'DEADLINE_EXCEEDED',
  409: 'ABORTED',
  413: 'RESOURCE_EXHAUSTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
});

/** The gRPC status an HTTP answer stands for (see HTTP_STATUS_TO_GRPC). */
export function grpcStatusOfHttp(httpStatus: number): GrpcStatus {
  return GrpcStatus[HTTP_STATUS_TO_GRPC[httpStatus] ?? 'UNKNOWN'];
}

/** The message of TF Serving's error JSON `{"error": "..."}`, else the body as text (shortened). */
export function errorMessageOf(body: string, httpStatus: number): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (
      parsed !== null &&
      typeof parsed === 'object' &&
      typeof (parsed as { error?: unknown }).error === 'string'
    )
      return (parsed as { error: string }).error;
  } catch {
    // not JSON: a proxy's page, for example
  }
  const text = body.trim().replace(/\s+/g, ' ');
  return text === '' ? `HTTP ${httpStatus}` : `HTTP ${httpStatus}: ${text.slice(0, 300)}`;
}

/** Socket errors that mean the server could not be reached or dropped the connection: UNAVAILABLE. */
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

// ------------------------------------------------------------------------------ JSON, exactly

/** Marks NaN/±Infinity between the tolerant scan and the reviver; cannot occur in TF's JSON. */
const NON_FINITE_MARK = '\u0000nonfinite:';

/**
 * Parses TF Serving's JSON: integers beyond 2^53 become their decimal text (exact), and the bare
 * `NaN`, `Infinity` and `-Infinity` that TF Serving writes for non-finite floats become numbers.
 * Uses JSON.parse; the reviver (and its source access) only runs when the text needs it.
 */
export function parseServingJson(text: string): unknown {
  let prepared = text;
  try {
    if (!/\d{16}/.test(text)) return JSON.parse(text);
    return JSON.parse(text, reviveExact);
  } catch (error) {
    if (!/NaN|Infinity/.test(text)) throw error;
    prepared = markNonFinite(text);
  }
  return JSON.parse(prepared, reviveExact);
}

function reviveExact(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && context?.source !== undefined) {
    const source = context.source;
    if (/^-?\d+$/.test(source)) return source;
  } else if (typeof value === 'string' && value.startsWith(NON_FINITE_MARK)) {
    return Number(value.slice(NON_FINITE_MARK.length));
  }
  return value;
}

/** `text` with every bare NaN / Infinity / -Infinity outside strings turned into a marked string. */
function markNonFinite(text: string): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x4e /* N */ || c === 0x49 /* I */ || c === 0x2d /* - */) {
      const token = /^(?:NaN|-?Infinity)/.exec(text.slice(i, i + 9))?.[0];
      if (token !== undefined) {
        out += `${text.slice(last, i)}"\\u0000${NON_FINITE_MARK.slice(1)}${token}"`;
        i += token.length - 1;
        last = i + 1;
      }
    }
  }
  return out + text.slice(last);
}

/** A JSON number as TF Serving reads it: NaN and ±Infinity bare (RapidJSON's kParseNanAndInfFlag). */
function jsonNumber(value: number | string): string {
  if (typeof value === 'string') {
    if (!/^-?\d+$/.test(value)) throw new Error(`"${value}" is not a decimal integer`);
    return value;
  }
  if (Number.isFinite(value)) return String(value);
  return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
}

/** One DT_STRING element: a JSON string when its bytes are UTF-8, else `{"b64": ...}`. */
function jsonBytes(value: Uint8Array): string {
  const bytes = Buffer.isBuffer(value)
    ? value
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return isUtf8(bytes)
    ? JSON.stringify(bytes.toString('utf8'))
    : `{"b64":${JSON.stringify(bytes.toString('base64'))}}`;
}

// ------------------------------------------------------------------------------ tensors <-> JSON

/** A request tensor's elements, row-major, as JSON texts. */
function tensorElementsAsJson(alias: string, tensor: TensorProto): { shape: number[]; elements: string[] } {
  const dtype = dataTypeName(tensor.dtype ?? 0);
  const shape = shapeFromProto(tensor.tensor_shape);
  if (shape === undefined) throw new Error(`input "${alias}" has unknown rank`);
  const count = elementCount(shape);
  const typed = typedValues(dtype, tensor);
  if (typed !== undefined && typed.length === count && (tensor.tensor_content?.byteLength ?? 0) === 0) {
    return { shape, elements: typed };
  }
  // tensor_content or a short typed field (padded by TensorFlow's rule): the codec reads both.
  const decoded = decodeTensor(tensor);
  const elements =
    decoded.dtype === 'DT_STRING'
      ? decoded.values.map(jsonBytes)
      : decoded.dtype === 'DT_BOOL'
        ? decoded.values.map(String)
        : decoded.values.map(jsonNumber);
  return { shape, elements };
}

function typedValues(dtype: DataTypeName, tensor: TensorProto): string[] | undefined {
  switch (dtype) {
    case 'DT_STRING':
      return tensor.string_val?.map(jsonBytes);
    case 'DT_BOOL':
      return tensor.bool_val?.map(String);
    case 'DT_FLOAT':
      return tensor.float_val?.map(jsonNumber);
    case 'DT_DOUBLE':
      return tensor.double_val?.map(jsonNumber);
    case 'DT_INT8':
    case 'DT_INT16':
    case 'DT_INT32':
    case 'DT_UINT8':
    case 'DT_UINT16':
      return tensor.int_val?.map(jsonNumber);
    case 'DT_UINT32':
      return tensor.uint32_val?.map(jsonNumber);
    case 'DT_INT64':
      return tensor.int64_val?.map(jsonNumber);
    case 'DT_UINT64':
      return tensor.uint64_val?.map(jsonNumber);
    case 'DT_HALF':
      return tensor.half_val?.map((bits) => jsonNumber(halfBitsToNumber(bits)));
    case 'DT_BFLOAT16':
      return tensor.half_val?.map((bits) => jsonNumber(bfloat16BitsToNumber(bits)));
    default:
      throw new Error(`dtype ${dtype} cannot be sent over TF Serving's REST API`);
  }
}

/** Nests row-major JSON element texts into arrays of `shape` (a scalar for shape []). */
function nestJson(elements: readonly string[], shape: readonly number[]): string {
  if (shape.length === 0) return elements[0] ?? 'null';
  let level = elements;
  for (let d = shape.length - 1; d >= 1; d--) {
    const size = shape[d]!;
    const groups = elementCount(shape.slice(0, d));
    const next = new Array<string>(groups);
    for (let g = 0; g < groups; g++) next[g] = `[${level.slice(g * size, g * size + size).join(',')}]`;
    level = next;
  }
  return `[${level.join(',')}]`;
}

/** The columnar predict body: `{"signature_name": ..., "inputs": {alias: nested arrays}}`. */
export function predictRequestBody(signatureName: string, inputs: Record<string, TensorProto>): string {
  const parts: string[] = [];
  for (const [alias, tensor] of Object.entries(inputs)) {
    const { shape, elements } = tensorElementsAsJson(alias, tensor);
    parts.push(`${JSON.stringify(alias)}:${nestJson(elements, shape)}`);
  }
  return `{"signature_name":${JSON.stringify(signatureName)},"inputs":{${parts.join(',')}}}`;
}

/** Thrown for an answer the client cannot read as the signature says; becomes INTERNAL. */
class MalformedAnswer extends Error {}

/** A JSON value of the answer -> TensorProto of `spec`'s dtype (shape from the nesting). */
export function tensorFromJson(alias: string, value: unknown, spec: TensorSpec | undefined): TensorProto {
  const dtype = typeof spec?.dtype === 'string' ? spec.dtype : 'DT_INVALID';
  const shape: number[] = [];
  for (let level: unknown = value; Array.isArray(level); level = level[0]) shape.push(level.length);
  const ragged = () =>
    new MalformedAnswer(
      `output "${alias}" is a ragged list; expected a tensor of shape [${shape.join(',')}]`,
    );
  const flat: unknown[] = [];
  const collect = (level: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(level)) throw ragged();
      flat.push(level);
      return;
    }
    if (!Array.isArray(level) || level.length !== shape[depth]) throw ragged();
    for (const item of level) collect(item, depth + 1);
  };
  collect(value, 0);
  const tensor: TensorProto = { dtype, tensor_shape: shapeToProto(shape) as TensorShapeProto };
  const bad = (index: number, expected: string) =>
    new MalformedAnswer(
      `output "${alias}" (${dtype}) holds ${JSON.stringify(flat[index]) ?? String(flat[index])} at element ${index}; expected ${expected}`,
    );
  const numbers = (): number[] =>
    flat.map((v, i) => {
      if (typeof v === 'number') return v;
      if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
      throw bad(i, 'a number');
    });
  switch (dtype) {
    case 'DT_STRING':
      tensor.string_val = flat.map((v, i) => {
        if (typeof v === 'string') return Buffer.from(v, 'utf8');
        if (v !== null && typeof v === 'object' && typeof (v as { b64?: unknown }).b64 === 'string')
          return Buffer.from((v as { b64: string }).b64, 'base64');
        throw bad(i, 'a string or {"b64": ...}');
      });
      break;
    case 'DT_BOOL':
      tensor.bool_val = flat.map((v, i) => {
        if (typeof v === 'boolean') return v;
        throw bad(i, 'true or false');
      });
      break;
    case 'DT_FLOAT':
      tensor.float_val = numbers();
      break;
    case 'DT_DOUBLE':
      tensor.double_val = numbers();
      break;
    case 'DT_INT8':
    case 'DT_INT16':
    case 'DT_INT32':
    case 'DT_UINT8':
    case 'DT_UINT16':
      tensor.int_val = numbers();
      break;
    case 'DT_UINT32':
      tensor.uint32_val = numbers();
      break;
    case 'DT_INT64':
    case 'DT_UINT64':
      // Decimal strings (beyond 2^53) stay strings, as protobufjs gives them: exact.
      tensor[dtype === 'DT_INT64' ? 'int64_val' : 'uint64_val'] = flat.map((v, i) => {
        if (typeof v === 'number' || (typeof v === 'string' && /^-?\d+$/.test(v))) return v;
        throw bad(i, 'an integer');
      });
      break;
    default:
      throw new MalformedAnswer(
        `output "${alias}" has dtype ${dtype}, which the REST client cannot read (signature of the answering version)`,
      );
  }
  return tensor;
}

/**
 * The tensors of a predict answer's `outputs`, keyed by alias. With one signature output the value
 * is that tensor itself (TF Serving's columnar answer omits the alias then).
 */
export function outputsFromJson(outputs: unknown, signature: SignatureSpec): Record<string, TensorProto> {
  const aliases = Object.keys(signature.outputs);
  if (aliases.length === 1) {
    const alias = aliases[0]!;
    return { [alias]: tensorFromJson(alias, outputs, signature.outputs[alias]) };
  }
  if (outputs === null || typeof outputs !== 'object' || Array.isArray(outputs)) {
    throw new MalformedAnswer(
      `"outputs" is not an object keyed by output alias (the signature has ${aliases.length})`,
    );
  }
  const tensors: Record<string, TensorProto> = {};
  for (const [alias, value] of Object.entries(outputs)) {
    tensors[alias] = tensorFromJson(alias, value, signature.outputs[alias]);
  }
  return tensors;
}

// ------------------------------------------------------------------------------ metadata JSON

interface TensorInfoJson {
  name?: string;
  dtype?: string;
  tensor_shape?: { dim?: { size?: string | number }[]; unknown_rank?: boolean };
  coo_sparse?: unknown;
}

function tensorSpecsFromJson(infos: Record<string, TensorInfoJson> | undefined): Record<string, TensorSpec> {
  const specs: Record<string, TensorSpec> = {};
  for (const [alias, info] of Object.entries(infos ?? {})) {
    specs[alias] = {
      dtype: (info.dtype ?? 'DT_INVALID') as DataTypeName,
      shape: shapeFromProto(info.tensor_shape ?? { unknown_rank: true }),
      encoding: info.coo_sparse !== undefined ? 'coo_sparse' : info.name !== undefined ? 'name' : undefined,
      graphTensorName: info.name,
    };
  }
  return specs;
}

/** The JSON form of GetModelMetadataResponse (proto field names) -> ModelMetadata. */
export function modelMetadataFromJson(body: unknown, requested: ModelSpec): ModelMetadata {
  const response = body as {
    model_spec?: { name?: string; version?: string | number; version_label?: string };
    metadata?: {
      signature_def?: {
        signature_def?: Record<
          string,
          {
            inputs?: Record<string, TensorInfoJson>;
            outputs?: Record<string, TensorInfoJson>;
            method_name?: string;
          }
        >;
      };
    };
  };
  const map = response?.metadata?.signature_def?.signature_def;
  if (map === undefined || map === null || typeof map !== 'object') {
    throw new MalformedAnswer(
      `the metadata of model "${requested.name}" has no "metadata.signature_def.signature_def"`,
    );
  }
  const signatures: Record<string, SignatureSpec> = {};
  for (const [name, signature] of Object.entries(map)) {
    signatures[name] = {
      methodName: signature.method_name ?? '',
      inputs: tensorSpecsFromJson(signature.inputs),
      outputs: tensorSpecsFromJson(signature.outputs),
    };
  }
  const model: ModelSpec = { name: response.model_spec?.name || requested.name };
  const version = response.model_spec?.version;
  if (version !== undefined && version !== null && version !== '') model.version = Number(version);
  if (response.model_spec?.version_label) model.versionLabel = response.model_spec.version_label;
  return { model, signatures };
}

// ------------------------------------------------------------------------------ client

export interface TFServingRestClientOptions {
  /** `http://host:port` or `https://host:port` of the REST API (8501 by default in TF Serving). */
  baseUrl: string;
  /** For an https base URL: CA, client certificate and server name (as for gRPC). */
  tls?: TlsOptions | false;
  deadlineMs: number;
  /** Largest request body; a larger one fails with RESOURCE_EXHAUSTED without being sent. */
  maxSendMessageBytes: number;
  /** Largest answer body; a larger one is cut off and fails with RESOURCE_EXHAUSTED. */
  maxReceiveMessageBytes: number;
  /** How long a resolved label or latest version is used before it is asked again; default 1000. */
  versionRefreshMs?: number;
  /** Clock for the version cache; default Date.now. */
  now?: () => number;
}

function checkPositiveInteger(value: unknown, option: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`TFServingRestClient option ${option} must be a positive integer, got ${String(value)}`);
  }
}

export class TFServingRestClient {
  readonly target: string;
  private readonly base: URL;
  private readonly secure: boolean;
  private readonly agent: HttpAgent;
  private readonly deadlineMs: number;
  private readonly maxSend: number;
  private readonly maxReceive: number;
  private readonly versionRefreshMs: number;
  private readonly now: () => number;
  /** `name|label` ('' for latest) -> the version it resolved to, and when. */
  private readonly resolved = new Map<string, { version: number; at: number }>();
  /** `name|version|signature` -> that version's signature (for the output dtypes). */
  private readonly signatures = new Map<string, Promise<SignatureSpec>>();
  private closed = false;

  constructor(options: TFServingRestClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new Error(
        `TFServingRestClient option baseUrl must be http://host:port or https://host:port, got "${options.baseUrl}"`,
      );
    }
    if (
      (base.protocol !== 'http:' && base.protocol !== 'https:') ||
      base.pathname !== '/' ||
      base.search !== ''
    ) {
      throw new Error(
        `TFServingRestClient option baseUrl must be http://host:port or https://host:port, got "${options.baseUrl}"`,
      );
    }
    checkPositiveInteger(options.deadlineMs, 'deadlineMs');
    checkPositiveInteger(options.maxSendMessageBytes, 'maxSendMessageBytes');
    checkPositiveInteger(options.maxReceiveMessageBytes, 'maxReceiveMessageBytes');
    this.target = options.baseUrl;
    this.base = base;
    this.secure = base.protocol === 'https:';
    this.deadlineMs = options.deadlineMs;
    this.maxSend = options.maxSendMessageBytes;
    this.maxReceive = options.maxReceiveMessageBytes;
    this.versionRefreshMs = options.versionRefreshMs ?? 1000;
    this.now = options.now ?? Date.now;
    const tls = options.tls || undefined;
    if (tls !== undefined && !this.secure) {
      throw new Error('TFServingRestClient option tls needs an https:// base URL');
    }
    if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
      throw new Error(
        'TFServingRestClient option tls needs both cert and key for a client certificate, or neither',
      );
    }
    // Keep-alive: calls reuse connections; the limiter upstream bounds how many are open at once.
    this.agent = this.secure
      ? new HttpsAgent({
          keepAlive: true,
          scheduling: 'lifo',
          ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
          ...(tls?.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
          ...(tls?.serverName !== undefined ? { servername: tls.serverName } : {}),
        })
      : new HttpAgent({ keepAlive: true, scheduling: 'lifo' });
  }

  /** Runs the model on a batch. Rejects with TFServingCallError on any failure the server reports. */
  async predict(request: PredictRequest, options?: CallOptions): Promise<PredictResult> {
    toModelSpecProto(request.model); // checks the spec as the gRPC client does
    const signatureName = request.model.signatureName || DEFAULT_SIGNATURE;
    const body = predictRequestBody(signatureName, request.inputs);
    const started = this.now();
    const deadline = started + (options?.deadlineMs ?? this.deadlineMs);
    const remaining = () => Math.max(1, deadline - this.now());
    for (let attempt = 1; ; attempt++) {
      const version = await this.versionOf(request.model, 'Predict', { ...options, deadlineMs: remaining() });
      const pinned = { name: request.model.name, version, signatureName };
      try {
        const answer = await this.exchange(
          'POST',
          `${this.modelPath(pinned)}:predict`,
          body,
          'Predict',
          request.model,
          {
            ...options,
            deadlineMs: remaining(),
          },
        );
        const signature = await this.signatureOf(pinned, { ...options, deadlineMs: remaining() });
        const outputs = this.read('Predict', request.model, () => {
          const parsed = parseServingJson(answer) as { outputs?: unknown };
          if (parsed === null || typeof parsed !== 'object' || !('outputs' in parsed)) {
            throw new MalformedAnswer('the answer has no "outputs"');
          }
          const all = outputsFromJson(parsed.outputs, signature);
          const wanted = request.outputFilter ?? [];
          if (wanted.length === 0) return all;
          const kept: Record<string, TensorProto> = {};
          for (const alias of wanted) if (all[alias] !== undefined) kept[alias] = all[alias];
          return kept;
        });
        return { model: pinned, outputs };
      } catch (error) {
        // The version this client resolved went away (unloaded after a rollout): resolve once more.
        const moving = request.model.version === undefined;
        if (
          moving &&
          attempt === 1 &&
          error instanceof TFServingCallError &&
          error.code === GrpcStatus.NOT_FOUND
        ) {
          this.forget(request.model);
          continue;
        }
        throw error;
      }
    }
  }

  /** The model's signatures, from `GET /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata`. */
  async getModelMetadata(model: ModelSpec, options?: CallOptions): Promise<ModelMetadata> {
    toModelSpecProto(model);
    const answer = await this.exchange(
      'GET',
      `${this.modelPath(model)}/metadata`,
      undefined,
      'GetModelMetadata',
      model,
      options,
    );
    const metadata = this.read('GetModelMetadata', model, () =>
      modelMetadataFromJson(parseServingJson(answer), model),
    );
    if (metadata.model.version !== undefined) {
      const version = metadata.model.version;
      for (const [name, signature] of Object.entries(metadata.signatures)) {
        this.signatures.set(this.signatureKey(model.name, version, name), Promise.resolve(signature));
      }
      if (model.version === undefined)
        this.resolved.set(this.resolutionKey(model), { version, at: this.now() });
    }
    return metadata;
  }

  /** The state of each version, from `GET /v1/models/{name}[/versions/{v}|/labels/{l}]`. */
  async getModelStatus(model: ModelSpec, options?: CallOptions): Promise<ModelVersionStatus[]> {
    toModelSpecProto(model);
    const answer = await this.exchange(
      'GET',
      this.modelPath(model),
      undefined,
      'GetModelStatus',
      model,
      options,
    );
    return this.read('GetModelStatus', model, () => {
      const parsed = parseServingJson(answer) as {
        model_version_status?: {
          version?: string | number;
          state?: string;
          status?: { error_code?: string; error_message?: string };
        }[];
      };
      return (parsed?.model_version_status ?? []).map((status) => ({
        version: Number(status.version ?? 0),
        state: (status.state ?? 'UNKNOWN') as ModelVersionStatus['state'],
        errorCode: String(status.status?.error_code ?? 'OK'),
        errorMessage: status.status?.error_message ?? '',
      }));
    });
  }

  /** Closes the agent's connections. Idempotent; later calls reject without reaching the network. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.agent.destroy();
  }

  // ---------------------------------------------------------------------------- versions

  private resolutionKey(model: ModelSpec): string {
    return `${model.name}|${model.versionLabel ?? ''}`;
  }

  private signatureKey(name: string, version: number, signature: string): string {
    return `${name}|${version}|${signature}`;
  }

  private forget(model: ModelSpec): void {
    this.resolved.delete(this.resolutionKey(model));
  }

  /** The version number a call for `model` goes to: its own, or its label's / the latest. */
  private async versionOf(model: ModelSpec, method: TFServingMethod, options: CallOptions): Promise<number> {
    if (model.version !== undefined) return model.version;
    const key = this.resolutionKey(model);
    const cached = this.resolved.get(key);
    if (cached !== undefined && this.now() - cached.at < this.versionRefreshMs) return cached.version;
    const spec: ModelSpec = {
      name: model.name,
      ...(model.versionLabel !== undefined ? { versionLabel: model.versionLabel } : {}),
    };
    let statuses: ModelVersionStatus[];
    try {
      statuses = await this.getModelStatus(spec, options);
    } catch (error) {
      if (error instanceof TFServingCallError && error.method !== method)
        throw this.renamed(error, method, model);
      throw error;
    }
    const available = statuses.filter((s) => s.state === 'AVAILABLE').map((s) => s.version);
    if (available.length === 0) {
      throw new TFServingCallError({
        code: GrpcStatus.NOT_FOUND,
        details: `no version of model "${model.name}"${model.versionLabel !== undefined ? ` with label "${model.versionLabel}"` : ''} is AVAILABLE`,
        method,
        modelSpec: model,
      });
    }
    const version = Math.max(...available);
    this.resolved.set(key, { version, at: this.now() });
    return version;
  }

  /** The signature of a resolved version, read once per version (output dtypes). */
  private signatureOf(
    pinned: ModelSpec & { version: number; signatureName: string },
    options: CallOptions,
  ): Promise<SignatureSpec> {
    const key = this.signatureKey(pinned.name, pinned.version, pinned.signatureName);
    let signature = this.signatures.get(key);
    if (signature === undefined) {
      signature = this.getModelMetadata({ name: pinned.name, version: pinned.version }, options).then(
        (metadata) => {
          const found = metadata.signatures[pinned.signatureName];
          if (found === undefined) {
            throw new TFServingCallError({
              code: GrpcStatus.FAILED_PRECONDITION,
              details: `Serving signature key "${pinned.signatureName}" not found.`,
              method: 'Predict',
              modelSpec: pinned,
            });
          }
          return found;
        },
      );
      this.signatures.set(key, signature);
      signature.catch(() => this.signatures.delete(key));
    }
    return signature;
  }

  /** The same failure, reported for the call the caller made. */
  private renamed(error: TFServingCallError, method: TFServingMethod, model: ModelSpec): TFServingCallError {
    return new TFServingCallError(
      { code: error.code, details: error.details, method, modelSpec: model, tlsFailure: error.tlsFailure },
      { cause: error },
    );
  }

  // ---------------------------------------------------------------------------- HTTP

  private modelPath(model: ModelSpec): string {
    let path = `/v1/models/${encodeURIComponent(model.name)}`;
    if (model.version !== undefined) path += `/versions/${model.version}`;
    else if (model.versionLabel !== undefined) path += `/labels/${encodeURIComponent(model.versionLabel)}`;
    return path;
  }

  /** Reads an answer; a failure to read it is INTERNAL (retried: the server may answer well next time). */
  private read<T>(method: TFServingMethod, model: ModelSpec, parse: () => T): T {
    try {
      return parse();
    } catch (cause) {
      if (cause instanceof TFServingCallError) throw cause;
      throw new TFServingCallError(
        {
          code: GrpcStatus.INTERNAL,
          details: `cannot read the answer: ${(cause as Error).message}`,
          method,
          modelSpec: model,
        },
        { cause },
      );
    }
  }

  /**
   * One HTTP exchange: resolves the body of a 2xx answer; rejects with TFServingCallError for a
   * non-2xx answer (HTTP_STATUS_TO_GRPC), a connection failure (UNAVAILABLE), the deadline
   * (DEADLINE_EXCEEDED), the caller's signal (CANCELLED) and the byte limits (RESOURCE_EXHAUSTED).
   */
  private exchange(
    method: 'GET' | 'POST',
    path: string,
    body: string | undefined,
    call: TFServingMethod,
    model: ModelSpec,
    options: CallOptions | undefined,
  ): Promise<string> {
    const fail = (
      code: GrpcStatus,
      details: string,
      cause?: unknown,
      tlsFailure?: TFServingCallError['tlsFailure'],
    ) => new TFServingCallError({ code, details, method: call, modelSpec: model, tlsFailure }, { cause });
    if (this.closed) {
      return Promise.reject(
        new Error(`TFServingRestClient for ${this.target} is closed; ${call} was not sent`),
      );
    }
    const signal = options?.signal;
    if (signal?.aborted === true) {
      return Promise.reject(fail(GrpcStatus.CANCELLED, 'Cancelled by the caller before the call started'));
    }
    const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
    if (payload !== undefined && payload.byteLength > this.maxSend) {
      return Promise.reject(
        fail(
          GrpcStatus.RESOURCE_EXHAUSTED,
          `Sent message larger than max (${payload.byteLength} vs. ${this.maxSend}); raise tfserving.max.send.message.bytes or lower batch.max.records`,
        ),
      );
    }
    const deadlineMs = options?.deadlineMs ?? this.deadlineMs;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const finish = (error: TFServingCallError | undefined, result?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error !== undefined) {
          req.destroy();
          reject(error);
        } else resolve(result!);
      };
      const send = this.secure ? httpsRequest : httpRequest;
      const req = send(new URL(path, this.base), {
        method,
        agent: this.agent,
        headers: {
          accept: 'application/json',
          ...(payload !== undefined
            ? { 'content-type': 'application/json', 'content-length': String(payload.byteLength) }
            : {}),
        },
      });
      const timer = setTimeout(
        () => finish(fail(GrpcStatus.DEADLINE_EXCEEDED, `Deadline of ${deadlineMs} ms exceeded`)),
        deadlineMs,
      );
      const onAbort = () => finish(fail(GrpcStatus.CANCELLED, 'Cancelled by the caller'));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (error: NodeJS.ErrnoException) => {
        const text = `${error.code ?? ''} ${error.message}`.trim();
        const tlsFailure = this.secure ? tlsFailureInDetails(`Last error: ${text}`) : undefined;
        const reachable = !CONNECTION_ERROR_CODES.has(error.code ?? '') && tlsFailure === undefined;
        finish(
          fail(
            GrpcStatus.UNAVAILABLE,
            `${reachable ? 'Connection failed' : 'No connection established'} to ${this.target}: ${text}`,
            error,
            tlsFailure,
          ),
        );
      });
      req.on('response', (response: IncomingMessage) => {
        const declared = Number(response.headers['content-length'] ?? NaN);
        const tooLarge = (size: number) =>
          fail(
            GrpcStatus.RESOURCE_EXHAUSTED,
            `Received message larger than max (${size} vs. ${this.maxReceive}); raise tfserving.max.receive.message.bytes or lower batch.max.records`,
          );
        if (declared > this.maxReceive) {
          finish(tooLarge(declared));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.byteLength;
          if (size > this.maxReceive) finish(tooLarge(size));
          else chunks.push(chunk);
        });
        response.on('error', (error: Error) =>
          finish(
            fail(
              GrpcStatus.UNAVAILABLE,
              `The connection to ${this.target} broke during the answer: ${error.message}`,
              error,
            ),
          ),
        );
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) finish(undefined, text);
          else finish(fail(grpcStatusOfHttp(status), errorMessageOf(text, status)));
        });
      });
      req.end(payload);
    });
  }
}
