// The fault matrix: one entry per fault an operator meets in their first weeks (issue 10), each
// injected into the `faults` stack instance while a paced producer feeds a TFServingInference
// connector (census model, 3 input partitions, tasks.max=2, errors.tolerance=all, a DLQ).
// Durations are the full ones; --quick shortens the long faults (see each title).
import { freeze, kill, resetModelServer, restart, setModelServerFaults, thaw } from '../stack.js';
import { createTopics } from './topics.js';
import type { CaseContext, FaultCase } from './case-runner.js';

const recover = { kind: 'recover' } as const;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const long = (quick: boolean) => (quick ? 20 : 60);

/** How long the model server is refused (fault k) before the extra worker joins and leaves. */
async function joinAndLeave(ctx: CaseContext): Promise<void> {
  await setModelServerFaults(ctx.settings.stack, { failure_rate: 1, failure_code: 'UNAVAILABLE' });
  try {
    await ctx.sleep(5000); // partitions back off, pause and wait for redelivery
    const joiner = await ctx.addWorker();
    await ctx.waitFor('the joining worker to run tasks', 60_000, async () => {
      const s = await joiner.status(ctx.connectorName);
      return !!s && s.tasks.length > 0 && s.tasks.every((t) => t.state === 'RUNNING');
    });
    await ctx.sleep(ctx.duration(10, 8));
    const exit = await ctx.removeWorker(joiner);
    ctx.check(exit.code === 0, `the leaving worker exited with code ${exit.code} on SIGTERM`);
    await ctx.sleep(3000);
  } finally {
    await resetModelServer(ctx.settings.stack);
  }
}

const brokerFrozen = (
  id: string,
  guarantee: FaultCase['guarantee'],
  workers: number,
  quick: boolean,
): FaultCase => ({
  id,
  title: (q) =>
    `broker frozen (SIGSTOP) ${long(q)} s${q ? ', consumer session timeout 10 s so the freeze outlasts it' : ', longer than the 30 s session timeout'}`,
  guarantee,
  workers,
  quick,
  outcome: recover,
  noDuplicates: guarantee === 'exactly_once',
  // Quick mode freezes for 20 s; a 10 s session timeout keeps it a freeze the group notices.
  connectorOverrides: (settings): Record<string, string> =>
    settings.quick ? { 'consumer.override.session.timeout.ms': '10000' } : {},
  inject: async (ctx) => {
    freeze(ctx.settings.stack, 'kafka');
    try {
      await ctx.sleep(ctx.duration(60, 20));
    } finally {
      thaw(ctx.settings.stack, 'kafka');
    }
  },
});

const brokerKilled = (
  id: string,
  guarantee: FaultCase['guarantee'],
  workers: number,
  quick: boolean,
): FaultCase => ({
  id,
  title: () => 'broker killed (SIGKILL), restarted on the same log dirs',
  guarantee,
  workers,
  quick,
  outcome: recover,
  noDuplicates: guarantee === 'exactly_once',
  inject: async (ctx) => {
    await kill(ctx.settings.stack, 'kafka');
    await restart(ctx.settings.stack, 'kafka');
  },
});

const workerKilled = (
  id: string,
  guarantee: FaultCase['guarantee'],
  workers: number,
  quick: boolean,
): FaultCase => ({
  id,
  title: () => 'worker killed (SIGKILL) under load, restarted',
  guarantee,
  workers,
  quick,
  outcome: recover,
  noDuplicates: guarantee === 'exactly_once',
  inject: async (ctx) => {
    await ctx.restartWorker(ctx.workers[0]!, 'SIGKILL');
  },
});

const workerJoinsAndLeaves = (
  id: string,
  guarantee: FaultCase['guarantee'],
  workers: number,
  quick: boolean,
): FaultCase => ({
  id,
  title: (q) =>
    `model server refuses every call (UNAVAILABLE); meanwhile a worker joins, runs tasks ${q ? 8 : 10} s and leaves`,
  guarantee,
  workers,
  quick,
  outcome: recover,
  noDuplicates: guarantee === 'exactly_once',
  inject: joinAndLeave,
});

