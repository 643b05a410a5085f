// Micro-batching across concurrent `process` calls. Each call submits its rows and gets back one
// result per row, by position; the batcher packs rows from all calls into requests of at most
// `maxRecords` rows and about `maxBytes` (estimated), waiting at most `maxWaitMs` after a row
// arrives for more rows to fill its request. A full request is sent at once.
//
// Rows can share a request only when they have the same shape key (e.g. the same array lengths per
// input), so the batcher keeps one pending group per key.
//
// A request goes out only while `canDispatch()` (the rate limiter has room); otherwise rows wait
// here, their calls stay unresolved, and so `process` waits: that is the backpressure. Call
// `pump()` when room appears.
//
// Outcomes of a request:
// - answered: each row gets its result;
// - refused as a whole with a RecordError (the model said INVALID_ARGUMENT): the request is split in
//   halves, each sent again, until the rows it refuses are single rows, which get the RecordError of
//   their own one-row request; the other rows are scored;
// - any other failure (RetriableError, FatalError): every call with a row in the request rejects
//   with it (the runtime retries or fails the whole call). Rows of a call that already rejected are
//   dropped from later requests.
import { RecordError } from '../../runtime/api.js';

export interface BatcherOptions<R, O> {
  maxRecords: number;
  maxBytes: number;
  maxWaitMs: number;
  /** Estimated request bytes of a row. */
  sizeOf(row: R): number;
  /** Rows share a request only with rows of the same key. */
  keyOf(row: R): string;
  /**
   * Sends one request of `rows` and resolves one result per row, by position. Rejects with a
   * RecordError when the model refused the request as a whole (the batcher then bisects), with
   * anything else when the whole request failed. `attempt` is 1 for a new batch and one more for
   * each halving, so a row isolated from 256 was in 9 requests.
   */
  execute(rows: R[], attempt: number): Promise<O[]>;
  /** Whether a new request may be formed now; when it returns false, call `pump()` later. */
  canDispatch?(): boolean;
  /** What a call rejects with when its signal aborts; default the signal's reason. */
  abortError?(): unknown;
  /** Schedules `fn` after `ms`; returns the cancel. The wait is measured by this timer alone. */
  setTimer?(fn: () => void, ms: number): () => void;
  onBatch?(rows: number, attempt: number): void;
  onBisect?(rows: number): void;
}

class Call<O> {
  readonly results: Array<O | RecordError>;
  remaining: number;
  settled = false;
  readonly promise: Promise<Array<O | RecordError>>;
  resolve!: (results: Array<O | RecordError>) => void;
  reject!: (error: unknown) => void;
  cleanup: (() => void) | undefined;

  constructor(size: number) {
    this.results = new Array<O | RecordError>(size);
    this.remaining = size;
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  settleRow(index: number, result: O | RecordError): void {
    if (this.settled) return;
    this.results[index] = result;
    if (--this.remaining === 0) {
      this.settled = true;
      this.cleanup?.();
      this.resolve(this.results);
    }
  }

  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup?.();
    this.reject(error);
  }
}

interface PendingRow<R, O> {
  row: R;
  call: Call<O>;
  index: number;
  bytes: number;
}

interface Group<R, O> {
  rows: Array<PendingRow<R, O>>;
  bytes: number;
  cancelTimer: (() => void) | undefined;
  /** The first row has waited `maxWaitMs`: send as soon as allowed. Cleared when the group empties. */
  expired: boolean;
}

const defaultTimer = (fn: () => void, ms: number): (() => void) => {
  const handle = setTimeout(fn, ms);
  return () => clearTimeout(handle);
};

export class Batcher<R, O> {
  private readonly groups = new Map<string, Group<R, O>>();
  private readonly setTimer: (fn: () => void, ms: number) => () => void;
  private closedWith: unknown;
  private pumping = false;
  private repump = false;
  private inFlightRequests = 0;

  constructor(private readonly options: BatcherOptions<R, O>) {
    if (!(options.maxRecords >= 1)) throw new Error('Batcher maxRecords must be at least 1');
    this.setTimer = options.setTimer ?? defaultTimer;
  }

  /** Rows waiting for a request. */
  get pendingRows(): number {
    let count = 0;
    for (const group of this.groups.values()) count += group.rows.length;
    return count;
  }

  /** Requests sent and not yet settled (bisection halves included). */
  get inFlight(): number {
    return this.inFlightRequests;
  }

