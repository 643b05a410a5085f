// The TFServingInference task: scores each record with a TensorFlow Serving model and writes it,
// with the model's outputs added, to `output.topic`.
//
//   process(records) -> verdict on the record's writer schema (cached per schema id): its input plan,
//        or the RecordError every record of a schema that cannot feed the model fails with
//     -> rows (a bad field fails only its record)
//     -> wait for room in the rate limiter (backpressure) -> [file inputs read, file-input.ts]
//     -> batcher (rows of concurrent calls packed
//        into requests) -> rate limiter (p-queue) -> circuit breaker (opossum) -> gRPC Predict
//     -> outputs split by position -> output records with the derived output schema.
//
// start() reads the model's signature with GetModelMetadata (model-metadata.ts; retrying a server
// that is not up yet for `tfserving.startup.timeout.ms`); a model, version, label or signature the
// server does not have fails the task at once.
//
// Following the latest version or a version label, the served signature can change under the
// running task. A Predict answered by another version, or a request refused as a whole with
// INVALID_ARGUMENT / FAILED_PRECONDITION, makes the task re-read the signature (signature-tracker.ts);
// a changed signature gets a new plan and output schema (model-plan.ts) and the refused request is
// sent once more under it before any bisecting. Rows still waiting under the old plan are extracted
// again from their records; rows answered under the old plan are written with the old plan's schema.
// A new signature the records cannot feed as configured fails the task (MODEL_SIGNATURE_CHANGED):
// the model changed, not the records, so nothing is dead-lettered.
import { setTimeout as sleepTimer } from 'node:timers/promises';
import {
  ConnectError,
  FatalError,
  RecordError,
  RetriableError,
  type ConnectRecord,
  type OutputRecord,
  type ProcessorTask,
  type SchemaRef,
  type TaskContext,
} from '../../runtime/api.js';
import {
  AUTO_INITIAL_LIMIT,
  loadSignalOf,
  sharedAdaptiveLimits,
  type LimitLease,
  type SampleOutcome,
  type SharedAdaptiveLimits,
} from './adaptive-limit.js';
import { ModelCircuitBreaker } from './circuit-breaker.js';
import { sharedClients, type ClientConnector, type ClientLease, type TFServingApi } from './client-pool.js';
import { readInferenceSettings, type InferenceSettings } from './config.js';
import { Batcher } from './batcher.js';
import { TFServingCallError, type ModelSpec, type PredictResult } from './grpc-client.js';
import { FileInputReader } from './file-input.js';
import type { InputRow } from './input-mapping.js';
import { InferenceMetrics } from './metrics.js';
import { ModelMetadataReader } from './model-metadata.js';
import { ModelPlan, planForChangedSignature, type WriterPlan } from './model-plan.js';
import { metadataValues, splitOutputs } from './output-schema.js';
import { RateLimiter } from './rate-limiter.js';
import { SignatureTracker } from './signature-tracker.js';
import type { CallContext } from './status-policy.js';
import { encodeTensor, TensorCodecError, type TensorProto } from './tensor-codec.js';

export interface InferenceTaskDependencies {
  /** Opens the gRPC client; default: the process-wide shared pool. */
  connect?: ClientConnector;
  /** Sleeps between start-up attempts; resolves false when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<boolean>;
  /** Timer for the batcher's wait and file read timeouts; default setTimeout. */
  setTimer?: (fn: () => void, ms: number) => () => void;
  /** The adaptive limits of `max.in.flight.requests=auto`; default: the process-wide ones. */
  adaptiveLimits?: SharedAdaptiveLimits;
  /**
   * Reads the task's settings from its config; default readInferenceSettings (the `tfserving.*`
   * keys). Another protocol's connector (OpenInference) reads its own keys into the same shape.
   */
  readSettings?: (config: TaskContext['config']) => InferenceSettings;
}

/**
 * A record's row on its way to the model, with what it takes to extract it again should the
 * signature change before it is sent.
 */
interface PendingRow {
  value: unknown;
  writer: SchemaRef;
  /** The plan `input` was extracted with. */
  plan: WriterPlan;
  input: InputRow;
}

/** A scored row: the output values (in its plan's output order), the plan, and who answered when. */
interface ScoredRow {
  values: unknown[];
  plan: WriterPlan;
  model: ModelSpec & { signatureName: string };
  scoredAt: number;
}

type RowResult = ScoredRow | RecordError;

