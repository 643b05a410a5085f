// The local stack: Apache Kafka (KRaft), Apicurio Registry (Confluent-compatible API) and the
// TF-Serving-compatible model server, all bound to 127.0.0.1. Downloads, the Python virtualenv
// and trained models are cached under INFER_CONNECT_CACHE (default ~/.cache/infer-connect), so
// only the first `up` on a machine is slow.
//
//   npm run stack -- up | down | status [--json] | models [--eval]
//   npm run stack -- up | down | status --instance faults
//   npm run stack -- freeze | thaw | kill | restart <service> --instance faults
//
// Two instances can run side by side: `default` (the ports below, shared by the integration tests)
// and `faults` (other loopback ports, its own run dir, a registry that keeps its data on disk),
// which the fault matrix (dev/faults) freezes, kills and restarts without disturbing anyone.
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
import { isOurs, killTracked, readPidFile, signalTracked, startDetached, stopTracked } from './processes.js';

export const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const cacheDir = process.env.INFER_CONNECT_CACHE ?? join(homedir(), '.cache', 'infer-connect');

const KAFKA_VERSION = '4.1.1';
const APICURIO_VERSION = '3.3.3';

export type InstanceName = 'default' | 'faults';

export interface StackEndpoints {
  kafka: { bootstrap: string; controller: string };
  schemaRegistry: { url: string; management: string };
  /** `target`: gRPC host:port; `rest`: TF Serving's REST API base URL; `control`: fault injection. */
  modelServer: { target: string; rest: string; control: string };
}

/** One copy of the stack: where it listens, where it keeps pid files, logs and data. */
export interface StackInstance {
  name: InstanceName;
  endpoints: StackEndpoints;
  runDir: string;
  /**
   * Where Apicurio keeps schemas. `memory` (Apicurio's default, an in-memory H2 database) loses
   * every schema when the registry stops; `file` (an H2 database file in the run dir) keeps them
   * across a kill and restart, so schema ids in Kafka stay valid.
   */
  registryStorage: 'memory' | 'file';
}

const loopbackEndpoints = (kafka: number, registry: number, model: number): StackEndpoints => ({
  kafka: { bootstrap: `127.0.0.1:${kafka}`, controller: `127.0.0.1:${kafka + 1}` },
  schemaRegistry: {
    url: `http://127.0.0.1:${registry}/apis/ccompat/v7`,
    management: `127.0.0.1:${registry + 10}`,
  },
  modelServer: {
    target: `127.0.0.1:${model}`,
    rest: `http://127.0.0.1:${model + 1}`,
    control: `http://127.0.0.1:${model + 2}`,
  },
});

export const instances: Readonly<Record<InstanceName, StackInstance>> = {
  default: {
    name: 'default',
    endpoints: loopbackEndpoints(9092, 8081, 8500),
    runDir: join(cacheDir, 'run'),
    registryStorage: 'memory',
  },
  faults: {
    name: 'faults',
    endpoints: loopbackEndpoints(19092, 18081, 18500),
    runDir: join(cacheDir, 'run-faults'),
    registryStorage: 'file',
  },
};

/** The default instance's endpoints (what the tests, the demo and the bench use). */
export const endpoints = instances.default.endpoints;

export function instanceNamed(name: string): StackInstance {
  if (name !== 'default' && name !== 'faults') {
    throw new Error(`unknown stack instance "${name}"; use default or faults`);
  }
  return instances[name];
}

export const paths = {
  venvPython: join(cacheDir, 'venv', 'bin', 'python'),
  modelBase: join(cacheDir, 'models'),
  censusData: join(repoRoot, 'data', 'census'),
};

export type ServiceName = 'kafka' | 'schemaRegistry' | 'modelServer';
export const serviceNames: readonly ServiceName[] = ['kafka', 'schemaRegistry', 'modelServer'];

export interface ServiceStatus {
  url: string;
  healthy: boolean;
  pid: number | null;
  log: string;
  detail?: string;
}

const pidFile = (instance: StackInstance, name: ServiceName) => join(instance.runDir, `${name}.pid`);
const logFile = (instance: StackInstance, name: ServiceName) => join(instance.runDir, `${name}.log`);
const port = (hostPort: string) => hostPort.split(':').at(-1)!;

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

