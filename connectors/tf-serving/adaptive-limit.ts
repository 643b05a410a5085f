// The adaptive in-flight limit of `max.in.flight.requests=auto`: how many Predict requests the tasks
// of this worker may have outstanding at one model server target (address + model), learnt from
// its answers. AIMD (additive increase, multiplicative decrease), not a gradient limiter:
//
// - Overload is signalled explicitly here. TF Serving answers UNAVAILABLE when its batching queue
//   is full, Triton RESOURCE_EXHAUSTED/UNAVAILABLE: an exact, immediate "too much" that AIMD reacts
//   to as TCP reacts to a loss. A gradient limiter (Netflix's Gradient2) infers queueing from the
//   ratio of long-term to short-term RTT, and needs a stable RTT per unit of work to do so.
// - Micro-batching breaks that premise: a Predict's latency grows with its batch size, and the
//   batch size follows the load (a busy task packs full batches, a quiet one sends single rows).
//   A gradient limiter reads "larger batches" as "queueing" and shrinks the limit exactly when the
//   connector is doing its most efficient work. AIMD only uses latency as a coarse backstop: an
//   answer slower than `slowThresholdMs` (half the deadline: far past any batch-size effect) or a
//   DEADLINE_EXCEEDED counts as overload.
//
// The rules (Netflix concurrency-limits' AIMDLimit, with TCP's once-per-window decrease):
// - a successful answer adds 1/limit (so +1 per limit's worth of answers, about +1 per round trip),
//   but only when the limit was actually used: at least half of it was in flight when the request
//   was sent or answered (`inFlight * 2 >= limit`). An idle or lightly loaded server never
//   inflates the limit.
// - an overload answer multiplies the limit by `backoffRatio`, at most once per window: answers to
//   requests sent before the last decrease reflect the old limit and are not punished again (with
//   64 in flight, 64 queue-full answers would otherwise take it from 64 to the minimum at once).
// - an overload answer also says more than "too much": the server refused the request that was
//   the k-th outstanding one (`inFlightAtSend`), so it holds fewer than k. The limit gets a
//   CEILING of k - 1 and does not grow past it. An overload answer costs a stream dearly (the
//   records of the refused request are redelivered after a backoff), so blind AIMD probing, one
//   refusal per sawtooth, is too expensive; the ceiling is probed instead, +1 after
//   `ceilingProbeMs` without overload, the step doubling while probes succeed (so a server that
//   gained capacity is found in a few probes) and back to 1 at the next overload.
// - the limit stays within [min, max].
//
// Only real server work is sampled: the caller measures the gRPC call itself (inside the breaker,
// so its rejections never reach here) from sending to answer (the wait in the rate limiter's
// queue is not part of it), and classifies failures (`SampleOutcome`); statuses that say nothing
// about load (INVALID_ARGUMENT, NOT_FOUND, a stop) are ignored.
//
// One AdaptiveLimit per target is SHARED by every task of the process that calls it
// (`SharedAdaptiveLimits`, like client-pool.ts shares clients) and released when the last task
// stops. Each holder gets a share of the limit as its own p-queue concurrency (`LimitLease.share`),
// so the tasks together keep about `limit` requests outstanding; every holder gets at least one.

/** How a failed call counts: an overload answer, too slow (a deadline), or not about load. */
export type SampleOutcome = 'overload' | 'timeout' | 'ignore';

export interface AdaptiveLimitOptions {
  /** Lowest limit (`max.in.flight.requests.min`), >= 1. */
  min: number;
  /** Highest limit (`max.in.flight.requests.max`), >= min. */
  max: number;
  /** The limit before any answer; clamped to [min, max]. */
  initial: number;
  /** A successful answer slower than this counts as overload (ms). */
  slowThresholdMs: number;
  /** Factor applied on overload, in (0, 1). Default 0.9 (Netflix's AIMDLimit). */
  backoffRatio?: number;
  /** Quiet time (ms) after which the ceiling learnt from overload answers is raised. Default 5000. */
  ceilingProbeMs?: number;
  /** Monotonic-enough clock in ms (the task's `context.now`). */
  now: () => number;
}

/** A request being measured: what was true when it was sent. */
export interface Sample {
  readonly sentAt: number;
  readonly inFlightAtSend: number;
  readonly window: number;
}

export const DEFAULT_BACKOFF_RATIO = 0.9;
export const DEFAULT_CEILING_PROBE_MS = 5000;

