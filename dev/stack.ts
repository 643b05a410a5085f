// The local stack: Apache Kafka (KRaft), Apicurio Registry (Confluent-compatible API) and the
// TF-Serving-compatible model server, all bound to 127.0.0.1. Downloads, the Python virtualenv
// and trained models are cached under INFER_CONNECT_CACHE (default ~/.cache/infer-connect), so
// only the first `up` on a machine is slow.
//
//   npm run stack -- up | down | status [--json] | models [--eval]
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { Kafka, logLevel } from 'kafkajs';
import { silenceKafkajsTimerWarnings } from '../runtime/node-warnings.js';
import { isOurs, readPidFile, startDetached, stopTracked } from './processes.js';

export const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const cacheDir = process.env.INFER_CONNECT_CACHE ?? join(homedir(), '.cache', 'infer-connect');
const runDir = join(cacheDir, 'run');

const KAFKA_VERSION = '4.1.1';
const APICURIO_VERSION = '3.3.3';

export const endpoints = {
  kafka: { bootstrap: '127.0.0.1:9092', controller: '127.0.0.1:9093' },
  schemaRegistry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7', management: '127.0.0.1:8091' },
  modelServer: { target: '127.0.0.1:8500', control: 'http://127.0.0.1:8502' },
} as const;

export const paths = {
  venvPython: join(cacheDir, 'venv', 'bin', 'python'),
  modelBase: join(cacheDir, 'models'),
  censusData: join(repoRoot, 'data', 'census'),
};

type ServiceName = 'kafka' | 'schemaRegistry' | 'modelServer';

export interface ServiceStatus {
  url: string;
  healthy: boolean;
  pid: number | null;
  log: string;
  detail?: string;
}

const pidFile = (name: ServiceName) => join(runDir, `${name}.pid`);
const logFile = (name: ServiceName) => join(runDir, `${name}.log`);

function log(message: string): void {
  process.stderr.write(`[stack] ${message}\n`);
}