/** Everything start() sets up; absent before start and after stop. */
interface Running {
  lease: ClientLease;
  client: TFServingApi;
  tracker: SignatureTracker;
  limiter: RateLimiter;
  breaker: ModelCircuitBreaker;
  batcher: Batcher<PendingRow, RowResult>;
  metrics: InferenceMetrics;
  /** Reads the files records name (input.file.fields); undefined without file fields. */
  files: FileInputReader | undefined;
  stopRoomListener: () => void;
  /** The shared adaptive limit (`max.in.flight.requests=auto`); undefined with a fixed limit. */
  adaptive: { lease: LimitLease; stopListening: () => void } | undefined;
}

/**
 * Statuses that, for a whole request, may mean the served signature changed under the task
 * (TF Serving answers inputs that no longer fit with INVALID_ARGUMENT, a signature the new version
 * lacks with FAILED_PRECONDITION). The signature is re-read before the status is acted on.
 */
const SIGNATURE_CHANGE_STATUSES: ReadonlySet<string> = new Set(['INVALID_ARGUMENT', 'FAILED_PRECONDITION']);

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
  /** The version that answered last (or that metadata reported), for error context. */
  private servedVersion: number | undefined;
  /** No version pinned (the latest, or a label): the served version and its signature may change. */
  private readonly followsMovingVersion: boolean;

  constructor(
    private readonly context: TaskContext,
    private readonly deps: InferenceTaskDependencies = {},
  ) {
    this.settings = (deps.readSettings ?? readInferenceSettings)(context.config);
    this.outputTopic = context.config.getString('output.topic');
    this.connect = deps.connect ?? sharedClients;
    this.sleep = deps.sleep ?? defaultSleep;
    this.followsMovingVersion = this.settings.model.version === undefined;
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
      const client = lease.client;
      const reader = new ModelMetadataReader({
        settings,
        client,
        logger: context.logger,
        signal: context.signal,
        now: context.now,
        sleep: this.sleep,
        describeModel: () => this.describeModel(),
        errorContext: () => this.errorContext(),
        stoppingError,
      });
      const metadata = await reader.readAtStart();
      this.servedVersion = settings.model.version ?? metadata.model.version;
      const plan = new ModelPlan(
        1,
        reader.signatureOf(metadata, 'TASK_START'),
        metadata.model.version,
        settings,
        this.describeModel(),
      );
      const tracker = new SignatureTracker({
        initial: plan,
        readMetadata: async () => {
          const reread = await reader.reread();
          if (reread.model.version !== undefined) this.servedVersion = reread.model.version;
          return reread;
        },
        signatureOf: (m) => reader.signatureOf(m, 'TASK_PROCESS'),
        build: (signature, version, previous) => {
          const next = planForChangedSignature(previous, signature, version, {
            settings,
            describeModel: this.describeModel(),
            errorContext: this.recordContext(),
          });
          context.logger.warn(
            { fromVersion: previous.version, toVersion: version, ...next.describeBindings() },
            'the model now serves another signature: input mapping and output schema rebuilt',
          );
          return next;
        },
      });
      const metrics = new InferenceMetrics(context.metrics, context.metricLabels, settings.model.name);
      const limiter = new RateLimiter({
        requestsPerSecond: settings.rateLimit.requestsPerSecond,
        concurrency: 'fixed' in settings.maxInFlight ? settings.maxInFlight.fixed : AUTO_INITIAL_LIMIT,
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
      const batcher = new Batcher<PendingRow, RowResult>({
        ...settings.batch,
        sizeOf: (row) => row.input.bytes,
        // Rows extracted under different plans never share a request.
        keyOf: (row) => `${row.plan.model.generation}|${row.input.shapeKey}`,
        execute: (rows, attempt) => limiter.run(() => this.predict(rows, attempt), attempt - 1),
        canDispatch: () => limiter.hasRoom(),
        // Stopping is transient for the records: they are redelivered, never failed.
        abortError: stoppingError,
        ...(this.deps.setTimer ? { setTimer: this.deps.setTimer } : {}),
        onBatch: (rows) => metrics.batch(rows),
        onBisect: () => metrics.bisected(),
      });
      let files: FileInputReader | undefined;
      if (settings.inputFile !== undefined) {
        // The worker's allow-list bounds the base directory; every read is confined to its real path.
        const paths = this.context.paths;
        if (!paths) {
          throw new FatalError(
            'FILE_PATH_NOT_ALLOWED',
            'input.file.fields needs the worker to grant file access (allowed.paths); this worker gave the task none',
            { stage: 'TASK_START' },
          );
        }
        files = new FileInputReader({
          ...settings.inputFile,
          baseDir: paths.resolve(settings.inputFile.baseDir, 'input.file.base.dir'),
          timeoutMs: settings.inputFile.readTimeoutMs,
          ...(this.deps.setTimer ? { setTimer: this.deps.setTimer } : {}),
        });
        await files.start();
      }
      const stopRoomListener = limiter.onRoom(() => batcher.pump());
      const adaptive = this.followAdaptiveLimit(limiter, metrics);
      this.running = {
        lease,
        client,
        tracker,
        limiter,
        breaker,
        batcher,
        metrics,
        files,
        stopRoomListener,
        adaptive,
      };
      context.logger.info(
        {
          target: settings.target,
          model: settings.model,
          servedVersion: this.servedVersion,
          ...plan.describeBindings(),
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
    if (running.adaptive) {
      running.adaptive.stopListening();
      if (running.adaptive.lease.release()) running.metrics.removeConcurrencyLimit(this.settings.target);
    }
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
        ...(running ? { signature_changes: running.tracker.current.generation - 1 } : {}),
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
              max_in_flight: running.limiter.concurrency,
              requests_per_second: settings.rateLimit.requestsPerSecond,
              ...(running.adaptive
                ? {
                    adaptive_limit: {
                      limit: running.adaptive.lease.limit.limit,
                      min: running.adaptive.lease.limit.min,
                      max: running.adaptive.lease.limit.max,
                      ceiling: running.adaptive.lease.limit.ceiling,
                      target_in_flight: running.adaptive.lease.limit.inFlight,
                      overload_answers: running.adaptive.lease.limit.overloadAnswers,
                    },
                  }
                : {}),
            },
            batcher: { pending_rows: running.batcher.pendingRows },
            output_schemas: running.tracker.current.writerCount,
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

    if (running.tracker.failure !== undefined) throw running.tracker.failure;

    const results = new Array<OutputRecord[] | Error>(records.length);
    const plan = running.tracker.current;
    let rows: PendingRow[] = [];
    let positions: number[] = [];
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      if (record.value === null || record.value === undefined) {
        // A tombstone carries nothing to score; forwarding it keeps a compacted topic's deletes.
        results[i] = [this.output(record, null)];
        continue;
      }
      const writerPlan = this.planFor(record, plan);
      if (writerPlan instanceof RecordError) {
        results[i] = writerPlan;
        continue;
      }
      const input = writerPlan.input.extract(record.value);
      if (input instanceof RecordError) {
        results[i] = input;
        continue;
      }
      rows.push({ value: record.value, writer: record.valueSchema!, plan: writerPlan, input });
      positions.push(i);
    }
    if (rows.length === 0) return results;

    // Files are read only when the model can take more work, so a slow model slows reading too.
    await running.limiter.waitForRoom(signal);
    const files = running.files;
    if (files !== undefined) {
      const read = await Promise.all(
        rows.map((row) =>
          row.plan.input.readsFiles ? row.plan.input.readFiles(row.input, files) : row.input,
        ),
      );
      const keep: number[] = [];
      read.forEach((r, k) => {
        if (r instanceof RecordError) results[positions[k]!] = r;
        else keep.push(k);
      });
      rows = keep.map((k) => ({ ...rows[k]!, input: read[k] as InputRow }));
      positions = keep.map((k) => positions[k]!);
      if (rows.length === 0) return results;
    }

    const scored = await running.batcher.submit(rows, signal);
    for (let k = 0; k < rows.length; k++) {
      const i = positions[k]!;
      const result = scored[k]!;
      results[i] = result instanceof RecordError ? result : [this.output(records[i]!, result)];
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

  /** The verdict on the record's writer schema: judged at its first record, then cached. */
  private planFor(record: ConnectRecord, plan: ModelPlan): WriterPlan | RecordError {
    const writer = record.valueSchema;
    if (writer === undefined) {
      throw new FatalError(
        'CONFIG_INVALID',
        `Record ${record.topic}-${record.partition}@${record.offset} carries no value schema; the inference connector ` +
          'derives its output schema from the writer schema, so it needs value.converter=avro',
        { stage: 'TASK_PROCESS' },
      );
    }
    const known = plan.knows(writer.id);
    const writerPlan = plan.writerPlan(writer, this.recordContext());
    if (!known) {
      if (writerPlan instanceof RecordError)
        this.context.logger.warn(
          { schemaId: writer.id, error: writerPlan.message },
          'records of this input schema cannot feed the model: each is a bad record',
        );
      else this.context.logger.info({ schemaId: writer.id }, 'new input schema: output schema derived');
    }
    return writerPlan;
  }

  private output(record: ConnectRecord, scored: ScoredRow | null): OutputRecord {
    const headers: Record<string, Buffer> = {};
    for (const [name, value] of Object.entries(record.headers))
      if (value !== undefined) headers[name] = value;
    if (scored === null) {
      return {
        topic: this.outputTopic,
        rawKey: record.rawKey,
        value: null,
        headers,
        timestamp: record.timestamp,
      };
    }
    const value: Record<string, unknown> = { ...(record.value as Record<string, unknown>) };
    const outputs = scored.plan.model.outputs;
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
      valueSchema: scored.plan.outputType,
      headers,
      timestamp: record.timestamp,
    };
  }

  /** Encodes the batch's inputs. Throws TensorCodecError when a value does not fit its tensor. */
  private encode(plan: ModelPlan, rows: readonly PendingRow[]): Record<string, TensorProto> {
    const inputs: Record<string, TensorProto> = {};
    const bindings = plan.inputs;
    for (let b = 0; b < bindings.length; b++) {
      const binding = bindings[b]!;
      const dims = rows[0]!.input.dims[b]!;
      const scalar = dims.length === 0;
      const values = scalar
        ? rows.map((r) => r.input.values[b]![0]!)
        : rows.flatMap((r) => r.input.values[b]!);
      inputs[binding.tensor] = encodeTensor(binding.dtype, [rows.length, ...dims], values);
    }
    return inputs;
  }

  /**
   * One request (called in a rate-limiter slot). Resolves one result per row; rejects with a
   * RecordError when the model refused the whole request (the batcher bisects), RetriableError or
   * FatalError otherwise. A request refused with a status that may mean the signature changed is
   * first checked against the served signature and, when it did change, sent once more under the
   * new plan (`resent`).
   */
  private async predict(rows: PendingRow[], attempt: number, resent = false): Promise<RowResult[]> {
    const running = this.running;
    if (running === undefined || this.context.signal.aborted) throw stoppingError();
    const plan = running.tracker.current;
    if (rows[0]!.plan.model !== plan) return this.predictReplanned(rows, plan, attempt, resent);
    let inputs: Record<string, TensorProto>;
    try {
      inputs = this.encode(plan, rows);
    } catch (error) {
      if (!(error instanceof TensorCodecError)) throw error;
      return this.predictIsolatingUnencodable(rows, attempt, resent);
    }
    const { settings, context } = this;
    const ticket = running.tracker.requestSent();
    const started = context.now();
    let result: PredictResult;
    try {
      result = await running.breaker.fire(() =>
        this.measured(running, () =>
          running.client.predict(
            { model: settings.model, inputs, outputFilter: plan.outputs.map((o) => o.tensor) },
            { deadlineMs: settings.deadlineMs, signal: context.signal },
          ),
        ),
      );
    } catch (error) {
      if (error instanceof TFServingCallError) {
        running.metrics.request(error.codeName, (context.now() - started) / 1000);
        if (context.signal.aborted) throw stoppingError();
        if (
          this.followsMovingVersion &&
          attempt === 1 &&
          !resent &&
          SIGNATURE_CHANGE_STATUSES.has(error.codeName) &&
          (await running.tracker.recheck(ticket)) !== plan
        ) {
          context.logger.info(
            { status: error.codeName, rows: rows.length },
            'a request was refused after the model changed its signature; sending it again with the new signature',
          );
          return this.predict(rows, attempt, true);
        }
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
    running.metrics.request('OK', (context.now() - started) / 1000);
    const values = splitOutputs(result, plan.outputs, rows.length, this.recordContext());
    const answeredBy = result.model.version;
    if (answeredBy !== undefined) {
      this.servedVersion = answeredBy;
      if (plan.version === undefined) plan.version = answeredBy;
      else if (answeredBy !== plan.version && this.followsMovingVersion)
        await this.checkAfterVersionChange(running, ticket, answeredBy);
    }
    const model = {
      ...settings.model,
      ...result.model,
      name: result.model.name || settings.model.name,
      signatureName: settings.model.signatureName,
    };
    const scoredAt = context.now();
    return values.map((v, k) => ({ values: v, plan: rows[k]!.plan, model, scoredAt }));
  }

  // ------------------------------------------------ adaptive concurrency (adaptive-limit.ts)

  /**
   * With `max.in.flight.requests=auto`: holds the target's shared limit and makes the limiter's
   * concurrency follow this task's share of it; the limit gauge follows the limit.
   */
  private followAdaptiveLimit(limiter: RateLimiter, metrics: InferenceMetrics): Running['adaptive'] {
    const { settings } = this;
    if (!('auto' in settings.maxInFlight)) return undefined;
    const lease = (this.deps.adaptiveLimits ?? sharedAdaptiveLimits).acquire(
      JSON.stringify([settings.target, settings.model.name]),
      {
        ...settings.maxInFlight.auto,
        initial: AUTO_INITIAL_LIMIT,
        slowThresholdMs: settings.deadlineMs / 2,
        now: this.context.now,
      },
    );
    limiter.setConcurrency(lease.share());
    metrics.concurrencyLimit(settings.target, lease.limit.limit);
    const stopShare = lease.onShareChange((share) => limiter.setConcurrency(share));
    const stopGauge = lease.limit.onChange((limit) => metrics.concurrencyLimit(settings.target, limit));
    return {
      lease,
      stopListening: () => {
        stopShare();
        stopGauge();
      },
    };
  }

  /**
   * The gRPC call itself, from sending to answer: a sample of the adaptive limit (auto), and its
   * overload answers counted (any limit). Breaker rejections never get here (this runs inside
   * `breaker.fire`), nor does time spent waiting in the limiter's queue.
   */
  private measured<T>(running: Running, call: () => Promise<T>): Promise<T> {
    const classify = (error: unknown): SampleOutcome => {
      if (!(error instanceof TFServingCallError) || this.context.signal.aborted) return 'ignore';
      const outcome = loadSignalOf(error.codeName);
      if (outcome === 'overload') running.metrics.overloadAnswer(this.settings.target);
      return outcome;
    };
    if (running.adaptive) return running.adaptive.lease.limit.measure(call, classify);
    return call().catch((error: unknown) => {
      classify(error);
      throw error;
    });
  }
  // -------------------------------------------- end adaptive concurrency

  /**
   * Another version answered a request under the current plan (so it could still feed it): re-read
   * the signature so the next requests and the output schema follow the new version. A transient
   * failure to read it only postpones the check to the next answer; the answer itself stands.
   */
  private async checkAfterVersionChange(running: Running, ticket: number, version: number): Promise<void> {
    try {
      await running.tracker.recheck(ticket);
    } catch (error) {
      if (!(error instanceof RetriableError)) throw error;
      this.context.logger.warn(
        { version, error: error.message },
        'a new model version answered but its signature could not be read yet; checking again at the next answer',
      );
    }
  }

  /**
   * Rows extracted under an older plan: extracted again from their records under `plan` (a row
   * whose record cannot feed the new signature fails alone, as any record would), then sent in
   * requests of rows that share a shape.
   */
  private async predictReplanned(
    rows: PendingRow[],
    plan: ModelPlan,
    attempt: number,
    resent: boolean,
  ): Promise<RowResult[]> {
    const results = new Array<RowResult>(rows.length);
    const replanned = new Array<PendingRow>(rows.length);
    const groups = new Map<string, number[]>();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const writerPlan = plan.writerPlan(row.writer, this.recordContext());
      if (writerPlan instanceof RecordError) {
        results[i] = writerPlan;
        continue;
      }
      let input = writerPlan.input.extract(row.value);
      const files = this.running?.files;
      if (!(input instanceof RecordError) && files !== undefined && writerPlan.input.readsFiles)
        input = await writerPlan.input.readFiles(input, files);
      if (input instanceof RecordError) {
        results[i] = input;
        continue;
      }
      replanned[i] = { ...row, plan: writerPlan, input };
      const group = groups.get(input.shapeKey);
      if (group === undefined) groups.set(input.shapeKey, [i]);
      else group.push(i);
    }
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const scored = await this.predict(
          indexes.map((i) => replanned[i]!),
          attempt,
          resent,
        );
        indexes.forEach((i, k) => (results[i] = scored[k]!));
      }),
    );
    return results;
  }

  /** A batch with a value the codec refused: the refused rows fail alone, the rest are sent. */
  private async predictIsolatingUnencodable(
    rows: PendingRow[],
    attempt: number,
    resent: boolean,
  ): Promise<RowResult[]> {
    const results = new Array<RowResult>(rows.length);
    const good: number[] = [];
    rows.forEach((row, i) => {
      try {
        this.encode(row.plan.model, [row]);
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
        resent,
      );
      good.forEach((i, k) => (results[i] = scored[k]!));
    }
    return results;
  }
}
