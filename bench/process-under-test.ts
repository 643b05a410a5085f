// The pipeline under test runs as a child process, so that its peak RSS and CPU seconds are its
// own and not the benchmark driver's (the driver also fills topics, paces producers and reads the
// outputs). The worker runs exactly as users run it: `node bin/infer-connect.js standalone
// <worker.json> <connector.json>` with generated configs and its REST listener on a free loopback
// port; the bench polls its `/metrics` for progress and /proc/<pid> for memory and CPU.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { kafkaBootstrap, registryUrl, repoRoot } from './lib.js';

const MB = 1024 * 1024;
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux: /proc/<pid>/stat counts CPU time in 1/100 s.

/** Counters read from the child's `/metrics`, summed over its tasks. */
export interface Progress {
  read: number;
  sent: number;
  skipped: number;
  /** Transient failures and bad records (Kafka Connect's total-record-errors). */
  recordErrors: number;
  /** Histogram sums and counts: task calls (chunks), Predict calls and their batch sizes. */
  chunkSeconds: HistogramTotals;
  predictSeconds: HistogramTotals;
  batchRows: HistogramTotals;
}

export interface HistogramTotals {
  sum: number;
  count: number;
}

/** The child's memory and CPU, from /proc/<pid>. */
export interface ProcessSample {
  rssMb: number;
  /** Peak RSS so far (VmHWM). */
  peakRssMb: number;
  /** User + system CPU seconds so far. */
  cpuSeconds: number;
}

export interface ProcessUnderTest {
  readonly pid: number;
  readonly logFile: string;
  progress(): Promise<Progress>;
  sample(): ProcessSample;
  /** SIGTERM (the worker drains and exits 0), SIGKILL after `timeoutMs`; resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released for the child to bind). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export function sampleProcess(pid: number): ProcessSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return {
    rssMb: (kb('VmRSS') * 1024) / MB,
    peakRssMb: (kb('VmHWM') * 1024) / MB,
    cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND,
  };
}

async function readProgress(metricsUrl: string): Promise<Progress> {
  const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`${metricsUrl} answered ${response.status}`);
  const text = await response.text();
  const families = parsePrometheusTextFormat(text);
  const total = (name: string) =>
    families.find((f) => f.name === name)?.metrics.reduce((sum, m) => sum + Number(m.value ?? 0), 0) ?? 0;
  // parse-prometheus-text-format keeps only the buckets of a histogram: read _sum and _count lines.
  const lines = text.split('\n');
  const histogram = (name: string): HistogramTotals => {
    const totals = { sum: 0, count: 0 };
    for (const line of lines) {
      const part = line.startsWith(`${name}_sum`)
        ? 'sum'
        : line.startsWith(`${name}_count`)
          ? 'count'
          : undefined;
      if (part) totals[part] += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return totals;
  };
  return {
    chunkSeconds: histogram('kafka_connect_sink_task_put_batch_time_seconds'),
    predictSeconds: histogram('infer_connect_inference_request_duration_seconds'),
    batchRows: histogram('infer_connect_inference_batch_size'),
    read: total('kafka_connect_sink_task_sink_record_read_total'),
    sent: total('kafka_connect_sink_task_sink_record_send_total'),
    skipped: total('kafka_connect_task_error_total_records_skipped'),
    recordErrors: total('kafka_connect_task_error_total_record_errors'),
  };
}

function spawnLogged(args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    return spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

function wrap(child: ChildProcess, metricsUrl: string, logFile: string): ProcessUnderTest {
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const pid = child.pid!;
  return {
    pid,
    logFile,
    async progress() {
      if (exitCode !== undefined) {
        throw new Error(`the process under test exited (code ${exitCode}); see ${logFile}`);
      }
      return readProgress(metricsUrl);
    },
    sample: () => sampleProcess(pid),
    async stop(timeoutMs = 30_000) {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
      if (code !== 'timeout') return code;
      child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Waits until the child answers on `metricsUrl`. */
async function waitForMetrics(handle: ProcessUnderTest, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await handle.progress();
      return;
    } catch (error) {
      if (Date.now() > deadline || String(error).includes('exited')) {
        await handle.stop(5_000);
        throw new Error(`the process under test did not come up: ${String(error)}; see ${handle.logFile}`);
      }
      await sleep(200);
    }
  }
}

