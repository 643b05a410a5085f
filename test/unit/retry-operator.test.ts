import { expect } from 'chai';
import { FatalError, RecordError, RetriableError } from '../../runtime/errors.js';
import { retryTransient, type RetryOptions } from '../../runtime/retry-operator.js';

/** A clock whose sleeps return at once after moving time forward, recording each wait. */
function fakeTime(options: { abortAfterSleeps?: number } = {}) {
  let time = 1_000_000;
  const sleeps: number[] = [];
  const controller = new AbortController();
  const sleep = async (ms: number, signal: AbortSignal): Promise<boolean> => {
    if (signal.aborted) return false;
    sleeps.push(ms);
    time += ms;
    if (options.abortAfterSleeps !== undefined && sleeps.length >= options.abortAfterSleeps) {
      controller.abort();
      return false;
    }
    return true;
  };
  return { now: () => time, sleep, sleeps, controller, signal: controller.signal };
}

function options(clock: ReturnType<typeof fakeTime>, overrides: Partial<RetryOptions> = {}): RetryOptions {
  return {
    retryTimeoutMs: -1,
    maxDelayMs: 60_000,
    now: clock.now,
    sleep: clock.sleep,
    signal: clock.signal,
    ...overrides,
  };
}

/** An attempt that throws `errors[n - 1]` for attempt n while there is one, then returns n. */
function failing(...errors: Error[]) {
  const calls: number[] = [];
  const attempt = async (n: number) => {
    calls.push(n);
    const error = errors[n - 1];
    if (error) throw error;
    return `done after ${n}`;
  };
  return { attempt, calls };
}

const transient = (retryAfterMs?: number) =>
  new RetriableError('KAFKA_PRODUCE_FAILED', 'broker not available', { retryAfterMs });

