// Runs one fault case end to end against the `faults` stack instance: fresh topics, a paced
// producer, the worker(s) as child processes, a monitor polling the group's committed offsets,
// one injected fault, recovery, catch-up, and the verdict read from the topics themselves.
// Every wait is bounded, and whatever happens the case's workers, producer and monitor are
// stopped before the next case starts.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import {
  resetModelServer,
  restart,
  serviceNames,
  status as stackStatus,
  thaw,
  type StackInstance,
} from '../stack.js';
import { CaseMonitor } from './monitor.js';
import { PacedProducer, registerCensusSchema, type CensusSchema } from './producer.js';
import { createTopics, readTopic, withAdmin } from './topics.js';
import { judge, type TopicRecord, type Verdict, type OffsetRegression } from './verdict.js';
import { WorkerProcess, type ConnectorStatus, type ExitInfo } from './workers.js';

export type Guarantee = 'at_least_once' | 'exactly_once';

export interface MatrixSettings {
  stack: StackInstance;
  kafka: Kafka;
  quick: boolean;
  /** bin/infer-connect.js (or a compatible entry point) and the directory to run it in. */
  cli: string;
  cwd: string;
  /** Where each case keeps its configs and worker logs. */
  runDir: string;
  runTag: string;
  recordsPerSecond: number;
  log: (line: string) => void;
}

export interface CaseTopics {
  input: string;
  output: string;
  dlq: string;
}

/** What a case should end in once its fault is lifted. */
export type ExpectedOutcome =
  | { kind: 'recover' }
  /** Recovering is best; a task FAILED with a trace naming `mentions` (never a silent loop) passes too. */
  | { kind: 'recover-or-fail'; mentions: (topics: CaseTopics) => string };

export interface FaultCase {
  id: string;
  title: (quick: boolean) => string;
  guarantee: Guarantee;
  /** Worker processes running the connector from the start. */
  workers: number;
  /** Part of the quick subset (`--quick`, CI). */
  quick: boolean;
  outcome: ExpectedOutcome;
  /** Duplicates are an invariant violation (exactly-once rows, a drained restart). */
  noDuplicates: boolean;
  /** Wait for output before injecting (false when the fault is there from the start). */
  waitForOutput?: boolean;
  connectorOverrides?: (settings: MatrixSettings, topics: CaseTopics) => Record<string, string>;
  /** Runs after the topics exist and the schema is registered, before producer and workers start. */
  prepare?: (ctx: CaseContext) => Promise<void>;
  /** Injects the fault and resolves once it is lifted. */
  inject: (ctx: CaseContext) => Promise<void>;
}

export interface CaseResult {
  id: string;
  title: string;
  guarantee: Guarantee;
  verdict: Verdict | undefined;
  regressions: OffsetRegression[];
  recoverySeconds: number | undefined;
  workerRestarts: number;
  statuses: Array<ConnectorStatus | undefined>;
  violations: string[];
  notes: string[];
  workerProblems: Array<[string, number]>;
  logs: string[];
  seconds: number;
  passed: boolean;
}

/** What a fault's `prepare` and `inject` can do. */
export interface CaseContext {
  settings: MatrixSettings;
  topics: CaseTopics;
  connectorName: string;
  /** `full` seconds, or `quick` seconds in --quick mode, as milliseconds. */
  duration(full: number, quick: number): number;
  sleep(ms: number): Promise<void>;
  /** Worker processes currently part of the run (their status is checked at the end). */
  workers: WorkerProcess[];
  producer: PacedProducer;
  registerSchema(version: 1 | 2): Promise<CensusSchema>;
  /** Starts one more worker with the same connector (joins the group). */
  addWorker(): Promise<WorkerProcess>;
  /** Stops a worker on purpose (SIGTERM, drain) and takes it out of the run. */
  removeWorker(worker: WorkerProcess): Promise<ExitInfo>;
  /** Signals a worker, waits for it to exit and starts it again on the same config and offsets. */
  restartWorker(worker: WorkerProcess, signal: NodeJS.Signals): Promise<ExitInfo>;
  /**
   * Deletes `topic` with the workers frozen for a moment, after reading what it held: those
   * records count as written (the operator destroyed them, the runtime did not lose them).
   */
  deleteTopicCleanly(topic: string): Promise<void>;
  /** This id must end up in the DLQ (and not in the output). */
  expectDeadLetter(id: string): void;
  /** Records a violation unless `ok`. */
  check(ok: boolean, violation: string): void;
  note(text: string): void;
  waitFor(what: string, timeoutMs: number, condition: () => Promise<boolean> | boolean): Promise<void>;
}

