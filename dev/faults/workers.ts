// A standalone worker as a child process (`node bin/infer-connect.js standalone worker.json
// connector.json`), the way an operator runs it: the harness signals it, restarts it on the same
// config and offsets file, asks its REST API for the connector status, and summarises its log.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface WorkerSpec {
  /** Folder of the case: configs and logs go there. */
  dir: string;
  /** Path of bin/infer-connect.js (or another entry point taking the same arguments). */
  cli: string;
  cwd: string;
  workerConfig: Record<string, unknown>;
  connector: { name: string; config: Record<string, string> };
}

export interface TaskStatus {
  id: number;
  state: string;
  worker_id: string;
  trace?: string;
}
export interface ConnectorStatus {
  name: string;
  connector: { state: string; worker_id: string; trace?: string };
  tasks: TaskStatus[];
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** The error code of the undecodable records the producer mixes in (dead letters by design). */
const POISON_ERROR_CODE = 'AVRO_MAGIC_BYTE';

export interface LogEntry {
  level?: number;
  msg?: string;
  rest?: string;
  err?: { message?: string; code?: string; stack?: string };
  /** kafkajs' own fields (its log lines are routed into the worker's logger). */
  kafkajs?: { error?: string };
}

/**
 * One line per kind of problem: level, message, error code and message with numbers (offsets,
 * ids, ms) blanked so identical problems group, and for errors the first runtime or connector
 * stack frame, which says where it surfaced.
 */
export function problemKey(entry: LogEntry): string {
  const blank = (text: string | undefined) => text?.replace(/\d+/g, '#').slice(0, 160);
  const frame = entry.err?.stack
    ?.split('\n')
    .find((l) => /\/(runtime|connectors)\//.test(l))
    ?.trim()
    .replace(/^at /, '')
    .replace(/\(?\/.*?\/((runtime|connectors)\/[^:)]+)(:\d+)?(:\d+)?\)?/, '($1$3)');
  const detail = [
    entry.err?.code,
    blank(entry.err?.message),
    blank(entry.kafkajs?.error),
    frame && `at ${frame}`,
  ]
    .filter(Boolean)
    .join(' ');
  return `${(entry.level ?? 0) >= 50 ? 'error' : 'warn'}: ${entry.msg ?? '(no message)'}${detail ? ` [${detail}]` : ''}`;
}

/** Children still running, so the harness can kill them whatever way it ends. */
const live = new Set<ChildProcess>();
export function killAllWorkers(): void {
  for (const child of live) child.kill('SIGKILL');
}

export class WorkerProcess {
  url: string | undefined;
  exitInfo: ExitInfo | undefined;
  /** Set when the harness itself stopped or killed this worker. */
  stoppedOnPurpose = false;
  readonly exited: Promise<ExitInfo>;
  /** level >= warn log lines by message, with a count. */
  readonly problems = new Map<string, number>();
  readonly stderrTail: string[] = [];
  readonly logFile: string;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;

  private constructor(
    readonly label: string,
    spec: WorkerSpec,
  ) {
    const workerFile = join(spec.dir, `${label}.worker.json`);
    const connectorFile = join(spec.dir, 'connector.json');
    writeFileSync(workerFile, JSON.stringify(spec.workerConfig, null, 2));
    writeFileSync(connectorFile, JSON.stringify(spec.connector, null, 2));
    this.logFile = join(spec.dir, `${label}.log`);
    this.log = createWriteStream(this.logFile, { flags: 'a' });
    this.log.write(`---- ${new Date().toISOString()} starting ${label}\n`);
    this.child = spawn(process.execPath, [spec.cli, 'standalone', workerFile, connectorFile], {
      cwd: spec.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    live.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        this.exitInfo = { code, signal, at: Date.now() };
        this.log.write(`---- ${new Date().toISOString()} exited code=${code} signal=${signal}\n`);
        resolve(this.exitInfo);
      }),
    );
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.onStdout(line));
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.log.write(`[stderr] ${line}\n`);
      this.stderrTail.push(line);
      if (this.stderrTail.length > 40) this.stderrTail.shift();
    });
  }

  /** Starts a worker and waits until its REST API answers (or throws after `timeoutMs`). */
  static async start(label: string, spec: WorkerSpec, timeoutMs = 90_000): Promise<WorkerProcess> {
    const worker = new WorkerProcess(label, spec);
    const deadline = Date.now() + timeoutMs;
    while (!worker.url) {
      if (worker.exitInfo) {
        throw new Error(
          `worker ${label} exited during start-up (code ${worker.exitInfo.code}); see ${worker.logFile}\n` +
            worker.stderrTail.slice(-10).join('\n'),
        );
      }
      if (Date.now() > deadline) {
        worker.kill('SIGKILL');
        throw new Error(
          `worker ${label} did not start its REST API within ${timeoutMs} ms; see ${worker.logFile}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return worker;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  /** SIGTERM (drain), then SIGKILL after `graceMs`; resolves how it exited. */
  async stop(graceMs = 30_000): Promise<ExitInfo> {
    this.stoppedOnPurpose = true;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
      this.log.end();
    }
  }

  async status(connector: string): Promise<ConnectorStatus | undefined> {
    if (!this.url || !this.alive) return undefined;
    try {
      const response = await fetch(`${this.url}/connectors/${encodeURIComponent(connector)}/status`, {
        signal: AbortSignal.timeout(5000),
      });
      return response.ok ? ((await response.json()) as ConnectorStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The most frequent warn/error messages of this worker's log, most frequent first. */
  topProblems(limit = 6): Array<[string, number]> {
    return [...this.problems].sort((a, b) => b[1] - a[1]).slice(0, limit);
  }

  private onStdout(line: string): void {
    this.log.write(`${line}\n`);
    let entry: LogEntry;
    try {
      entry = JSON.parse(line) as LogEntry;
    } catch {
      return;
    }
    if (entry.msg === 'worker started' && typeof entry.rest === 'string') this.url = entry.rest;
    // The harness's own poison records (errors.log.enable) are expected, not a problem.
    if (entry.err?.code === POISON_ERROR_CODE) return;
    if ((entry.level ?? 0) >= 40) {
      const key = problemKey(entry);
      this.problems.set(key, (this.problems.get(key) ?? 0) + 1);
    }
  }
}