  /**
   * Queues `rows` and resolves one result per row, by position: the execute result, or a
   * RecordError for a row the model refused. Rejects when a request holding one of the rows failed
   * otherwise, when `signal` aborts, or when the batcher is closed.
   */
  submit(rows: readonly R[], signal?: AbortSignal): Promise<Array<O | RecordError>> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    if (rows.length === 0) return Promise.resolve([]);
    const call = new Call<O>(rows.length);
    if (signal) {
      const reason = () => this.options.abortError?.() ?? signal.reason;
      if (signal.aborted) return Promise.reject(reason());
      const onAbort = () => call.fail(reason());
      signal.addEventListener('abort', onAbort, { once: true });
      call.cleanup = () => signal.removeEventListener('abort', onAbort);
    }
    for (let index = 0; index < rows.length; index++) {
      const row = rows[index]!;
      const key = this.options.keyOf(row);
      let group = this.groups.get(key);
      if (group === undefined) {
        group = { rows: [], bytes: 0, cancelTimer: undefined, expired: false };
        this.groups.set(key, group);
      }
      const bytes = this.options.sizeOf(row);
      group.rows.push({ row, call, index, bytes });
      group.bytes += bytes;
    }
    this.pump();
    return call.promise;
  }

  /** Sends every request that is due and allowed. Safe to call at any time. */
  pump(): void {
    if (this.pumping) {
      this.repump = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.repump = false;
        for (const [key, group] of this.groups) {
          while (group.rows.length > 0 && this.isDue(group) && (this.options.canDispatch?.() ?? true)) {
            const batch = this.cut(group);
            if (batch.length > 0) this.dispatch(batch, 1);
          }
          this.dropSettledHead(group);
          if (group.rows.length === 0) {
            group.cancelTimer?.();
            this.groups.delete(key);
          } else if (group.cancelTimer === undefined && !group.expired && this.options.maxWaitMs > 0) {
            group.cancelTimer = this.setTimer(() => {
              group.cancelTimer = undefined;
              group.expired = true;
              this.pump();
            }, this.options.maxWaitMs);
          }
        }
      } while (this.repump);
    } finally {
      this.pumping = false;
    }
  }

  /** Rejects every waiting call with `reason` and refuses new ones. In-flight requests settle on their own. */
  close(reason: unknown): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = reason;
    for (const group of this.groups.values()) {
      group.cancelTimer?.();
      for (const pending of group.rows) pending.call.fail(reason);
    }
    this.groups.clear();
  }

  private isDue(group: Group<R, O>): boolean {
    const { maxRecords, maxBytes, maxWaitMs } = this.options;
    return group.expired || group.rows.length >= maxRecords || group.bytes >= maxBytes || maxWaitMs <= 0;
  }

  private dropSettledHead(group: Group<R, O>): void {
    let i = 0;
    while (i < group.rows.length && group.rows[i]!.call.settled) group.bytes -= group.rows[i++]!.bytes;
    if (i > 0) group.rows.splice(0, i);
  }

  /** Takes the next request's rows off the front of `group`, skipping rows of settled calls. */
  private cut(group: Group<R, O>): Array<PendingRow<R, O>> {
    const { maxRecords, maxBytes } = this.options;
    const batch: Array<PendingRow<R, O>> = [];
    let bytes = 0;
    let taken = 0;
    for (; taken < group.rows.length && batch.length < maxRecords; taken++) {
      const pending = group.rows[taken]!;
      if (pending.call.settled) {
        group.bytes -= pending.bytes;
        continue;
      }
      if (batch.length > 0 && bytes + pending.bytes > maxBytes) break;
      batch.push(pending);
      bytes += pending.bytes;
      group.bytes -= pending.bytes;
    }
    group.rows.splice(0, taken);
    return batch;
  }

  private dispatch(batch: Array<PendingRow<R, O>>, attempt: number): void {
    this.options.onBatch?.(batch.length, attempt);
    this.inFlightRequests++;
    let sent: Promise<O[]>;
    try {
      sent = this.options.execute(
        batch.map((p) => p.row),
        attempt,
      );
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (results) => {
        this.inFlightRequests--;
        if (!Array.isArray(results) || results.length !== batch.length) {
          const error = new Error(
            `Bug: a request of ${batch.length} rows produced ${Array.isArray(results) ? results.length : typeof results} results`,
          );
          for (const pending of batch) pending.call.fail(error);
          return;
        }
        for (let i = 0; i < batch.length; i++) batch[i]!.call.settleRow(batch[i]!.index, results[i]!);
      },
      (error: unknown) => {
        this.inFlightRequests--;
        if (!(error instanceof RecordError)) {
          for (const pending of batch) pending.call.fail(error);
          return;
        }
        const live = batch.filter((p) => !p.call.settled);
        if (live.length === 1) {
          live[0]!.call.settleRow(live[0]!.index, error);
        } else if (live.length > 1) {
          this.options.onBisect?.(live.length);
          const middle = Math.ceil(live.length / 2);
          this.dispatch(live.slice(0, middle), attempt + 1);
          this.dispatch(live.slice(middle), attempt + 1);
        }
      },
    );
  }
}
