// The rate limiter in front of the model server: a p-queue that starts at most
// `requestsPerSecond` requests in any sliding one-second window (strict mode, plus a small margin,
// see RATE_WINDOW_MARGIN_MS), runs at most
// `concurrency` at once, and holds a BOUNDED number of waiting requests.
//
// The bound is kept by the callers: the batcher forms a new request only while `hasRoom()`, and
// `process` awaits `waitForRoom()` before handing rows over, so a slow or rate-limited server
// blocks `process`, which blocks the consumer (backpressure), and memory stays flat. Nothing is
// ever dropped. The halves of a bisected batch are the one exception: they enter with a higher
// priority regardless of the bound (a rejected batch frees its slot first, and a bisection adds
// at most two requests per finished one).
import PQueue from 'p-queue';
import { RetriableError } from '../../runtime/api.js';

export interface RateLimiterOptions {
  /** Requests started per second at most; 0 is unlimited. Fractions allowed (0.5 = one per 2 s). */
  requestsPerSecond: number;
  /** Requests running at once at most (`max.in.flight.requests`; see setConcurrency for `auto`). */
  concurrency: number;
  /** Requests waiting to start at most (`rate.limit.queue.max.requests`). */
  queueMaxRequests: number;
  /** Called whenever the number of waiting or running requests changes. */
  onChange?: (state: { queued: number; inFlight: number }) => void;
}

/**
 * Margin (ms) added to every rate window. The limit is enforced on send times, but the server sees
 * arrival times, which jitter by a few ms (connection handling, the server's own scheduling): with
 * windows of exactly one second, a burst sent at t = 0 and the next at t = 1000 can arrive inside
 * one second of the server's clock. The margin absorbs that, at the cost of a rate about 5% below
 * the configured one for small windows.
 */
export const RATE_WINDOW_MARGIN_MS = 50;

/**
 * The p-queue interval settings for a rate: a whole rate N as N per second; a fractional one as
 * one request per `ceil(1000 / rate)` ms; each window widened by RATE_WINDOW_MARGIN_MS, so the
 * server never sees more than the rate in any one-second window.
 */
export function intervalFor(
  requestsPerSecond: number,
): { intervalCap: number; interval: number } | undefined {
  if (requestsPerSecond <= 0) return undefined;
  if (Number.isInteger(requestsPerSecond))
    return { intervalCap: requestsPerSecond, interval: 1000 + RATE_WINDOW_MARGIN_MS };
  return { intervalCap: 1, interval: Math.ceil(1000 / requestsPerSecond) + RATE_WINDOW_MARGIN_MS };
}

export class RateLimiter {
  readonly queueMaxRequests: number;
  private readonly queue: PQueue;
  private readonly onChange: RateLimiterOptions['onChange'];

  constructor(options: RateLimiterOptions) {
    const interval = intervalFor(options.requestsPerSecond);
    this.queueMaxRequests = options.queueMaxRequests;
    this.queue = new PQueue({
      concurrency: options.concurrency,
      ...(interval ? { ...interval, strict: true } : {}),
    });
    this.onChange = options.onChange;
    if (this.onChange) {
      const report = () => this.onChange?.({ queued: this.queue.size, inFlight: this.queue.pending });
      for (const event of ['add', 'active', 'next', 'idle'] as const)
        this.queue.addEventListener(event, report);
    }
  }

  /** Requests waiting to start. */
  get queued(): number {
    return this.queue.size;
  }

  /** Requests running. */
  get inFlight(): number {
    return this.queue.pending;
  }

  /** Requests allowed to run at once (`max.in.flight.requests`, or the adaptive share). */
  get concurrency(): number {
    return this.queue.concurrency;
  }

  /**
   * Follows the adaptive limit (adaptive-limit.ts). Raising it starts waiting requests at once;
   * lowering it lets running requests finish and starts no new one until fewer than `concurrency`
   * run. The bounded queue is untouched: `hasRoom` still counts waiting requests only, so a lower
   * limit slows the queue's drain and backpressure reaches the consumer as with a slow server.
   */
  setConcurrency(concurrency: number): void {
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new RangeError(`concurrency must be a whole number >= 1, got ${concurrency}`);
    if (concurrency !== this.queue.concurrency) this.queue.concurrency = concurrency;
  }

  hasRoom(): boolean {
    return this.queue.size < this.queueMaxRequests;
  }

  /**
   * Resolves once fewer than `queueMaxRequests` requests wait. Rejects with a RetriableError when
   * `signal` aborts (the task is stopping), so a blocked `process` returns promptly.
   */
  async waitForRoom(signal: AbortSignal): Promise<void> {
    while (!this.hasRoom()) {
      if (signal.aborted) throw stopping();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(stopping());
        signal.addEventListener('abort', onAbort, { once: true });
        this.queue.onSizeLessThan(this.queueMaxRequests).then(
          () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          },
          (error: unknown) => {
            signal.removeEventListener('abort', onAbort);
            reject(error instanceof Error ? error : new Error(String(error)));
          },
        );
      });
    }
  }

  /** Calls `listener` whenever a waiting request starts or a running one finishes. Returns the undo. */
  onRoom(listener: () => void): () => void {
    this.queue.addEventListener('active', listener);
    this.queue.addEventListener('next', listener);
    return () => {
      this.queue.removeEventListener('active', listener);
      this.queue.removeEventListener('next', listener);
    };
  }

  /** Runs `request` when the rate and concurrency allow; higher `priority` starts first. */
  run<T>(request: () => Promise<T>, priority = 0): Promise<T> {
    return this.queue.add(request, { priority });
  }

  /** Drops waiting requests (their promises never settle: callers reject their own work on stop). */
  clear(): void {
    this.queue.clear();
    this.queue.pause();
  }
}

function stopping(): RetriableError {
  return new RetriableError('MODEL_UNAVAILABLE', 'The task is stopping; the records will be redelivered', {
    stage: 'TASK_PROCESS',
  });
}
