// The circuit breaker around Predict: an opossum breaker whose failures are only the transient
// ones (the status policy's `retry` outcome). A refused record (INVALID_ARGUMENT) or a fatal status
// says nothing about the server's health, so opossum's errorFilter counts those as successes.
//
// opossum's own timeout is disabled: every call carries its gRPC deadline, which is the timeout.
// While open, `fire` rejects at once with a RetriableError BREAKER_OPEN whose `retryAfterMs` is the
// time left until the breaker half-opens, so the runtime pauses the partition for that long rather
// than hammering a sick server; after `resetTimeoutMs` one probe call goes through and its success
// closes the breaker (its failure opens it for another period).
import CircuitBreaker from 'opossum';
import { RetriableError } from '../../runtime/api.js';

/** The wait a call refused while the breaker is half-open asks for: about one probe call. */
const HALF_OPEN_RETRY_AFTER_MS = 1_000;
export type BreakerState = 'closed' | 'half-open' | 'open';

/** The value of the `infer_connect_breaker_state` gauge for each state. */
export const BREAKER_STATE_VALUES: Readonly<Record<BreakerState, number>> = {
  closed: 0,
  'half-open': 1,
  open: 2,
};

export interface ModelCircuitBreakerOptions {
  enabled: boolean;
  errorThresholdPercentage: number;
  volumeThreshold: number;
  resetTimeoutMs: number;
  rollingWindowMs: number;
  /** True for an error that counts against the breaker (a transient failure). */
  isFailure: (error: unknown) => boolean;
  /** Injected clock, for `retryAfterMs`. */
  now: () => number;
  /** What the breaker protects, for messages, e.g. `127.0.0.1:8500 (model "census")`. */
  describeTarget: string;
  /** Dead-letter / log context of the BREAKER_OPEN errors. */
  errorContext?: Record<string, string | number | undefined>;
  onStateChange?: (state: BreakerState) => void;
}

type Thunk = () => Promise<unknown>;

export class ModelCircuitBreaker {
  private readonly breaker: CircuitBreaker<[Thunk], unknown>;
  private openedAt = 0;
  private current: BreakerState = 'closed';
  private rejections = 0;

  constructor(private readonly options: ModelCircuitBreakerOptions) {
    this.breaker = new CircuitBreaker((thunk: Thunk) => thunk(), {
      timeout: false,
      enabled: options.enabled,
      errorThresholdPercentage: options.errorThresholdPercentage,
      volumeThreshold: options.volumeThreshold,
      resetTimeout: options.resetTimeoutMs,
      rollingCountTimeout: options.rollingWindowMs,
      rollingCountBuckets: 10,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      // opossum: a filtered error does not count as a failure.
      errorFilter: (error: unknown) => !options.isFailure(error),
    });
    this.breaker.on('open', () => {
      this.openedAt = options.now();
      this.transition('open');
    });
    this.breaker.on('halfOpen', () => this.transition('half-open'));
    this.breaker.on('close', () => this.transition('closed'));
  }

  get state(): BreakerState {
    return this.current;
  }

  /** Calls rejected without reaching the server since the breaker was created. */
  get shortCircuited(): number {
    return this.rejections;
  }

  /** ms until an open breaker half-opens; 0 when it is not open. */
  retryAfterMs(): number {
    if (this.current !== 'open') return 0;
    return Math.max(0, this.openedAt + this.options.resetTimeoutMs - this.options.now());
  }

  /** Throws BREAKER_OPEN while the breaker is open: lets a caller fail fast before queueing work. */
  throwIfOpen(): void {
    if (this.current === 'open') throw this.openError();
  }

  /** Runs `call` through the breaker; rejects with BREAKER_OPEN when the breaker refuses it. */
  async fire<T>(call: () => Promise<T>): Promise<T> {
    try {
      return (await this.breaker.fire(call)) as T;
    } catch (error) {
      if ((error as { code?: unknown }).code === 'EOPENBREAKER') {
        this.rejections++;
        throw this.openError();
      }
      throw error;
    }
  }

  /** Stops opossum's timers. Idempotent. */
  shutdown(): void {
    if (!this.breaker.isShutdown) this.breaker.shutdown();
  }

  private openError(): RetriableError {
    const retryAfterMs = this.retryAfterMs();
    const when =
      this.current === 'open'
        ? `it half-opens in ${retryAfterMs} ms`
        : 'a probe call is testing the server; retry shortly';
    return new RetriableError(
      'BREAKER_OPEN',
      `Circuit breaker for ${this.options.describeTarget} is ${this.current}: too many recent calls failed; ${when}`,
      {
        stage: 'TASK_PROCESS',
        context: this.options.errorContext ?? {},
        // Half-open: a probe is deciding right now, so ask for a short wait rather than none (which
        // would make the runtime's redelivery backoff grow towards errors.retry.delay.max.ms and
        // keep partitions paused long after the probe closed the breaker).
        retryAfterMs: this.current === 'open' ? retryAfterMs : HALF_OPEN_RETRY_AFTER_MS,
      },
    );
  }

  private transition(state: BreakerState): void {
    if (state === this.current) return;
    this.current = state;
    this.options.onStateChange?.(state);
  }
}
