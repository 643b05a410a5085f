// The benchmark's results: their JSON shape, and the tables printed on stdout (Markdown, so they
// paste into bench/README.md as they are), with the ratios and the issue's targets (reported,
// not asserted).
import type { renderChart } from './chart.js';
import type { LatencySummary, ModelServerCounters } from './model-server.js';

/** End-to-end latency (output append time - input creation time) at a paced input rate. */
export interface LatencyAtLoad {
  /** Fraction of the config's own maximum rate. */
  loadFraction: number;
  ratePerSecond: number;
  records: number;
  latencyMs: LatencySummary;
  /** The worker's own view while this load ran (its histograms), when it has them. */
  pipeline?: {
    /** Task calls (chunks of one partition's records) and their mean duration. */
    chunks: number;
    meanChunkMs: number;
    predicts: number;
    meanPredictMs: number;
    meanRowsPerPredict: number;
  };
}

export interface RunSummary {
  records: number;
  /** Steady state: the last 90% of the outputs over their append-time span. */
  recordsPerSecond: number;
  /** Whole backlog: records / (last output appended - first record read). */
  drainRecordsPerSecond: number;
  seconds: number;
  peakRssMb: number;
  cpuSecondsPer100k: number;
  modelServer: ModelServerCounters;
  skipped: number;
  duplicates: number;
  lost: number;
  exitCode: number | null;
  /** Wall time of each step of the run (start, join, drain, probe, stop, read), for the curious. */
  phaseSeconds: Record<string, number>;
}

export interface ScenarioResult {
  /** a, b, c<batch size>, d, e. */
  id: string;
  title: string;
  config: Record<string, unknown>;
  /** Median over runs. */
  recordsPerSecond: number;
  /** Largest over runs (VmHWM of the child). */
  peakRssMb: number;
  /** Median over runs; CPU of the child from its first record read to the backlog drained. */
  cpuSecondsPer100k: number;
  modelServer: { predictsPerRun: number; instancesPerRun: number; errors: Record<string, number> };
  /** From the last run: a paced probe at 50% of the median rate. */
  latencyAt50: LatencyAtLoad | undefined;
  skipped: number;
  lost: number;
  duplicates: number;
  runs: RunSummary[];
}

export interface Target {
  name: string;
  value: string;
  target: string;
  met: boolean | null;
}

/** Scenario g: memory and recovery while the model server stalls. */
export interface StallResult {
  stallSeconds: number;
  records: number;
  peakRssDuringStallMb: number;
  peakRssMb: number;
  recoverySeconds: number;
  lost: number;
  duplicates: number;
  deadLettered: number;
  skipped: number;
  recordErrors: number;
  modelServer: ModelServerCounters;
  latencyMs: LatencySummary | undefined;
}

export interface BenchResults {
  version: 1;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  machine: {
    cpus: number;
    cpuModel: string;
    memTotalGiB: number;
    memFreeGiB: number;
    loadAverage1m: number;
    node: string;
  };
  options: Record<string, unknown>;
  scenarios: ScenarioResult[];
  bestBatchSize?: number;
  latencyUnderLoad?: {
    batchSize: number;
    maxRatePerSecond: number;
    modelServerPredictMs: LatencySummary;
    phases: LatencyAtLoad[];
    peakRssMb: number;
    /** Scenario a's loop at the 50% load's rate: what the Kafka client stack alone adds. */
    plainKafkajsAt50: LatencyAtLoad;
  };
  stall?: StallResult;
  profiles?: Array<{ file: string; totalMs: number; functions: unknown[] }>;
  ratios?: Record<string, number | null>;
  targets?: Target[];
  errors: Array<{ scenario: string; message: string }>;
}

const int = (n: number | undefined) =>
  n === undefined || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US');
const fixed = (n: number | undefined, digits = 1) =>
  n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
const latency = (l: LatencySummary | undefined) =>
  l ? `${fixed(l.p50, 0)} / ${fixed(l.p99, 0)} / ${fixed(l.max, 0)}` : '-';

