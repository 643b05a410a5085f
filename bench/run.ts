// `npm run bench`: the runtime and the TFServingInference connector against a plain kafkajs
// consume -> produce loop, on the real local stack (started if it is not running; never stopped).
//
//   npm run bench -- [--quick] [--json] [--profile] [--only a,b,c,...] [--batch-sizes 1,64,256]
//
// Scenarios (census records, Avro, as bench/lib.ts writes them; every input topic has the same
// partitions and record shape):
//   a  plain kafkajs consume -> produce of the same records (the client stack's ceiling)
//   b  the runtime's PassThrough processor (Avro decode + encode, no model)
//   c  TFServingInference, `null` model (age -> score), at each batch.max.records
//   d  the seed project's pattern: one Predict per record, one in flight
//   e  TFServingInference, `census` model, at the best batch size of c
//   f  end-to-end latency of c (best batch size) at 25%, 50%, 75% of its own maximum rate
//   g  a full backlog while the model server stalls, then recovers: memory, nothing lost
//   r  e over TF Serving's REST API (tfserving.transport=rest), same model server: e and r side by side
//
// The pipeline under test always runs as a child process (bench/process-under-test.ts). Each of
// a-e drains a backlog (records/s: the steady state, from the outputs' broker append times), and
// its last run then takes a paced probe at 50% of that rate for the end-to-end latency. Numbers
// are reported, not asserted: the machine is shared and noisy, so compare ratios from one run.
// bench/README.md explains every number.
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError } from 'commander';
import { up } from '../dev/stack.js';
import { silenceKafkajsTimerWarnings } from '../runtime/node-warnings.js';
import { adaptiveConcurrency, renderAdaptiveTable, type AdaptiveResult } from './adaptive.js';
import { renderChart } from './chart.js';
import { checkRestTransport, restTransportKeys } from './transports.js';
import { formatTopSelfTime, monotonicUs, topSelfTime } from './cpu-profile.js';
import { createTopic, endOffsetTotal, fillCensusTopic, median, repoRoot, runId } from './lib.js';
import {
  counterDelta,
  measurePredictLatency,
  modelServerCounters,
  modelServerTarget,
  stallModelServer,
  summarize,
} from './model-server.js';
import { readOutputTopic, recordKey, type TagStats } from './output-topic.js';
import { PacedProducer } from './paced-producer.js';
import {
  DEFAULT_NODE_FLAGS,
  startPlainProcess,
  startWorkerProcess,
  type HistogramTotals,
  type Progress,
  type ProcessUnderTest,
} from './process-under-test.js';
import {
  chartOf,
  renderReport,
  type BenchResults,
  type LatencyAtLoad,
  type RunSummary,
  type ScenarioResult,
  type StallResult,
} from './report.js';

silenceKafkajsTimerWarnings();

const SCENARIOS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'r'] as const;
// --- adaptive concurrency (bench/adaptive.ts): opt-in only, `--only adaptive` (its own model server)
const OPT_IN_SCENARIOS = ['adaptive'] as const;
type ScenarioId = (typeof SCENARIOS)[number] | (typeof OPT_IN_SCENARIOS)[number];
// --- end adaptive concurrency
const BATCH_MAX_WAIT_MS = 5;
const STEADY_STATE_SKIP = 0.1;
const resultsDir = join(repoRoot, 'bench/results');
const profileDir = join(resultsDir, 'profiles');

interface Plan {
  quick: boolean;
  /** Backlog records of a, b, c (batch >= 64), e and g; slower configs get fewer (recordsFor). */
  records: number;
  runs: number;
  partitions: number;
  batchSizes: number[];
  only: Set<ScenarioId>;
  stallSeconds: number;
  probeSeconds: number;
  pacedSeconds: number;
  predictCalls: number;
  profile: boolean;
  maxPollRecords: number | undefined;
  /** `--set key=value`: extra connector config for every worker under test. */
  connectorOverrides: Record<string, string>;
  /** `--node-options`: Node flags of every process under test (a's too). */
  nodeFlags: string[];
}

const started = Date.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);
}

const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};
const intList = (value: string) => value.split(',').map((v) => positiveInt(v.trim()));

