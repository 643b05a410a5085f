// gRPC client for the Open Inference Protocol (KServe v2: inference.GRPCInferenceService), built
// from proto/inference/grpc_predict_v2.proto. Besides the protocol's own calls it offers the two
// the inference task makes, on the task's shapes (TFServingApi: `predict`, `getModelMetadata`),
// converting with oip-codec.ts, so the batching, rate limiter, breaker, status policy and derived
// schemas of connectors/tf-serving/ serve this protocol unchanged.
//
// Contract (as TFServingClient's): one client owns one gRPC channel to one target; every call has
// a deadline; gRPC's own retries are off because the runtime alone retries, from the status. Every
// failed call rejects with an OipCallError (a TFServingCallError, so the status policy classifies
// it), an UNAVAILABLE whose connection failed on the TLS settings carrying `tlsFailure`. An answer
// the codec cannot read rejects with an OipCallError INTERNAL (retried by the default policy).
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  DEFAULT_KEEPALIVE,
  findProtoDir,
  PROTO_LOADER_OPTIONS,
  TFServingCallError,
  tlsFailureInDetails,
  type CallOptions,
  type ModelMetadata,
  type ModelSpec,
  type PredictRequest,
  type PredictResult,
  type TFServingClientOptions,
  type TFServingMethod,
  type TlsHandshakeFailure,
  type TlsOptions,
} from '../tf-serving/grpc-client.js';
import {
  inferRequestFrom,
  metadataFromOip,
  predictResultFrom,
  versionOf,
  type ModelInferRequestProto,
  type ModelInferResponseProto,
  type ModelMetadataResponseProto,
} from './oip-codec.js';

export const OIP_PROTO_FILE = join('inference', 'grpc_predict_v2.proto');
const SERVICE = 'inference.GRPCInferenceService';

/** The name of the one signature getModelMetadata reports (OIP models have no signatures). */
export const OIP_SIGNATURE = 'ModelInfer';

export type OipMethod = 'ServerLive' | 'ServerReady' | 'ModelReady' | 'ModelMetadata' | 'ModelInfer';

/** The TF Serving method each OIP call stands in for, in the task's error context. */
const TASK_METHOD: Record<OipMethod, TFServingMethod> = {
  ServerLive: 'GetModelStatus',
  ServerReady: 'GetModelStatus',
  ModelReady: 'GetModelStatus',
  ModelMetadata: 'GetModelMetadata',
  ModelInfer: 'Predict',
};

/** A failed OIP call; its message names the OIP method (`oipMethod`). */
export class OipCallError extends TFServingCallError {
  readonly oipMethod: OipMethod;

  constructor(
    fields: {
      code: grpc.status;
      details: string;
      method: OipMethod;
      modelSpec: ModelSpec;
      tlsFailure?: TlsHandshakeFailure | undefined;
    },
    options?: { cause?: unknown },
  ) {
    super({ ...fields, method: TASK_METHOD[fields.method] }, options);
    this.oipMethod = fields.method;
    const version = versionOf(fields.modelSpec);
    this.message =
      `${fields.method} for model "${fields.modelSpec.name}"${version ? ` version "${version}"` : ''} ` +
      `failed with ${this.codeName}: ${fields.details}`;
  }
}

export interface OipClientOptions extends TFServingClientOptions {
  /** Send inputs as raw_input_contents instead of typed contents. */
  rawInputContents?: boolean;
}

let definitions: protoLoader.PackageDefinition | undefined;

function loadDefinitions(): protoLoader.PackageDefinition {
  definitions ??= protoLoader.loadSync(OIP_PROTO_FILE, {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: [findProtoDir()],
  });
  return definitions;
}

function methodOf<Request, Response>(method: OipMethod): protoLoader.MethodDefinition<Request, Response> {
  const service = loadDefinitions()[SERVICE] as protoLoader.ServiceDefinition | undefined;
  const definition = service?.[method];
  if (definition === undefined) throw new Error(`${OIP_PROTO_FILE} declares no ${SERVICE}/${method}`);
  return definition as unknown as protoLoader.MethodDefinition<Request, Response>;
}