function run(command: string, args: string[], options: { cwd?: string; what: string }): void {
  const result = spawnSync(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) {
    const output = `${result.stdout?.toString() ?? ''}${result.stderr?.toString() ?? ''}`.slice(-4000);
    throw new Error(`${options.what} failed (${command} ${args.join(' ')}):\n${output}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Downloads (cached)

function ensureKafkaJars(): string {
  const libs = join(cacheDir, `kafka-${KAFKA_VERSION}`, 'libs');
  const stamp = join(libs, '.complete');
  if (existsSync(stamp)) return libs;
  log(`resolving Apache Kafka ${KAFKA_VERSION} jars with Maven (first run only)`);
  run(
    'mvn',
    [
      '-q',
      '-B',
      '-f',
      join(repoRoot, 'dev', 'kafka', 'pom.xml'),
      `-Dkafka.version=${KAFKA_VERSION}`,
      'dependency:copy-dependencies',
      `-DoutputDirectory=${libs}`,
      '-DincludeScope=runtime',
    ],
    { what: 'resolving the Kafka broker jars' },
  );
  writeFileSync(stamp, new Date().toISOString());
  return libs;
}

function ensureApicurio(): string {
  const home = join(cacheDir, `apicurio-registry-${APICURIO_VERSION}`);
  if (existsSync(join(home, 'quarkus-run.jar'))) return home;
  log(`resolving Apicurio Registry ${APICURIO_VERSION} from Maven (first run only)`);
  const download = join(cacheDir, 'downloads');
  mkdirSync(download, { recursive: true });
  run(
    'mvn',
    [
      '-q',
      '-B',
      'dependency:copy',
      `-Dartifact=io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:tar.gz:all`,
      `-DoutputDirectory=${download}`,
    ],
    { what: 'resolving Apicurio Registry' },
  );
  mkdirSync(home, { recursive: true });
  run('tar', ['xzf', join(download, `apicurio-registry-app-${APICURIO_VERSION}-all.tar.gz`), '-C', home], {
    what: 'unpacking Apicurio Registry',
  });
  return home;
}

/**
 * The oldest installed Java of at least `minimumMajor`: Kafka runs on Java 17, Apicurio Registry
 * 3.x needs 21+.
 */
function findJava(minimumMajor: number): string {
  const candidates = [
    process.env.INFER_CONNECT_JAVA_HOME,
    process.env.JAVA_HOME,
    ...(existsSync('/usr/lib/jvm') ? readdirSync('/usr/lib/jvm').map((d) => join('/usr/lib/jvm', d)) : []),
  ].filter((d): d is string => Boolean(d));
  let best: { bin: string; major: number } | undefined;
  for (const home of candidates) {
    const bin = join(home, 'bin', 'java');
    if (!existsSync(bin)) continue;
    const out = spawnSync(bin, ['-version'], { encoding: 'utf8' }).stderr ?? '';
    const match = /version "(\d+)/.exec(out);
    const major = match ? Number(match[1]) : 0;
    if (major >= minimumMajor && (!best || major < best.major)) best = { bin, major };
  }
  if (!best) {
    throw new Error(
      `no Java ${minimumMajor}+ found (looked at INFER_CONNECT_JAVA_HOME, JAVA_HOME and /usr/lib/jvm/*); ` +
        `Apicurio Registry ${APICURIO_VERSION} needs it: install a JDK ${minimumMajor}+ and set INFER_CONNECT_JAVA_HOME`,
    );
  }
  return best.bin;
}

function ensureVenv(): string {
  const requirements = join(repoRoot, 'dev', 'model-server', 'requirements.txt');
  const hash = createHash('sha256').update(readFileSync(requirements)).digest('hex');
  const venv = join(cacheDir, 'venv');
  const stamp = join(venv, '.requirements-sha256');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === hash && existsSync(paths.venvPython)) {
    return paths.venvPython;
  }
  log('creating the model server virtualenv (TensorFlow; first run only, a few minutes)');
  rmSync(venv, { recursive: true, force: true });
  run('python3', ['-m', 'venv', venv], { what: 'creating the Python virtualenv' });
  run(paths.venvPython, ['-m', 'pip', 'install', '-q', '-r', requirements], {
    what: 'installing the model server requirements',
  });
  writeFileSync(stamp, hash);
  return paths.venvPython;
}

/** Trains or loads the models (cached by a hash of their inputs inside build_models.py). */
export function ensureModels(): void {
  const python = ensureVenv();
  log('ensuring models (census, null, image) are built');
  const result = spawnSync(
    python,
    [
      join(repoRoot, 'dev', 'model-server', 'build_models.py'),
      '--base',
      paths.modelBase,
      '--data',
      paths.censusData,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (result.status !== 0) throw new Error('building the models failed (see the output above)');
}

// ---------------------------------------------------------------------------------------------
// Health checks

async function kafkaHealthy(): Promise<{ healthy: boolean; detail?: string }> {
  const kafka = new Kafka({
    clientId: 'infer-connect-stack',
    brokers: [endpoints.kafka.bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return { healthy: cluster.brokers.length > 0, detail: `cluster ${cluster.clusterId}` };
  } catch (error) {
    return { healthy: false, detail: (error as Error).message };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function httpHealthy(url: string): Promise<{ healthy: boolean; detail?: string }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { healthy: response.ok, detail: `HTTP ${response.status}` };
  } catch (error) {
    return { healthy: false, detail: (error as Error).message };
  }
}

const checks: Record<ServiceName, () => Promise<{ healthy: boolean; detail?: string }>> = {
  kafka: kafkaHealthy,
  schemaRegistry: () => httpHealthy(`${endpoints.schemaRegistry.url}/subjects`),
  modelServer: () => httpHealthy(`${endpoints.modelServer.control}/health`),
};

const urls: Record<ServiceName, string> = {
  kafka: endpoints.kafka.bootstrap,
  schemaRegistry: endpoints.schemaRegistry.url,
  modelServer: endpoints.modelServer.target,
};

export async function status(): Promise<Record<ServiceName, ServiceStatus>> {
  const names = Object.keys(checks) as ServiceName[];
  const results = await Promise.all(names.map((name) => checks[name]()));
  const out = {} as Record<ServiceName, ServiceStatus>;
  names.forEach((name, i) => {
    const proc = readPidFile(pidFile(name));
    out[name] = {
      url: urls[name],
      healthy: results[i]!.healthy,
      pid: isOurs(proc) ? proc.pid : null,
      log: logFile(name),
      ...(results[i]!.detail ? { detail: results[i]!.detail } : {}),
    };
  });
  return out;
}

async function waitHealthy(name: ServiceName, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const result = await checks[name]();
    if (result.healthy) return;
    last = result.detail ?? '';
    if (!isOurs(readPidFile(pidFile(name)))) {
      throw new Error(
        `${name} exited during start-up; last lines of ${logFile(name)}:\n${tail(logFile(name))}`,
      );
    }
    await sleep(500);
  }
  throw new Error(
    `${name} did not become healthy within ${timeoutMs / 1000}s (${last}); see ${logFile(name)}`,
  );
}

function tail(file: string, lines = 30): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Starting each service

function kafkaServerProperties(dataDir: string): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${endpoints.kafka.controller}`,
    `listeners=PLAINTEXT://${endpoints.kafka.bootstrap},CONTROLLER://${endpoints.kafka.controller}`,
    `advertised.listeners=PLAINTEXT://${endpoints.kafka.bootstrap}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    `log.dirs=${dataDir}`,
    'num.partitions=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=10',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=10',
    'group.initial.rebalance.delay.ms=0',
    'auto.create.topics.enable=false',
    '',
  ].join('\n');
}

function startKafka(libs: string): void {
  // A fresh start gets fresh storage: the registry keeps schemas in memory, so Avro records left
  // from an earlier run would point at schema ids that no longer exist.
  const home = join(runDir, 'kafka');
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });
  const properties = join(home, 'server.properties');
  writeFileSync(properties, kafkaServerProperties(join(home, 'data')));
  const java = findJava(17);
  const log4j = `-Dlog4j2.configurationFile=${join(repoRoot, 'dev', 'kafka', 'log4j2.properties')}`;
  const clusterId = randomBytes(16).toString('base64url');
  run(
    java,
    ['-cp', `${libs}/*`, log4j, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', properties],
    {
      what: 'formatting the Kafka storage',
    },
  );
  startDetached({
    command: [java, '-Xms256m', '-Xmx1g', '-cp', `${libs}/*`, log4j, 'kafka.Kafka', properties],
    marker: properties,
    pidFile: pidFile('kafka'),
    log: logFile('kafka'),
  });
}

function startSchemaRegistry(home: string): void {
  const java = findJava(21);
  startDetached({
    command: [
      java,
      '-Xms128m',
      '-Xmx768m',
      '-Dquarkus.http.host=127.0.0.1',
      '-Dquarkus.http.port=8081',
      '-Dquarkus.management.host=127.0.0.1',
      `-Dquarkus.management.port=${endpoints.schemaRegistry.management.split(':')[1]}`,
      '-jar',
      join(home, 'quarkus-run.jar'),
    ],
    marker: join(home, 'quarkus-run.jar'),
    cwd: home,
    pidFile: pidFile('schemaRegistry'),
    log: logFile('schemaRegistry'),
  });
}

/** Confluent's registry checks BACKWARD compatibility by default; Apicurio checks nothing unless told. */
async function configureSchemaRegistry(): Promise<void> {
  const response = await fetch(`${endpoints.schemaRegistry.url}/config`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ compatibility: 'BACKWARD' }),
  });
  if (!response.ok) {
    throw new Error(
      `setting the registry's default compatibility failed: HTTP ${response.status} ${await response.text()}`,
    );
  }
}

function startModelServer(): void {
  const python = ensureVenv();
  const script = join(repoRoot, 'dev', 'model-server', 'server.py');
  startDetached({
    command: [
      python,
      script,
      '--port',
      endpoints.modelServer.target.split(':')[1]!,
      '--control-port',
      new URL(endpoints.modelServer.control).port,
      '--model-base',
      paths.modelBase,
      '--version-labels',
      'census:stable=1,null:stable=1,null:canary=2',
    ],
    marker: script,
    pidFile: pidFile('modelServer'),
    log: logFile('modelServer'),
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', PYTHONUNBUFFERED: '1' },
  });
}

// ---------------------------------------------------------------------------------------------
// Commands

export async function up(): Promise<Record<ServiceName, ServiceStatus>> {
  mkdirSync(runDir, { recursive: true });
  const before = await status();
  for (const [name, s] of Object.entries(before)) {
    if (s.healthy && s.pid === null)
      log(`${name}: something not started by this stack already answers at ${s.url}; using it`);
  }
  const starting: Promise<void>[] = [];
  if (!before.kafka.healthy) {
    const libs = ensureKafkaJars();
    await stopTracked(pidFile('kafka'));
    log(`starting Kafka ${KAFKA_VERSION} on ${endpoints.kafka.bootstrap}`);
    startKafka(libs);
    starting.push(waitHealthy('kafka', 90_000));
  }
  if (!before.schemaRegistry.healthy) {
    const home = ensureApicurio();
    await stopTracked(pidFile('schemaRegistry'));
    log(`starting Apicurio Registry ${APICURIO_VERSION} on ${endpoints.schemaRegistry.url}`);
    startSchemaRegistry(home);
    starting.push(waitHealthy('schemaRegistry', 120_000).then(configureSchemaRegistry));
  }
  if (!before.modelServer.healthy) {
    ensureModels();
    await stopTracked(pidFile('modelServer'));
    log(`starting the model server on ${endpoints.modelServer.target}`);
    startModelServer();
    starting.push(waitHealthy('modelServer', 180_000));
  }
  const results = await Promise.allSettled(starting);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) throw new Error(failures.map((f) => (f.reason as Error).message).join('\n'));
  return status();
}

export async function down(): Promise<void> {
  for (const name of ['modelServer', 'schemaRegistry', 'kafka'] as ServiceName[]) {
    const result = await stopTracked(pidFile(name));
    log(`${name}: ${result}`);
  }
}

function printTable(s: Record<ServiceName, ServiceStatus>): void {
  for (const [name, v] of Object.entries(s)) {
    const state = v.healthy ? 'healthy' : 'DOWN';
    process.stdout.write(
      `${name.padEnd(15)} ${state.padEnd(8)} ${v.url}${v.pid ? `  (pid ${v.pid})` : ''}\n`,
    );
  }
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('stack').description(
    'Manage the local dev stack (Kafka, registry, model server)',
  );
  program
    .command('up')
    .description('start every service that is not already running and wait until each answers')
    .action(async () => {
      const started = Date.now();
      const s = await up();
      printTable(s);
      log(`stack ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    });
  program.command('down').description('stop the services this stack started (by pid)').action(down);
  program
    .command('status')
    .description('show each service and whether it answers')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const s = await status();
      if (options.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      else printTable(s);
      if (!Object.values(s).every((v) => v.healthy)) process.exitCode = 1;
    });
  program
    .command('models')
    .description('build (or load from cache) the census, null and image models')
    .option('--eval', "print the census model's accuracy on the test split")
    .action((options: { eval?: boolean }) => {
      ensureModels();
      if (options.eval) {
        const metrics = JSON.parse(
          readFileSync(join(paths.modelBase, 'census', '1', 'assets.extra', 'metrics.json'), 'utf8'),
        ) as {
          accuracy: number;
          test_rows: number;
        };
        process.stdout.write(
          `census model accuracy on adult.test.csv: ${(metrics.accuracy * 100).toFixed(2)}% (${metrics.test_rows} rows)\n`,
        );
      }
    });
  await program.parseAsync(argv);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  silenceKafkajsTimerWarnings();
  main(process.argv).catch((error: unknown) => {
    log((error as Error).message);
    process.exit(1);
  });
}
