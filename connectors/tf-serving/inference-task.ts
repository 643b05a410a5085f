// The TFServingInference task: scores each record with a TensorFlow Serving model and writes it,
// with the model's outputs added, to `output.topic`.
//
//   process(records) -> input plan of the record's writer schema (cached per schema id)
//     -> rows (a bad field fails only its record) -> [file inputs read]
//     -> wait for room in the rate limiter (backpressure) -> batcher (rows of concurrent calls packed
//        into requests) -> rate limiter (p-queue) -> circuit breaker (opossum) -> gRPC Predict
//     -> outputs split by position -> output records with the derived output schema.
//
// start() reads the model's signature with GetModelMetadata (retrying a server that is not up yet
// for `tfserving.startup.timeout.ms`); a model, version, label or signature the server does not
// have fails the task at once.
import { setTimeout as sleepTimer } from 'node:timers/promises';
import {
  ConnectError,
  FatalError,
  RecordError,
  RetriableError,
  type ConnectRecord,
  type OutputRecord,
  type ProcessorTask,
  type TaskContext,
} from '../../runtime/api.js';
import type { Type as AvroType } from 'avsc';
import { ModelCircuitBreaker } from './circuit-breaker.js';
import { sharedClients, type ClientConnector, type ClientLease, type TFServingApi } from './client-pool.js';
import { readInferenceSettings, type InferenceSettings } from './config.js';
import { Batcher } from './batcher.js';
import { TFServingCallError, type ModelMetadata, type ModelSpec, type SignatureSpec } from './grpc-client.js';
import {
  bindInputs,
  compileInputPlan,
  type InputBinding,
  type InputPlan,
  type InputRow,
} from './input-mapping.js';
import { InferenceMetrics } from './metrics.js';
import {
  bindOutputs,
  metadataValues,
  OutputSchemas,
  splitOutputs,
  type OutputBinding,
} from './output-schema.js';
import { RateLimiter } from './rate-limiter.js';
import { errorCodeFor, type CallContext } from './status-policy.js';
import { encodeTensor, TensorCodecError, type TensorProto } from './tensor-codec.js';

export interface InferenceTaskDependencies {
  /** Opens the gRPC client; default: the process-wide shared pool. */
  connect?: ClientConnector;
  /** Sleeps between start-up attempts; resolves false when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<boolean>;
  /** Timer for the batcher's wait; default setTimeout. */
  setTimer?: (fn: () => void, ms: number) => () => void;
}

/** A scored row: the output values (OutputSchemas.outputs order) and who answered when. */
interface ScoredRow {
  values: unknown[];
  model: ModelSpec & { signatureName: string };
  scoredAt: number;
}

type RowResult = ScoredRow | RecordError;

interface SchemaPlan {
  input: InputPlan;
  outputType: AvroType;
}

/** Everything start() sets up; absent before start and after stop. */
interface Running {
  lease: ClientLease;
  client: TFServingApi;
  signature: SignatureSpec;
  inputs: InputBinding[];
  outputs: OutputBinding[];
  schemas: OutputSchemas;
  limiter: RateLimiter;
  breaker: ModelCircuitBreaker;
  batcher: Batcher<InputRow, RowResult>;
  metrics: InferenceMetrics;
  stopRoomListener: () => void;
}

const STARTUP_BACKOFF_INITIAL_MS = 200;
const STARTUP_BACKOFF_MAX_MS = 5000;