/** How long the producer keeps going after the fault is lifted, so recovery shows as new output. */
const TAIL_MS = 6000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(
  what: string,
  timeoutMs: number,
  condition: () => Promise<boolean> | boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(250);
  }
}

/** Thaws, and restarts on their data, services a previous case may have left down. */
export async function ensureStackHealthy(settings: MatrixSettings): Promise<void> {
  for (const name of serviceNames) {
    try {
      thaw(settings.stack, name);
    } catch {
      // not running: restarted below
    }
  }
  const now = await stackStatus(settings.stack);
  for (const name of serviceNames) {
    if (!now[name].healthy) {
      settings.log(`  ${name} of the faults stack is down; restarting it on its data`);
      await restart(settings.stack, name);
    }
  }
  await resetModelServer(settings.stack);
}

export function connectorConfig(
  settings: MatrixSettings,
  fault: FaultCase,
  topics: CaseTopics,
): Record<string, string> {
  return {
    'connector.class': 'TFServingInference',
    'tasks.max': '2',
    topics: topics.input,
    'output.topic': topics.output,
    'key.converter': 'bytes',
    'value.converter': 'avro',
    'tfserving.target': settings.stack.endpoints.modelServer.target,
    'tfserving.model.name': 'census',
    'tfserving.signature.name': 'serving_default',
    'tfserving.deadline.ms': '5000',
    'batch.max.records': '256',
    'batch.max.wait.ms': '5',
    'max.in.flight.requests': '4',
    'output.metadata.fields': 'model.name,model.version,scored.at',
    'processing.guarantee': fault.guarantee,
    'errors.tolerance': 'all',
    'errors.deadletterqueue.topic.name': topics.dlq,
    'errors.deadletterqueue.topic.replication.factor': '1',
    'errors.deadletterqueue.context.headers.enable': 'true',
    'errors.log.enable': 'true',
    ...(fault.connectorOverrides?.(settings, topics) ?? {}),
  };
}

