// The REST differential: the same sequence of requests sent to real Apache Kafka Connect 4.1.1
// (dev/kafka-connect.ts, FileStreamSink/FileStreamSource connectors) and to our worker
// (FileSink/FileSource), comparing status codes and JSON shapes (keys and value types,
// recursively; never values such as worker ids). Every difference must be listed in the table of
// docs/kafka-connect-compatibility.md, and every listed difference must still occur, so the
// document stays honest. The score (identical status and shape / all requests) is printed.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import {
  ensureKafkaConnect,
  runTransformHarness,
  stopKafkaConnect,
  type HarnessCase,
  type HarnessResult,
} from '../../dev/kafka-connect.js';
import { transformCases } from '../../dev/kafka-connect/transform-cases.js';
import { JsonConverter } from '../../runtime/converters/json-converter.js';
import { createTransformChain, type TransformRecord } from '../../runtime/transforms/index.js';
import { createTopic, readTopic } from '../helpers/kafka-topics.js';
import { testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const repo = resolve(import.meta.dirname, '../..');
const COMPATIBILITY_DOC = join(repo, 'docs', 'kafka-connect-compatibility.md');

type Side = 'connect' | 'ours';
interface Answer {
  status: number;
  body: unknown;
}
interface Step {
  /** Stable id, the key of the compatibility table. */
  id: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: (side: Side) => string;
  /** A JSON value, or raw text sent as application/json (a malformed body). */
  body?: (side: Side) => unknown;
  raw?: string;
  /** The answer's top-level object is keyed by names (loggers, connectors): compare its values' shapes only. */
  keyedByName?: boolean;
  /** Repeats the request (up to 60 s) until this holds on both sides, e.g. a task is RUNNING. */
  until?: (answer: Answer) => boolean;
}

/**
 * A JSON value's shape: the set of `path:type` of every value in it (`[]` for array elements,
 * merged over all of them; `*` for the entries of objects keyed by names: a connector config, the
 * top level when `keyedByName`). Values never count, nor which config keys a connector has.
 */
export function shapeOf(value: unknown, keyedByName = false): Set<string> {
  const out = new Set<string>();
  const walk = (v: unknown, path: string, map: boolean) => {
    if (v === null || v === undefined) {
      out.add(`${path}:${v === null ? 'null' : 'none'}`);
    } else if (Array.isArray(v)) {
      out.add(`${path}:array`);
      for (const item of v) walk(item, `${path}[]`, false);
    } else if (typeof v === 'object') {
      out.add(`${path}:object`);
      for (const [key, item] of Object.entries(v as Record<string, unknown>))
        walk(item, `${path}.${map ? '*' : key}`, key === 'config');
    } else out.add(`${path}:${typeof v}`);
  };
  walk(value, '', keyedByName);
  return out;
}

const minus = (a: Set<string>, b: Set<string>) => [...a].filter((x) => !b.has(x)).sort();

/**
 * The rows of one table of the compatibility document (`rest-differences`, `transform-differences`,
 * `dlq-differences`): `| id | kind | reason |`, keyed `<id> <kind>`.
 */
function listedDifferences(table = 'rest-differences'): Map<string, string> {
  const text = readFileSync(COMPATIBILITY_DOC, 'utf8');
  const section = text.split(`<!-- ${table}:start -->`)[1]?.split(`<!-- ${table}:end -->`)[0];
  if (section === undefined) throw new Error(`${COMPATIBILITY_DOC} has no ${table} table`);
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const [, id, kind] = cells;
    if (!id || !kind || id === 'step' || id === 'case' || id === 'header' || id.startsWith('---')) continue;
    rows.set(`${id.replaceAll('`', '')} ${kind}`, cells[3] ?? '');
  }
  return rows;
}

describe('REST differential against real Kafka Connect 4.1.1', function () {
  this.timeout(600_000);
  const urls: Record<Side, string> = { connect: '', ours: '' };
  let ours: Awaited<ReturnType<typeof startTestWorker>>;
  const topic = uniqueName('kc-diff');
  const emptyTopic = uniqueName('kc-diff-empty');
  // Each side gets its own names: a sink's consumer group is `connect-<name>` on both.
  const base = {
    sink: uniqueName('diff-sink'),
    idle: uniqueName('diff-idle'),
    source: uniqueName('diff-source'),
  };
  let connectDir: string;

  before(async () => {
    // A fresh start: log levels and active topics of an earlier run would show in the answers.
    await stopKafkaConnect();
    urls.connect = await ensureKafkaConnect();
    // The real worker is this suite's own: start from no connectors.
    const left = (await (await fetch(`${urls.connect}/connectors`)).json()) as string[];
    for (const name of left) await fetch(`${urls.connect}/connectors/${name}`, { method: 'DELETE' });
    ours = await startTestWorker();
    urls.ours = ours.url;
    await createTopic(topic, 1);
    await createTopic(emptyTopic, 1);
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'k', value: '{"n": 1}' }] });
    await producer.disconnect();
    connectDir = mkdtempSync(join(tmpdir(), 'kc-diff-connect-'));
    writeFileSync(join(connectDir, 'in.txt'), 'one\ntwo\n');
    writeFileSync(join(ours.dir, 'in.jsonl'), '{"n": 1}\n');
    writeFileSync(
      join(ours.dir, 'n.avsc'),
      JSON.stringify({ type: 'record', name: 'N', fields: [{ name: 'n', type: 'int' }] }),
    );
  });

  after(async () => {
    for (const name of Object.values(base)) {
      await fetch(`${urls.connect}/connectors/${name}-connect`, { method: 'DELETE' }).catch(() => undefined);
    }
    await ours?.stop();
  });

  const sinkConfig = (side: Side, sinkTopic = topic, file = 'out.txt') =>
    side === 'connect'
      ? {
          'connector.class': 'org.apache.kafka.connect.file.FileStreamSinkConnector',
          topics: sinkTopic,
          file: join(connectDir, file),
          'tasks.max': '1',
          'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
          'value.converter': 'org.apache.kafka.connect.storage.StringConverter',
        }
      : {
          'connector.class': 'FileSink',
          topics: sinkTopic,
          file: join(ours.dir, file),
          'tasks.max': '1',
          'key.converter': 'string',
          'value.converter': 'json',
        };
  const sourceConfig = (side: Side) =>
    side === 'connect'
      ? {
          'connector.class': 'org.apache.kafka.connect.file.FileStreamSourceConnector',
          topic: uniqueName('kc-diff-source-out'),
          file: join(connectDir, 'in.txt'),
          'tasks.max': '1',
        }
      : {
          'connector.class': 'FileSource',
          topic: uniqueName('kc-diff-source-out'),
          file: join(ours.dir, 'in.jsonl'),
          format: 'jsonl',
          'value.schema.file': join(ours.dir, 'n.avsc'),
          'value.converter': 'json',
          'tasks.max': '1',
        };
  const plugin = (side: Side, kind: 'sink' | 'source') =>
    side === 'connect'
      ? `org.apache.kafka.connect.file.FileStream${kind === 'sink' ? 'Sink' : 'Source'}Connector`
      : kind === 'sink'
        ? 'FileSink'
        : 'FileSource';
  const fixed = (path: string) => () => path;
  const taskRunning = (a: Answer) =>
    (a.body as { tasks?: Array<{ state: string }> }).tasks?.[0]?.state === 'RUNNING';
  const S = {
    sink: (side: Side) => `${base.sink}-${side}`,
    idle: (side: Side) => `${base.idle}-${side}`,
    source: (side: Side) => `${base.source}-${side}`,
  };

  const steps: Step[] = [
    { id: 'server-info', method: 'GET', path: fixed('/') },
    { id: 'list-empty', method: 'GET', path: fixed('/connectors') },
    {
      id: 'create-sink',
      method: 'POST',
      path: fixed('/connectors'),
      body: (s) => ({ name: S.sink(s), config: sinkConfig(s) }),
    },
    {
      id: 'create-duplicate',
      method: 'POST',
      path: fixed('/connectors'),
      body: (s) => ({ name: S.sink(s), config: sinkConfig(s) }),
    },
    {
      id: 'create-idle-sink',
      method: 'POST',
      path: fixed('/connectors'),
      body: (s) => ({ name: S.idle(s), config: sinkConfig(s, emptyTopic, 'idle.txt') }),
    },
    {
      id: 'create-source',
      method: 'POST',
      path: fixed('/connectors'),
      body: (s) => ({ name: S.source(s), config: sourceConfig(s) }),
    },
    { id: 'list', method: 'GET', path: fixed('/connectors') },
    { id: 'list-expand-status', method: 'GET', path: fixed('/connectors?expand=status'), keyedByName: true },
    { id: 'list-expand-info', method: 'GET', path: fixed('/connectors?expand=info'), keyedByName: true },
    { id: 'get-connector', method: 'GET', path: (s) => `/connectors/${S.sink(s)}` },
    { id: 'get-config', method: 'GET', path: (s) => `/connectors/${S.sink(s)}/config` },
    {
      id: 'put-config',
      method: 'PUT',
      path: (s) => `/connectors/${S.sink(s)}/config`,
      body: (s) => sinkConfig(s),
    },
    {
      id: 'patch-config',
      method: 'PATCH',
      path: (s) => `/connectors/${S.sink(s)}/config`,
      body: () => ({ 'tasks.max': '1' }),
    },
    { id: 'status', method: 'GET', path: (s) => `/connectors/${S.sink(s)}/status`, until: taskRunning },
    { id: 'tasks', method: 'GET', path: (s) => `/connectors/${S.sink(s)}/tasks` },
    { id: 'task-status', method: 'GET', path: (s) => `/connectors/${S.sink(s)}/tasks/0/status` },
    { id: 'task-restart', method: 'POST', path: (s) => `/connectors/${S.sink(s)}/tasks/0/restart` },
    { id: 'restart', method: 'POST', path: (s) => `/connectors/${S.sink(s)}/restart` },
    {
      id: 'restart-with-tasks',
      method: 'POST',
      path: (s) => `/connectors/${S.sink(s)}/restart?includeTasks=true&onlyFailed=false`,
    },
    { id: 'pause', method: 'PUT', path: (s) => `/connectors/${S.sink(s)}/pause` },
    { id: 'resume', method: 'PUT', path: (s) => `/connectors/${S.sink(s)}/resume` },
    {
      id: 'topics',
      method: 'GET',
      path: (s) => `/connectors/${S.sink(s)}/topics`,
      keyedByName: true,
      until: (a) =>
        (Object.values(a.body as Record<string, { topics: string[] }>)[0]?.topics.length ?? 0) > 0,
    },
    { id: 'topics-reset', method: 'PUT', path: (s) => `/connectors/${S.sink(s)}/topics/reset` },
    {
      id: 'topics-after-reset',
      method: 'GET',
      path: (s) => `/connectors/${S.sink(s)}/topics`,
      keyedByName: true,
    },
    {
      id: 'topics-unknown-connector',
      method: 'GET',
      path: fixed('/connectors/diff-missing/topics'),
      keyedByName: true,
    },
    { id: 'stop', method: 'PUT', path: (s) => `/connectors/${S.sink(s)}/stop` },
    { id: 'status-stopped', method: 'GET', path: (s) => `/connectors/${S.sink(s)}/status` },
    { id: 'tasks-stopped', method: 'GET', path: (s) => `/connectors/${S.sink(s)}/tasks` },
    {
      id: 'offsets-stopped-sink',
      method: 'GET',
      path: (s) => `/connectors/${S.sink(s)}/offsets`,
      until: (a) => ((a.body as { offsets?: unknown[] }).offsets?.length ?? 0) > 0,
    },
    {
      id: 'offsets-patch',
      method: 'PATCH',
      path: (s) => `/connectors/${S.sink(s)}/offsets`,
      body: () => ({
        offsets: [{ partition: { kafka_topic: topic, kafka_partition: 0 }, offset: { kafka_offset: 0 } }],
      }),
    },
    { id: 'offsets-delete', method: 'DELETE', path: (s) => `/connectors/${S.sink(s)}/offsets` },
    {
      id: 'offsets-patch-running',
      method: 'PATCH',
      path: (s) => `/connectors/${S.source(s)}/offsets`,
      body: () => ({ offsets: [{ partition: { filename: 'in.txt' }, offset: { position: 0 } }] }),
    },
    { id: 'stop-idle-sink', method: 'PUT', path: (s) => `/connectors/${S.idle(s)}/stop` },
    { id: 'offsets-never-committed', method: 'GET', path: (s) => `/connectors/${S.idle(s)}/offsets` },
    { id: 'resume-stopped', method: 'PUT', path: (s) => `/connectors/${S.sink(s)}/resume` },
    { id: 'plugins', method: 'GET', path: fixed('/connector-plugins') },
    { id: 'plugins-all', method: 'GET', path: fixed('/connector-plugins?connectorsOnly=false') },
    { id: 'plugin-config', method: 'GET', path: (s) => `/connector-plugins/${plugin(s, 'sink')}/config` },
    {
      id: 'validate-valid',
      method: 'PUT',
      path: (s) => `/connector-plugins/${plugin(s, 'sink')}/config/validate`,
      body: (s) => sinkConfig(s),
    },
    {
      id: 'validate-invalid',
      method: 'PUT',
      path: (s) => `/connector-plugins/${plugin(s, 'sink')}/config/validate`,
      body: (s) => ({ 'connector.class': plugin(s, 'sink'), 'tasks.max': 'x' }),
    },
    { id: 'loggers', method: 'GET', path: fixed('/admin/loggers'), keyedByName: true },
    { id: 'logger-root', method: 'GET', path: fixed('/admin/loggers/root') },
    { id: 'logger-unknown', method: 'GET', path: fixed('/admin/loggers/diff.no.such.logger') },
    { id: 'logger-set', method: 'PUT', path: fixed('/admin/loggers/root'), body: () => ({ level: 'WARN' }) },
    {
      id: 'logger-set-unchanged',
      method: 'PUT',
      path: fixed('/admin/loggers/root'),
      body: () => ({ level: 'WARN' }),
    },
    {
      id: 'logger-set-cluster',
      method: 'PUT',
      path: fixed('/admin/loggers/root?scope=cluster'),
      body: () => ({ level: 'INFO' }),
    },
    {
      id: 'logger-set-invalid-level',
      method: 'PUT',
      path: fixed('/admin/loggers/root'),
      body: () => ({ level: 'LOUD' }),
    },
    { id: 'logger-set-no-level', method: 'PUT', path: fixed('/admin/loggers/root'), body: () => ({}) },
    { id: 'malformed-json', method: 'POST', path: fixed('/connectors'), raw: '{"name": ' },
    {
      id: 'create-without-config',
      method: 'POST',
      path: fixed('/connectors'),
      body: () => ({ name: 'diff-no-config' }),
    },
    { id: 'unknown-connector', method: 'GET', path: fixed('/connectors/diff-missing') },
    { id: 'unknown-connector-status', method: 'GET', path: fixed('/connectors/diff-missing/status') },
    { id: 'unknown-connector-delete', method: 'DELETE', path: fixed('/connectors/diff-missing') },
    { id: 'unknown-task', method: 'GET', path: (s) => `/connectors/${S.sink(s)}/tasks/99/status` },
    { id: 'delete-sink', method: 'DELETE', path: (s) => `/connectors/${S.sink(s)}` },
    { id: 'delete-idle-sink', method: 'DELETE', path: (s) => `/connectors/${S.idle(s)}` },
    { id: 'delete-source', method: 'DELETE', path: (s) => `/connectors/${S.source(s)}` },
  ];

  async function send(side: Side, step: Step): Promise<Answer> {
    const body = step.raw ?? (step.body ? JSON.stringify(step.body(side)) : undefined);
    const response = await fetch(`${urls[side]}${step.path(side)}`, {
      method: step.method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: compared as a string
    }
    return { status: response.status, body: parsed };
  }

  async function answer(side: Side, step: Step): Promise<Answer> {
    if (!step.until) return send(side, step);
    let last: Answer | undefined;
    try {
      await waitFor(
        async () => {
          last = await send(side, step);
          return step.until!(last);
        },
        60_000,
        `${side}: ${step.id}`,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; last answer ${JSON.stringify(last)}`);
    }
    return last!;
  }

  it('answers every request with Kafka Connect’s status and shape, or a listed difference', async () => {
    const observed = new Map<string, string>();
    let identical = 0;
    for (const step of steps) {
      const [connect, mine] = await Promise.all([answer('connect', step), answer('ours', step)]);
      const [theirs, mine2] = [shapeOf(connect.body, step.keyedByName), shapeOf(mine.body, step.keyedByName)];
      const onlyTheirs = minus(theirs, mine2);
      const onlyOurs = minus(mine2, theirs);
      const sameStatus = connect.status === mine.status;
      const sameShape = onlyTheirs.length === 0 && onlyOurs.length === 0;
      if (sameStatus && sameShape) identical++;
      if (process.env.INFER_CONNECT_DIFF_DEBUG)
        process.stdout.write(`${step.id}: ${JSON.stringify(connect)}\n   ${JSON.stringify(mine)}\n`);
      if (!sameStatus)
        observed.set(`${step.id} status`, `Kafka Connect ${connect.status}, ours ${mine.status}`);
      else if (!sameShape)
        observed.set(
          `${step.id} shape`,
          `only Kafka Connect: ${onlyTheirs.join(' ')}; only ours: ${onlyOurs.join(' ')}`,
        );
    }
    process.stdout.write(
      `      REST differential score: ${identical}/${steps.length} requests with identical status and shape\n`,
    );
    for (const [key, detail] of observed) process.stdout.write(`      differs: ${key}: ${detail}\n`);
    const listed = listedDifferences();
    const unlisted = [...observed.keys()].filter((key) => !listed.has(key));
    const stale = [...listed.keys()].filter((key) => !observed.has(key));
    expect(unlisted, 'differences missing from docs/kafka-connect-compatibility.md').to.deep.equal([]);
    expect(stale, 'listed differences that no longer occur').to.deep.equal([]);
  });

  it('lists only transforms, predicates and converters that Kafka Connect 4.1.1 has, under its class names', async () => {
    const list = async (side: Side) =>
      (await (await fetch(`${urls[side]}/connector-plugins?connectorsOnly=false`)).json()) as Array<{
        class: string;
        type: string;
      }>;
    const key = (p: { class: string; type: string }) => `${p.type} ${p.class}`;
    const theirs = new Set((await list('connect')).map(key));
    const connectorKinds = ['sink', 'source', 'processor'];
    const mine = (await list('ours')).filter((p) => !connectorKinds.includes(p.type)).map(key);
    // Confluent's AvroConverter is not part of Apache Kafka (Confluent ships it), so it cannot be listed there.
    const invented = mine.filter(
      (k) => !theirs.has(k) && k !== 'converter io.confluent.connect.avro.AvroConverter',
    );
    const missing = [...theirs].filter((k) => !/(source|sink) /.test(k) && !mine.includes(k));
    process.stdout.write(
      `      plugins: ${mine.length} of ours, ${theirs.size - 2} of Kafka Connect's; not here: ${missing.join(', ')}\n`,
    );
    expect(invented).to.deep.equal([]);
    expect(mine.filter((k) => k.startsWith('transformation ')).length).to.be.greaterThan(0);
  });
});

