import { expect } from 'chai';
import {
  AdaptiveLimit,
  loadSignalOf,
  SharedAdaptiveLimits,
  type AdaptiveLimitOptions,
  type Sample,
} from '../../connectors/tf-serving/adaptive-limit.js';

/** A fake clock: answers take exactly the ms the test advances it by. */
function limitWith(options: Partial<AdaptiveLimitOptions> = {}) {
  const clock = { now: 1_000_000 };
  const limit = new AdaptiveLimit({
    min: 1,
    max: 64,
    initial: 4,
    slowThresholdMs: 2500,
    now: () => clock.now,
    ...options,
  });
  return { limit, clock };
}

/**
 * One round trip at full use: sends `limit` requests at once, advances the clock by `rttMs`, then
 * answers them all with `outcome`. Returns the limit after the round.
 */
function roundTrip(
  { limit, clock }: ReturnType<typeof limitWith>,
  outcome: 'ok' | 'overload' | 'timeout' = 'ok',
  rttMs = 20,
): number {
  const samples: Sample[] = [];
  const n = limit.limit;
  for (let i = 0; i < n; i++) samples.push(limit.sent());
  clock.now += rttMs;
  for (const sample of samples) limit.answered(sample, outcome);
  return limit.limit;
}

describe('adaptive in-flight limit (AIMD)', () => {
  it('grows by about one request per round trip while fully used and answered fast', () => {
    const subject = limitWith();
    const limits = Array.from({ length: 20 }, () => roundTrip(subject));
    for (let i = 1; i < limits.length; i++) expect(limits[i]).to.be.at.least(limits[i - 1]!);
    // Each round of `limit` answers adds limit x 1/limit ~ 1 (a little less as the limit grows within the round).
    expect(limits[0]).to.equal(4);
    expect(limits[19]).to.be.within(20, 24);
    expect(subject.limit.inFlight).to.equal(0);
  });

  it('on overload answers, caps the limit below the in-flight count the server refused, and decreases once per window', () => {
    const subject = limitWith({ initial: 20 });
    const { limit, clock } = subject;
    // 20 sent at once; the server holds 12 and answers the 13th and later "queue full".
    const samples = Array.from({ length: 20 }, () => limit.sent());
    clock.now += 20;
    samples.forEach((s, i) => limit.answered(s, i < 12 ? 'ok' : 'overload'));
    expect(limit.overloadAnswers).to.equal(8);
    expect(limit.ceiling).to.equal(12);
    expect(limit.limit).to.equal(12);
    // Fast answers at full use do not grow it past the ceiling.
    for (let i = 0; i < 10; i++) roundTrip(subject, 'ok', 20);
    expect(limit.limit).to.equal(12);

    // Deadlines (no ceiling: they say "slow", not "how many"): one decrease per window of requests.
    expect(roundTrip(subject, 'timeout')).to.equal(10); // 12 x 0.9 = 10.8
    expect(roundTrip(subject, 'timeout')).to.equal(9); // 10.8 x 0.9 = 9.72
  });

  it('probes above the ceiling after a quiet time, doubling the step while probes succeed', () => {
    const subject = limitWith({ initial: 10, ceilingProbeMs: 5000 });
    const { limit } = subject;
    const samples = Array.from({ length: 10 }, () => limit.sent());
    samples.forEach((s, i) => limit.answered(s, i < 8 ? 'ok' : 'overload'));
    expect([limit.ceiling, limit.limit]).to.deep.equal([8, 8]);
    const ceilings: number[] = [];
    for (let second = 1; second <= 20; second++) {
      roundTrip(subject, 'ok', 1000);
      ceilings.push(limit.ceiling);
    }
    // +1 after 5 s, +2 after 10 s, +4 after 15 s, +8 after 20 s.
    expect([ceilings[3], ceilings[4], ceilings[9], ceilings[14], ceilings[19]]).to.deep.equal([
      8, 9, 11, 15, 23,
    ]);
    // An overload answer brings the step back to 1.
    const next = Array.from({ length: limit.limit + 1 }, () => limit.sent());
    next.forEach((s, i) => limit.answered(s, i < next.length - 1 ? 'ok' : 'overload'));
    const after = limit.ceiling;
    for (let second = 1; second <= 5; second++) roundTrip(subject, 'ok', 1000);
    expect(limit.ceiling).to.equal(after + 1);
  });

  it("falls to the minimum when the server refuses even a lone request (it is full with others' work)", () => {
    const subject = limitWith({ initial: 20, min: 2 });
    const lone = subject.limit.sent();
    subject.limit.answered(lone, 'overload');
    expect([subject.limit.ceiling, subject.limit.limit]).to.deep.equal([2, 2]);
  });

  it('treats a deadline and an answer slower than the threshold as overload, without counting them as overload answers', () => {
    const subject = limitWith({ initial: 10, slowThresholdMs: 100 });
    expect(roundTrip(subject, 'ok', 101)).to.equal(9);
    expect(roundTrip(subject, 'timeout')).to.equal(8); // 9 x 0.9 = 8.1
    expect(subject.limit.overloadAnswers).to.equal(0);
    expect(roundTrip(subject, 'ok', 100), 'at the threshold is not slow').to.be.at.least(8);
  });

  it('ignores failures that say nothing about load', () => {
    const subject = limitWith({ initial: 10 });
    const sample = subject.limit.sent();
    subject.limit.answered(sample, 'ignore');
    expect(subject.limit.limit).to.equal(10);
    expect(subject.limit.inFlight).to.equal(0);
    expect(loadSignalOf('INVALID_ARGUMENT')).to.equal('ignore');
    expect(loadSignalOf('UNAVAILABLE')).to.equal('overload');
    expect(loadSignalOf('RESOURCE_EXHAUSTED')).to.equal('overload');
    expect(loadSignalOf('DEADLINE_EXCEEDED')).to.equal('timeout');
  });

  it('stays within its bounds', () => {
    const grow = limitWith({ min: 2, max: 8 });
    for (let i = 0; i < 50; i++) roundTrip(grow);
    expect(grow.limit.limit).to.equal(8);
    for (let i = 0; i < 50; i++) roundTrip(grow, 'overload');
    expect(grow.limit.limit).to.equal(2);
    expect(limitWith({ min: 5, max: 8, initial: 4 }).limit.limit, 'initial clamped up').to.equal(5);
    expect(limitWith({ min: 1, max: 3, initial: 4 }).limit.limit, 'initial clamped down').to.equal(3);
    expect(() => limitWith({ min: 9, max: 8 })).to.throw(RangeError);
  });

  it('does not grow while less than half of the limit is in use (an idle server does not inflate it)', () => {
    const { limit, clock } = limitWith({ initial: 10 });
    for (let i = 0; i < 1000; i++) {
      // Four at a time: 4 x 2 < 10.
      const samples = [limit.sent(), limit.sent(), limit.sent(), limit.sent()];
      clock.now += 5;
      for (const s of samples) limit.answered(s, 'ok');
    }
    expect(limit.limit).to.equal(10);
    // Half in use is enough: five at a time grows it.
    const five = Array.from({ length: 5 }, () => limit.sent());
    for (const s of five) limit.answered(s, 'ok');
    expect(limit.limit).to.be.above(9);
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 5 }, () => limit.sent());
      for (const s of batch) limit.answered(s, 'ok');
    }
    expect(limit.limit).to.equal(11);
  });

  it('measures a call from sending to answer and classifies its failure', async () => {
    const { limit, clock } = limitWith({ initial: 2, slowThresholdMs: 50 });
    const changes: number[] = [];
    limit.onChange((l) => changes.push(l));
    const a = limit.measure(
      async () => {
        expect(limit.inFlight).to.equal(1);
        clock.now += 60;
        throw new Error('UNAVAILABLE: queue full');
      },
      () => 'overload',
    );
    const error = await a.then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).to.equal('UNAVAILABLE: queue full');
    expect(limit.limit).to.equal(1);
    expect(changes).to.deep.equal([1]);
    expect(
      await limit.measure(
        async () => 'scored',
        () => 'ignore',
      ),
    ).to.equal('scored');
    expect(limit.inFlight).to.equal(0);
  });
});