/** Where `auto` starts: the fixed default of `max.in.flight.requests`, known to be safe. */
export const AUTO_INITIAL_LIMIT = 4;

/**
 * What a failed call says about load, by gRPC status name (a transport that speaks HTTP maps its
 * statuses to these names first: 503 -> UNAVAILABLE, 429 -> RESOURCE_EXHAUSTED). UNAVAILABLE is
 * also what an unreachable server answers: the limit then rests at its minimum until the server
 * is back, which costs nothing, since the circuit breaker holds the calls meanwhile. Unlisted
 * statuses (INVALID_ARGUMENT, NOT_FOUND, ...) say nothing about load and are ignored.
 */
export const LOAD_SIGNALS: Readonly<Record<string, SampleOutcome>> = Object.freeze({
  UNAVAILABLE: 'overload',
  RESOURCE_EXHAUSTED: 'overload',
  DEADLINE_EXCEEDED: 'timeout',
});

export function loadSignalOf(status: string): SampleOutcome {
  return LOAD_SIGNALS[status] ?? 'ignore';
}

export class AdaptiveLimit {
  readonly min: number;
  readonly max: number;
  private readonly slowThresholdMs: number;
  private readonly backoffRatio: number;
  private readonly ceilingProbeMs: number;
  private readonly now: () => number;
  /** Highest limit the server's overload answers allow (max until the first one). */
  private ceilingValue: number;
  private ceilingStep = 1;
  private ceilingSince: number;
  /** The limit with its fractional increments; `limit` is its floor. */
  private value: number;
  private outstanding = 0;
  /** Bumped by every decrease: samples from an older window do not decrease again. */
  private window = 0;
  private overloads = 0;
  private readonly listeners = new Set<(limit: number) => void>();

  constructor(options: AdaptiveLimitOptions) {
    if (!(options.min >= 1 && options.max >= options.min))
      throw new RangeError(
        `adaptive limit bounds must satisfy 1 <= min <= max, got [${options.min}, ${options.max}]`,
      );
    this.min = options.min;
    this.max = options.max;
    this.slowThresholdMs = options.slowThresholdMs;
    this.backoffRatio = options.backoffRatio ?? DEFAULT_BACKOFF_RATIO;
    this.ceilingProbeMs = options.ceilingProbeMs ?? DEFAULT_CEILING_PROBE_MS;
    this.now = options.now;
    this.value = Math.min(this.max, Math.max(this.min, options.initial));
    this.ceilingValue = this.max;
    this.ceilingSince = this.now();
  }

  /** The highest limit the overload answers seen so far allow (`max` before the first one). */
  get ceiling(): number {
    return this.ceilingValue;
  }

  /** The current limit: requests the holders together may have outstanding. */
  get limit(): number {
    return Math.floor(this.value);
  }

  /** Requests sent and not yet answered, over every holder. */
  get inFlight(): number {
    return this.outstanding;
  }

  /** Overload answers (and too-slow answers) seen since creation. */
  get overloadAnswers(): number {
    return this.overloads;
  }