function parsePlan(): Plan & { json: boolean } {
  const options = new Command('bench')
    .description('benchmark the runtime and TFServingInference on the local stack')
    .option('--quick', 'reduced set: 60k records, 1 run, c at 1/64/256, shorter stall (under 3 minutes)')
    .option('--json', 'print the results as JSON on the last line of stdout')
    .option('--profile', 'write V8 CPU profiles of the b and c workers to bench/results/profiles')
    .option('--only <scenarios>', 'comma-separated subset of a,b,c,d,e,f,g,r')
    .option('--batch-sizes <list>', 'batch.max.records values of scenario c', intList)
    .option('--records <n>', 'backlog records per run (default 200000, --quick 60000)', positiveInt)
    .option('--runs <n>', 'runs per scenario, median reported (default 3, --quick 1)', positiveInt)
    .option('--partitions <n>', 'partitions of every topic', positiveInt, 4)
    .option('--stall-seconds <n>', 'model server stall of scenario g (default 60, --quick 20)', positiveInt)
    .option(
      '--max-poll-records <n>',
      "the worker's consumer.max.poll.records (default: the worker's)",
      positiveInt,
    )
    .option(
      '--node-options <flags>',
      "Node flags of the processes under test ('' for Node's defaults)",
      DEFAULT_NODE_FLAGS.join(' '),
    )
    .option(
      '--set <key=value>',
      'extra connector config for every worker under test, e.g. consumer.override.max.partition.fetch.bytes=1048576 (repeatable)',
      (value: string, previous: Record<string, string>) => {
        const eq = value.indexOf('=');
        if (eq < 1) throw new InvalidArgumentError('key=value');
        return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
      },
      {} as Record<string, string>,
    )
    .parse()
    .opts<{
      quick?: boolean;
      json?: boolean;
      profile?: boolean;
      only?: string;
      batchSizes?: number[];
      records?: number;
      runs?: number;
      partitions: number;
      stallSeconds?: number;
      maxPollRecords?: number;
      nodeOptions: string;
      set: Record<string, string>;
    }>();
  const quick = Boolean(options.quick);
  const only = new Set<ScenarioId>();
  for (const id of (options.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim())) {
    if (!([...SCENARIOS, ...OPT_IN_SCENARIOS] as readonly string[]).includes(id)) {
      throw new InvalidArgumentError(
        `--only: unknown scenario "${id}"; use some of ${[...SCENARIOS, ...OPT_IN_SCENARIOS].join(',')}`,
      );
    }
    only.add(id as ScenarioId);
  }
  return {
    quick,
    json: Boolean(options.json),
    records: options.records ?? (quick ? 60_000 : 200_000),
    runs: options.runs ?? (quick ? 1 : 3),
    partitions: options.partitions,
    batchSizes: options.batchSizes ?? (quick ? [1, 64, 256] : [1, 16, 64, 256, 1024]),
    only,
    stallSeconds: options.stallSeconds ?? (quick ? 20 : 60),
    probeSeconds: quick ? 4 : 6,
    pacedSeconds: quick ? 5 : 10,
    predictCalls: quick ? 200 : 400,
    profile: Boolean(options.profile),
    maxPollRecords: options.maxPollRecords,
    connectorOverrides: options.set,
    nodeFlags: options.nodeOptions.split(/\s+/).filter((flag) => flag.length > 0),
  };
}

// ------------------------------------------------------------------------------ topics

const prefix = `bench-${runId()}`;
const workDir = join(tmpdir(), prefix);
let topicSeq = 0;
const newTopicName = (what: string) => `${prefix}-${what}-${++topicSeq}`;

/** One backlog topic per record count, filled once and drained by every run that needs that count. */
const backlogs = new Map<number, Promise<string>>();
function backlogTopic(plan: Plan, count: number): Promise<string> {
  let topic = backlogs.get(count);
  if (!topic) {
    const name = newTopicName(`backlog${count}`);
    log(`filling ${name} with ${count.toLocaleString('en-US')} census records`);
    topic = fillCensusTopic(name, count, plan.partitions, recordKey('b')).then(() => name);
    backlogs.set(count, topic);
  }
  return topic;
}

// ------------------------------------------------------------------------------ pipelines

/** What runs in the child: scenario a's plain loop, or a worker with one connector. */
type Pipeline =
  | { kind: 'plain'; stock?: boolean }
  | { kind: 'worker'; connector: Record<string, unknown>; profile?: string | undefined };

function passThrough(): Pipeline {
  return { kind: 'worker', connector: { 'connector.class': 'PassThrough' } };
}

