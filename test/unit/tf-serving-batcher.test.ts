import { expect } from 'chai';
import { RecordError, RetriableError } from '../../runtime/errors.js';
import { Batcher, type BatcherOptions } from '../../connectors/tf-serving/batcher.js';

/** A manual clock: timers run only when the test advances time. */
class FakeClock {
  private time = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 0;
  readonly now = () => this.time;
  readonly setTimer = (fn: () => void, ms: number) => {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, fn, id });
    return () => {
      this.timers = this.timers.filter((t) => t.id !== id);
    };
  };
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fn();
    }
    this.time = until;
  }
}

interface Row {
  id: number;
  bytes?: number;
  key?: string;
}

function batcher(
  clock: FakeClock,
  execute: BatcherOptions<Row, string>['execute'],
  options: Partial<BatcherOptions<Row, string>> = {},
) {
  const requests: number[][] = [];
  const b = new Batcher<Row, string>({
    maxRecords: 256,
    maxBytes: 1_000_000,
    maxWaitMs: 10,
    sizeOf: (row) => row.bytes ?? 10,
    keyOf: (row) => row.key ?? '',
    execute: (rows, attempt) => {
      requests.push(rows.map((r) => r.id));
      return execute(rows, attempt);
    },
    setTimer: clock.setTimer,
    ...options,
  });
  return { b, requests };
}

const scoreAll: BatcherOptions<Row, string>['execute'] = async (rows) => rows.map((r) => `scored-${r.id}`);
const rows = (from: number, count: number, extra: Partial<Row> = {}): Row[] =>
  Array.from({ length: count }, (_, i) => ({ id: from + i, ...extra }));

