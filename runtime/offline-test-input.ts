// The recorded inputs of `infer-connect test`: a JSON-lines file, one record per non-blank line.
//
// `--input-format values` (the default): each line is a record value, nothing else (key null,
// no headers, the connector's first input topic, partition 0, offsets 0, 1, 2...).
// `--input-format records`: each line is an object with the record's parts:
//
//   {"value": ..., "key": ..., "headers": {"name": "text"}, "topic": "census",
//    "partition": 0, "offset": 42, "timestamp": 1733040000000}
//
// where only `value` is required. Keys and values are given as the connector's converters hand
// them to a task: JSON values for `json`, text for `string`, Avro values in JSON for `avro` (with
// --key-schema/--value-schema; bytes and fixed as text with one character per byte, unions bare
// unless two branches are the same JavaScript type), and for `bytes` a text (its UTF-8 bytes) or
// `{"base64": "..."}`. Records are turned into the bytes a producer would have written, with the
// converter's own encoder, so a value that does not fit its converter is an input problem, with
// its line number, before anything runs.
import type { ParsedConfig } from './config/config-spec.js';
import { topicsPattern } from './config/connector-config.js';
import { parseJsonExact } from './offline-test-report.js';

export type InputFormat = 'values' | 'records';

/** One recorded input record, before its key and value are encoded. */
export interface TestInput {
  /** The 1-based line of the input file. */
  line: number;
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  key: unknown;
  value: unknown;
  headers: Record<string, Buffer>;
}

const RECORD_KEYS: ReadonlySet<string> = new Set([
  'value',
  'key',
  'headers',
  'topic',
  'partition',
  'offset',
  'timestamp',
]);

export interface InputReadOptions {
  format: InputFormat;
  /** The connector's config: which topics it consumes. */
  config: ParsedConfig;
  /** The timestamp of records that give none (epoch ms). */
  now: number;
}

/** Parses the input file's text: the records, or every problem as `line N: ...`. */
export function parseTestInputs(
  text: string,
  options: InputReadOptions,
): { inputs: TestInput[]; problems: string[] } {
  const inputs: TestInput[] = [];
  const problems: string[] = [];
  const topics = options.config.getList('topics');
  const pattern = topicsPattern(options.config);
  const nextOffset = new Map<string, bigint>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    const line = i + 1;
    const problem = (message: string) => problems.push(`line ${line}: ${message}`);
    let parsed: unknown;
    try {
      parsed = parseJsonExact(raw);
    } catch (error) {
      problem(`not valid JSON (${(error as Error).message})`);
      continue;
    }
    const parts = options.format === 'records' ? recordParts(parsed, problem) : { value: parsed };
    if (parts === undefined) continue;

    const topic = parts.topic ?? topics[0];
    if (topic === undefined) {
      problem('the connector consumes topics.regex: give the record its "topic" (--input-format records)');
      continue;
    }
    if (pattern ? !pattern.test(topic) : !topics.includes(topic)) {
      problem(
        `topic "${topic}" is not consumed by this connector (${pattern ? `topics.regex ${pattern.source}` : `topics ${topics.join(',')}`})`,
      );
      continue;
    }
    const partition = parts.partition ?? 0;
    const position = `${topic}\u0000${partition}`;
    const offset = parts.offset ?? nextOffset.get(position) ?? 0n;
    nextOffset.set(position, offset + 1n);
    inputs.push({
      line,
      topic,
      partition,
      offset: offset.toString(),
      timestamp: (parts.timestamp ?? BigInt(options.now)).toString(),
      key: parts.key ?? null,
      value: parts.value,
      headers: parts.headers ?? {},
    });
  }
  return { inputs, problems };
}

interface RecordParts {
  value: unknown;
  key?: unknown;
  headers?: Record<string, Buffer>;
  topic?: string;
  partition?: number;
  offset?: bigint;
  timestamp?: bigint;
}

/** The parts of a `records`-format line, or undefined after reporting what is wrong with it. */
function recordParts(parsed: unknown, problem: (message: string) => void): RecordParts | undefined {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    problem('with --input-format records each line must be an object like {"key": ..., "value": ...}');
    return undefined;
  }
  const record = parsed as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !RECORD_KEYS.has(k));
  const found: string[] = [];
  if (unknown.length > 0)
    found.push(
      `unknown field(s) ${unknown.map((k) => `"${k}"`).join(', ')}; a record has ${[...RECORD_KEYS].join(', ')}`,
    );
  if (!('value' in record)) found.push('"value" is missing (use null for a tombstone)');
  const parts: RecordParts = { value: record['value'] };
  if ('key' in record) parts.key = record['key'];
  if (record['topic'] !== undefined) {
    if (typeof record['topic'] === 'string' && record['topic'] !== '') parts.topic = record['topic'];
    else found.push('"topic" must be a non-empty string');
  }
  const integer = (name: string, max?: bigint): bigint | undefined => {
    const v = record[name];
    if (v === undefined) return undefined;
    const text = typeof v === 'number' || typeof v === 'bigint' ? String(v) : typeof v === 'string' ? v : '';
    if (!/^\d+$/.test(text) || (max !== undefined && BigInt(text) > max)) {
      found.push(`"${name}" must be a non-negative integer${max !== undefined ? ` up to ${max}` : ''}`);
      return undefined;
    }
    return BigInt(text);
  };
  const partition = integer('partition', 2n ** 31n - 1n);
  if (partition !== undefined) parts.partition = Number(partition);
  const offset = integer('offset', 2n ** 63n - 1n);
  if (offset !== undefined) parts.offset = offset;
  const timestamp = integer('timestamp', 2n ** 63n - 1n);
  if (timestamp !== undefined) parts.timestamp = timestamp;
  const headers = record['headers'];
  if (headers !== undefined && headers !== null) {
    if (typeof headers !== 'object' || Array.isArray(headers))
      found.push('"headers" must be an object of texts');
    else {
      const out: Record<string, Buffer> = {};
      for (const [name, v] of Object.entries(headers)) {
        if (typeof v === 'string') out[name] = Buffer.from(v, 'utf8');
        else found.push(`header "${name}" must be a text`);
      }
      parts.headers = out;
    }
  }
  if (found.length > 0) {
    problem(found.join('; '));
    return undefined;
  }
  return parts;
}

/**
 * The value the `bytes` converter is given for a recorded key or value: a text's UTF-8 bytes, or
 * `{"base64": "..."}` decoded. Throws an Error saying what is accepted otherwise.
 */
export function bytesOf(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as { base64?: unknown }).base64 === 'string'
  ) {
    return Buffer.from((value as { base64: string }).base64, 'base64');
  }
  throw new Error('with the bytes converter give a text (its UTF-8 bytes) or {"base64": "..."}');
}