function inference(
  model: string,
  batchSize: number,
  maxInFlight = 4,
  maxWaitMs = BATCH_MAX_WAIT_MS,
): Pipeline {
  return {
    kind: 'worker',
    connector: {
      'connector.class': 'TFServingInference',
      'tfserving.target': modelServerTarget,
      'tfserving.model.name': model,
      'tfserving.deadline.ms': 5000,
      'batch.max.records': batchSize,
      'batch.max.wait.ms': maxWaitMs,
      'max.in.flight.requests': maxInFlight,
    },
  };
}

async function startPipeline(
  plan: Plan,
  pipeline: Pipeline,
  name: string,
  inputs: string[],
  output: string,
): Promise<ProcessUnderTest> {
  if (pipeline.kind === 'plain') {
    return startPlainProcess({
      name,
      inputs,
      output,
      dir: workDir,
      nodeFlags: plan.nodeFlags,
      stock: pipeline.stock ?? false,
    });
  }
  return startWorkerProcess({
    name,
    dir: workDir,
    config: {
      'tasks.max': '1',
      topics: inputs.join(','),
      'output.topic': output,
      'key.converter': 'bytes',
      'value.converter': 'avro',
      'errors.tolerance': 'all',
      'errors.deadletterqueue.topic.name': `${output}-dlq`,
      'errors.deadletterqueue.topic.replication.factor': '1',
      'errors.deadletterqueue.context.headers.enable': 'true',
      ...pipeline.connector,
      ...plan.connectorOverrides,
    },
    worker: plan.maxPollRecords ? { 'consumer.max.poll.records': plan.maxPollRecords } : {},
    nodeFlags: plan.nodeFlags,
    ...(pipeline.profile ? { profile: { dir: profileDir, name: pipeline.profile } } : {}),
  });
}