describe('adaptive limits shared per target', () => {
  const options = (now: () => number): AdaptiveLimitOptions => ({
    min: 1,
    max: 64,
    initial: 5,
    slowThresholdMs: 1000,
    now,
  });

  it('is shared by the tasks calling the same target, split between them, and released after both stop', () => {
    const limits = new SharedAdaptiveLimits();
    const now = () => 0;
    const first = limits.acquire('["127.0.0.1:8500","null"]', options(now));
    const firstShares: number[] = [];
    first.onShareChange((s) => firstShares.push(s));
    expect(first.share()).to.equal(5);
    const second = limits.acquire('["127.0.0.1:8500","null"]', { ...options(now), initial: 40 });
    expect(second.limit).to.equal(first.limit);
    expect(limits.size).to.equal(1);
    expect([first.share(), second.share()]).to.deep.equal([3, 2]);
    expect(firstShares).to.deep.equal([3]);

    // An overload seen by the second task shrinks the first task's share too: the 5th of 5 out
    // was refused, so the ceiling is 4 (and 5 x 0.9 = 4.5).
    const samples = Array.from({ length: 5 }, () => second.limit.sent());
    second.limit.answered(samples[4]!, 'overload');
    for (const s of samples.slice(0, 4)) second.limit.answered(s, 'ignore');
    expect(first.limit.limit).to.equal(4);
    expect([first.share(), second.share()]).to.deep.equal([2, 2]);

    expect(first.release()).to.equal(false);
    expect(first.release(), 'idempotent').to.equal(false);
    expect(second.share(), 'the remaining task gets the whole limit').to.equal(4);
    expect(limits.size).to.equal(1);
    expect(second.release(), 'the last release drops the limit').to.equal(true);
    expect(limits.size).to.equal(0);

    const again = limits.acquire('["127.0.0.1:8500","null"]', options(now));
    expect(again.limit).to.not.equal(first.limit);
    expect(again.limit.limit, 'a new limit starts over').to.equal(5);
  });

  it('keeps separate limits for other targets and models, and gives every task at least one slot', () => {
    const limits = new SharedAdaptiveLimits();
    const now = () => 0;
    const a = limits.acquire('["127.0.0.1:8500","null"]', { ...options(now), initial: 1 });
    const b = limits.acquire('["127.0.0.1:8500","census"]', options(now));
    const c = limits.acquire('["127.0.0.1:8500","null"]', { ...options(now), initial: 1 });
    expect(a.limit).to.not.equal(b.limit);
    expect(limits.size).to.equal(2);
    expect([a.share(), c.share()]).to.deep.equal([1, 1]);
    a.release();
    b.release();
    c.release();
    expect(limits.size).to.equal(0);
  });
});