  /** Calls `listener` with the new limit whenever its integer value changes. Returns the undo. */
  onChange(listener: (limit: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A request is being sent now; pass the result to `answered`. */
  sent(): Sample {
    this.outstanding++;
    return { sentAt: this.now(), inFlightAtSend: this.outstanding, window: this.window };
  }

  /** The request of `sample` was answered: `ok`, or failed as `outcome` says. */
  answered(sample: Sample, outcome: 'ok' | SampleOutcome): void {
    // In use means at least half of the limit outstanding when this request was sent or when it
    // came back (requests sent together find fewer ahead of them, but all are out at the answer).
    const used = Math.max(sample.inFlightAtSend, this.outstanding);
    this.outstanding = Math.max(0, this.outstanding - 1);
    if (outcome === 'ignore') return;
    const before = this.limit;
    const now = this.now();
    const slow = outcome === 'ok' && now - sample.sentAt > this.slowThresholdMs;
    if (outcome === 'ok' && !slow) {
      this.probeCeiling(now);
      if (used * 2 >= before) this.value = Math.min(this.ceilingValue, this.value + 1 / this.value);
    } else {
      if (outcome === 'overload') {
        this.overloads++;
        this.ceilingValue = Math.max(this.min, Math.min(this.ceilingValue, sample.inFlightAtSend - 1));
        this.ceilingStep = 1;
        this.ceilingSince = now;
      }
      if (sample.window === this.window) {
        this.window++;
        this.value = Math.max(this.min, this.value * this.backoffRatio);
      }
      this.value = Math.min(this.value, Math.max(this.min, this.ceilingValue));
    }
    const after = this.limit;
    if (after !== before) for (const listener of this.listeners) listener(after);
  }

  /** Raises the ceiling by its step after `ceilingProbeMs` without overload; the step doubles. */
  private probeCeiling(now: number): void {
    if (this.ceilingValue >= this.max || now - this.ceilingSince < this.ceilingProbeMs) return;
    this.ceilingValue = Math.min(this.max, this.ceilingValue + this.ceilingStep);
    this.ceilingStep *= 2;
    this.ceilingSince = now;
  }

  /**
   * Measures `call`: a sample from sending to answer. A rejection is classified by `classify`
   * (not called for successes) and rethrown unchanged.
   */
  async measure<T>(call: () => Promise<T>, classify: (error: unknown) => SampleOutcome): Promise<T> {
    const sample = this.sent();
    let result: T;
    try {
      result = await call();
    } catch (error) {
      this.answered(sample, classify(error));
      throw error;
    }
    this.answered(sample, 'ok');
    return result;
  }
}

/** One task's hold on a shared limit. */
export interface LimitLease {
  readonly limit: AdaptiveLimit;
  /** This holder's part of the limit (its p-queue concurrency), >= 1. */
  share(): number;
  /** Calls `listener` with this holder's new share whenever the limit or the holders change. */
  onShareChange(listener: (share: number) => void): () => void;
  /** Lets go; the last release drops the limit. Idempotent. Returns true when it was the last. */
  release(): boolean;
}

interface Holder {
  listeners: Set<(share: number) => void>;
  lastShare: number;
}

interface Entry {
  limit: AdaptiveLimit;
  holders: Holder[];
  stopListening: () => void;
}

/**
 * The process's adaptive limits, one per target key. The first holder's options create the limit;
 * later holders of the same key share it as it is (tasks of one connector have the same bounds).
 */
export class SharedAdaptiveLimits {
  private readonly entries = new Map<string, Entry>();

  /** `key` names the target: model server address + model. */
  acquire(key: string, options: AdaptiveLimitOptions): LimitLease {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const limit = new AdaptiveLimit(options);
      const created: Entry = { limit, holders: [], stopListening: () => undefined };
      created.stopListening = limit.onChange(() => redistribute(created));
      this.entries.set(key, created);
      entry = created;
    }
    const held = entry;
    const holder: Holder = { listeners: new Set(), lastShare: 0 };
    held.holders.push(holder);
    redistribute(held);
    let released = false;
    return {
      limit: held.limit,
      share: () => shareOf(held, holder),
      onShareChange: (listener) => {
        holder.listeners.add(listener);
        return () => holder.listeners.delete(listener);
      },
      release: () => {
        if (released) return false;
        released = true;
        held.holders.splice(held.holders.indexOf(holder), 1);
        holder.listeners.clear();
        if (held.holders.length > 0) {
          redistribute(held);
          return false;
        }
        held.stopListening();
        if (this.entries.get(key) === held) this.entries.delete(key);
        return true;
      },
    };
  }

  /** Targets with a live limit (for tests and `/status`). */
  get size(): number {
    return this.entries.size;
  }
}

/**
 * The limit split over the holders in acquisition order: floor(limit / n) each, the remainder one
 * each to the first holders, at least 1 (so with fewer slots than tasks every task still sends).
 */
function shareOf(entry: Entry, holder: Holder): number {
  const n = entry.holders.length;
  const index = entry.holders.indexOf(holder);
  if (index === -1) return 1;
  const limit = entry.limit.limit;
  return Math.max(1, Math.floor(limit / n) + (index < limit % n ? 1 : 0));
}

function redistribute(entry: Entry): void {
  for (const holder of entry.holders) {
    const share = shareOf(entry, holder);
    if (share === holder.lastShare) continue;
    holder.lastShare = share;
    for (const listener of holder.listeners) listener(share);
  }
}

/** The process-wide limits every inference task uses unless a test injects its own. */
export const sharedAdaptiveLimits = new SharedAdaptiveLimits();
