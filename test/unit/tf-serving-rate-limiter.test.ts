import { mock } from 'node:test';
import { expect } from 'chai';
import { RetriableError } from '../../runtime/errors.js';
import { intervalFor, RateLimiter } from '../../connectors/tf-serving/rate-limiter.js';

const settle = async (rounds = 5) => {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
};

describe('TF Serving rate limiter', () => {
  afterEach(() => mock.timers.reset());

  it('never starts more than the configured requests in any one-second window', async () => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 5_000_000 });
    const limiter = new RateLimiter({ requestsPerSecond: 5, concurrency: 100, queueMaxRequests: 100 });
    const starts: number[] = [];
    const done = Array.from({ length: 17 }, () =>
      limiter.run(async () => {
        starts.push(Date.now());
      }),
    );
    for (let ms = 0; ms < 5_000 && starts.length < 17; ms += 10) {
      await settle();
      mock.timers.tick(10);
    }
    await Promise.all(done);
    expect(starts).to.have.length(17);
    const most = Math.max(...starts.map((t) => starts.filter((s) => s >= t && s < t + 1000).length));
    expect(most).to.equal(5);
    expect(starts[16]! - starts[0]!, '17 requests at 5/s take at least 3 s').to.be.at.least(3000);
    // Jitter between sending and arriving must not push a sixth request into a second of the
    // server's clock: consecutive bursts start more than one second apart.
    expect(starts[5]! - starts[0]!).to.be.at.least(1040);
  });

  it('has no room once its bounded queue is full, and makes callers wait until a request starts', async () => {
    const limiter = new RateLimiter({ requestsPerSecond: 0, concurrency: 1, queueMaxRequests: 2 });
    const releases: Array<() => void> = [];
    const slow = () => new Promise<void>((resolve) => releases.push(resolve));
    const requests = [limiter.run(slow), limiter.run(slow), limiter.run(slow)];
    await settle();
    expect(limiter.inFlight).to.equal(1);
    expect(limiter.queued).to.equal(2);
    expect(limiter.hasRoom()).to.equal(false);

    let admitted = false;
    const waiting = limiter.waitForRoom(new AbortController().signal).then(() => (admitted = true));
    await settle(20);
    expect(admitted, 'backpressure: the caller waits while the queue is full').to.equal(false);
    releases.shift()!();
    await waiting;
    expect(admitted).to.equal(true);
    expect(limiter.queued).to.equal(1);
    while (releases.length > 0 || limiter.inFlight > 0) {
      releases.shift()?.();
      await settle();
    }
    await Promise.all(requests);
  });

  it('stops a waiting caller with a RetriableError when the task stops', async () => {
    const limiter = new RateLimiter({ requestsPerSecond: 0, concurrency: 1, queueMaxRequests: 1 });
    let release!: () => void;
    void limiter.run(() => new Promise<void>((resolve) => (release = resolve)));
    void limiter.run(async () => undefined);
    await settle();
    const controller = new AbortController();
    const waiting = limiter.waitForRoom(controller.signal);
    controller.abort();
    const error = await waiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(RetriableError);
    release();
  });

  it('reports queue depth and in-flight requests as they change', async () => {
    const seen: Array<{ queued: number; inFlight: number }> = [];
    const limiter = new RateLimiter({
      requestsPerSecond: 0,
      concurrency: 1,
      queueMaxRequests: 5,
      onChange: (state) => seen.push(state),
    });
    let release!: () => void;
    const first = limiter.run(() => new Promise<void>((resolve) => (release = resolve)));
    const second = limiter.run(async () => undefined);
    await settle();
    expect(seen).to.deep.include({ queued: 1, inFlight: 1 });
    release();
    await Promise.all([first, second]);
    await settle();
    expect(seen[seen.length - 1]).to.deep.equal({ queued: 0, inFlight: 0 });
  });

  it('follows a changed concurrency (the adaptive limit): more start at once when raised, none until below it when lowered, and the queue bound holds', async () => {
    const limiter = new RateLimiter({ requestsPerSecond: 0, concurrency: 4, queueMaxRequests: 3 });
    const releases: Array<() => void> = [];
    const slow = () => new Promise<void>((resolve) => releases.push(resolve));
    const requests = Array.from({ length: 7 }, () => limiter.run(slow));
    await settle();
    expect([limiter.inFlight, limiter.queued, limiter.hasRoom()]).to.deep.equal([4, 3, false]);

    limiter.setConcurrency(2);
    expect(limiter.concurrency).to.equal(2);
    releases.shift()!();
    await settle();
    expect(limiter.inFlight, 'running requests finish; none starts while 2 or more run').to.equal(3);
    expect(limiter.queued).to.equal(3);
    releases.shift()!();
    await settle();
    expect([limiter.inFlight, limiter.queued]).to.deep.equal([2, 3]);
    expect(limiter.hasRoom(), 'still bounded: a lower limit is backpressure, not a bigger queue').to.equal(
      false,
    );

    limiter.setConcurrency(5);
    await settle();
    expect([limiter.inFlight, limiter.queued, limiter.hasRoom()]).to.deep.equal([5, 0, true]);
    expect(() => limiter.setConcurrency(0)).to.throw(RangeError);
    while (releases.length > 0) {
      releases.shift()!();
      await settle();
    }
    await Promise.all(requests);
  });

  it('widens every window by a margin and turns fractional rates into one request per period', () => {
    expect(intervalFor(0)).to.equal(undefined);
    expect(intervalFor(20)).to.deep.equal({ intervalCap: 20, interval: 1050 });
    expect(intervalFor(0.5)).to.deep.equal({ intervalCap: 1, interval: 2050 });
    expect(intervalFor(2.5)).to.deep.equal({ intervalCap: 1, interval: 450 });
  });
});