/** Our side of a transform case: the same JSON through our JsonConverter and createTransformChain. */
function runOurTransforms(c: HarnessCase): { results?: HarnessResult[]; error?: string } {
  let chain;
  try {
    chain = createTransformChain(c.config);
  } catch (error) {
    return { error: (error as Error).message };
  }
  const keys = new JsonConverter({ isKey: true, schemasEnable: c.schemasEnable });
  const values = new JsonConverter({ isKey: false, schemasEnable: c.schemasEnable });
  const bytes = (v: unknown) => (v === null || v === undefined ? null : Buffer.from(JSON.stringify(v)));
  const results = c.records.map((r): HarnessResult => {
    try {
      const key = keys.toConnect(r.topic, bytes(r.key));
      const value = values.toConnect(r.topic, bytes(r.value));
      const record: TransformRecord = {
        topic: r.topic,
        partition: r.partition ?? null,
        offset: r.offset === undefined ? null : String(r.offset),
        timestamp: r.timestamp === undefined || r.timestamp === null ? null : String(r.timestamp),
        key: key.value,
        keySchema: key.schema?.type,
        value: value.value,
        valueSchema: value.schema?.type,
        headers: Object.fromEntries(
          Object.entries(r.headers ?? {}).map(([k, v]) => [k, v === null ? undefined : Buffer.from(v)]),
        ),
      };
      const out = chain.apply(record);
      if (out === null) return { dropped: true };
      const parse = (b: Buffer | null) => (b === null ? null : (JSON.parse(b.toString('utf8')) as unknown));
      return {
        topic: out.topic,
        partition: out.partition,
        timestamp: out.timestamp === null ? null : Number(out.timestamp),
        key: parse(keys.fromConnect(out.topic, out.key, out.keySchema)),
        value: parse(values.fromConnect(out.topic, out.value, out.valueSchema)),
        headers: Object.fromEntries(
          Object.entries(out.headers).map(([k, v]) => [k, v === undefined ? null : v.toString('utf8')]),
        ),
      };
    } catch (error) {
      return { error: (error as Error).message };
    }
  });
  return { results };
}