export const faultCases: readonly FaultCase[] = [
  brokerFrozen('a', 'at_least_once', 1, true),
  brokerKilled('b', 'at_least_once', 1, false),
  {
    id: 'c',
    title: () => 'model server killed (SIGKILL), restarted',
    guarantee: 'at_least_once',
    workers: 1,
    quick: true,
    outcome: recover,
    noDuplicates: false,
    inject: async (ctx) => {
      await kill(ctx.settings.stack, 'modelServer');
      await ctx.sleep(2000);
      await restart(ctx.settings.stack, 'modelServer');
    },
  },
  {
    id: 'd',
    title: (q) => `model server stalled ${long(q)} s (every Predict held)`,
    guarantee: 'at_least_once',
    workers: 1,
    quick: true,
    outcome: recover,
    noDuplicates: false,
    inject: async (ctx) => {
      const stall = ctx.duration(60, 20);
      await setModelServerFaults(ctx.settings.stack, { stall_seconds: stall / 1000 });
      await ctx.sleep(stall);
      await setModelServerFaults(ctx.settings.stack, { stall_seconds: 0 });
    },
  },
  {
    id: 'e',
    title: (q) => `model server flapping: 50% of calls UNAVAILABLE for ${long(q)} s`,
    guarantee: 'at_least_once',
    workers: 1,
    quick: false,
    outcome: recover,
    noDuplicates: false,
    inject: async (ctx) => {
      await setModelServerFaults(ctx.settings.stack, { failure_rate: 0.5, failure_code: 'UNAVAILABLE' });
      await ctx.sleep(ctx.duration(60, 20));
      await resetModelServer(ctx.settings.stack);
    },
  },
  {
    id: 'f',
    title: (q) => `model server slow: +150 ms per call (about 20x a census batch) for ${q ? 15 : 30} s`,
    guarantee: 'at_least_once',
    workers: 1,
    quick: false,
    outcome: recover,
    noDuplicates: false,
    inject: async (ctx) => {
      await setModelServerFaults(ctx.settings.stack, { latency_ms: 150 });
      await ctx.sleep(ctx.duration(30, 15));
      await resetModelServer(ctx.settings.stack);
    },
  },
  {
    id: 'g',
    title: (q) => `schema registry down when the worker starts, back after ${q ? 10 : 20} s (+ its restart)`,
    guarantee: 'at_least_once',
    workers: 1,
    quick: false,
    outcome: recover,
    noDuplicates: false,
    waitForOutput: false,
    // The producer registered v1 before; it frames records with the id it knows.
    prepare: (ctx) => kill(ctx.settings.stack, 'schemaRegistry'),
    inject: async (ctx) => {
      await ctx.sleep(ctx.duration(20, 10));
      await restart(ctx.settings.stack, 'schemaRegistry');
    },
  },
  {
    id: 'h',
    title: (q) =>
      `schema registry down ${q ? 10 : 20} s (+ its restart) mid-run, as the producer switches to schema v2 (registered just before)`,
    guarantee: 'at_least_once',
    workers: 1,
    quick: false,
    outcome: recover,
    noDuplicates: false,
    inject: async (ctx) => {
      const v2 = await ctx.registerSchema(2);
      await kill(ctx.settings.stack, 'schemaRegistry');
      ctx.producer.useSchema(v2);
      ctx.note(`producer switched to schema id ${v2.id} with the registry down`);
      await ctx.sleep(ctx.duration(20, 10));
      await restart(ctx.settings.stack, 'schemaRegistry');
    },
  },
  workerKilled('i', 'at_least_once', 1, true),
  {
    id: 'j',
    title: () => 'worker stopped (SIGTERM, drain) under load, restarted: no duplicates expected',
    guarantee: 'at_least_once',
    workers: 1,
    quick: true,
    outcome: recover,
    noDuplicates: true,
    inject: async (ctx) => {
      const startedAt = Date.now();
      const exit = await ctx.restartWorker(ctx.workers[0]!, 'SIGTERM');
      ctx.check(
        exit.code === 0,
        `SIGTERM under load: the worker exited with code ${exit.code} (signal ${exit.signal})`,
      );
      ctx.note(`drain took ${seconds(exit.at - startedAt)}`);
    },
  },
  workerJoinsAndLeaves('k', 'at_least_once', 1, true),
  {
    id: 'l1',
    title: () => 'output topic deleted mid-run',
    guarantee: 'at_least_once',
    workers: 1,
    quick: false,
    outcome: { kind: 'recover-or-fail', mentions: (topics) => topics.output },
    noDuplicates: false,
    inject: async (ctx) => {
      await ctx.deleteTopicCleanly(ctx.topics.output);
    },
  },
  {
    id: 'l2',
    title: () => 'a 400 kB record for an output topic with max.message.bytes=300000',
    guarantee: 'at_least_once',
    workers: 1,
    quick: true,
    outcome: recover,
    noDuplicates: false,
    prepare: (ctx) =>
      createTopics(ctx.settings.kafka, [
        {
          topic: ctx.topics.output,
          numPartitions: 3,
          replicationFactor: 1,
          configEntries: [{ name: 'max.message.bytes', value: '300000' }],
        },
      ]),
    inject: async (ctx) => {
      // The model takes any string (unknown countries map to its out-of-vocabulary bucket); the
      // scored record keeps the field, so it cannot fit the output topic. Kafka Connect sends such
      // a record to the DLQ under errors.tolerance=all.
      const id = await ctx.producer.sendOne({ native_country: 'x'.repeat(400_000) });
      ctx.expectDeadLetter(id);
      ctx.note(`sent the oversized record ${id}`);
      await ctx.sleep(3000);
    },
  },
  {
    id: 'l3',
    title: () => 'DLQ topic deleted mid-run and not creatable (its replication factor 3 > 1 broker)',
    guarantee: 'at_least_once',
    workers: 1,
    quick: false,
    // Nothing can fix this but the operator: the task must fail, naming the DLQ topic, and keep
    // the offsets of the records it could not dead-letter uncommitted.
    outcome: { kind: 'recover-or-fail', mentions: (topics) => topics.dlq },
    noDuplicates: false,
    connectorOverrides: () => ({ 'errors.deadletterqueue.topic.replication.factor': '3' }),
    prepare: (ctx) =>
      createTopics(ctx.settings.kafka, [{ topic: ctx.topics.dlq, numPartitions: 1, replicationFactor: 1 }]),
    inject: async (ctx) => {
      await ctx.deleteTopicCleanly(ctx.topics.dlq);
      await ctx.sleep(2000);
    },
  },
  // Exactly-once: two workers (each tasks.max=2) in one group, a read_committed reader.
  brokerFrozen('eos-a', 'exactly_once', 2, false),
  brokerKilled('eos-b', 'exactly_once', 2, false),
  workerKilled('eos-i', 'exactly_once', 2, true),
  workerJoinsAndLeaves('eos-k', 'exactly_once', 2, false),
];

/** Cases selected by `--only a,c,eos-i` (all when undefined) and `--quick` (the quick subset). */
export function selectCases(options: { quick: boolean; only?: readonly string[] }): FaultCase[] {
  if (options.only) {
    const unknown = options.only.filter((id) => !faultCases.some((c) => c.id === id));
    if (unknown.length > 0) {
      throw new Error(
        `unknown fault(s) ${unknown.join(', ')}; known: ${faultCases.map((c) => c.id).join(', ')}`,
      );
    }
    return faultCases.filter((c) => options.only!.includes(c.id));
  }
  return faultCases.filter((c) => !options.quick || c.quick);
}
