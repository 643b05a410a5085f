// Seldon MLServer (from PyPI, dev/mlserver/requirements.txt) serving the census scikit-learn
// Pipeline over the Open Inference Protocol, started on demand beside the local stack: gRPC
// 127.0.0.1:8510, HTTP 127.0.0.1:8511, metrics server off. The virtualenv and the trained model
// are cached under INFER_CONNECT_CACHE (mlserver/), the model keyed by a hash of what it is built
// from; the pid file and log are in the stack's run dir (mlserver.pid, mlserver.log), so
// `stack down` can stop it with the other services.
//
//   npx tsx dev/mlserver.ts up | down | status | eval
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isOurs, readPidFile, startDetached, stopTracked } from './processes.js';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cacheDir = process.env.INFER_CONNECT_CACHE ?? join(homedir(), '.cache', 'infer-connect');
/** The default stack instance's run dir (dev/stack.ts `instances.default.runDir`). */
const runDir = join(cacheDir, 'run');

export const MLSERVER_GRPC_PORT = 8510;
export const MLSERVER_HTTP_PORT = 8511;
const METRICS_PORT = 8512;

export const mlserverEndpoints = {
  /** OIP gRPC target, for `oip.target`. */
  target: `127.0.0.1:${MLSERVER_GRPC_PORT}`,
  http: `http://127.0.0.1:${MLSERVER_HTTP_PORT}`,
} as const;

export const mlserverPidFile = join(runDir, 'mlserver.pid');
const logFile = join(runDir, 'mlserver.log');
const sourceDir = join(repoRoot, 'dev', 'mlserver');
const venv = join(cacheDir, 'mlserver', 'venv');
const START_TIMEOUT_MS = 120_000;

function log(message: string): void {
  process.stderr.write(`[mlserver] ${message}\n`);
}

function run(command: string, args: string[], what: string, cwd?: string): string {
  const result = spawnSync(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(`${what} failed (${command} ${args.join(' ')}):\n${result.stderr || result.stdout}`);
  return result.stdout;
}

/** The virtualenv with MLServer, rebuilt when requirements.txt changes. Returns its bin dir. */
export function ensureMlserverVenv(): string {
  const requirements = join(sourceDir, 'requirements.txt');
  const hash = createHash('sha256').update(readFileSync(requirements)).digest('hex');
  const stamp = join(venv, '.requirements-sha256');
  const bin = join(venv, 'bin');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash && existsSync(join(bin, 'mlserver')))
    return bin;
  log('creating the MLServer virtualenv (first run only, about a minute)');
  rmSync(venv, { recursive: true, force: true });
  run('python3', ['-m', 'venv', venv], 'creating the MLServer virtualenv');
  run(join(bin, 'python'), ['-m', 'pip', 'install', '-q', '-r', requirements], 'installing MLServer');
  writeFileSync(stamp, hash);
  return bin;
}

export interface CensusModel {
  /** The MLServer repository root (settings.json, census/model-settings.json, census/model.joblib). */
  repository: string;
  /** Accuracy of the Pipeline on adult.test.csv, as train.py measured it. */
  accuracy: number;
  testRows: number;
}

/** What the model is built from: a change to any of these trains it again. */
const MODEL_INPUTS = [
  'dev/mlserver/requirements.txt',
  'dev/mlserver/train.py',
  'dev/mlserver/census_runtime.py',
  'dev/mlserver/census_columns.py',
  'data/census/adult.train.csv',
  'data/census/adult.test.csv',
];

/** Trains the census Pipeline into the cache, or finds it there. */
export function ensureCensusModel(): CensusModel {
  const hash = createHash('sha256');
  for (const file of MODEL_INPUTS) hash.update(file).update(readFileSync(join(repoRoot, file)));
  const repository = join(cacheDir, 'mlserver', `repository-${hash.digest('hex').slice(0, 16)}`);
  const metricsFile = join(repository, 'census', 'metrics.json');
  if (!existsSync(metricsFile)) {
    const bin = ensureMlserverVenv();
    log('training the census scikit-learn pipeline');
    const building = `${repository}.building`;
    rmSync(building, { recursive: true, force: true });
    run(
      join(bin, 'python'),
      [join(sourceDir, 'train.py'), join(repoRoot, 'data', 'census'), join(building, 'census')],
      'training the census pipeline',
    );
    rmSync(repository, { recursive: true, force: true });
    renameSync(building, repository);
  }
  const metrics = JSON.parse(readFileSync(metricsFile, 'utf8')) as { accuracy: number; test_rows: number };
  return { repository, accuracy: metrics.accuracy, testRows: metrics.test_rows };
}

