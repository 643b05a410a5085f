// Background processes of the dev stack, tracked by pid files so `down` stops exactly what `up`
// started and nothing else: a pid is only signalled while its command line still carries the
// marker it was started with (pids are reused by the kernel).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface TrackedProcess {
  pid: number;
  marker: string;
  command: string[];
  startedAt: string;
  log: string;
}

export function readPidFile(pidFile: string): TrackedProcess | undefined {
  if (!existsSync(pidFile)) return undefined;
  try {
    return JSON.parse(readFileSync(pidFile, 'utf8')) as TrackedProcess;
  } catch {
    return undefined;
  }
}

/** True when the pid is alive and still runs the command that was recorded for it. */
export function isOurs(proc: TrackedProcess | undefined): proc is TrackedProcess {
  if (!proc) return false;
  try {
    const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    return cmdline.includes(proc.marker);
  } catch {
    return false;
  }
}

/**
 * Starts `command` detached in its own process group, output appended to `log`, and records it in
 * `pidFile`. The marker must be a string that appears in the command line (checked by `isOurs`).
 */
export function startDetached(options: {
  command: string[];
  marker: string;
  pidFile: string;
  log: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}): TrackedProcess {
  const [file, ...args] = options.command;
  if (!file) throw new Error('startDetached: empty command');
  mkdirSync(dirname(options.log), { recursive: true });
  mkdirSync(dirname(options.pidFile), { recursive: true });
  const out = openSync(options.log, 'a');
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${file}; see ${options.log}`);
  child.unref();
  const tracked: TrackedProcess = {
    pid: child.pid,
    marker: options.marker,
    command: options.command,
    startedAt: new Date().toISOString(),
    log: options.log,
  };
  writeFileSync(options.pidFile, JSON.stringify(tracked, null, 2));
  return tracked;
}

/**
 * SIGTERM to the process group, then SIGKILL after `graceMs`. Removes the pid file. A frozen
 * (SIGSTOPped) service is continued right after the SIGTERM so it can shut down cleanly.
 */
export async function stopTracked(pidFile: string, graceMs = 20_000): Promise<'stopped' | 'not-running'> {
  const proc = readPidFile(pidFile);
  if (!isOurs(proc)) {
    rmSync(pidFile, { force: true });
    return 'not-running';
  }
  signalGroup(proc.pid, 'SIGTERM');
  signalGroup(proc.pid, 'SIGCONT');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isOurs(proc)) await sleep(200);
  if (isOurs(proc)) {
    signalGroup(proc.pid, 'SIGKILL');
    while (isOurs(proc)) await sleep(100);
  }
  rmSync(pidFile, { force: true });
  return 'stopped';
}

/**
 * Sends `signal` to the process group of a tracked process (SIGSTOP/SIGCONT to freeze and thaw a
 * service, SIGKILL to crash it). Throws when the pid file names no live process of ours, so a
 * fault is never silently injected into nothing (or into a reused pid).
 */
export function signalTracked(pidFile: string, signal: NodeJS.Signals): TrackedProcess {
  const proc = readPidFile(pidFile);
  if (!isOurs(proc)) throw new Error(`no running process of ours recorded in ${pidFile}`);
  signalGroup(proc.pid, signal);
  return proc;
}

/**
 * SIGKILL to the process group, then waits until the process is gone (at most `timeoutMs`). The
 * pid file is removed; what the service wrote to disk stays, so it can be restarted on its data.
 */
export async function killTracked(pidFile: string, timeoutMs = 10_000): Promise<void> {
  const proc = signalTracked(pidFile, 'SIGKILL');
  const deadline = Date.now() + timeoutMs;
  while (isOurs(proc)) {
    if (Date.now() > deadline)
      throw new Error(`pid ${proc.pid} (${pidFile}) survived SIGKILL for ${timeoutMs} ms`);
    await sleep(50);
  }
  rmSync(pidFile, { force: true });
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}