/** Polls the child until `done(progress)` or `timeoutMs`; fast at first, to catch the first read. */
async function pollUntil(
  child: ProcessUnderTest,
  done: (p: Progress) => boolean,
  timeoutMs: number,
  what: string,
  onPoll?: (p: Progress, at: number) => void,
): Promise<Progress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const progress = await child.progress();
    onPoll?.(progress, Date.now());
    if (done(progress)) return progress;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for ${what} (${JSON.stringify(progress)})`,
      );
    }
    await sleep(progress.read === 0 ? 20 : 200);
  }
}

/** One run's numbers (the shape report.ts prints), plus the latency probe of the last run. */
interface RunMeasurement extends RunSummary {
  probe?: LatencyAtLoad;
}

class Phases {
  readonly seconds: Record<string, number> = {};
  private last = performance.now();
  mark(name: string): void {
    const now = performance.now();
    this.seconds[name] = Number(((now - this.last) / 1000).toFixed(2));
    this.last = now;
  }
}

/**
 * One run: the child drains a backlog of `count` records; with `probeRate`, a paced producer then
 * writes to a second input topic at that rate for `plan.probeSeconds` and the outputs give the
 * end-to-end latency. Records/s = backlog records / (last backlog output appended - first record read).
 */
async function measureRun(
  plan: Plan,
  pipeline: Pipeline,
  label: string,
  count: number,
  probe?: { fraction: number; earlierRates: number[] },
): Promise<RunMeasurement> {
  const backlog = await backlogTopic(plan, count);
  const output = newTopicName(`${label}-out`);
  const probeTopic = newTopicName(`${label}-probe`);
  await createTopic(output, plan.partitions, { logAppendTime: true });
  await createTopic(probeTopic, plan.partitions);
  const before = await modelServerCounters();
  const phases = new Phases();
  const child = await startPipeline(plan, pipeline, label, [backlog, probeTopic], output);
  phases.mark('start');
  let stopped = false;
  try {
    let lastPollAt = Date.now();
    let firstReadAt = 0;
    const window = { from: 0, to: 0 };
    let cpuAtFirstRead = 0;
    const finished = await pollUntil(
      child,
      (p) => p.sent + p.skipped >= count,
      Math.max(300_000, count * 20),
      `${label} to drain ${count} records`,
      (p, at) => {
        if (firstReadAt === 0 && p.read > 0) {
          // The first read happened between the previous poll and this one.
          firstReadAt = (lastPollAt + at) / 2;
          cpuAtFirstRead = child.sample().cpuSeconds;
          window.from = monotonicUs() - (at - lastPollAt) * 500;
          phases.mark('join');
        }
        lastPollAt = at;
      },
    );
    const drained = child.sample();
    window.to = monotonicUs();
    if (pipeline.kind === 'worker' && pipeline.profile) profileWindows.set(pipeline.profile, window);
    phases.mark('drain');
    const modelServer = counterDelta(before, await modelServerCounters());
    const backlogOut = (await readOutputTopic(output, new Set())).get('b');
    phases.mark('read');
    if (!backlogOut) throw new Error(`${label}: no backlog records in ${output}`);
    const seconds = (backlogOut.lastAppendMs - firstReadAt) / 1000;
    const rate = steadyRate(backlogOut) ?? count / seconds;
    let probed = 0;
    let probeResult: LatencyAtLoad | undefined;
    if (probe) {
      const ratePerSecond = probe.fraction * median([...probe.earlierRates, rate]);
      const producer = await PacedProducer.open(probeTopic);
      try {
        probed = await producer.run('p', ratePerSecond, plan.probeSeconds);
      } finally {
        await producer.close();
      }
      await pollUntil(child, (p) => p.sent + p.skipped >= count + probed, 120_000, `${label} probe`);
      phases.mark('probe');
      const latency = summarize((await readOutputTopic(output, new Set(['p']))).get('p')?.latenciesMs ?? []);
      phases.mark('readProbe');
      if (latency)
        probeResult = { loadFraction: probe.fraction, ratePerSecond, records: probed, latencyMs: latency };
    }
    const exitCode = await child.stop();
    stopped = true;
    phases.mark('stop');
    return {
      records: count,
      recordsPerSecond: rate,
      drainRecordsPerSecond: count / seconds,
      seconds,
      peakRssMb: drained.peakRssMb,
      cpuSecondsPer100k: ((drained.cpuSeconds - cpuAtFirstRead) / count) * 100_000,
      modelServer,
      skipped: finished.skipped,
      duplicates: backlogOut.count - backlogOut.unique,
      lost: count - backlogOut.unique,
      exitCode,
      phaseSeconds: phases.seconds,
      ...(probeResult ? { probe: probeResult } : {}),
    };
  } finally {
    if (!stopped) await child.stop(10_000);
  }
}

/**
 * Steady-state records/s: the last 90% of a backlog's outputs over their append-time span, so that
 * start-up (JIT warm-up, schema look-ups, the first fetches) weighs the same in short and long runs.
 */
function steadyRate(out: TagStats): number | undefined {
  const skip = Math.floor(out.appendTimesMs.length * STEADY_STATE_SKIP);
  const seconds = (out.lastAppendMs - out.appendTimesMs[skip]!) / 1000;
  return seconds > 0 ? (out.appendTimesMs.length - skip) / seconds : undefined;
}

/** Backlog drain of each profiled worker, on the CPU profile's clock: the steady state to summarize. */
const profileWindows = new Map<string, { from: number; to: number }>();

/** `plan.runs` runs of one config; the last one also probes latency at 50% of the median rate. */
async function scenario(
  plan: Plan,
  id: string,
  title: string,
  pipeline: Pipeline,
  count: number,
  config: Record<string, unknown>,
): Promise<ScenarioResult> {
  const runs: RunMeasurement[] = [];
  for (let run = 1; run <= plan.runs; run++) {
    // The last run also probes the latency at 50% of the median rate (this run's included).
    const probe =
      run === plan.runs ? { fraction: 0.5, earlierRates: runs.map((r) => r.recordsPerSecond) } : undefined;
    // --profile: the first run of b and of each c config, with the V8 CPU profiler on.
    const profiled =
      pipeline.kind === 'worker' && plan.profile && run === 1 && /^(b|c\d+)$/.test(id)
        ? { ...pipeline, profile: id }
        : pipeline;
    log(`${id}: ${title}, run ${run}/${plan.runs}, ${count.toLocaleString('en-US')} records`);
    const measured = await measureRun(plan, profiled, `${id}-r${run}`, count, probe);
    runs.push(measured);
    log(
      `${id}: ${Math.round(measured.recordsPerSecond).toLocaleString('en-US')} records/s ` +
        `(whole backlog ${Math.round(measured.drainRecordsPerSecond).toLocaleString('en-US')}), ` +
        `peak RSS ${measured.peakRssMb.toFixed(0)} MB, ${measured.cpuSecondsPer100k.toFixed(1)} CPU s/100k` +
        (measured.probe
          ? `, latency at ${Math.round(measured.probe.ratePerSecond).toLocaleString('en-US')} records/s: ` +
            `p50 ${measured.probe.latencyMs.p50.toFixed(0)} ms, p99 ${measured.probe.latencyMs.p99.toFixed(0)} ms`
          : '') +
        ` (${Object.entries(measured.phaseSeconds)
          .map(([k, v]) => `${k} ${v}s`)
          .join(', ')})`,
    );
  }
  const probe = runs.at(-1)!.probe;
  return summarizeScenario(id, title, config, runs, probe);
}

function summarizeScenario(
  id: string,
  title: string,
  config: Record<string, unknown>,
  runs: RunMeasurement[],
  probe: LatencyAtLoad | undefined,
): ScenarioResult {
  const mid = (pick: (r: RunMeasurement) => number) => median(runs.map(pick));
  return {
    id,
    title,
    config,
    recordsPerSecond: mid((r) => r.recordsPerSecond),
    peakRssMb: Math.max(...runs.map((r) => r.peakRssMb)),
    cpuSecondsPer100k: mid((r) => r.cpuSecondsPer100k),
    modelServer: {
      predictsPerRun: mid((r) => r.modelServer.predicts),
      instancesPerRun: mid((r) => r.modelServer.instances),
      errors: runs.reduce<Record<string, number>>((all, r) => {
        for (const [code, n] of Object.entries(r.modelServer.errors)) all[code] = (all[code] ?? 0) + n;
        return all;
      }, {}),
    },
    latencyAt50: probe,
    skipped: runs.reduce((s, r) => s + r.skipped, 0),
    lost: runs.reduce((s, r) => s + Math.max(0, r.lost), 0),
    duplicates: runs.reduce((s, r) => s + r.duplicates, 0),
    runs: runs.map(({ probe: _probe, ...run }) => run),
  };
}

/**
 * Records per run. Configs that are slow by design drain a smaller backlog, so that every run takes
 * seconds, not minutes: batch 1 (c1) and the seed pattern (d) run at hundreds of records/s.
 */
function recordsFor(plan: Plan, batchSize: number, maxInFlight = 4): number {
  if (batchSize === 1) return Math.max(1_000, Math.round(plan.records * (maxInFlight === 1 ? 0.025 : 0.06)));
  if (batchSize < 64) return Math.max(5_000, Math.round(plan.records / 4));
  return plan.records;
}

// ------------------------------------------------------------------------------ f and g

/**
 * Starts `pipeline` on an empty input (after a small warm-up backlog), then writes each load in
 * turn at its rate for `plan.pacedSeconds`, letting the pipeline catch up between loads; returns
 * the end-to-end latency of each load.
 */
async function pacedLoads(
  plan: Plan,
  pipeline: Pipeline,
  label: string,
  loads: Array<{ tag: string; fraction: number; ratePerSecond: number }>,
): Promise<{ phases: LatencyAtLoad[]; peakRssMb: number }> {
  const warmup = 2_000;
  const backlog = await backlogTopic(plan, warmup);
  const input = newTopicName(`${label}-in`);
  const output = newTopicName(`${label}-out`);
  await createTopic(input, plan.partitions);
  await createTopic(output, plan.partitions, { logAppendTime: true });
  const child = await startPipeline(plan, pipeline, label, [backlog, input], output);
  const written = new Map<string, number>();
  const pipelineViews = new Map<string, NonNullable<LatencyAtLoad['pipeline']>>();
  let peakRssMb = 0;
  try {
    const producer = await PacedProducer.open(input);
    try {
      let expected = warmup;
      await pollUntil(child, (p) => p.sent + p.skipped >= expected, 120_000, `${label} warm-up`);
      for (const { tag, ratePerSecond } of loads) {
        log(
          `${label}: ${Math.round(ratePerSecond).toLocaleString('en-US')} records/s (${tag}) for ${plan.pacedSeconds} s`,
        );
        const before = await child.progress();
        const records = await producer.run(tag, ratePerSecond, plan.pacedSeconds);
        written.set(tag, records);
        expected += records;
        const after = await pollUntil(
          child,
          (p) => p.sent + p.skipped >= expected,
          120_000,
          `${label} ${tag} to drain`,
        );
        const delta = (pick: (p: Progress) => HistogramTotals) => ({
          sum: pick(after).sum - pick(before).sum,
          count: pick(after).count - pick(before).count,
        });
        const chunks = delta((p) => p.chunkSeconds);
        const predicts = delta((p) => p.predictSeconds);
        const rows = delta((p) => p.batchRows);
        pipelineViews.set(tag, {
          chunks: chunks.count,
          meanChunkMs: chunks.count > 0 ? (1000 * chunks.sum) / chunks.count : 0,
          predicts: predicts.count,
          meanPredictMs: predicts.count > 0 ? (1000 * predicts.sum) / predicts.count : 0,
          meanRowsPerPredict: rows.count > 0 ? rows.sum / rows.count : 0,
        });
        await sleep(500);
      }
    } finally {
      await producer.close();
    }
    peakRssMb = child.sample().peakRssMb;
  } finally {
    await child.stop();
  }
  const tags = await readOutputTopic(output, new Set(loads.map((l) => l.tag)));
  return {
    peakRssMb,
    phases: loads.map(({ tag, fraction, ratePerSecond }) => ({
      loadFraction: fraction,
      ratePerSecond,
      records: written.get(tag) ?? 0,
      latencyMs: summarize(tags.get(tag)?.latenciesMs ?? []) ?? { p50: NaN, p99: NaN, max: NaN, count: 0 },
      ...(pipelineViews.has(tag) ? { pipeline: pipelineViews.get(tag)! } : {}),
    })),
  };
}

async function memoryUnderStall(plan: Plan, batchSize: number): Promise<StallResult> {
  const label = `g-b${batchSize}`;
  const count = plan.records;
  const input = newTopicName(`${label}-in`);
  const output = newTopicName(`${label}-out`);
  log(`g: filling ${input} with ${count.toLocaleString('en-US')} records`);
  await fillCensusTopic(input, count, plan.partitions, recordKey('g'));
  await createTopic(output, plan.partitions, { logAppendTime: true });
  const before = await modelServerCounters();
  log(`g: model server stalls for ${plan.stallSeconds} s; worker starts on the full backlog`);
  await stallModelServer(plan.stallSeconds);
  const stallEnds = Date.now() + plan.stallSeconds * 1000;
  let child: ProcessUnderTest | undefined;
  try {
    child = await startPipeline(plan, inference('null', batchSize), label, [input], output);
    let maxRss = 0;
    while (Date.now() < stallEnds) {
      maxRss = Math.max(maxRss, child.sample().rssMb);
      await child.progress(); // fails fast if the worker died
      await sleep(250);
    }
    const duringStall = Math.max(maxRss, child.sample().peakRssMb);
    log(`g: stall over (peak RSS so far ${duringStall.toFixed(0)} MB); waiting for the backlog to drain`);
    const progress = await pollUntil(
      child,
      (p) => p.sent + p.skipped >= count,
      240_000,
      `${label} to recover and drain`,
    );
    const recoverySeconds = (Date.now() - stallEnds) / 1000;
    const peakRssMb = child.sample().peakRssMb;
    const modelServer = counterDelta(before, await modelServerCounters());
    await child.stop();
    child = undefined;
    const tags = await readOutputTopic(output, new Set(['g']));
    const g = tags.get('g');
    return {
      stallSeconds: plan.stallSeconds,
      records: count,
      peakRssDuringStallMb: duringStall,
      peakRssMb,
      recoverySeconds,
      lost: count - (g?.unique ?? 0),
      duplicates: (g?.count ?? 0) - (g?.unique ?? 0),
      deadLettered: await endOffsetTotal(`${output}-dlq`),
      skipped: progress.skipped,
      recordErrors: progress.recordErrors,
      modelServer,
      latencyMs: g ? summarize(g.latenciesMs) : undefined,
    };
  } finally {
    await child?.stop(10_000);
    await stallModelServer(0);
  }
}

// ------------------------------------------------------------------------------ main

function machine() {
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    memFreeGiB: Number((freemem() / 2 ** 30).toFixed(1)),
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    node: process.version,
  };
}

async function main(): Promise<void> {
  const plan = parsePlan();
  mkdirSync(workDir, { recursive: true });
  if (plan.profile) mkdirSync(profileDir, { recursive: true });
  log('checking the local stack (starting what is not running)');
  await up();
  const results: BenchResults = {
    version: 1,
    startedAt: new Date(started).toISOString(),
    finishedAt: '',
    durationSeconds: 0,
    machine: machine(),
    options: {
      quick: plan.quick,
      records: plan.records,
      runs: plan.runs,
      partitions: plan.partitions,
      batchSizes: plan.batchSizes,
      batchMaxWaitMs: BATCH_MAX_WAIT_MS,
      stallSeconds: plan.stallSeconds,
      profile: plan.profile,
      scenarios: [...plan.only],
      maxPollRecords: plan.maxPollRecords ?? null,
      connectorOverrides: plan.connectorOverrides,
      nodeFlags: plan.nodeFlags,
    },
    scenarios: [],
    errors: [],
  };
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (error) {
      log(`${what} failed: ${(error as Error).stack ?? String(error)}`);
      results.errors.push({ scenario: what, message: (error as Error).message });
      return undefined;
    }
  };
  const add = (result: ScenarioResult | undefined) => {
    if (result) results.scenarios.push(result);
    return result;
  };
  const run = plan.only;

  if (run.has('a'))
    await attempt('a', async () =>
      add(await scenario(plan, 'a', 'plain kafkajs', { kind: 'plain' }, plan.records, {})),
    );
  // What a user of plain kafkajs gets: the same loop on kafkajs as published, without patches/.
  if (run.has('a'))
    await attempt('a0', async () =>
      add(
        await scenario(
          plan,
          'a0',
          'plain kafkajs 2.2.4 as published (unpatched)',
          { kind: 'plain', stock: true },
          plan.records,
          { kafkajs: 'stock' },
        ),
      ),
    );
  if (run.has('b'))
    await attempt('b', async () =>
      add(
        await scenario(plan, 'b', 'PassThrough', passThrough(), plan.records, {
          'connector.class': 'PassThrough',
        }),
      ),
    );
  const cResults: ScenarioResult[] = [];
  if (run.has('c') || run.has('e') || run.has('f') || run.has('g')) {
    const sizes = run.has('c') ? plan.batchSizes : [];
    for (const batchSize of sizes) {
      const result = await attempt(`c${batchSize}`, async () =>
        add(
          await scenario(
            plan,
            `c${batchSize}`,
            `null model, batch ${batchSize}`,
            inference('null', batchSize),
            recordsFor(plan, batchSize),
            {
              model: 'null',
              'batch.max.records': batchSize,
              'batch.max.wait.ms': BATCH_MAX_WAIT_MS,
              'max.in.flight.requests': 4,
            },
          ),
        ),
      );
      if (result) cResults.push(result);
    }
  }
  const bestC = cResults.reduce<ScenarioResult | undefined>(
    (best, r) => (best === undefined || r.recordsPerSecond > best.recordsPerSecond ? r : best),
    undefined,
  );
  const bestBatch = Number(bestC?.config['batch.max.records'] ?? 256);
  results.bestBatchSize = bestBatch;
  if (run.has('d'))
    await attempt('d', async () =>
      add(
        await scenario(
          plan,
          'd',
          'seed pattern: 1 record per Predict, 1 in flight',
          inference('null', 1, 1, 0),
          recordsFor(plan, 1, 1),
          {
            model: 'null',
            'batch.max.records': 1,
            'batch.max.wait.ms': 0,
            'max.in.flight.requests': 1,
          },
        ),
      ),
    );
  if (run.has('e'))
    await attempt('e', async () =>
      add(
        await scenario(
          plan,
          'e',
          `census model, batch ${bestBatch}`,
          inference('census', bestBatch),
          plan.records,
          {
            model: 'census',
            'batch.max.records': bestBatch,
            'batch.max.wait.ms': BATCH_MAX_WAIT_MS,
            'max.in.flight.requests': 4,
          },
        ),
      ),
    );
  // --- transports (bench/transports.ts): r is e over TF Serving's REST API
  if (run.has('r'))
    await attempt('r', async () => {
      await checkRestTransport();
      const census = inference('census', bestBatch);
      const overRest: Pipeline =
        census.kind === 'worker'
          ? { ...census, connector: { ...census.connector, ...restTransportKeys() } }
          : census;
      add(
        await scenario(plan, 'r', `census model over REST, batch ${bestBatch}`, overRest, plan.records, {
          model: 'census',
          'tfserving.transport': 'rest',
          'batch.max.records': bestBatch,
          'batch.max.wait.ms': BATCH_MAX_WAIT_MS,
          'max.in.flight.requests': 4,
        }),
      );
    });
  // --- end transports
  if (run.has('f')) {
    await attempt('f', async () => {
      log(`f: the model server's own Predict latency at batch ${bestBatch} (${plan.predictCalls} calls)`);
      const server = await measurePredictLatency(bestBatch, plan.predictCalls);
      const maxRate = bestC?.recordsPerSecond;
      if (maxRate === undefined) throw new Error('scenario f needs scenario c (its maximum rate)');
      const { phases, peakRssMb } = await pacedLoads(
        plan,
        inference('null', bestBatch),
        `f-b${bestBatch}`,
        [0.25, 0.5, 0.75].map((fraction) => ({
          tag: `f${fraction * 100}`,
          fraction,
          ratePerSecond: fraction * maxRate,
        })),
      );
      // The Kafka client stack's own share: plain kafkajs at the same rate as the 50% load.
      const floor = await pacedLoads(plan, { kind: 'plain' }, 'f-plain', [
        { tag: 'floor', fraction: 0.5, ratePerSecond: 0.5 * maxRate },
      ]);
      results.latencyUnderLoad = {
        batchSize: bestBatch,
        maxRatePerSecond: maxRate,
        modelServerPredictMs: server,
        phases,
        peakRssMb,
        plainKafkajsAt50: floor.phases[0]!,
      };
    });
  }
  if (run.has('g')) {
    await attempt('g', async () => {
      results.stall = await memoryUnderStall(plan, bestBatch);
    });
  }
  // --- adaptive concurrency (bench/adaptive.ts)
  let adaptive: AdaptiveResult | undefined;
  if (run.has('adaptive')) {
    await attempt('adaptive', async () => {
      adaptive = await adaptiveConcurrency({
        quick: plan.quick,
        partitions: plan.partitions,
        workDir,
        nodeFlags: plan.nodeFlags,
        newTopicName,
        log,
        connectorOverrides: plan.connectorOverrides,
      });
      (results as BenchResults & { adaptive?: AdaptiveResult }).adaptive = adaptive;
    });
  }
  // --- end adaptive concurrency

  if (plan.profile) {
    results.profiles = [];
    const written = readdirSync(profileDir).filter(
      (f) => f.endsWith('.cpuprofile') && statSync(join(profileDir, f)).mtimeMs >= started,
    );
    for (const file of written) {
      const window = profileWindows.get(file.replace(/\.cpuprofile$/, ''));
      const summary = topSelfTime(join(profileDir, file), 15, window);
      const text = formatTopSelfTime(`${file}${window ? ' (backlog drain only)' : ''}`, summary);
      writeFileSync(join(profileDir, file.replace(/\.cpuprofile$/, '.top15.md')), `${text}\n`);
      results.profiles.push({ file: join('bench/results/profiles', file), ...summary });
      process.stderr.write(`\n${text}\n`);
    }
  }

  results.finishedAt = new Date().toISOString();
  results.durationSeconds = Math.round((Date.now() - started) / 1000);
  const report = renderReport(results);
  process.stdout.write(`${report.text}\n`);
  // --- adaptive concurrency (bench/adaptive.ts)
  if (adaptive) process.stdout.write(`\n${renderAdaptiveTable(adaptive)}\n`);
  // --- end adaptive concurrency
  results.ratios = report.ratios;
  results.targets = report.targets;

  mkdirSync(resultsDir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  const body = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(join(resultsDir, `${stamp}.json`), body);
  // A partial or profiled run (profiling slows the worker) does not replace the latest results.
  const complete =
    run.size === SCENARIOS.length &&
    !plan.profile &&
    Object.keys(plan.connectorOverrides).length === 0 &&
    plan.maxPollRecords === undefined &&
    plan.nodeFlags.join(' ') === DEFAULT_NODE_FLAGS.join(' ') &&
    results.errors.length === 0;
  if (complete) {
    writeFileSync(join(resultsDir, 'latest.json'), body);
    const svg = await renderChart(chartOf(results));
    writeFileSync(join(resultsDir, 'latest.svg'), svg);
  }
  log(
    `results: bench/results/${stamp}.json${complete ? ', bench/results/latest.json, bench/results/latest.svg' : ' (partial or profiled run: latest.* kept)'}`,
  );
  if (results.errors.length === 0) rmSync(workDir, { recursive: true, force: true });
  else log(`worker configs and logs kept in ${workDir}`);
  if (plan.json) process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