/** Whether MLServer answers that the census model is ready. */
export async function mlserverHealthy(): Promise<boolean> {
  try {
    const response = await fetch(`${mlserverEndpoints.http}/v2/models/census/ready`, {
      signal: AbortSignal.timeout(2000),
    });
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Starts MLServer with the census model unless ours is running and ready; waits until it is. */
export async function startMlserver(): Promise<CensusModel> {
  const model = ensureCensusModel();
  const running = readPidFile(mlserverPidFile);
  if (isOurs(running) && running.marker.includes(model.repository) && (await mlserverHealthy())) return model;
  await stopTracked(mlserverPidFile);
  const bin = ensureMlserverVenv();
  writeFileSync(
    join(model.repository, 'settings.json'),
    JSON.stringify({
      host: '127.0.0.1',
      grpc_port: MLSERVER_GRPC_PORT,
      http_port: MLSERVER_HTTP_PORT,
      // The metrics server would also bind `host`; it is off, as nothing here scrapes it.
      metrics_port: METRICS_PORT,
      metrics_endpoint: null,
      // One process: the model is small, and worker processes would outlive a SIGKILL of the server.
      parallel_workers: 0,
      debug: false,
    }),
  );
  mkdirSync(runDir, { recursive: true });
  log(`starting MLServer on ${mlserverEndpoints.target} (gRPC) and ${mlserverEndpoints.http}`);
  startDetached({
    command: [join(bin, 'mlserver'), 'start', model.repository],
    marker: `mlserver start ${model.repository}`,
    pidFile: mlserverPidFile,
    log: logFile,
    cwd: model.repository,
    env: { ...process.env, PYTHONPATH: sourceDir, PYTHONUNBUFFERED: '1' },
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await mlserverHealthy())) {
    if (!isOurs(readPidFile(mlserverPidFile)))
      throw new Error(`MLServer exited during start-up; see ${logFile}:\n${tail()}`);
    if (Date.now() > deadline)
      throw new Error(`MLServer was not ready within ${START_TIMEOUT_MS / 1000}s; see ${logFile}`);
    await sleep(300);
  }
  return model;
}

/** Stops the MLServer this module started (by pid file), if it runs. */
export async function stopMlserver(): Promise<'stopped' | 'not-running'> {
  return stopTracked(mlserverPidFile);
}

function tail(lines = 30): string {
  return existsSync(logFile)
    ? readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n')
    : '(no log)';
}

async function main(command: string | undefined): Promise<void> {
  switch (command) {
    case 'up': {
      const model = await startMlserver();
      process.stdout.write(
        `mlserver running: gRPC ${mlserverEndpoints.target}, HTTP ${mlserverEndpoints.http}; census accuracy on adult.test.csv ${(model.accuracy * 100).toFixed(2)}%\n`,
      );
      return;
    }
    case 'down':
      process.stdout.write(`mlserver ${await stopMlserver()}\n`);
      return;
    case 'status': {
      const proc = readPidFile(mlserverPidFile);
      process.stdout.write(
        `mlserver ${(await mlserverHealthy()) ? 'ready' : 'down'}${isOurs(proc) ? ` (pid ${proc.pid})` : ''}\n`,
      );
      return;
    }
    case 'eval': {
      const model = ensureCensusModel();
      process.stdout.write(
        `census scikit-learn pipeline accuracy on adult.test.csv: ${(model.accuracy * 100).toFixed(2)}% (${model.testRows} rows)\n`,
      );
      return;
    }
    default:
      throw new Error('usage: npx tsx dev/mlserver.ts up | down | status | eval');
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv[2]).catch((error: unknown) => {
    log((error as Error).message);
    process.exit(1);
  });
}