function table(header: string[], rows: string[][], align: Array<'l' | 'r'>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (align[i] === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

export function renderReport(results: BenchResults): {
  text: string;
  ratios: Record<string, number | null>;
  targets: Target[];
} {
  const byId = new Map(results.scenarios.map((s) => [s.id, s]));
  const a = byId.get('a');
  const cs = results.scenarios.filter((s) => /^c\d+$/.test(s.id));
  const bestC = cs.reduce<ScenarioResult | undefined>(
    (best, s) => (best === undefined || s.recordsPerSecond > best.recordsPerSecond ? s : best),
    undefined,
  );
  const ratio = (x: ScenarioResult | undefined, y: ScenarioResult | undefined) =>
    x && y ? x.recordsPerSecond / y.recordsPerSecond : null;
  const out: string[] = [];
  const m = results.machine;
  out.push(
    `infer-connect bench (${results.options['quick'] ? '--quick' : 'full'}), ${results.startedAt}, ` +
      `${results.durationSeconds} s: ${m.cpus} cores (${m.cpuModel}), ${m.memTotalGiB} GiB RAM, ` +
      `node ${m.node}, load ${m.loadAverage1m} at start; ${String(results.options['runs'])} run(s) per scenario, median; ` +
      `processes under test run with node flags: ${nodeFlagsOf(results) || "(none: Node's defaults)"}`,
    '',
  );

  out.push(
    table(
      [
        'scenario',
        'records/s',
        'vs a',
        'latency @50% p50/p99/max ms',
        'peak RSS MB',
        'CPU s/100k',
        'Predicts/run',
        'rows/Predict',
        'lost/DLQ',
      ],
      results.scenarios.map((s) => [
        `${s.id} ${s.title}`,
        int(s.recordsPerSecond),
        a ? fixed(s.recordsPerSecond / a.recordsPerSecond, 2) : '-',
        latency(s.latencyAt50?.latencyMs),
        int(s.peakRssMb),
        fixed(s.cpuSecondsPer100k),
        s.modelServer.predictsPerRun > 0 ? int(s.modelServer.predictsPerRun) : '-',
        s.modelServer.predictsPerRun > 0
          ? fixed(s.modelServer.instancesPerRun / s.modelServer.predictsPerRun)
          : '-',
        `${s.lost}/${s.skipped}`,
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );

  const f = results.latencyUnderLoad;
  if (f) {
    out.push(
      '',
      `f) latency under load, null model, batch ${f.batchSize} (its max ${int(f.maxRatePerSecond)} records/s); ` +
        `model server's own Predict at batch ${f.batchSize}: p50 ${fixed(f.modelServerPredictMs.p50)} ms, ` +
        `p99 ${fixed(f.modelServerPredictMs.p99)} ms`,
      '',
      table(
        [
          'load',
          'records/s',
          'records',
          'p50 ms',
          'p99 ms',
          'max ms',
          'records/chunk',
          'chunk ms',
          'Predict ms',
          'rows/Predict',
        ],
        [...f.phases, { ...f.plainKafkajsAt50, loadFraction: -1 }].map((p) => [
          p.loadFraction < 0 ? 'a (plain kafkajs) at the 50% rate' : `${Math.round(p.loadFraction * 100)}%`,
          int(p.ratePerSecond),
          int(p.records),
          fixed(p.latencyMs.p50, 0),
          fixed(p.latencyMs.p99, 0),
          fixed(p.latencyMs.max, 0),
          p.pipeline && p.pipeline.chunks > 0 ? fixed(p.records / p.pipeline.chunks) : '-',
          p.pipeline && p.pipeline.chunks > 0 ? fixed(p.pipeline.meanChunkMs) : '-',
          p.pipeline && p.pipeline.predicts > 0 ? fixed(p.pipeline.meanPredictMs) : '-',
          p.pipeline && p.pipeline.predicts > 0 ? fixed(p.pipeline.meanRowsPerPredict) : '-',
        ]),
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
  }
  const g = results.stall;
  if (g) {
    out.push(
      '',
      `g) ${int(g.records)} records backlogged while the model server stalls ${g.stallSeconds} s: ` +
        `peak RSS ${fixed(g.peakRssDuringStallMb, 0)} MB during the stall (${fixed(g.peakRssMb, 0)} MB overall), ` +
        `drained ${fixed(g.recoverySeconds)} s after the stall ended; lost ${g.lost}, dead-lettered ${g.deadLettered}, ` +
        `skipped ${g.skipped}, duplicates ${g.duplicates}, transient errors ${g.recordErrors}; ` +
        `model server: ${g.modelServer.predicts} Predicts, errors ${JSON.stringify(g.modelServer.errors)}`,
    );
  }

  const d = byId.get('d');
  const e = byId.get('e');
  const b = byId.get('b');
  const ratios = {
    'b/a': ratio(b, a),
    'c/a': ratio(bestC, a),
    'c/d': ratio(bestC, d),
    'e/a': ratio(e, a),
    'b/a0': ratio(b, byId.get('a0')),
    'c/a0': ratio(bestC, byId.get('a0')),
  };
  const targets: Target[] = [];
  const check = (name: string, value: number | null, bound: number, target: string) =>
    targets.push({
      name,
      value: value === null ? '-' : value.toFixed(2),
      target,
      met: value === null ? null : value >= bound,
    });
  check('b/a', ratios['b/a'], 0.7, '>= 0.70');
  check(`c/a (best c: ${bestC?.id ?? '-'})`, ratios['c/a'], 0.5, '>= 0.50');
  check('c/d', ratios['c/d'], 30, '>= 30');
  const reported = (name: string, value: number | null) =>
    targets.push({ name, value: value === null ? '-' : value.toFixed(2), target: '(reported)', met: null });
  reported('e/a', ratios['e/a']);
  // Against plain kafkajs as users get it (a0: kafkajs 2.2.4 without this project's patch).
  reported('b/a0 (a0: unpatched kafkajs)', ratios['b/a0']);
  reported('c/a0', ratios['c/a0']);
  if (f) {
    const at50 = f.phases.find((p) => p.loadFraction === 0.5);
    const bound = Number(results.options['batchMaxWaitMs']) + 2 * f.modelServerPredictMs.p99 + 20;
    targets.push({
      name: 'f: p99 at 50% load (ms)',
      value: fixed(at50?.latencyMs.p99, 0),
      target: `<= ${fixed(bound, 0)} (wait ${String(results.options['batchMaxWaitMs'])} + 2 x server p99 ${fixed(f.modelServerPredictMs.p99)} + 20)`,
      met: at50 ? at50.latencyMs.p99 <= bound : null,
    });
  }
  if (g) {
    targets.push({
      name: 'g: peak RSS during stall (MB)',
      value: fixed(g.peakRssDuringStallMb, 0),
      target: '<= 300',
      met: g.peakRssDuringStallMb <= 300,
    });
    targets.push({
      name: 'g: lost / dead-lettered',
      value: `${g.lost} / ${g.deadLettered}`,
      target: '0 / 0',
      met: g.lost === 0 && g.deadLettered === 0 && g.skipped === 0,
    });
  }
  out.push(
    '',
    table(
      ['ratio or target', 'value', 'target', 'met'],
      targets.map((t) => [t.name, t.value, t.target, t.met === null ? '-' : t.met ? 'yes' : 'NO']),
      ['l', 'r', 'l', 'l'],
    ),
  );
  if (results.errors.length > 0) {
    out.push('', ...results.errors.map((err) => `scenario ${err.scenario} FAILED: ${err.message}`));
  }
  return { text: out.join('\n'), ratios, targets };
}

function nodeFlagsOf(results: BenchResults): string {
  const flags = results.options['nodeFlags'];
  return Array.isArray(flags) ? flags.join(' ') : '';
}

/** The chart of a run: c's throughput and p99 at 50% load per batch size, a and b as references. */
export function chartOf(results: BenchResults): Parameters<typeof renderChart>[0] {
  return {
    title:
      `TFServingInference (null model) vs batch size: ${results.machine.cpus} cores, ` +
      `${results.options['quick'] ? '--quick' : 'full run'}, ${results.startedAt.slice(0, 16)}`,
    points: results.scenarios
      .filter((s) => /^c\d+$/.test(s.id))
      .map((r) => ({
        batchSize: Number(r.config['batch.max.records']),
        recordsPerSecond: Math.round(r.recordsPerSecond),
        p99Ms: r.latencyAt50?.latencyMs.p99,
      })),
    references: results.scenarios
      .filter((s) => s.id === 'a' || s.id === 'a0' || s.id === 'b')
      .map((s) => ({ label: `${s.id}: ${s.title}`, recordsPerSecond: Math.round(s.recordsPerSecond) })),
  };
}