async function kafkaHealthy(instance: StackInstance): Promise<{ healthy: boolean; detail?: string }> {
  const kafka = new Kafka({
    clientId: 'infer-connect-stack',
    brokers: [instance.endpoints.kafka.bootstrap],
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

const checks: Record<
  ServiceName,
  (instance: StackInstance) => Promise<{ healthy: boolean; detail?: string }>
> = {
  kafka: kafkaHealthy,
  schemaRegistry: (instance) => httpHealthy(`${instance.endpoints.schemaRegistry.url}/subjects`),
  modelServer: (instance) => httpHealthy(`${instance.endpoints.modelServer.control}/health`),
};

const urlOf = (instance: StackInstance, name: ServiceName): string =>
  ({
    kafka: instance.endpoints.kafka.bootstrap,
    schemaRegistry: instance.endpoints.schemaRegistry.url,
    modelServer: instance.endpoints.modelServer.target,
  })[name];

export async function status(
  instance: StackInstance = instances.default,
): Promise<Record<ServiceName, ServiceStatus>> {
  const results = await Promise.all(serviceNames.map((name) => checks[name](instance)));
  const out = {} as Record<ServiceName, ServiceStatus>;
  serviceNames.forEach((name, i) => {
    const proc = readPidFile(pidFile(instance, name));
    out[name] = {
      url: urlOf(instance, name),
      healthy: results[i]!.healthy,
      pid: isOurs(proc) ? proc.pid : null,
      log: logFile(instance, name),
      ...(results[i]!.detail ? { detail: results[i]!.detail } : {}),
    };
  });
  return out;
}

async function waitHealthy(instance: StackInstance, name: ServiceName, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const log = logFile(instance, name);
  let last = '';
  while (Date.now() < deadline) {
    const result = await checks[name](instance);
    if (result.healthy) return;
    last = result.detail ?? '';
    if (!isOurs(readPidFile(pidFile(instance, name)))) {
      throw new Error(`${name} exited during start-up; last lines of ${log}:\n${tail(log)}`);
    }
    await sleep(500);
  }
  throw new Error(`${name} did not become healthy within ${timeoutMs / 1000}s (${last}); see ${log}`);
}

function tail(file: string, lines = 30): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Starting each service

function kafkaServerProperties(instance: StackInstance, dataDir: string): string {
  const { bootstrap, controller } = instance.endpoints.kafka;
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${controller}`,
    `listeners=PLAINTEXT://${bootstrap},CONTROLLER://${controller}`,
    `advertised.listeners=PLAINTEXT://${bootstrap}`,
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

const kafkaHome = (instance: StackInstance) => join(instance.runDir, 'kafka');
const log4jOption = () => `-Dlog4j2.configurationFile=${join(repoRoot, 'dev', 'kafka', 'log4j2.properties')}`;

/**
 * `fresh` wipes and formats the storage (what `up` does: the default registry keeps schemas in
 * memory, so Avro records left from an earlier run would point at schema ids that no longer
 * exist); otherwise the broker starts on the log dirs it had, as after a crash.
 */
function startKafka(instance: StackInstance, libs: string, options: { fresh: boolean }): void {
  const home = kafkaHome(instance);
  const properties = join(home, 'server.properties');
  const java = findJava(17);
  if (options.fresh) {
    rmSync(home, { recursive: true, force: true });
    mkdirSync(home, { recursive: true });
    writeFileSync(properties, kafkaServerProperties(instance, join(home, 'data')));
    const clusterId = randomBytes(16).toString('base64url');
    run(
      java,
      [
        '-cp',
        `${libs}/*`,
        log4jOption(),
        'kafka.tools.StorageTool',
        'format',
        '-t',
        clusterId,
        '-c',
        properties,
      ],
      { what: 'formatting the Kafka storage' },
    );
  } else if (!existsSync(properties)) {
    throw new Error(`no Kafka storage to restart on in ${home}; run up first`);
  }
  startDetached({
    command: [java, '-Xms256m', '-Xmx1g', '-cp', `${libs}/*`, log4jOption(), 'kafka.Kafka', properties],
    marker: properties,
    pidFile: pidFile(instance, 'kafka'),
    log: logFile(instance, 'kafka'),
  });
}

const registryDataDir = (instance: StackInstance) => join(instance.runDir, 'schemaRegistry');

/**
 * Apicurio 3.x stores everything in SQL; its default datasource is an in-memory H2 database
 * (`jdbc:h2:mem:...` in the app's application.properties). With `registryStorage: 'file'` the same
 * H2 engine writes to a file instead, so a registry killed and restarted keeps its schemas and ids.
 */
function startSchemaRegistry(instance: StackInstance, home: string, options: { fresh: boolean }): void {
  const java = findJava(21);
  const storage: string[] = [];
  if (instance.registryStorage === 'file') {
    const dataDir = registryDataDir(instance);
    if (options.fresh) rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true });
    // WRITE_DELAY=0: H2 (no redo log) writes each commit at once instead of within 500 ms, so a
    // schema registered just before a SIGKILL survives it.
    storage.push(`-Dapicurio.datasource.url=jdbc:h2:file:${join(dataDir, 'registry')};WRITE_DELAY=0`);
  }
  const httpPort = new URL(instance.endpoints.schemaRegistry.url).port;
  startDetached({
    command: [
      java,
      '-Xms128m',
      '-Xmx768m',
      '-Dquarkus.http.host=127.0.0.1',
      `-Dquarkus.http.port=${httpPort}`,
      '-Dquarkus.management.host=127.0.0.1',
      `-Dquarkus.management.port=${port(instance.endpoints.schemaRegistry.management)}`,
      ...storage,
      '-jar',
      join(home, 'quarkus-run.jar'),
    ],
    marker: `-Dquarkus.http.port=${httpPort}`,
    cwd: home,
    pidFile: pidFile(instance, 'schemaRegistry'),
    log: logFile(instance, 'schemaRegistry'),
  });
}

/** Confluent's registry checks BACKWARD compatibility by default; Apicurio checks nothing unless told. */
async function configureSchemaRegistry(instance: StackInstance): Promise<void> {
  const response = await fetch(`${instance.endpoints.schemaRegistry.url}/config`, {
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

function startModelServer(instance: StackInstance): void {
  const python = ensureVenv();
  const script = join(repoRoot, 'dev', 'model-server', 'server.py');
  const grpcPort = port(instance.endpoints.modelServer.target);
  startDetached({
    command: [
      python,
      script,
      '--port',
      grpcPort,
      '--control-port',
      new URL(instance.endpoints.modelServer.control).port,
      '--rest-port',
      new URL(instance.endpoints.modelServer.rest).port,
      '--model-base',
      paths.modelBase,
      '--version-labels',
      'census:stable=1,null:stable=1,null:canary=2',
    ],
    marker: `${script} --port ${grpcPort}`,
    pidFile: pidFile(instance, 'modelServer'),
    log: logFile(instance, 'modelServer'),
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', PYTHONUNBUFFERED: '1' },
  });
}

const startTimeoutMs: Record<ServiceName, number> = {
  kafka: 90_000,
  schemaRegistry: 120_000,
  modelServer: 180_000,
};

/** Starts one service of `instance` and waits until it answers. */
async function startService(
  instance: StackInstance,
  name: ServiceName,
  options: { fresh: boolean },
): Promise<void> {
  await stopTracked(pidFile(instance, name));
  mkdirSync(instance.runDir, { recursive: true });
  const where = urlOf(instance, name);
  switch (name) {
    case 'kafka': {
      const libs = ensureKafkaJars();
      log(`starting Kafka ${KAFKA_VERSION} on ${where}${options.fresh ? '' : ' (same data)'}`);
      startKafka(instance, libs, options);
      await waitHealthy(instance, name, startTimeoutMs[name]);
      return;
    }
    case 'schemaRegistry': {
      const home = ensureApicurio();
      log(`starting Apicurio Registry ${APICURIO_VERSION} on ${where} (${instance.registryStorage} storage)`);
      startSchemaRegistry(instance, home, options);
      await waitHealthy(instance, name, startTimeoutMs[name]);
      // A registry restarted on its file keeps the setting; one in memory forgot it.
      if (options.fresh || instance.registryStorage === 'memory') await configureSchemaRegistry(instance);
      return;
    }
    case 'modelServer':
      log(`starting the model server on ${where}`);
      startModelServer(instance);
      await waitHealthy(instance, name, startTimeoutMs[name]);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

export async function up(
  instance: StackInstance = instances.default,
): Promise<Record<ServiceName, ServiceStatus>> {
  mkdirSync(instance.runDir, { recursive: true });
  const before = await status(instance);
  for (const [name, s] of Object.entries(before)) {
    if (s.healthy && s.pid === null)
      log(`${name}: something not started by this stack already answers at ${s.url}; using it`);
  }
  const starting: Promise<void>[] = [];
  for (const name of ['kafka', 'schemaRegistry'] as const) {
    if (!before[name].healthy) starting.push(startService(instance, name, { fresh: true }));
  }
  if (!before.modelServer.healthy) {
    starting.push(
      (async () => {
        // After the JVMs were spawned (they boot meanwhile): building or loading the models blocks.
        await new Promise((resolveLater) => setImmediate(resolveLater));
        ensureModels();
        await startService(instance, 'modelServer', { fresh: true });
      })(),
    );
  }
  const results = await Promise.allSettled(starting);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) throw new Error(failures.map((f) => (f.reason as Error).message).join('\n'));
  return status(instance);
}

export async function down(instance: StackInstance = instances.default): Promise<void> {
  // MLServer, started on demand by dev/mlserver.ts (OpenInference tests), keeps its pid file here too.
  if ((await stopTracked(join(instance.runDir, 'mlserver.pid'))) === 'stopped') log('mlserver: stopped');
  // Real Kafka Connect, started on demand by dev/kafka-connect.ts (differential suite), likewise.
  if ((await stopTracked(join(instance.runDir, 'kafkaConnect.pid'))) === 'stopped')
    log('kafkaConnect: stopped');
  for (const name of ['modelServer', 'schemaRegistry', 'kafka'] as ServiceName[]) {
    const result = await stopTracked(pidFile(instance, name));
    log(`${name}: ${result}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Fault injection (used by dev/faults on the `faults` instance)

/** Freezes a service (SIGSTOP to its process group): it holds its sockets but answers nothing. */
export function freeze(instance: StackInstance, name: ServiceName): void {
  signalTracked(pidFile(instance, name), 'SIGSTOP');
}

/** Lets a frozen service run again (SIGCONT). */
export function thaw(instance: StackInstance, name: ServiceName): void {
  signalTracked(pidFile(instance, name), 'SIGCONT');
}

/** Crashes a service (SIGKILL to its process group) and waits until it is gone; its data stays. */
export async function kill(instance: StackInstance, name: ServiceName): Promise<void> {
  await killTracked(pidFile(instance, name));
}

/**
 * Starts a stopped or killed service again on the data it had: Kafka on its log dirs, the
 * registry on its H2 file (an instance with `registryStorage: 'memory'` comes back empty, and
 * records whose schema id it no longer knows become dead letters), the model server as new.
 * A service that is still running is stopped first (SIGTERM, then SIGKILL).
 */
export async function restart(instance: StackInstance, name: ServiceName): Promise<void> {
  await startService(instance, name, { fresh: false });
}

/** The model server's fault knobs (see dev/model-server/README.md), e.g. `{stall_seconds: 60}`. */
export interface ModelServerFaults {
  latency_ms?: number;
  failure_rate?: number;
  failure_code?: string;
  failure_message?: string;
  stall_seconds?: number;
  response_encoding?: 'typed' | 'tensor_content';
}

/** Merges `faults` into the model server's fault state; resolves the new state. */
export async function setModelServerFaults(
  instance: StackInstance,
  faults: ModelServerFaults,
): Promise<Record<string, unknown>> {
  return controlRequest(instance, '/faults', faults);
}

/** Clears the model server's faults and counters. */
export async function resetModelServer(instance: StackInstance): Promise<Record<string, unknown>> {
  return controlRequest(instance, '/reset', {});
}

async function controlRequest(
  instance: StackInstance,
  path: string,
  body: object,
): Promise<Record<string, unknown>> {
  const url = `${instance.endpoints.modelServer.control}${path}`;
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`POST ${url} ${JSON.stringify(body)}: HTTP ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
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
  const instanceOption = ['--instance <name>', 'which stack: default or faults', 'default'] as const;
  program
    .command('up')
    .description('start every service that is not already running and wait until each answers')
    .option(...instanceOption)
    .action(async (options: { instance: string }) => {
      const started = Date.now();
      const s = await up(instanceNamed(options.instance));
      printTable(s);
      log(`stack ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    });
  program
    .command('down')
    .description('stop the services this stack started (by pid)')
    .option(...instanceOption)
    .action((options: { instance: string }) => down(instanceNamed(options.instance)));
  program
    .command('status')
    .description('show each service and whether it answers')
    .option('--json', 'print JSON')
    .option(...instanceOption)
    .action(async (options: { json?: boolean; instance: string }) => {
      const s = await status(instanceNamed(options.instance));
      if (options.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      else printTable(s);
      if (!Object.values(s).every((v) => v.healthy)) process.exitCode = 1;
    });
  // Fault injection by hand. The instance must be named: the default one is shared.
  const faultCommands: Array<[string, string, (instance: StackInstance, name: ServiceName) => unknown]> = [
    ['freeze', 'SIGSTOP a service (it keeps its sockets and answers nothing)', freeze],
    ['thaw', 'SIGCONT a frozen service', thaw],
    ['kill', 'SIGKILL a service; its data stays', kill],
    ['restart', 'start a service again on the data it had', restart],
  ];
  for (const [command, description, action] of faultCommands) {
    program
      .command(`${command} <service>`)
      .description(`${description} (service: ${serviceNames.join(', ')})`)
      .requiredOption('--instance <name>', 'which stack: default or faults')
      .action(async (service: string, options: { instance: string }) => {
        if (!serviceNames.includes(service as ServiceName)) {
          throw new Error(`unknown service "${service}"; use one of ${serviceNames.join(', ')}`);
        }
        await action(instanceNamed(options.instance), service as ServiceName);
        log(`${service}: ${command} done`);
      });
  }
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