export async function runCase(settings: MatrixSettings, fault: FaultCase): Promise<CaseResult> {
  const started = Date.now();
  const { quick, log, kafka, stack } = settings;
  const title = fault.title(quick);
  const base = `faults-${settings.runTag}-${fault.id}`;
  const topics: CaseTopics = { input: base, output: `${base}-out`, dlq: `${base}-dlq` };
  const connectorName = base;
  const dir = join(settings.runDir, fault.id);
  mkdirSync(dir, { recursive: true });
  const readCommitted = fault.guarantee === 'exactly_once';

  const violations: string[] = [];
  const notes: string[] = [];
  const allWorkers: WorkerProcess[] = [];
  const workers: WorkerProcess[] = [];
  const earlier = new Map<string, TopicRecord[]>();
  const expectedDeadLetters: string[] = [];
  let workerRestarts = 0;
  let verdict: Verdict | undefined;
  let recoverySeconds: number | undefined;
  let statuses: Array<ConnectorStatus | undefined> = [];

  const monitor = new CaseMonitor(kafka, {
    groupId: `connect-${connectorName}`,
    inputTopic: topics.input,
    flowTopics: [topics.output, topics.dlq],
  });
  let producer: PacedProducer | undefined;

  const spec = () => ({
    dir,
    cli: settings.cli,
    cwd: settings.cwd,
    connector: { name: connectorName, config: connectorConfig(settings, fault, topics) },
  });
  const workerConfig = (label: string) => ({
    'bootstrap.servers': stack.endpoints.kafka.bootstrap,
    'schema.registry.url': stack.endpoints.schemaRegistry.url,
    listeners: 'http://127.0.0.1:0',
    'offset.storage.file.filename': join(dir, `${label}.offsets.json`),
    'offset.flush.interval.ms': 1000,
    'task.shutdown.graceful.timeout.ms': 10_000,
    'client.id': `${base}-${label}`,
    'log.level': 'info',
  });
  let labels = 0;
  const startWorker = async (label = `w${++labels}`): Promise<WorkerProcess> => {
    const worker = await WorkerProcess.start(label, { ...spec(), workerConfig: workerConfig(label) });
    allWorkers.push(worker);
    workers.push(worker);
    return worker;
  };
  const dropWorker = (worker: WorkerProcess) => {
    const i = workers.indexOf(worker);
    if (i >= 0) workers.splice(i, 1);
  };

  try {
    await ensureStackHealthy(settings);
    await createTopics(kafka, [{ topic: topics.input, numPartitions: 3, replicationFactor: 1 }]);
    const v1 = await registerCensusSchema(stack.endpoints.schemaRegistry.url, `${topics.input}-value`, 1);
    producer = new PacedProducer({
      kafka,
      topic: topics.input,
      partitions: 3,
      recordsPerSecond: settings.recordsPerSecond,
      idPrefix: fault.id,
      schema: v1,
      poisonEvery: 100,
      log: (line) => log(`  ${line}`),
    });
    const ctx: CaseContext = {
      settings,
      topics,
      connectorName,
      duration: (full, quickSeconds) => (quick ? quickSeconds : full) * 1000,
      sleep,
      workers,
      producer,
      registerSchema: (version) =>
        registerCensusSchema(stack.endpoints.schemaRegistry.url, `${topics.input}-value`, version),
      addWorker: () => startWorker(),
      async removeWorker(worker) {
        dropWorker(worker);
        return worker.stop();
      },
      async restartWorker(worker, signal) {
        worker.stoppedOnPurpose = true;
        worker.kill(signal);
        const overdue = setTimeout(() => worker.kill('SIGKILL'), 60_000);
        const exit = await worker.exited;
        clearTimeout(overdue);
        dropWorker(worker);
        await startWorker(worker.label);
        workerRestarts++;
        return exit;
      },
      async deleteTopicCleanly(topic) {
        for (const w of workers) w.kill('SIGSTOP');
        try {
          await sleep(1000); // produce requests already on the wire land first
          const before = await readTopic(kafka, topic, { readCommitted, timeoutMs: 20_000 });
          if (!before.complete) notes.push(`could not read ${topic} to its end before deleting it`);
          earlier.set(topic, before.records);
          await withAdmin(kafka, (admin) => admin.deleteTopics({ topics: [topic], timeout: 20_000 }));
          await waitFor(`${topic} to be deleted`, 30_000, async () =>
            withAdmin(kafka, async (admin) => !(await admin.listTopics()).includes(topic)),
          );
          notes.push(`deleted ${topic} holding ${before.records.length} record(s)`);
        } finally {
          for (const w of workers) w.kill('SIGCONT');
        }
      },
      expectDeadLetter: (id) => void expectedDeadLetters.push(id),
      check: (ok, violation) => {
        if (!ok) violations.push(violation);
      },
      note: (text) => void notes.push(text),
      waitFor,
    };

    monitor.start();
    await fault.prepare?.(ctx);
    await producer.start();
    for (let i = 0; i < fault.workers; i++) await startWorker();
    if (fault.waitForOutput !== false) {
      await waitFor('the first output records', 90_000, () => (monitor.latest()?.flow ?? 0) > 0);
      await sleep(2000);
    }

    log(`  injecting: ${title}`);
    await fault.inject(ctx);
    const faultEnd = Date.now();
    log(`  fault lifted after ${((faultEnd - started) / 1000).toFixed(0)} s into the case; producing on`);
    await sleep(TAIL_MS);
    await producer.stop();

    // Catch-up: until every input record is committed; or nothing moved for longer than the
    // runtime's longest redelivery backoff (a stuck partition); or a task FAILED (no task restarts
    // itself); or the cap.
    const stallMs = 70_000;
    const capMs = quick ? 100_000 : 150_000;
    const catchUpStart = Date.now();
    let lastProgress = Date.now();
    let lastMark = '';
    let lastStatusCheck = 0;
    for (;;) {
      const sample = monitor.latest();
      if (sample && sample.at > catchUpStart && monitor.caughtUp(sample)) break;
      const mark = sample ? `${[...sample.committed.values()].join(',')}|${sample.flow}` : '';
      if (mark !== lastMark) {
        lastMark = mark;
        lastProgress = Date.now();
      }
      if (Date.now() - lastProgress > stallMs || Date.now() - catchUpStart > capMs) break;
      if (workers.length > 0 && workers.every((w) => !w.alive)) break;
      if (Date.now() - lastStatusCheck > 2000) {
        lastStatusCheck = Date.now();
        const now = await Promise.all(workers.map((w) => w.status(connectorName)));
        if (now.some((s) => failureTraces(s).length > 0)) break;
      }
      await sleep(500);
    }
    const caughtUp = monitor.caughtUp();
    const caughtUpCheckedAt = Date.now();
    recoverySeconds = monitor.recoverySeconds(faultEnd);

    statuses = await Promise.all(workers.map((w) => w.status(connectorName)));
    for (const w of allWorkers) {
      if (w.exitInfo && !w.stoppedOnPurpose) {
        violations.push(
          `worker ${w.label} exited on its own (code ${w.exitInfo.code}, signal ${w.exitInfo.signal}); last stderr: ` +
            (w.stderrTail.slice(-3).join(' | ') || '(none)'),
        );
      }
    }
    const running = statuses.length > 0 && statuses.every((s) => isRunning(s));
    const failedTraces = statuses.flatMap((s) => failureTraces(s));

    for (const w of [...workers]) {
      const exit = await w.stop();
      if (exit.code !== 0)
        notes.push(`final SIGTERM: worker ${w.label} exited with code ${exit.code} (signal ${exit.signal})`);
    }
    await monitor.stop();
    const final = await monitor.poll();
    await monitor.stop();
    if (!final) violations.push('could not read the committed offsets after the run');

    const [input, output, deadLetters] = await Promise.all([
      readTopic(kafka, topics.input, { readCommitted: false, timeoutMs: 60_000 }),
      readTopic(kafka, topics.output, { readCommitted, timeoutMs: 60_000 }),
      readTopic(kafka, topics.dlq, { readCommitted, timeoutMs: 60_000 }),
    ]);
    for (const [name, read] of [
      ['input', input],
      ['output', output],
      ['DLQ', deadLetters],
    ] as const) {
      if (!read.complete)
        violations.push(`the ${name} topic could not be read to its end (a transaction left open?)`);
    }
    verdict = judge({
      inputTopic: topics.input,
      input: input.records,
      output: [...(earlier.get(topics.output) ?? []), ...output.records],
      outputPartitions: output.partitions || 3,
      deadLetters: [...(earlier.get(topics.dlq) ?? []), ...deadLetters.records],
      committed: final?.committed ?? monitor.latest()?.committed ?? new Map(),
      expectedDeadLetter: (id) => producer!.isPoison(id) || expectedDeadLetters.includes(id),
    });

    if (verdict.lost > 0) violations.push(`${verdict.lost} record(s) lost`);
    if (monitor.regressions.length > 0) {
      const r = monitor.regressions[0]!;
      violations.push(
        `committed offsets went back ${monitor.regressions.length} time(s) (first: partition ${r.partition} ${r.from} -> ${r.to})`,
      );
    }
    if (verdict.outOfOrder > 0) violations.push(`${verdict.outOfOrder} output record(s) out of input order`);
    if (verdict.misrouted > 0)
      violations.push(`${verdict.misrouted} output record(s) in the wrong partition`);
    if (verdict.deadLetterContextMismatches > 0) {
      violations.push(
        `${verdict.deadLetterContextMismatches} dead letter(s) with wrong __connect.errors.* context`,
      );
    }
    if (verdict.foreign > 0)
      violations.push(`${verdict.foreign} output/DLQ record(s) with ids not in the input`);
    if (verdict.unexpectedDeadLetters > 0) {
      const causes = Object.entries(verdict.unexpectedDeadLetterCauses)
        .map(([cause, n]) => `${n} x ${cause}`)
        .join(', ');
      violations.push(`${verdict.unexpectedDeadLetters} good record(s) dead-lettered (${causes})`);
    }
    if (fault.noDuplicates && verdict.duplicates > 0) violations.push(`${verdict.duplicates} duplicate(s)`);
    const dlqIds = new Set(deadLetters.records.map((r) => r.id));
    const outIds = new Set(output.records.map((r) => r.id));
    for (const id of expectedDeadLetters) {
      if (!dlqIds.has(id))
        violations.push(`${id} is not in the DLQ${outIds.has(id) ? ' (it is in the output)' : ''}`);
    }

    const outcome = fault.outcome;
    const failedVisibly =
      outcome.kind === 'recover-or-fail' && failedTraces.some((t) => t.includes(outcome.mentions(topics)));
    if (failedVisibly) {
      notes.push(
        `task FAILED as allowed: ${firstLine(failedTraces.find((t) => t.includes(outcome.mentions(topics)))!)}`,
      );
    } else {
      if (!running)
        violations.push(`after recovery the tasks are not all RUNNING: ${describeStatuses(statuses)}`);
      if (verdict.pending > 0 || !caughtUp) {
        violations.push(
          `not caught up ${Math.round((caughtUpCheckedAt - faultEnd) / 1000)} s after the fault was lifted: ` +
            `${verdict.pending} input record(s) neither in the output nor the DLQ`,
        );
      }
      if (recoverySeconds === undefined)
        violations.push('some input partition never moved again after the fault');
    }
    if (producer.failedSends > 0)
      notes.push(`${producer.failedSends} producer send(s) failed during the fault`);
    if (verdict.inputDuplicates > 0)
      notes.push(`${verdict.inputDuplicates} input record(s) written twice by producer retries`);
    notes.push(...verdict.examples);
  } catch (error) {
    violations.push(`harness error: ${(error as Error).message}`);
  } finally {
    await producer?.stop().catch(() => undefined);
    for (const w of allWorkers) {
      if (w.alive) {
        w.kill('SIGCONT');
        await w.stop(15_000);
      }
    }
    await monitor.stop().catch(() => undefined);
  }

  const problems = new Map<string, number>();
  for (const w of allWorkers) for (const [k, n] of w.problems) problems.set(k, (problems.get(k) ?? 0) + n);
  return {
    id: fault.id,
    title,
    guarantee: fault.guarantee,
    verdict,
    regressions: monitor.regressions,
    recoverySeconds,
    workerRestarts,
    statuses,
    violations,
    notes,
    workerProblems: [...problems].sort((a, b) => b[1] - a[1]).slice(0, 8),
    logs: [...new Set(allWorkers.map((w) => w.logFile))],
    seconds: (Date.now() - started) / 1000,
    passed: violations.length === 0,
  };
}

function isRunning(status: ConnectorStatus | undefined): boolean {
  return (
    status !== undefined &&
    status.connector.state === 'RUNNING' &&
    status.tasks.length > 0 &&
    status.tasks.every((t) => t.state === 'RUNNING')
  );
}

function failureTraces(status: ConnectorStatus | undefined): string[] {
  if (!status) return [];
  return [status.connector, ...status.tasks].filter((s) => s.state === 'FAILED').map((s) => s.trace ?? '');
}

function describeStatuses(statuses: Array<ConnectorStatus | undefined>): string {
  return statuses
    .map((s, i) =>
      s
        ? `worker ${i + 1}: connector ${s.connector.state}, tasks ${s.tasks.map((t) => `${t.id}=${t.state}${t.trace ? ` (${firstLine(t.trace)})` : ''}`).join(', ') || 'none'}`
        : `worker ${i + 1}: no status`,
    )
    .join('; ');
}

const firstLine = (text: string) => text.split('\n')[0]!.slice(0, 200);