async function defaultSleep(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleepTimer(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

function stoppingError(): RetriableError {
  return new RetriableError('MODEL_UNAVAILABLE', 'The task is stopping; the records will be redelivered', {
    stage: 'TASK_PROCESS',
  });
}

export class TFServingInferenceTask implements ProcessorTask {
  private readonly settings: InferenceSettings;
  private readonly outputTopic: string;
  private readonly connect: ClientConnector;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
  private running: Running | undefined;
  private stopped = false;
  private readonly plans = new Map<number, SchemaPlan>();
  /** The version that answered last (or that metadata reported), for error context. */
  private servedVersion: number | undefined;

  constructor(
    private readonly context: TaskContext,
    private readonly deps: InferenceTaskDependencies = {},
  ) {
    this.settings = readInferenceSettings(context.config);
    this.outputTopic = context.config.getString('output.topic');
    this.connect = deps.connect ?? sharedClients;
    this.sleep = deps.sleep ?? defaultSleep;
  }

  // ------------------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    const { settings, context } = this;
    const lease = await this.connect({
      target: settings.target,
      tls: settings.tls,
      maxSendMessageBytes: settings.maxSendMessageBytes,
      maxReceiveMessageBytes: settings.maxReceiveMessageBytes,
      deadlineMs: settings.deadlineMs,
    });
    try {
      const metadata = await this.fetchMetadata(lease.client);
      this.servedVersion = settings.model.version ?? metadata.model.version;
      const signature = this.chooseSignature(metadata);
      const inputs = bindInputs(
        signature.inputs,
        settings.inputMapping,
        settings.inputFileFields,
        this.describeModel(),
      );
      const outputs = bindOutputs(signature.outputs, settings.outputFields, this.describeModel());
      const metrics = new InferenceMetrics(context.metrics, context.metricLabels, settings.model.name);
      const limiter = new RateLimiter({
        requestsPerSecond: settings.rateLimit.requestsPerSecond,
        concurrency: settings.maxInFlight,
        queueMaxRequests: settings.rateLimit.queueMaxRequests,
        onChange: (state) => metrics.queue(state),
      });
      const breaker = new ModelCircuitBreaker({
        ...settings.breaker,
        isFailure: (error) =>
          error instanceof TFServingCallError &&
          !context.signal.aborted &&
          settings.statusPolicy.outcomeOf(error.codeName) === 'retry',
        now: context.now,
        describeTarget: `${settings.target} (model "${settings.model.name}")`,
        errorContext: this.errorContext(),
        onStateChange: (state) => {
          metrics.breaker(state);
          context.logger.warn({ breaker: state, target: settings.target }, `circuit breaker ${state}`);
        },
      });
      const batcher = new Batcher<InputRow, RowResult>({
        ...settings.batch,
        sizeOf: (row) => row.bytes,
        keyOf: (row) => row.shapeKey,
        execute: (rows, attempt) => limiter.run(() => this.predict(rows, attempt), attempt - 1),
        canDispatch: () => limiter.hasRoom(),
        // Stopping is transient for the records: they are redelivered, never failed.
        abortError: stoppingError,
        ...(this.deps.setTimer ? { setTimer: this.deps.setTimer } : {}),
        onBatch: (rows) => metrics.batch(rows),
        onBisect: () => metrics.bisected(),
      });
      const stopRoomListener = limiter.onRoom(() => batcher.pump());
      this.running = {
        lease,
        client: lease.client,
        signature,
        inputs,
        outputs,
        schemas: new OutputSchemas(outputs, settings.metadataFields),
        limiter,
        breaker,
        batcher,
        metrics,
        stopRoomListener,
      };
      context.logger.info(
        {
          target: settings.target,
          model: settings.model,
          servedVersion: this.servedVersion,
          inputs: inputs.map((b) => `${b.tensor}<-${b.field}`),
          outputs: outputs.map((o) => `${o.tensor}->${o.field}`),
        },
        'model signature read; inference task ready',
      );
    } catch (error) {
      lease.release();
      throw error;
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    running.stopRoomListener();
    running.batcher.close(stoppingError());
    running.limiter.clear();
    running.breaker.shutdown();
    running.metrics.remove();
    running.lease.release();
  }

  describe(): Record<string, unknown> {
    const running = this.running;
    const { settings } = this;
    return {
      model: {
        name: settings.model.name,
        ...(settings.model.version !== undefined ? { version: settings.model.version } : {}),
        ...(settings.model.versionLabel !== undefined ? { version_label: settings.model.versionLabel } : {}),
        served_version: this.servedVersion ?? null,
        signature: settings.model.signatureName,
      },
      target: settings.target,
      ...(running
        ? {
            breaker: {
              state: running.breaker.state,
              retry_after_ms: running.breaker.retryAfterMs(),
              short_circuited: running.breaker.shortCircuited,
            },
            rate_limiter: {
              queued: running.limiter.queued,
              queue_max: running.limiter.queueMaxRequests,
              in_flight: running.limiter.inFlight,
              requests_per_second: settings.rateLimit.requestsPerSecond,
            },
            batcher: { pending_rows: running.batcher.pendingRows },
            output_schemas: this.plans.size,
          }
        : {}),
    };
  }

  // ------------------------------------------------------------------------------- process

  async process(records: readonly ConnectRecord[]): Promise<Array<OutputRecord[] | Error>> {
    const running = this.running;
    const { signal } = this.context;
    if (running === undefined || signal.aborted) {
      if (this.stopped || signal.aborted) throw stoppingError();
      throw new Error('Bug: process() was called before start() completed');
    }
    try {
      running.breaker.throwIfOpen();
    } catch (error) {
      running.metrics.breakerRejected();
      throw error;
    }

    const results = new Array<OutputRecord[] | Error>(records.length);
    let rows: InputRow[] = [];
    let positions: number[] = [];
    let plansOfRows: SchemaPlan[] = [];
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      if (record.value === null || record.value === undefined) {
        // A tombstone carries nothing to score; forwarding it keeps a compacted topic's deletes.
        results[i] = [this.output(record, null, undefined)];
        continue;
      }
      const plan = this.planFor(record, running);
      const row = plan.input.extract(record.value);
      if (row instanceof RecordError) {
        results[i] = row;
        continue;
      }
      rows.push(row);
      positions.push(i);
      plansOfRows.push(plan);
    }

    if (this.settings.inputFileFields.size > 0 && rows.length > 0) {
      const read = await Promise.all(
        rows.map((row, k) => plansOfRows[k]!.input.readFiles(row, this.settings.inputFileBaseDir)),
      );
      const keep: number[] = [];
      read.forEach((r, k) => {
        if (r instanceof RecordError) results[positions[k]!] = r;
        else keep.push(k);
      });
      rows = keep.map((k) => read[k] as InputRow);
      positions = keep.map((k) => positions[k]!);
      plansOfRows = keep.map((k) => plansOfRows[k]!);
    }

    if (rows.length > 0) {
      await running.limiter.waitForRoom(signal);
      const scored = await running.batcher.submit(rows, signal);
      for (let k = 0; k < rows.length; k++) {
        const i = positions[k]!;
        const result = scored[k]!;
        results[i] =
          result instanceof RecordError ? result : [this.output(records[i]!, result, plansOfRows[k]!)];
      }
    }
    return results;
  }

  // ---------------------------------------------------------------------------- internals

  private describeModel(): string {
    const { model, target } = this.settings;
    const version =
      model.version !== undefined
        ? ` version ${model.version}`
        : model.versionLabel !== undefined
          ? ` version label "${model.versionLabel}"`
          : ' (latest version)';
    return `model "${model.name}"${version} signature "${model.signatureName}" at ${target}`;
  }

  private errorContext(): CallContext {
    const { model, target } = this.settings;
    return {
      'model.name': model.name,
      'model.version': this.servedVersion ?? model.version ?? model.versionLabel,
      'model.signature': model.signatureName,
      target,
    };
  }

  private recordContext(): Record<string, string | number | undefined> {
    const { target: _target, ...context } = this.errorContext();
    return context;
  }

  /** GetModelMetadata, retrying transient statuses with capped backoff until the start-up timeout. */
  private async fetchMetadata(client: TFServingApi): Promise<ModelMetadata> {
    const { settings, context } = this;
    const { signatureName: _signature, ...model } = settings.model;
    const deadline = context.now() + settings.startupTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.getModelMetadata(model, {
          deadlineMs: settings.deadlineMs,
          signal: context.signal,
        });
      } catch (error) {
        if (!(error instanceof TFServingCallError)) {
          throw new FatalError(
            'TASK_START_FAILED',
            `Reading the signature of ${this.describeModel()} failed: ${(error as Error).message}`,
            { stage: 'TASK_START', cause: error, context: this.recordContext() },
          );
        }
        const status = error.codeName;
        const transient = settings.statusPolicy.outcomeOf(status) === 'retry';
        if (!transient) throw this.startFailure(error);
        const delay = Math.min(STARTUP_BACKOFF_INITIAL_MS * 2 ** (attempt - 1), STARTUP_BACKOFF_MAX_MS);
        if (context.now() + delay > deadline) {
          throw new FatalError(
            'TASK_START_FAILED',
            `The model server ${settings.target} did not answer GetModelMetadata for ${this.describeModel()} within ` +
              `tfserving.startup.timeout.ms (${settings.startupTimeoutMs} ms, ${attempt} attempts); last status ${status}: ${error.details}`,
            {
              stage: 'TASK_START',
              cause: error,
              context: { ...this.recordContext(), 'grpc.status.code': status, attempts: attempt },
            },
          );
        }
        context.logger.warn(
          { status, attempt, delayMs: delay },
          'model server not ready; retrying GetModelMetadata',
        );
        if (!(await this.sleep(delay, context.signal))) {
          throw new FatalError(
            'TASK_START_FAILED',
            `Stopped while waiting for ${settings.target} to answer`,
            {
              stage: 'TASK_START',
              cause: error,
            },
          );
        }
      }
    }
  }

  /**
   * A non-transient status at start: the model, version, label or signature is not there (TF
   * Serving answers an unknown version label with INVALID_ARGUMENT), or the credentials are refused.
   * Always fatal: no record is involved yet, and retrying cannot help.
   */
  private startFailure(error: TFServingCallError): FatalError {
    const status = error.codeName;
    const code = errorCodeFor(status, 'fatal');
    const hint =
      code === 'MODEL_AUTH_FAILED'
        ? 'check the TLS settings and credentials'
        : 'check tfserving.model.name and tfserving.model.version / tfserving.model.version.label against the models the server has loaded';
    return new FatalError(
      code,
      `Cannot start: GetModelMetadata for ${this.describeModel()} failed with ${status}: ${error.details}; ${hint}`,
      { stage: 'TASK_START', cause: error, context: { ...this.recordContext(), 'grpc.status.code': status } },
    );
  }

  private chooseSignature(metadata: ModelMetadata): SignatureSpec {
    const name = this.settings.model.signatureName;
    const signature = metadata.signatures[name];
    if (signature === undefined) {
      const available = Object.keys(metadata.signatures)
        .filter((s) => !s.startsWith('__'))
        .sort();
      throw new FatalError(
        'MODEL_SIGNATURE_NOT_FOUND',
        `Model "${this.settings.model.name}" (version ${metadata.model.version ?? '?'}) has no signature "${name}"; ` +
          `it has: ${available.join(', ') || 'none'}. Set tfserving.signature.name to one of them`,
        {
          stage: 'TASK_START',
          context: { ...this.recordContext(), 'model.version': metadata.model.version },
        },
      );
    }
    return signature;
  }

  private planFor(record: ConnectRecord, running: Running): SchemaPlan {
    const writer = record.valueSchema;
    if (writer === undefined) {
      throw new FatalError(
        'CONFIG_INVALID',
        `Record ${record.topic}-${record.partition}@${record.offset} carries no value schema; the inference connector ` +
          'derives its output schema from the writer schema, so it needs value.converter=avro',
        { stage: 'TASK_PROCESS' },
      );
    }
    let plan = this.plans.get(writer.id);
    if (plan === undefined) {
      const input = compileInputPlan(running.inputs, writer, this.recordContext());
      const outputType = running.schemas.derive(writer);
      plan = { input, outputType };
      this.plans.set(writer.id, plan);
      this.context.logger.info({ schemaId: writer.id }, 'new input schema: output schema derived');
    }
    return plan;
  }

  private output(
    record: ConnectRecord,
    scored: ScoredRow | null,
    plan: SchemaPlan | undefined,
  ): OutputRecord {
    const headers: Record<string, Buffer> = {};
    for (const [name, value] of Object.entries(record.headers))
      if (value !== undefined) headers[name] = value;
    if (scored === null || plan === undefined) {
      return {
        topic: this.outputTopic,
        rawKey: record.rawKey,
        value: null,
        headers,
        timestamp: record.timestamp,
      };
    }
    const running = this.running;
    const value: Record<string, unknown> = { ...(record.value as Record<string, unknown>) };
    const outputs = running?.outputs ?? [];
    for (let k = 0; k < outputs.length; k++) value[outputs[k]!.field] = scored.values[k] ?? null;
    const metadata = this.settings.metadataFields;
    if (metadata.length > 0) {
      const values = metadataValues(metadata, scored.model, scored.scoredAt);
      for (let m = 0; m < metadata.length; m++) value[metadata[m]!.field] = values[m];
    }
    return {
      topic: this.outputTopic,
      rawKey: record.rawKey,
      value,
      valueSchema: plan.outputType,
      headers,
      timestamp: record.timestamp,
    };
  }

  /** Encodes the batch's inputs. Throws TensorCodecError when a value does not fit its tensor. */
  private encode(rows: readonly InputRow[]): Record<string, TensorProto> {
    const inputs: Record<string, TensorProto> = {};
    const bindings = this.running!.inputs;
    for (let b = 0; b < bindings.length; b++) {
      const binding = bindings[b]!;
      const dims = rows[0]!.dims[b]!;
      const scalar = dims.length === 0;
      const values = scalar ? rows.map((r) => r.values[b]![0]!) : rows.flatMap((r) => r.values[b]!);
      inputs[binding.tensor] = encodeTensor(binding.dtype, [rows.length, ...dims], values);
    }
    return inputs;
  }

  /**
   * One request (called in a rate-limiter slot). Resolves one result per row; rejects with a
   * RecordError when the model refused the whole request (the batcher bisects), RetriableError or
   * FatalError otherwise.
   */
  private async predict(rows: InputRow[], attempt: number): Promise<RowResult[]> {
    const running = this.running;
    if (running === undefined || this.context.signal.aborted) throw stoppingError();
    let inputs: Record<string, TensorProto>;
    try {
      inputs = this.encode(rows);
    } catch (error) {
      if (!(error instanceof TensorCodecError)) throw error;
      return this.predictIsolatingUnencodable(rows, attempt);
    }
    const { settings, context } = this;
    const started = context.now();
    try {
      const result = await running.breaker.fire(() =>
        running.client.predict(
          { model: settings.model, inputs, outputFilter: running.outputs.map((o) => o.tensor) },
          { deadlineMs: settings.deadlineMs, signal: context.signal },
        ),
      );
      running.metrics.request('OK', (context.now() - started) / 1000);
      if (result.model.version !== undefined) this.servedVersion = result.model.version;
      const values = splitOutputs(result, running.outputs, rows.length, this.recordContext());
      const model = {
        ...settings.model,
        ...result.model,
        name: result.model.name || settings.model.name,
        signatureName: settings.model.signatureName,
      };
      const scoredAt = context.now();
      return values.map((v) => ({ values: v, model, scoredAt }));
    } catch (error) {
      if (error instanceof TFServingCallError) {
        running.metrics.request(error.codeName, (context.now() - started) / 1000);
        if (context.signal.aborted) throw stoppingError();
        throw settings.statusPolicy.classify(
          error.codeName,
          error.details,
          { ...this.errorContext(), attempts: attempt },
          { cause: error, deadlineMs: settings.deadlineMs },
        );
      }
      if (error instanceof ConnectError && error.code === 'BREAKER_OPEN') running.metrics.breakerRejected();
      throw error;
    }
  }

  /** A batch with a value the codec refused: the refused rows fail alone, the rest are sent. */
  private async predictIsolatingUnencodable(rows: InputRow[], attempt: number): Promise<RowResult[]> {
    const results = new Array<RowResult>(rows.length);
    const good: number[] = [];
    rows.forEach((row, i) => {
      try {
        this.encode([row]);
        good.push(i);
      } catch (error) {
        results[i] = new RecordError(
          'MODEL_INPUT_TYPE_MISMATCH',
          `A value cannot be encoded for the model: ${(error as Error).message}`,
          {
            stage: 'TASK_PROCESS',
            cause: error,
            context: this.recordContext(),
          },
        );
      }
    });
    if (good.length > 0) {
      const scored = await this.predict(
        good.map((i) => rows[i]!),
        attempt,
      );
      good.forEach((i, k) => (results[i] = scored[k]!));
    }
    return results;
  }
}
