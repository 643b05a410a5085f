// Reading the model's signature with GetModelMetadata: at start (retrying a model server that is
// not up yet, for `tfserving.startup.timeout.ms`) and while running (one attempt, when the
// signature tracker checks whether the served signature changed), and picking the configured
// signature out of the answer.
import { FatalError, type Logger, type Stage } from '../../runtime/api.js';
import type { TFServingApi } from './client-pool.js';
import type { InferenceSettings } from './config.js';
import { TFServingCallError, type ModelMetadata, type SignatureSpec } from './grpc-client.js';
import { errorCodeFor, type CallContext } from './status-policy.js';

const STARTUP_BACKOFF_INITIAL_MS = 200;
const STARTUP_BACKOFF_MAX_MS = 5000;

export interface ModelMetadataReaderOptions {
  settings: InferenceSettings;
  client: TFServingApi;
  logger: Logger;
  signal: AbortSignal;
  now(): number;
  /** Sleeps between start-up attempts; resolves false when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<boolean>;
  /** E.g. `model "census" (latest version) signature "serving_default" at host:8500`. */
  describeModel(): string;
  /** Context of the errors (dead-letter headers and task traces). */
  errorContext(): CallContext;
  /** What a read cut short by the task stopping rejects with. */
  stoppingError(): Error;
}

export class ModelMetadataReader {
  constructor(private readonly options: ModelMetadataReaderOptions) {}

  /**
   * GetModelMetadata at start, retrying transient statuses with capped backoff until the start-up
   * timeout. Throws FatalError: TASK_START_FAILED when the server never answered, a code from the
   * status otherwise (a missing model, version or label, refused credentials).
   */
  async readAtStart(): Promise<ModelMetadata> {
    const { settings, client, logger, signal, now } = this.options;
    const deadline = now() + settings.startupTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.getModelMetadata(this.modelSpec(), { deadlineMs: settings.deadlineMs, signal });
      } catch (error) {
        // Already classified (e.g. MODEL_SERVER_TLS_FAILED): keep its code as the task's cause.
        if (error instanceof FatalError) throw error;
        if (!(error instanceof TFServingCallError)) {
          throw new FatalError(
            'TASK_START_FAILED',
            `Reading the signature of ${this.options.describeModel()} failed: ${(error as Error).message}`,
            { stage: 'TASK_START', cause: error, context: this.recordContext() },
          );
        }
        const status = error.codeName;
        const transient = settings.statusPolicy.outcomeOf(status) === 'retry';
        if (!transient) throw this.failure(error, 'TASK_START');
        const delay = Math.min(STARTUP_BACKOFF_INITIAL_MS * 2 ** (attempt - 1), STARTUP_BACKOFF_MAX_MS);
        if (now() + delay > deadline) {
          throw new FatalError(
            'TASK_START_FAILED',
            `The model server ${settings.target} did not answer GetModelMetadata for ${this.options.describeModel()} within ` +
              `${settings.keyPrefix}.startup.timeout.ms (${settings.startupTimeoutMs} ms, ${attempt} attempts); last status ${status}: ${error.details}`,
            {
              stage: 'TASK_START',
              cause: error,
              context: { ...this.recordContext(), 'grpc.status.code': status, attempts: attempt },
            },
          );
        }
        logger.warn({ status, attempt, delayMs: delay }, 'model server not ready; retrying GetModelMetadata');
        if (!(await this.options.sleep(delay, signal))) {
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
   * GetModelMetadata while running: one attempt. A transient status becomes a RetriableError (the
   * records are redelivered and the check is made again), any other a FatalError.
   */
  async reread(): Promise<ModelMetadata> {
    const { settings, client, signal } = this.options;
    try {
      return await client.getModelMetadata(this.modelSpec(), { deadlineMs: settings.deadlineMs, signal });
    } catch (error) {
      if (signal.aborted) throw this.options.stoppingError();
      if (error instanceof FatalError) throw error;
      if (!(error instanceof TFServingCallError)) {
        throw new FatalError(
          'MODEL_SIGNATURE_CHANGED',
          `Re-reading the signature of ${this.options.describeModel()} failed: ${(error as Error).message}`,
          { stage: 'TASK_PROCESS', cause: error, context: this.recordContext() },
        );
      }
      if (settings.statusPolicy.outcomeOf(error.codeName) !== 'retry')
        throw this.failure(error, 'TASK_PROCESS');
      throw settings.statusPolicy.classify(error.codeName, error.details, this.options.errorContext(), {
        cause: error,
        method: 'GetModelMetadata',
        deadlineMs: settings.deadlineMs,
      });
    }
  }

  /** The configured signature; throws FatalError MODEL_SIGNATURE_NOT_FOUND listing the others. */
  signatureOf(metadata: ModelMetadata, stage: Stage): SignatureSpec {
    const { model } = this.options.settings;
    const signature = metadata.signatures[model.signatureName];
    if (signature === undefined) {
      const available = Object.keys(metadata.signatures)
        .filter((s) => !s.startsWith('__'))
        .sort();
      throw new FatalError(
        'MODEL_SIGNATURE_NOT_FOUND',
        `Model "${model.name}" (version ${metadata.model.version ?? '?'}) has no signature "${model.signatureName}"; ` +
          `it has: ${available.join(', ') || 'none'}. Set ${this.options.settings.keyPrefix}.signature.name to one of them`,
        { stage, context: { ...this.recordContext(), 'model.version': metadata.model.version } },
      );
    }
    return signature;
  }

  /**
   * A non-transient GetModelMetadata status: the model, version, label or signature is not there
   * (TF Serving answers an unknown version label with INVALID_ARGUMENT), or the credentials are
   * refused. Always fatal: retrying cannot help, and no record is to blame.
   */
  private failure(error: TFServingCallError, stage: Stage): FatalError {
    const status = error.codeName;
    const code = errorCodeFor(status, 'fatal');
    const hint =
      code === 'MODEL_AUTH_FAILED'
        ? 'check the TLS settings and credentials'
        : `check ${this.options.settings.keyPrefix}.model.name and the model version keys (${this.options.settings.keyPrefix}.model.version*) against the models the server has loaded`;
    const what =
      stage === 'TASK_START'
        ? 'Cannot start: GetModelMetadata'
        : 'Re-reading the signature after the model changed: GetModelMetadata';
    return new FatalError(
      code,
      `${what} for ${this.options.describeModel()} failed with ${status}: ${error.details}; ${hint}`,
      { stage, cause: error, context: { ...this.recordContext(), 'grpc.status.code': status } },
    );
  }

  /** The configured model spec without the signature: metadata covers every signature. */
  private modelSpec() {
    const { signatureName: _signature, ...model } = this.options.settings.model;
    return model;
  }

  private recordContext(): Record<string, string | number | undefined> {
    const { target: _target, ...context } = this.options.errorContext();
    return context;
  }
}
