// Real Apache Kafka Connect 4.1.1 on demand, for the differential suite: its jars (connect-runtime,
// connect-file, connect-json, connect-transforms) resolved with Maven into the cache like the
// broker's (dev/kafka-connect/pom.xml), and one standalone worker (`ConnectStandalone` with a
// worker properties file and no connector) on a loopback port, tracked by a pid file in the stack's
// run dir so `npx tsx dev/stack.ts down` stops it too.
//
//   npx tsx dev/kafka-connect.ts up | down | status
//
// Tests call `ensureKafkaConnect()` in their `before` hook: it starts the worker unless one of ours
// already answers, and returns its REST URL. The worker uses the default stack's Kafka; its offsets
// file lives in the run dir and is emptied on every start, so each start begins from nothing.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isOurs, readPidFile, startDetached, stopTracked } from './processes.js';
import { cacheDir, endpoints, instances, repoRoot } from './stack.js';

export const KAFKA_CONNECT_VERSION = '4.1.1';
/** The REST port of the real Kafka Connect worker (our own workers use 8083 and ephemeral ports). */
export const KAFKA_CONNECT_PORT = 18083;
export const kafkaConnectUrl = `http://127.0.0.1:${KAFKA_CONNECT_PORT}`;

const runDir = instances.default.runDir;
export const kafkaConnectPidFile = join(runDir, 'kafkaConnect.pid');
const logFile = join(runDir, 'kafkaConnect.log');
const home = join(runDir, 'kafka-connect');
const START_TIMEOUT_MS = 120_000;

/** The folder holding Kafka Connect's jars and their dependencies (resolved on first use). */
export function ensureKafkaConnectJars(): string {
  const libs = join(cacheDir, `kafka-connect-${KAFKA_CONNECT_VERSION}`, 'libs');
  const stamp = join(libs, '.complete');
  if (existsSync(stamp)) return libs;
  process.stderr.write(`[kafka-connect] resolving Kafka Connect ${KAFKA_CONNECT_VERSION} jars with Maven\n`);
  const args = [
    '-q',
    '-B',
    '-f',
    join(repoRoot, 'dev', 'kafka-connect', 'pom.xml'),
    `-Dkafka.version=${KAFKA_CONNECT_VERSION}`,
    'dependency:copy-dependencies',
    `-DoutputDirectory=${libs}`,
    '-DincludeScope=runtime',
  ];
  const result = spawnSync('mvn', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) {
    const output = `${result.stdout?.toString() ?? ''}${result.stderr?.toString() ?? ''}`.slice(-4000);
    throw new Error(
      `resolving the Kafka Connect jars failed (mvn ${args.join(' ')}); it needs Maven and Maven Central:\n${output}`,
    );
  }
  writeFileSync(stamp, new Date().toISOString());
  return libs;
}

/** A Java 17+ runtime (Kafka Connect 4.x needs 17): the oldest installed, as the broker's. */
export function findJava17(): string {
  const candidates = [
    process.env.INFER_CONNECT_JAVA_HOME,
    process.env.JAVA_HOME,
    ...(existsSync('/usr/lib/jvm') ? readdirSync('/usr/lib/jvm').map((d) => join('/usr/lib/jvm', d)) : []),
  ].filter((d): d is string => Boolean(d));
  let best: { home: string; major: number } | undefined;
  for (const dir of candidates) {
    const bin = join(dir, 'bin', 'java');
    if (!existsSync(bin)) continue;
    const out = spawnSync(bin, ['-version'], { encoding: 'utf8' }).stderr ?? '';
    const major = Number(/version "(\d+)/.exec(out)?.[1] ?? 0);
    if (major >= 17 && (!best || major < best.major)) best = { home: dir, major };
  }
  if (!best) throw new Error('no Java 17+ found (INFER_CONNECT_JAVA_HOME, JAVA_HOME, /usr/lib/jvm/*)');
  return best.home;
}

/**
 * The worker's properties: Kafka Connect's JsonConverter for keys and values (as in its shipped
 * connect-standalone.properties), plugins found through their service manifests (no class-path
 * scan, so start-up takes seconds), topic tracking and its reset allowed (KIP-558).
 */
function workerProperties(offsetsFile: string): string {
  return [
    `bootstrap.servers=${endpoints.kafka.bootstrap}`,
    `listeners=http://127.0.0.1:${KAFKA_CONNECT_PORT}`,
    'rest.advertised.host.name=127.0.0.1',
    'key.converter=org.apache.kafka.connect.json.JsonConverter',
    'value.converter=org.apache.kafka.connect.json.JsonConverter',
    'key.converter.schemas.enable=true',
    'value.converter.schemas.enable=true',
    `offset.storage.file.filename=${offsetsFile}`,
    'offset.flush.interval.ms=500',
    'plugin.discovery=service_load',
    'topic.tracking.enable=true',
    'topic.tracking.allow.reset=true',
    '',
  ].join('\n');
}

async function answers(): Promise<boolean> {
  try {
    const response = await fetch(`${kafkaConnectUrl}/connectors`, { signal: AbortSignal.timeout(2000) });
    return response.ok;
  } catch {
    return false;
  }
}

export async function kafkaConnectStatus(): Promise<{
  url: string;
  healthy: boolean;
  pid: number | null;
  log: string;
}> {
  const proc = readPidFile(kafkaConnectPidFile);
  return {
    url: kafkaConnectUrl,
    healthy: await answers(),
    pid: isOurs(proc) ? proc.pid : null,
    log: logFile,
  };
}

/**
 * Starts real Kafka Connect unless ours already answers, and resolves with its REST URL once it
 * answers. Throws when the port is taken by something we did not start, or when it exits or does
 * not answer within two minutes (with the end of its log).
 */
export async function ensureKafkaConnect(): Promise<string> {
  const proc = readPidFile(kafkaConnectPidFile);
  if (isOurs(proc) && (await answers())) return kafkaConnectUrl;
  if (!isOurs(proc) && (await answers()))
    throw new Error(`something we did not start answers at ${kafkaConnectUrl}; stop it or free the port`);
  await stopTracked(kafkaConnectPidFile);
  const libs = ensureKafkaConnectJars();
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });
  const properties = join(home, 'connect-standalone.properties');
  writeFileSync(properties, workerProperties(join(home, 'connect.offsets')));
  const java = join(findJava17(), 'bin', 'java');
  process.stderr.write(
    `[kafka-connect] starting Kafka Connect ${KAFKA_CONNECT_VERSION} on ${kafkaConnectUrl}\n`,
  );
  startDetached({
    command: [
      java,
      '-Xms128m',
      '-Xmx512m',
      '-cp',
      `${libs}/*`,
      `-Dlog4j2.configurationFile=${join(repoRoot, 'dev', 'kafka-connect', 'log4j2.properties')}`,
      'org.apache.kafka.connect.cli.ConnectStandalone',
      properties,
    ],
    marker: properties,
    pidFile: kafkaConnectPidFile,
    log: logFile,
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers()) return kafkaConnectUrl;
    if (!isOurs(readPidFile(kafkaConnectPidFile)))
      throw new Error(`Kafka Connect exited during start-up; see ${logFile}`);
    await sleep(500);
  }
  throw new Error(
    `Kafka Connect did not answer at ${kafkaConnectUrl} within ${START_TIMEOUT_MS / 1000}s; see ${logFile}`,
  );
}

