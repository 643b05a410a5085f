// A command-line tool the tests need that is not an npm package (docker-compose, promtool),
// installed on first use into its own folder of the cache, the way dev/stack.ts fetches Kafka and
// TensorFlow. The concrete tools are in dev/tools.ts; this module holds what they share:
//
// - `ensureCachedTool` returns the executable's path. It installs only when the folder has no stamp
//   equal to the spec's `identity` (version and pins), so a second run never fetches again.
// - Two processes sharing a cache (a developer's test run next to CI's) are serialised by a lock
//   file holding the installer's pid; a lock whose pid is gone is taken over.
// - Every command of an install runs under one deadline (its process group is killed when it
//   passes). A failed install leaves no stamp; its error names the tool, the source, what failed
//   and how to get the tool by hand.
import { spawn } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CachedToolSpec {
  /** Name and version for messages, e.g. `promtool 3.5.0`. */
  name: string;
  /** Where it comes from, for messages, e.g. `PyPI` or `the Go module proxy`. */
  source: string;
  /** The folder the tool lives in; each install empties it first. */
  dir: string;
  /** The executable, relative to `dir`. */
  executable: string;
  /** What the installed files depend on (versions, pins): a different identity reinstalls. */
  identity: string;
  /** Upper bound for one install, every command it runs together. */
  timeoutMs: number;
  /** What a person can do when the install fails (what it needs, how to retry). */
  remedy: string;
  /** Fills `context.dir`; called with the lock held and `dir` empty. */
  install(context: InstallContext): Promise<void>;
}

export interface InstallContext {
  dir: string;
  /** Runs a command within the install's deadline; resolves to its stdout, rejects naming `what`. */
  run(command: string, args: string[], options: RunOptions): Promise<string>;
}

export interface RunOptions {
  what: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface CachedToolDeps {
  now(): number;
  sleep(ms: number): Promise<void>;
  log(message: string): void;
  isAlive(pid: number): boolean;
  run(command: string, args: string[], options: RunOptions & { timeoutMs: number }): Promise<string>;
}

const STAMP = '.installed';
const LOCK_POLL_MS = 1000;
/** Output kept from a failing command for its error message. */
const OUTPUT_TAIL_CHARS = 4000;

export const defaultDeps: CachedToolDeps = {
  now: () => Date.now(),
  sleep: (ms) => sleep(ms),
  log: (message) => process.stderr.write(`[tools] ${message}\n`),
  isAlive: (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  },
  run: runBounded,
};

/** The tool's executable, installing it first unless the cache already holds this identity. */
export async function ensureCachedTool(
  spec: CachedToolSpec,
  deps: CachedToolDeps = defaultDeps,
): Promise<string> {
  const executable = join(spec.dir, spec.executable);
  if (isInstalled(spec)) return executable;
  const release = await acquireLock(spec, deps);
  try {
    if (isInstalled(spec)) return executable; // another process installed it while we waited
    await install(spec, deps);
    return executable;
  } finally {
    release();
  }
}

function isInstalled(spec: CachedToolSpec): boolean {
  const stamp = join(spec.dir, STAMP);
  return (
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8') === spec.identity &&
    existsSync(join(spec.dir, spec.executable))
  );
}

async function install(spec: CachedToolSpec, deps: CachedToolDeps): Promise<void> {
  const started = deps.now();
  const deadline = started + spec.timeoutMs;
  rmSync(spec.dir, { recursive: true, force: true });
  mkdirSync(spec.dir, { recursive: true });
  deps.log(`fetching ${spec.name} from ${spec.source} into ${spec.dir} (first run only)`);
  const context: InstallContext = {
    dir: spec.dir,
    run: (command, args, options) => {
      const timeoutMs = deadline - deps.now();
      if (timeoutMs <= 0) {
        return Promise.reject(new Error(`${options.what}: out of time (${spec.timeoutMs / 1000} s in all)`));
      }
      return deps.run(command, args, { ...options, timeoutMs });
    },
  };
  try {
    await spec.install(context);
    if (!existsSync(join(spec.dir, spec.executable))) {
      throw new Error(`the install finished without ${spec.executable}`);
    }
  } catch (error) {
    throw new Error(
      `could not fetch ${spec.name} from ${spec.source} into ${spec.dir}: ${(error as Error).message}\n${spec.remedy}`,
      { cause: error },
    );
  }
  writeFileSync(join(spec.dir, STAMP), spec.identity);
  deps.log(`${spec.name} ready in ${((deps.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * Takes `<dir>.lock` (a file holding our pid, created atomically by a hard link), waiting while a
 * live process holds it. Returns the release function.
 */
async function acquireLock(spec: CachedToolSpec, deps: CachedToolDeps): Promise<() => void> {
  const lock = `${spec.dir}.lock`;
  const mine = `${lock}.${process.pid}`;
  mkdirSync(join(spec.dir, '..'), { recursive: true });
  writeFileSync(mine, String(process.pid));
  const giveUpAt = deps.now() + spec.timeoutMs + 60_000;
  let announced = false;
  try {
    for (;;) {
      try {
        linkSync(mine, lock);
        return () => rmSync(lock, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = readOwner(lock);
      if (owner === undefined || !deps.isAlive(owner)) {
        deps.log(`taking over ${lock} (its process ${owner ?? '?'} is gone)`);
        rmSync(lock, { force: true });
        continue;
      }
      if (deps.now() > giveUpAt) {
        throw new Error(
          `waited ${((spec.timeoutMs + 60_000) / 1000).toFixed(0)} s for process ${owner} to install ${spec.name}; ` +
            `if no such install is running, delete ${lock}`,
        );
      }
      if (!announced) deps.log(`waiting for process ${owner}, which is installing ${spec.name}`);
      announced = true;
      await deps.sleep(LOCK_POLL_MS);
    }
  } finally {
    rmSync(mine, { force: true });
  }
}

function readOwner(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(lock, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs a command in its own process group; resolves to its stdout when it exits 0. Rejects when it
 * cannot start, exits non-zero or outlives `timeoutMs` (then the whole group is killed: `go build`
 * leaves compilers running otherwise), with the end of its output.
 */
export function runBounded(
  command: string,
  args: string[],
  options: RunOptions & { timeoutMs: number },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let tail = '';
    const keep = (chunk: Buffer) => {
      tail = `${tail}${chunk.toString()}`.slice(-OUTPUT_TAIL_CHARS);
    };
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      keep(chunk);
    });
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, options.timeoutMs);
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          error.code === 'ENOENT'
            ? `${options.what}: ${command} is not installed (not found on PATH)`
            : `${options.what}: ${error.message}`,
        ),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(stdout);
      const why = timedOut
        ? `timed out after ${(options.timeoutMs / 1000).toFixed(0)} s`
        : `exited with ${code ?? signal}`;
      reject(new Error(`${options.what} ${why} (${command} ${args.join(' ')}):\n${tail.trimEnd()}`));
    });
  });
}