describe('TF Serving batcher', () => {
  it('packs rows of concurrent calls into one request and gives each call its results by position', async () => {
    const clock = new FakeClock();
    const { b, requests } = batcher(clock, scoreAll);
    const first = b.submit(rows(0, 3));
    const second = b.submit(rows(100, 2));
    expect(requests).to.deep.equal([]);
    clock.advance(10);
    expect(requests).to.deep.equal([[0, 1, 2, 100, 101]]);
    expect(await first).to.deep.equal(['scored-0', 'scored-1', 'scored-2']);
    expect(await second).to.deep.equal(['scored-100', 'scored-101']);
  });

  it('waits at most batch.max.wait.ms for more rows', async () => {
    const clock = new FakeClock();
    const { b, requests } = batcher(clock, scoreAll, { maxWaitMs: 50 });
    const call = b.submit(rows(0, 1));
    clock.advance(30);
    const later = b.submit(rows(1, 1));
    clock.advance(19);
    expect(requests, 'nothing before the first row waited 50 ms').to.deep.equal([]);
    clock.advance(1);
    expect(requests).to.deep.equal([[0, 1]]);
    expect(await call).to.deep.equal(['scored-0']);
    expect(await later).to.deep.equal(['scored-1']);
  });

  it('sends full requests at once, at most batch.max.records rows each, and the rest after the wait', async () => {
    const clock = new FakeClock();
    const { b, requests } = batcher(clock, scoreAll, { maxRecords: 4 });
    const call = b.submit(rows(0, 10));
    expect(requests).to.deep.equal([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    clock.advance(10);
    expect(requests[2]).to.deep.equal([8, 9]);
    expect(await call).to.deep.equal(rows(0, 10).map((r) => `scored-${r.id}`));
  });

  it('closes a request at batch.max.bytes, but sends a single larger row alone', async () => {
    const clock = new FakeClock();
    const { b, requests } = batcher(clock, scoreAll, { maxBytes: 100 });
    const call = b.submit([
      { id: 0, bytes: 60 },
      { id: 1, bytes: 60 },
      { id: 2, bytes: 500 },
      { id: 3, bytes: 10 },
    ]);
    clock.advance(10);
    expect(requests).to.deep.equal([[0], [1], [2], [3]]);
    expect(await call).to.have.length(4);
  });

  it('never mixes rows of different shape keys in one request', async () => {
    const clock = new FakeClock();
    const { b, requests } = batcher(clock, scoreAll);
    const call = b.submit([
      { id: 0, key: '3' },
      { id: 1, key: '4' },
      { id: 2, key: '3' },
    ]);
    clock.advance(10);
    expect(requests).to.have.deep.members([[0, 2], [1]]);
    expect(await call).to.deep.equal(['scored-0', 'scored-1', 'scored-2']);
  });

  it('bisects a refused request until exactly the poison rows among 256 are isolated; the others are scored', async () => {
    const clock = new FakeClock();
    const poison = new Set([17, 200]);
    const execute: BatcherOptions<Row, string>['execute'] = async (batch, attempt) => {
      const bad = batch.filter((r) => poison.has(r.id));
      if (bad.length > 0) {
        throw new RecordError(
          'MODEL_INVALID_ARGUMENT',
          `rows ${bad.map((r) => r.id).join(',')} of ${batch.length}`,
          {
            context: { attempts: attempt },
          },
        );
      }
      return batch.map((r) => `scored-${r.id}`);
    };
    const bisections: number[] = [];
    const { b, requests } = batcher(clock, execute, { onBisect: (n) => bisections.push(n) });
    const results = await b.submit(rows(0, 256));
    const failed = results.map((r, i) => (r instanceof RecordError ? i : -1)).filter((i) => i >= 0);
    expect(failed).to.deep.equal([17, 200]);
    const error = results[17] as RecordError;
    expect(error.message, 'the error of its own one-row request').to.equal('rows 17 of 1');
    expect(error.context.attempts).to.equal(9);
    expect(results.filter((r) => typeof r === 'string' && r.startsWith('scored-'))).to.have.length(254);
    expect(results[18]).to.equal('scored-18');
    // 1 request of 256, then 2 halves per level for each of the two poisoned halves' paths.
    expect(requests.length).to.be.at.most(1 + 2 * 8 * 2);
    expect(requests.filter((r) => r.length === 1).map((r) => r[0])).to.include.members([17, 200]);
    expect(bisections[0]).to.equal(256);
  });

  it('rejects every call with a row in a request that failed transiently, and drops their other rows', async () => {
    const clock = new FakeClock();
    let fail = true;
    const execute: BatcherOptions<Row, string>['execute'] = async (batch) => {
      if (fail) throw new RetriableError('MODEL_UNAVAILABLE', 'down');
      return batch.map((r) => `scored-${r.id}`);
    };
    const { b, requests } = batcher(clock, execute, { maxRecords: 2 });
    const a = b.submit(rows(0, 3)); // [0,1] goes at once, [2] waits
    const rejected = await a.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(rejected).to.be.instanceOf(RetriableError);
    fail = false;
    const other = b.submit(rows(10, 1));
    clock.advance(10);
    expect(await other).to.deep.equal(['scored-10']);
    expect(requests, 'row 2 of the rejected call is never sent').to.deep.equal([[0, 1], [10]]);
  });

  it('holds rows while the rate limiter has no room, and sends them when pumped', async () => {
    const clock = new FakeClock();
    let room = false;
    const { b, requests } = batcher(clock, scoreAll, { canDispatch: () => room, maxWaitMs: 0 });
    const call = b.submit(rows(0, 2));
    expect(requests).to.deep.equal([]);
    expect(b.pendingRows).to.equal(2);
    room = true;
    b.pump();
    expect(requests).to.deep.equal([[0, 1]]);
    expect(await call).to.have.length(2);
  });

  it('rejects waiting calls when closed or when their signal aborts', async () => {
    const clock = new FakeClock();
    const { b, requests } = batcher(clock, scoreAll);
    const controller = new AbortController();
    const aborted = b.submit(rows(0, 1), controller.signal);
    const closed = b.submit(rows(1, 1));
    controller.abort(new RetriableError('MODEL_UNAVAILABLE', 'stopping'));
    b.close(new RetriableError('MODEL_UNAVAILABLE', 'closed'));
    await Promise.all([
      aborted.then(
        () => expect.fail('should reject'),
        (e: Error) => expect(e.message).to.equal('stopping'),
      ),
      closed.then(
        () => expect.fail('should reject'),
        (e: Error) => expect(e.message).to.equal('closed'),
      ),
    ]);
    clock.advance(100);
    expect(requests).to.deep.equal([]);
    await b.submit(rows(2, 1)).then(
      () => expect.fail('a closed batcher takes no rows'),
      (e: Error) => expect(e.message).to.equal('closed'),
    );
  });
});