/**
 * Node flags of every process under test: the Dockerfile's NODE_OPTIONS, so the bench measures the
 * worker as the image runs it. On a machine with a lot of RAM, Node 24 sizes V8's young generation
 * at up to 64 MB per semi-space, which holds on to garbage between scavenges: on the bench's
 * 23 GiB machine 16 MB cut the worker's peak RSS by about a quarter at the same throughput.
 */
export const DEFAULT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];

export interface WorkerProcessOptions {
  /** Connector name and its config (Kafka Connect's `config` object). */
  name: string;
  config: Record<string, unknown>;
  /** Extra worker config keys (e.g. consumer.max.poll.records). */
  worker?: Record<string, unknown>;
  /** Where configs and the log go. */
  dir: string;
  /** Write a V8 CPU profile (`--cpu-prof`) named `<profileName>.cpuprofile` into `profileDir`. */
  profile?: { dir: string; name: string };
  /** Node flags (default DEFAULT_NODE_FLAGS). */
  nodeFlags?: readonly string[];
}

/** Starts `infer-connect standalone` with one connector; resolves once its REST API answers. */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<ProcessUnderTest> {
  mkdirSync(options.dir, { recursive: true });
  const port = await freePort();
  const workerFile = join(options.dir, `${options.name}.worker.json`);
  const connectorFile = join(options.dir, `${options.name}.connector.json`);
  writeFileSync(
    workerFile,
    JSON.stringify(
      {
        'bootstrap.servers': kafkaBootstrap,
        'schema.registry.url': registryUrl,
        listeners: `http://127.0.0.1:${port}`,
        'offset.storage.file.filename': join(options.dir, `${options.name}.offsets.json`),
        'log.level': 'warn',
        ...options.worker,
      },
      null,
      2,
    ),
  );
  writeFileSync(connectorFile, JSON.stringify({ name: options.name, config: options.config }, null, 2));
  const nodeArgs = [...(options.nodeFlags ?? DEFAULT_NODE_FLAGS)];
  if (options.profile) {
    nodeArgs.push(
      '--cpu-prof',
      `--cpu-prof-dir=${options.profile.dir}`,
      `--cpu-prof-name=${options.profile.name}.cpuprofile`,
    );
  }
  const logFile = join(options.dir, `${options.name}.log`);
  const child = spawnLogged(
    [...nodeArgs, join(repoRoot, 'bin/infer-connect.js'), 'standalone', workerFile, connectorFile],
    logFile,
  );
  const handle = wrap(child, `http://127.0.0.1:${port}/metrics`, logFile);
  await waitForMetrics(handle, 60_000);
  return handle;
}

/** Starts scenario a (plain kafkajs consume -> produce) as a child with the same /metrics counters. */
export async function startPlainProcess(options: {
  name: string;
  inputs: string[];
  output: string;
  dir: string;
  nodeFlags?: readonly string[];
  /** kafkajs as published, without patches/. */
  stock?: boolean;
}): Promise<ProcessUnderTest> {
  mkdirSync(options.dir, { recursive: true });
  const port = await freePort();
  const logFile = join(options.dir, `${options.name}.log`);
  const child = spawnLogged(
    [
      ...(options.nodeFlags ?? DEFAULT_NODE_FLAGS),
      '--import',
      'tsx',
      join(repoRoot, 'bench/plain-passthrough-process.ts'),
      '--port',
      String(port),
      '--output',
      options.output,
      ...(options.stock ? ['--stock'] : []),
      ...options.inputs,
    ],
    logFile,
  );
  const handle = wrap(child, `http://127.0.0.1:${port}/metrics`, logFile);
  await waitForMetrics(handle, 60_000);
  return handle;
}
