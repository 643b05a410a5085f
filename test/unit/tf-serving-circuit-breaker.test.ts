import { mock } from 'node:test';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { RetriableError } from '../../runtime/errors.js';
import { ModelCircuitBreaker, type BreakerState } from '../../connectors/tf-serving/circuit-breaker.js';
import { InferenceMetrics, METRIC_NAMES } from '../../connectors/tf-serving/metrics.js';

/** A failure the status policy would retry (it counts against the breaker), or not. */
class CallFailure extends Error {
  constructor(readonly transient: boolean) {
    super(transient ? 'UNAVAILABLE' : 'INVALID_ARGUMENT');
  }
}

const RESET_MS = 10_000;

function breaker(states: BreakerState[] = []) {
  return new ModelCircuitBreaker({
    enabled: true,
    errorThresholdPercentage: 50,
    volumeThreshold: 4,
    resetTimeoutMs: RESET_MS,
    rollingWindowMs: 20_000,
    isFailure: (error) => error instanceof CallFailure && error.transient,
    now: Date.now,
    describeTarget: '127.0.0.1:8500 (model "census")',
    errorContext: { 'model.name': 'census' },
    onStateChange: (state) => states.push(state),
  });
}

const failWith = (transient: boolean) => () => Promise.reject(new CallFailure(transient));
const succeed = () => Promise.resolve('ok');

async function outcome(promise: Promise<unknown>): Promise<unknown> {
  try {
    return await promise;
  } catch (error) {
    return error;
  }
}

describe('TF Serving circuit breaker', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  it('opens after transient failures pass the threshold', async () => {
    const states: BreakerState[] = [];
    const b = breaker(states);
    for (let i = 0; i < 3; i++) await outcome(b.fire(failWith(true)));
    expect(b.state, 'below the volume threshold').to.equal('closed');
    await outcome(b.fire(failWith(true)));
    expect(b.state).to.equal('open');
    expect(states).to.deep.equal(['open']);
    b.shutdown();
  });

  it('stays closed when calls fail with refused records or fatal statuses', async () => {
    const b = breaker();
    for (let i = 0; i < 20; i++) expect(await outcome(b.fire(failWith(false)))).to.be.instanceOf(CallFailure);
    expect(b.state).to.equal('closed');
    b.shutdown();
  });

  it('while open, fails fast with BREAKER_OPEN and the time left until half-open, without calling the server', async () => {
    const b = breaker();
    for (let i = 0; i < 4; i++) await outcome(b.fire(failWith(true)));
    mock.timers.tick(3_000);
    let called = false;
    const error = await outcome(
      b.fire(() => {
        called = true;
        return succeed();
      }),
    );
    expect(called).to.equal(false);
    expect(error).to.be.instanceOf(RetriableError);
    expect((error as RetriableError).code).to.equal('BREAKER_OPEN');
    expect((error as RetriableError).retryAfterMs).to.equal(7_000);
    expect((error as RetriableError).message).to.contain('127.0.0.1:8500');
    expect((error as RetriableError).context).to.deep.equal({ 'model.name': 'census' });
    expect(() => b.throwIfOpen()).to.throw(RetriableError, /half-opens in 7000 ms/);
    expect(b.shortCircuited).to.equal(1);
    b.shutdown();
  });

  it('lets one probe through after the reset timeout; its success closes the breaker', async () => {
    const states: BreakerState[] = [];
    const b = breaker(states);
    for (let i = 0; i < 4; i++) await outcome(b.fire(failWith(true)));
    mock.timers.tick(RESET_MS);
    expect(b.state).to.equal('half-open');
    let release!: () => void;
    const probe = b.fire(() => new Promise<string>((resolve) => (release = () => resolve('probe ok'))));
    const second = await outcome(b.fire(succeed));
    expect((second as RetriableError).code, 'only one probe at a time').to.equal('BREAKER_OPEN');
    // A call refused while the probe decides asks for a short wait, so the runtime does not grow
    // the partition's redelivery backoff while the server is already back.
    expect((second as RetriableError).retryAfterMs).to.equal(1_000);
    release();
    expect(await probe).to.equal('probe ok');
    expect(b.state).to.equal('closed');
    expect(await b.fire(succeed)).to.equal('ok');
    expect(states).to.deep.equal(['open', 'half-open', 'closed']);
    b.shutdown();
  });

  it('opens again for a full period when the probe fails', async () => {
    const b = breaker();
    for (let i = 0; i < 4; i++) await outcome(b.fire(failWith(true)));
    mock.timers.tick(RESET_MS);
    await outcome(b.fire(failWith(true)));
    expect(b.state).to.equal('open');
    expect(b.retryAfterMs()).to.equal(RESET_MS);
    b.shutdown();
  });

  it('exports its state as the breaker gauge: 0 closed, 1 half-open, 2 open', async () => {
    const registry = new Registry();
    const metrics = new InferenceMetrics(registry, { connector: 'c', task: '0' }, 'census');
    const b = new ModelCircuitBreaker({
      enabled: true,
      errorThresholdPercentage: 50,
      volumeThreshold: 2,
      resetTimeoutMs: RESET_MS,
      rollingWindowMs: 20_000,
      isFailure: () => true,
      now: Date.now,
      describeTarget: 't',
      onStateChange: (state) => metrics.breaker(state),
    });
    const gauge = async () =>
      (await registry.getSingleMetric(METRIC_NAMES.breakerState)!.get()).values.find(
        (v) => v.labels.connector === 'c',
      )?.value;
    expect(await gauge()).to.equal(0);
    for (let i = 0; i < 2; i++) await outcome(b.fire(failWith(true)));
    expect(await gauge()).to.equal(2);
    mock.timers.tick(RESET_MS);
    expect(await gauge()).to.equal(1);
    await b.fire(succeed);
    expect(await gauge()).to.equal(0);
    b.shutdown();
  });
});