/** Which parts of two results differ: `dropped`, `error`, `topic`, `key`, `value schema`, `headers`, ... */
function differingParts(theirs: HarnessResult, ours: HarnessResult, schemas: boolean): string[] {
  const kind = (r: HarnessResult) => ('dropped' in r ? 'dropped' : 'error' in r ? 'error' : 'record');
  if (kind(theirs) !== kind(ours)) return [`${kind(theirs)} vs ${kind(ours)}`];
  if (!('topic' in theirs) || !('topic' in ours)) return [];
  const parts: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
  for (const part of ['topic', 'partition', 'timestamp', 'headers'] as const)
    if (!same(theirs[part], ours[part])) parts.push(part);
  for (const part of ['key', 'value'] as const) {
    type Envelope = { schema?: unknown; payload?: unknown } | null;
    const [a, b] = [theirs[part] as Envelope, ours[part] as Envelope];
    if (!schemas || a === null || b === null) {
      if (!same(a, b)) parts.push(part);
      continue;
    }
    if (!same(a.payload, b.payload)) parts.push(part);
    if (!same(a.schema, b.schema)) parts.push(`${part} schema`);
  }
  return parts;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  return value;
}

describe('Single Message Transforms against Kafka Connect 4.1.1’s own classes', function () {
  this.timeout(300_000);

  it('gives every record the output Kafka Connect gives it, or a listed difference', () => {
    const cases = transformCases();
    const theirs = runTransformHarness(cases);
    const observed = new Map<string, string>();
    let records = 0;
    let identical = 0;
    for (const c of cases) {
      const connect = theirs.get(c.case);
      const ours = runOurTransforms(c);
      if (!connect) throw new Error(`the harness answered nothing for ${c.case}`);
      if (connect.error !== undefined || ours.error !== undefined) {
        if ((connect.error === undefined) !== (ours.error === undefined))
          observed.set(
            `${c.case} config`,
            `Kafka Connect: ${connect.error ?? 'ok'}; ours: ${ours.error ?? 'ok'}`,
          );
        continue;
      }
      connect.results!.forEach((result, i) => {
        records++;
        const mine = ours.results![i]!;
        const parts = differingParts(result, mine, c.schemasEnable);
        if (parts.length === 0) identical++;
        for (const part of parts)
          observed.set(
            `${c.case}${i > 0 ? ` #${i}` : ''} ${part}`,
            `Kafka Connect ${JSON.stringify(result)}\n        ours ${JSON.stringify(mine)}`,
          );
      });
    }
    process.stdout.write(
      `      transforms differential score: ${identical}/${records} records with identical output (${cases.length} cases)\n`,
    );
    for (const [key, detail] of observed) process.stdout.write(`      differs: ${key}:\n        ${detail}\n`);
    const listed = listedDifferences('transform-differences');
    expect(
      [...observed.keys()].filter((k) => !listed.has(k)),
      'unlisted transform differences',
    ).to.deep.equal([]);
    expect(
      [...listed.keys()].filter((k) => !observed.has(k)),
      'listed differences that no longer occur',
    ).to.deep.equal([]);
  });
});