describe('the retry operator', () => {
  it('returns the first success without waiting', async () => {
    const clock = fakeTime();
    const result = await retryTransient(failing().attempt, options(clock));
    expect(result).to.deep.equal({ kind: 'ok', value: 'done after 1', attempts: 1 });
    expect(clock.sleeps).to.deep.equal([]);
  });

  it('waits 300, 600, 1200 ... ms between attempts, capped at errors.retry.delay.max.ms', async () => {
    const clock = fakeTime();
    const { attempt, calls } = failing(...Array.from({ length: 7 }, () => transient()));
    const retries: Array<[number, number]> = [];
    const result = await retryTransient(
      attempt,
      options(clock, { maxDelayMs: 10_000, onRetry: (_e, n, delay) => retries.push([n, delay]) }),
    );
    expect(result).to.deep.equal({ kind: 'ok', value: 'done after 8', attempts: 8 });
    expect(clock.sleeps).to.deep.equal([300, 600, 1200, 2400, 4800, 9600, 10_000]);
    expect(retries.map(([n]) => n)).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
    expect(retries.map(([, delay]) => delay)).to.deep.equal(clock.sleeps);
    expect(calls).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("waits an error's retryAfterMs when it is longer than the backoff, and the backoff otherwise", async () => {
    const clock = fakeTime();
    const { attempt } = failing(transient(5_000), transient(100), transient());
    await retryTransient(attempt, options(clock));
    expect(clock.sleeps).to.deep.equal([5_000, 600, 1200]);
  });

  it('gives up, without waiting, when the next wait would end after errors.retry.timeout', async () => {
    const clock = fakeTime();
    const last = transient();
    // 300 + 600 + 1200 = 2100 ms spent; the next wait (2400 ms) would end at 4500 > 4000.
    const { attempt, calls } = failing(transient(), transient(), transient(), last, transient());
    const result = await retryTransient(attempt, options(clock, { retryTimeoutMs: 4_000 }));
    expect(result).to.deep.equal({ kind: 'gave-up', error: last, attempts: 4, nextDelayMs: 2400 });
    expect(clock.sleeps).to.deep.equal([300, 600, 1200]);
    expect(calls).to.deep.equal([1, 2, 3, 4]);
  });

  it('counts the time the attempts themselves take against errors.retry.timeout', async () => {
    const clock = fakeTime();
    let attempts = 0;
    const slow = async () => {
      attempts += 1;
      await clock.sleep(1_000, new AbortController().signal); // each attempt takes 1 s
      throw transient();
    };
    // t=1000 fail, wait 300 -> 2300 fail; the next wait of 600 would end at 2900 > 2500.
    const result = await retryTransient(slow, options(clock, { retryTimeoutMs: 2_500 }));
    expect(result.kind).to.equal('gave-up');
    expect(attempts).to.equal(2);
  });

  it('with errors.retry.timeout=0 gives up after the first failure, even with a zero delay', async () => {
    const clock = fakeTime();
    const first = transient();
    const { attempt, calls } = failing(first, transient());
    const result = await retryTransient(attempt, options(clock, { retryTimeoutMs: 0, maxDelayMs: 0 }));
    expect(result).to.deep.equal({ kind: 'gave-up', error: first, attempts: 1, nextDelayMs: 0 });
    expect(calls).to.deep.equal([1]);
    expect(clock.sleeps).to.deep.equal([]);
  });

  it('with errors.retry.timeout=-1 keeps retrying at the capped delay until the work succeeds', async () => {
    const clock = fakeTime();
    const { attempt } = failing(...Array.from({ length: 200 }, () => transient()));
    const result = await retryTransient(attempt, options(clock, { retryTimeoutMs: -1, maxDelayMs: 60_000 }));
    expect(result).to.deep.include({ kind: 'ok', attempts: 201 });
    expect(clock.sleeps.slice(-3)).to.deep.equal([60_000, 60_000, 60_000]);
  });

  it('with errors.retry.timeout=-1 ends with "stopped" when the task stops while it waits', async () => {
    const clock = fakeTime({ abortAfterSleeps: 25 });
    const attempt = async (): Promise<never> => {
      throw transient();
    };
    const result = await retryTransient(attempt, options(clock, { retryTimeoutMs: -1 }));
    expect(result).to.deep.equal({ kind: 'stopped' });
    expect(clock.sleeps).to.have.length(25);
  });

  it('does not start another attempt once stopped', async () => {
    const clock = fakeTime({ abortAfterSleeps: 1 });
    const { attempt, calls } = failing(transient(), transient());
    const result = await retryTransient(attempt, options(clock));
    expect(result).to.deep.equal({ kind: 'stopped' });
    expect(calls).to.deep.equal([1]);
  });

  it('calls whileWaiting every tick of a long wait, and ignores its failures', async () => {
    const clock = fakeTime();
    const ticks: number[] = [];
    const whileWaiting = async () => {
      ticks.push(clock.now());
      throw new Error('heartbeat failed: rebalance in progress');
    };
    const start = clock.now();
    const { attempt } = failing(transient(5_000));
    const result = await retryTransient(attempt, options(clock, { whileWaiting, tickMs: 2_000 }));
    expect(result.kind).to.equal('ok');
    // A 5 s wait in slices of 2 s: called at 2 s and 4 s; the last slice ends the wait.
    expect(clock.sleeps).to.deep.equal([2_000, 2_000, 1_000]);
    expect(ticks.map((t) => t - start)).to.deep.equal([2_000, 4_000]);
  });

  it('ends a sliced wait as soon as the task stops', async () => {
    const clock = fakeTime({ abortAfterSleeps: 2 });
    let ticks = 0;
    const { attempt, calls } = failing(transient(10_000));
    const result = await retryTransient(
      attempt,
      options(clock, { whileWaiting: async () => void ticks++, tickMs: 2_000 }),
    );
    expect(result).to.deep.equal({ kind: 'stopped' });
    expect(ticks).to.equal(1);
    expect(calls).to.deep.equal([1]);
  });

  it('rethrows bad-record and fatal errors unchanged, at once', async () => {
    for (const error of [
      new RecordError('AVRO_ENCODE_FAILED', 'does not fit'),
      new FatalError('SCHEMA_INCOMPATIBLE', 'refused'),
      new TypeError('a bug'),
    ]) {
      const clock = fakeTime();
      const { attempt, calls } = failing(transient(), error);
      let thrown: unknown;
      try {
        await retryTransient(attempt, options(clock));
      } catch (e) {
        thrown = e;
      }
      expect(thrown).to.equal(error);
      expect(calls).to.deep.equal([1, 2]);
      expect(clock.sleeps).to.deep.equal([300]);
    }
  });
});
