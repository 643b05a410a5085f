// The inference metrics of a TFServingInference task, in the worker's prom-client registry.
// Every task of the worker shares the same metric objects (looked up with getSingleMetric before
// creating one) and writes its own label set ({connector, task} plus model / code); `remove()`
// drops the task's gauge series when it stops, so a stopped task leaves no stale state behind.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BREAKER_STATE_VALUES, type BreakerState } from './circuit-breaker.js';

export const METRIC_NAMES = {
  requests: 'infer_connect_inference_requests_total',
  requestDuration: 'infer_connect_inference_request_duration_seconds',
  batchSize: 'infer_connect_inference_batch_size',
  bisections: 'infer_connect_inference_bisections_total',
  breakerState: 'infer_connect_breaker_state',
  breakerRejections: 'infer_connect_breaker_rejections_total',
  queueDepth: 'infer_connect_rate_limiter_queue_depth',
  inFlight: 'infer_connect_inference_in_flight_requests',
  concurrencyLimit: 'infer_connect_inference_concurrency_limit',
  overloadAnswers: 'infer_connect_inference_overload_answers_total',
} as const;

type TaskLabels = { connector: string; task: string };

function metric<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

export class InferenceMetrics {
  private readonly requests: Counter<'connector' | 'task' | 'model' | 'code'>;
  private readonly duration: Histogram<'connector' | 'task' | 'model'>;
  private readonly batchSizes: Histogram<'connector' | 'task' | 'model'>;
  private readonly bisections: Counter<'connector' | 'task' | 'model'>;
  private readonly breakerState: Gauge<'connector' | 'task' | 'model'>;
  private readonly breakerRejections: Counter<'connector' | 'task' | 'model'>;
  private readonly queueDepth: Gauge<'connector' | 'task'>;
  private readonly inFlight: Gauge<'connector' | 'task'>;
  private readonly concurrencyLimitGauge: Gauge<'target' | 'model'>;
  private readonly overloadAnswers: Counter<'target' | 'model'>;
  private readonly withModel: TaskLabels & { model: string };

  constructor(
    registry: Registry,
    private readonly labels: TaskLabels,
    private readonly model: string,
  ) {
    this.withModel = { ...labels, model };
    const registers = [registry];
    this.requests = metric(
      registry,
      METRIC_NAMES.requests,
      () =>
        new Counter({
          name: METRIC_NAMES.requests,
          help: 'Predict calls sent to the model server, by model and gRPC status code (OK for success).',
          labelNames: ['connector', 'task', 'model', 'code'],
          registers,
        }),
    );
    this.duration = metric(
      registry,
      METRIC_NAMES.requestDuration,
      () =>
        new Histogram({
          name: METRIC_NAMES.requestDuration,
          help: 'Duration of Predict calls in seconds, from sending to the answer (failed calls included).',
          labelNames: ['connector', 'task', 'model'],
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
          registers,
        }),
    );
    this.batchSizes = metric(
      registry,
      METRIC_NAMES.batchSize,
      () =>
        new Histogram({
          name: METRIC_NAMES.batchSize,
          help: 'Rows per Predict request (halves of bisected batches included).',
          labelNames: ['connector', 'task', 'model'],
          buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
          registers,
        }),
    );
    this.bisections = metric(
      registry,
      METRIC_NAMES.bisections,
      () =>
        new Counter({
          name: METRIC_NAMES.bisections,
          help: 'Batches split in halves because the model refused them (INVALID_ARGUMENT), to isolate the bad rows.',
          labelNames: ['connector', 'task', 'model'],
          registers,
        }),
    );
    this.breakerState = metric(
      registry,
      METRIC_NAMES.breakerState,
      () =>
        new Gauge({
          name: METRIC_NAMES.breakerState,
          help: 'State of the circuit breaker around Predict: 0 closed, 1 half-open, 2 open.',
          labelNames: ['connector', 'task', 'model'],
          registers,
        }),
    );
    this.breakerRejections = metric(
      registry,
      METRIC_NAMES.breakerRejections,
      () =>
        new Counter({
          name: METRIC_NAMES.breakerRejections,
          help: 'Predict calls the open circuit breaker refused without calling the model server.',
          labelNames: ['connector', 'task', 'model'],
          registers,
        }),
    );
    this.queueDepth = metric(
      registry,
      METRIC_NAMES.queueDepth,
      () =>
        new Gauge({
          name: METRIC_NAMES.queueDepth,
          help: 'Predict requests waiting for the rate limiter or a free in-flight slot.',
          labelNames: ['connector', 'task'],
          registers,
        }),
    );
    this.inFlight = metric(
      registry,
      METRIC_NAMES.inFlight,
      () =>
        new Gauge({
          name: METRIC_NAMES.inFlight,
          help: 'Predict requests sent and not yet answered.',
          labelNames: ['connector', 'task'],
          registers,
        }),
    );
    // Per target (address + model), not per task: the adaptive limit is shared by the worker's
    // tasks that call the target (adaptive-limit.ts), and overload is the server's, whoever asked.
    this.concurrencyLimitGauge = metric(
      registry,
      METRIC_NAMES.concurrencyLimit,
      () =>
        new Gauge({
          name: METRIC_NAMES.concurrencyLimit,
          help:
            'Adaptive in-flight limit of Predict requests to a model server target and model ' +
            "(max.in.flight.requests=auto), shared by the worker's tasks that call it.",
          labelNames: ['target', 'model'],
          registers,
        }),
    );
    this.overloadAnswers = metric(
      registry,
      METRIC_NAMES.overloadAnswers,
      () =>
        new Counter({
          name: METRIC_NAMES.overloadAnswers,
          help:
            'Predict calls the model server answered UNAVAILABLE or RESOURCE_EXHAUSTED (overloaded, e.g. its ' +
            'batching queue full, or unreachable), by target and model; fixed and adaptive limits alike.',
          labelNames: ['target', 'model'],
          registers,
        }),
    );
    this.breakerState.set(this.withModel, 0);
    this.queueDepth.set(labels, 0);
    this.inFlight.set(labels, 0);
  }

  request(code: string, seconds: number): void {
    this.requests.inc({ ...this.withModel, code });
    this.duration.observe(this.withModel, seconds);
  }

  batch(rows: number): void {
    this.batchSizes.observe(this.withModel, rows);
  }

  bisected(): void {
    this.bisections.inc(this.withModel);
  }

  breaker(state: BreakerState): void {
    this.breakerState.set(this.withModel, BREAKER_STATE_VALUES[state]);
  }

  breakerRejected(): void {
    this.breakerRejections.inc(this.withModel);
  }

  queue(state: { queued: number; inFlight: number }): void {
    this.queueDepth.set(this.labels, state.queued);
    this.inFlight.set(this.labels, state.inFlight);
  }

  /** The adaptive limit of `target` changed (or was first set). */
  concurrencyLimit(target: string, limit: number): void {
    this.concurrencyLimitGauge.set({ target, model: this.model }, limit);
  }

  /** Drops `target`'s limit series: its last task stopped, so the limit is gone. */
  removeConcurrencyLimit(target: string): void {
    this.concurrencyLimitGauge.remove({ target, model: this.model });
  }

  overloadAnswer(target: string): void {
    this.overloadAnswers.inc({ target, model: this.model });
  }

  /** Drops this task's gauge series (counters and histograms keep their totals, as Prometheus expects). */
  remove(): void {
    this.breakerState.remove(this.withModel);
    this.queueDepth.remove(this.labels);
    this.inFlight.remove(this.labels);
  }
}