function credentialsOf(tls: TlsOptions | false | undefined): grpc.ChannelCredentials {
  if (tls === undefined || tls === false) return grpc.credentials.createInsecure();
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new Error('OipClient option tls needs both cert and key for a client certificate, or neither');
  const pem = (value: Buffer | string | undefined) =>
    value === undefined ? null : Buffer.isBuffer(value) ? value : Buffer.from(value);
  return grpc.credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

export class OipClient {
  readonly target: string;
  private readonly deadlineMs: number;
  private readonly rawInputContents: boolean;
  private readonly tls: boolean;
  private readonly channel: grpc.Channel;
  private readonly stub: grpc.Client;
  private closed = false;

  constructor(options: OipClientOptions) {
    if (typeof options.target !== 'string' || options.target === '')
      throw new Error('OipClient option target must be host:port');
    for (const key of ['deadlineMs', 'maxSendMessageBytes', 'maxReceiveMessageBytes'] as const) {
      const value = options[key];
      if (!Number.isSafeInteger(value) || value <= 0)
        throw new Error(`OipClient option ${key} must be a positive integer, got ${String(value)}`);
    }
    this.target = options.target;
    this.deadlineMs = options.deadlineMs;
    this.rawInputContents = options.rawInputContents === true;
    this.tls = options.tls !== undefined && options.tls !== false;
    const keepalive = options.keepalive ?? DEFAULT_KEEPALIVE;
    const credentials = credentialsOf(options.tls);
    const serverName = options.tls ? options.tls.serverName : undefined;
    loadDefinitions();
    this.channel = new grpc.Channel(options.target, credentials, {
      ...(serverName !== undefined ? { 'grpc.ssl_target_name_override': serverName } : {}),
      'grpc.enable_retries': 0,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_send_message_length': options.maxSendMessageBytes,
      'grpc.max_receive_message_length': options.maxReceiveMessageBytes,
      'grpc.keepalive_time_ms': keepalive.timeMs,
      'grpc.keepalive_timeout_ms': keepalive.timeoutMs,
      'grpc.keepalive_permit_without_calls': 0,
    });
    this.stub = new grpc.Client(options.target, credentials, { channelOverride: this.channel });
  }

  // ------------------------------------------------------------------ the protocol's calls

  async serverLive(options?: CallOptions): Promise<boolean> {
    const answer = await this.call<object, { live?: boolean }>('ServerLive', { name: '' }, {}, options);
    return answer.live === true;
  }

  async serverReady(options?: CallOptions): Promise<boolean> {
    const answer = await this.call<object, { ready?: boolean }>('ServerReady', { name: '' }, {}, options);
    return answer.ready === true;
  }

  /** Whether the model (at the spec's version, else the server's choice) is ready for inference. */
  async modelReady(model: ModelSpec, options?: CallOptions): Promise<boolean> {
    const answer = await this.call<{ name: string; version: string }, { ready?: boolean }>(
      'ModelReady',
      model,
      { name: model.name, version: versionOf(model) },
      options,
    );
    return answer.ready === true;
  }

  async modelMetadata(model: ModelSpec, options?: CallOptions): Promise<ModelMetadataResponseProto> {
    return this.call('ModelMetadata', model, { name: model.name, version: versionOf(model) }, options);
  }

  async modelInfer(
    request: ModelInferRequestProto,
    model: ModelSpec,
    options?: CallOptions,
  ): Promise<ModelInferResponseProto> {
    return this.call('ModelInfer', model, request, options);
  }

  // --------------------------------------------------------------- the task's two calls

  /**
   * The model's tensors as one signature (OIP_SIGNATURE), once the model is ready. ModelMetadata
   * comes first: a model or version the server does not have rejects with its status (NOT_FOUND,
   * fatal), as does a version the server does not list among the model's versions; MLServer
   * answers ModelReady for an unknown model with UNKNOWN, which the policy would retry. Then a
   * model that is not ready (ModelReady false: loading) rejects UNAVAILABLE, retried at start.
   */
  async getModelMetadata(model: ModelSpec, options?: CallOptions): Promise<ModelMetadata> {
    const answer = await this.modelMetadata(model, options);
    const version = versionOf(model);
    const versions = answer.versions ?? [];
    if (version !== '' && versions.length > 0 && !versions.includes(version)) {
      throw new OipCallError({
        code: grpc.status.NOT_FOUND,
        details: `the server has versions ${versions.join(', ')} of the model, not "${version}"`,
        method: 'ModelMetadata',
        modelSpec: model,
      });
    }
    if (!(await this.modelReady(model, options))) {
      throw new OipCallError({
        code: grpc.status.UNAVAILABLE,
        details: 'ModelReady answered false: the model is not ready yet',
        method: 'ModelReady',
        modelSpec: model,
      });
    }
    return metadataFromOip(answer, model, OIP_SIGNATURE);
  }

  /** ModelInfer on a batch of TensorProto inputs, answered as a PredictResult. */
  async predict(request: PredictRequest, options?: CallOptions): Promise<PredictResult> {
    const message = inferRequestFrom(
      request.model,
      request.inputs,
      request.outputFilter,
      this.rawInputContents,
    );
    const answer = await this.modelInfer(message, request.model, options);
    try {
      return predictResultFrom(answer, request.model);
    } catch (cause) {
      throw new OipCallError(
        {
          code: grpc.status.INTERNAL,
          details: `the answer cannot be read: ${(cause as Error).message}`,
          method: 'ModelInfer',
          modelSpec: request.model,
        },
        { cause },
      );
    }
  }

  /** Closes the channel. Idempotent; later calls reject without reaching the network. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.channel.close();
  }

  private call<Request, Response>(
    method: OipMethod,
    model: ModelSpec,
    request: Request,
    options: CallOptions | undefined,
  ): Promise<Response> {
    if (this.closed)
      return Promise.reject(new Error(`OipClient for ${this.target} is closed; ${method} was not sent`));
    const definition = methodOf<Request, Response>(method);
    const signal = options?.signal;
    const fail = (code: grpc.status, details: string, cause?: unknown) =>
      new OipCallError(
        {
          code,
          details,
          method,
          modelSpec: model,
          tlsFailure: code === grpc.status.UNAVAILABLE && this.tls ? tlsFailureInDetails(details) : undefined,
        },
        { cause },
      );
    if (signal?.aborted === true)
      return Promise.reject(fail(grpc.status.CANCELLED, 'Cancelled by the caller before the call started'));
    return new Promise<Response>((resolve, reject) => {
      const call = this.stub.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + (options?.deadlineMs ?? this.deadlineMs) },
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