describe('dead-letter queue against Kafka Connect 4.1.1', function () {
  this.timeout(300_000);
  const input = uniqueName('kc-dlq-in');
  const dlq = { connect: uniqueName('kc-dlq-connect'), ours: uniqueName('kc-dlq-ours') };
  const names = { connect: uniqueName('kc-dlq-sink-connect'), ours: uniqueName('kc-dlq-sink-ours') };
  let connectUrl: string;
  let ours: Awaited<ReturnType<typeof startTestWorker>>;

  before(async () => {
    connectUrl = await ensureKafkaConnect();
    ours = await startTestWorker();
    for (const topic of [input, dlq.connect, dlq.ours]) await createTopic(topic, 1);
  });

  after(async () => {
    await fetch(`${connectUrl}/connectors/${names.connect}`, { method: 'DELETE' }).catch(() => undefined);
    await ours?.stop();
  });

  it('writes the same bad records with the same context headers as Kafka Connect, or listed differences', async () => {
    const bad = [
      { key: 'k-bad-1', value: 'not json at all', headers: { origin: 'test' } },
      { key: 'k-good', value: '{"ok": true}', headers: {} },
      { key: 'k-bad-2', value: '{"truncated": ', headers: {} },
    ];
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({ topic: input, messages: bad });
    await producer.disconnect();
    const errorSettings = (side: Side) => ({
      'errors.tolerance': 'all',
      'errors.deadletterqueue.topic.name': dlq[side],
      'errors.deadletterqueue.topic.replication.factor': '1',
      'errors.deadletterqueue.context.headers.enable': 'true',
      'value.converter.schemas.enable': 'false',
    });
    const create = async (url: string, body: unknown) => {
      const response = await fetch(`${url}/connectors`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status, await response.text()).to.equal(201);
    };
    await create(connectUrl, {
      name: names.connect,
      config: {
        'connector.class': 'org.apache.kafka.connect.file.FileStreamSinkConnector',
        topics: input,
        file: join(mkdtempSync(join(tmpdir(), 'kc-dlq-')), 'out.txt'),
        'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
        'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
        ...errorSettings('connect'),
      },
    });
    await create(ours.url, {
      name: names.ours,
      config: {
        'connector.class': 'FileSink',
        topics: input,
        file: join(ours.dir, 'dlq-out.jsonl'),
        'key.converter': 'string',
        'value.converter': 'json',
        ...errorSettings('ours'),
      },
    });
    const [theirs, mine] = await Promise.all([readTopic(dlq.connect, 2), readTopic(dlq.ours, 2)]);
    const text = (headers: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(headers).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('utf8') : String(v)]),
      );
    const observed = new Map<string, string>();
    // Headers whose values must agree (the rest name classes, messages and stack traces of each runtime).
    const sameValue = ['topic', 'partition', 'offset', 'stage', 'class.name', 'task.id'].map(
      (h) => `__connect.errors.${h}`,
    );
    expect(theirs.map((r) => r.key)).to.deep.equal(['k-bad-1', 'k-bad-2']);
    theirs.forEach((record, i) => {
      const other = mine[i]!;
      expect(other.key, 'the same records in the same order').to.equal(record.key);
      if (!record.value!.equals(other.value!)) observed.set('value original-bytes', '');
      const [a, b] = [text(record.headers), text(other.headers)];
      for (const name of Object.keys(a)) if (!(name in b)) observed.set(`${name} missing`, a[name]!);
      for (const name of Object.keys(b)) if (!(name in a)) observed.set(`${name} extra`, b[name]!);
      for (const name of sameValue)
        if (name in a && name in b && a[name] !== b[name])
          observed.set(`${name} value`, `Kafka Connect ${a[name]}, ours ${b[name]}`);
      if (
        a['__connect.errors.connector.name'] !== names.connect ||
        b['__connect.errors.connector.name'] !== names.ours
      )
        observed.set('__connect.errors.connector.name value', `${a['__connect.errors.connector.name']}`);
    });
    const compared = new Set([...theirs, ...mine].flatMap((r) => Object.keys(r.headers)));
    process.stdout.write(
      `      DLQ: ${theirs.length} records compared, ${compared.size} header names, ${observed.size} differences\n`,
    );
    for (const [key, detail] of observed)
      process.stdout.write(`      differs: ${key}: ${detail.slice(0, 200)}\n`);
    const listed = listedDifferences('dlq-differences');
    expect(
      [...observed.keys()].filter((k) => !listed.has(k)),
      'unlisted DLQ differences',
    ).to.deep.equal([]);
    expect(
      [...listed.keys()].filter((k) => !observed.has(k)),
      'listed differences that no longer occur',
    ).to.deep.equal([]);
  });
});