/** Stops the Kafka Connect worker this module started (by its pid file), nothing else. */
export function stopKafkaConnect(): Promise<'stopped' | 'not-running'> {
  return stopTracked(kafkaConnectPidFile);
}

// ---------------------------------------------------------------------------------------------
// The transform harness (dev/kafka-connect/TransformHarness.java): Kafka Connect's own transforms

const HARNESS_SOURCE = join(repoRoot, 'dev', 'kafka-connect', 'TransformHarness.java');

/** One case for the harness: a transform chain config and the records it runs on. */
export interface HarnessCase {
  case: string;
  schemasEnable: boolean;
  config: Record<string, string>;
  records: Array<{
    topic: string;
    partition?: number | null;
    offset?: number;
    timestamp?: number | null;
    key: unknown;
    value: unknown;
    headers?: Record<string, string | null>;
  }>;
}

export type HarnessResult =
  | { dropped: true }
  | { error: string }
  | {
      topic: string;
      partition: number | null;
      timestamp: number | null;
      key: unknown;
      value: unknown;
      headers: Record<string, string | null>;
    };

/**
 * The folder of the compiled harness, compiled with javac on first use into the cache, keyed by
 * the hash of its source and the Kafka Connect version (an edit recompiles).
 */
export function compileTransformHarness(): string {
  const libs = ensureKafkaConnectJars();
  const hash = createHash('sha256')
    .update(readFileSync(HARNESS_SOURCE))
    .update(KAFKA_CONNECT_VERSION)
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheDir, `kafka-connect-${KAFKA_CONNECT_VERSION}`, 'harness', hash);
  if (existsSync(join(dir, 'TransformHarness.class'))) return dir;
  const building = `${dir}.${process.pid}.tmp`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  const javac = join(findJava17(), 'bin', 'javac');
  const result = spawnSync(javac, ['-nowarn', '-cp', `${libs}/*`, '-d', building, HARNESS_SOURCE], {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`compiling ${HARNESS_SOURCE} failed:\n${result.stderr}`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(building, dir);
  return dir;
}

/** Runs the cases through Kafka Connect's transforms (one JVM for all) and answers each case's results. */
export function runTransformHarness(
  cases: readonly HarnessCase[],
): Map<string, { results?: HarnessResult[]; error?: string }> {
  const classes = compileTransformHarness();
  const libs = ensureKafkaConnectJars();
  const java = join(findJava17(), 'bin', 'java');
  const result = spawnSync(
    java,
    [
      '-cp',
      `${classes}:${libs}/*`,
      `-Dlog4j2.configurationFile=${join(repoRoot, 'dev', 'kafka-connect', 'log4j2-harness.properties')}`,
      'TransformHarness',
    ],
    { input: cases.map((c) => JSON.stringify(c)).join('\n'), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) throw new Error(`the transform harness failed:\n${result.stderr}`);
  const answers = new Map<string, { results?: HarnessResult[]; error?: string }>();
  for (const line of result.stdout.split('\n')) {
    if (line.trim() === '') continue;
    const parsed = JSON.parse(line) as { case: string; results?: HarnessResult[]; error?: string };
    answers.set(parsed.case, parsed);
  }
  return answers;
}

async function main(command: string | undefined): Promise<void> {
  switch (command) {
    case 'up':
      process.stdout.write(`${await ensureKafkaConnect()}\n`);
      return;
    case 'down':
      process.stdout.write(`kafkaConnect: ${await stopKafkaConnect()}\n`);
      return;
    case 'status':
      process.stdout.write(`${JSON.stringify(await kafkaConnectStatus())}\n`);
      return;
    default:
      throw new Error('usage: npx tsx dev/kafka-connect.ts up | down | status');
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv[2]).catch((error: unknown) => {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  });
}
