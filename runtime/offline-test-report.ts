// What `infer-connect test` prints for each input record, and how a run is compared with an
// expected file. One outcome per input line, in input order, keyed by the input's line number:
//
//   {"line":3,"outputs":[{"topic":"census-scored","key":"3","value":{...}}]}     written (processor)
//   {"line":4,"written":true}                                                  put without error (sink)
//   {"line":5,"dead_letter":{"topic":"census-dlq","code":...,"stage":...,"class":...,"message":...}}
//   {"line":6,"task_failed":{"code":...,"stage":...,"message":...}}              the task would go to FAILED
//   {"line":7,"retry_timeout":{"code":...,"message":...,"attempts":4}}           transient failure outlasted --timeout-ms
//   {"line":8,"not_processed":"..."}                                           after a task failure or a timeout
//
// The JSON form is the expected-file format: record it with `--output-format json`, check later
// with `--expect`. The comparison looks at what a deployment would do (topics, keys, values,
// headers, dead-letter codes and stages), never at messages, which may be reworded between
// versions. Values are bigint-safe both ways (JSON.rawJSON out, the parser's source text in).
import { RecordError } from './errors.js';

export interface PrintedOutput {
  topic: string;
  key: unknown;
  value: unknown;
  /** Only when the record has headers. */
  headers?: Record<string, unknown>;
}

export interface FailureInfo {
  code: string | null;
  stage: string | null;
  message: string;
}

export interface DeadLetterDecision extends FailureInfo {
  /** The dead-letter topic; null when errors.tolerance=all has no DLQ topic (the record is skipped). */
  topic: string | null;
  /** The class that ran the failing stage (`__connect.errors.class.name`). */
  class: string;
  /** The error's context, as the `__connect.errors.*` headers would carry it. */
  context?: Record<string, string | number>;
}

export type Outcome =
  | { line: number; outputs: PrintedOutput[] }
  | { line: number; written: true }
  | { line: number; dead_letter: DeadLetterDecision }
  | { line: number; task_failed: FailureInfo }
  | { line: number; retry_timeout: FailureInfo & { attempts: number } }
  | { line: number; not_processed: string };

/** Whether the run had an outcome a deployment would not get past (exit 1 without --expect). */
export function isBlocking(outcome: Outcome): boolean {
  return 'task_failed' in outcome || 'retry_timeout' in outcome || 'not_processed' in outcome;
}

const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A decoded key or value as plain JSON data: bytes as text when they are valid UTF-8, else
 * `{"base64": "..."}`; non-finite numbers as the strings "NaN", "Infinity", "-Infinity"; bigints kept.
 */
export function printable(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'bigint') return value;
  if (value instanceof Uint8Array) {
    try {
      return strictUtf8.decode(value);
    } catch {
      return { base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
    }
  }
  if (Array.isArray(value)) return value.map(printable);
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = printable(v);
    return out;
  }
  return String(value);
}

/** One JSON line (no newline); bigints as exact JSON numbers. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? rawJSON(v.toString()) : v));
}

/** JSON.parse that keeps integers beyond ±2^53 exact, as bigints. */
export function parseJsonExact(text: string): unknown {
  const reviver = (_key: string, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' &&
    !Number.isSafeInteger(value) &&
    context?.source !== undefined &&
    /^-?\d+$/.test(context.source)
      ? BigInt(context.source)
      : value;
  return JSON.parse(text, reviver as (key: string, value: unknown) => unknown);
}

const OUTCOME_KINDS = [
  'outputs',
  'written',
  'dead_letter',
  'task_failed',
  'retry_timeout',
  'not_processed',
] as const;

/**
 * The part of an outcome a comparison looks at: outputs (topic, key, value without the ignored
 * fields, headers), or the decision's kind with its code and stage (and the DLQ topic).
 * Messages, error context and attempt counts are left out.
 */
export function comparable(outcome: Record<string, unknown>, ignoreFields: readonly string[]): object {
  const line = outcome['line'];
  const pick = (o: unknown, keys: readonly string[]) =>
    Object.fromEntries(keys.map((k) => [k, (o as Record<string, unknown>)[k] ?? null]));
  if ('outputs' in outcome) {
    const outputs = (outcome['outputs'] as Array<Record<string, unknown>>).map((o) => {
      let value = o['value'];
      if (ignoreFields.length > 0 && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        value = Object.fromEntries(Object.entries(value).filter(([k]) => !ignoreFields.includes(k)));
      }
      const headers = o['headers'];
      return {
        topic: o['topic'],
        key: o['key'] ?? null,
        value,
        ...(headers !== undefined && headers !== null && Object.keys(headers).length > 0 ? { headers } : {}),
      };
    });
    return { line, outputs };
  }
  if ('written' in outcome) return { line, written: true };
  if ('dead_letter' in outcome)
    return { line, dead_letter: pick(outcome['dead_letter'], ['topic', 'code', 'stage']) };
  if ('task_failed' in outcome) return { line, task_failed: pick(outcome['task_failed'], ['code', 'stage']) };
  if ('retry_timeout' in outcome) return { line, retry_timeout: pick(outcome['retry_timeout'], ['code']) };
  return { line, not_processed: true };
}

/** Why `value` (a parsed expected line) is not an outcome, or undefined. */
function outcomeShapeProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'is not a JSON object';
  const line = (value as Record<string, unknown>)['line'];
  if (typeof line !== 'number' || !Number.isInteger(line) || line < 1)
    return 'has no "line" (the input line number, a positive integer)';
  const kinds = OUTCOME_KINDS.filter((k) => k in value);
  if (kinds.length !== 1) return `must have exactly one of ${OUTCOME_KINDS.map((k) => `"${k}"`).join(', ')}`;
  if (kinds[0] === 'outputs' && !Array.isArray((value as Record<string, unknown>)['outputs']))
    return '"outputs" must be an array';
  if (
    (kinds[0] === 'dead_letter' || kinds[0] === 'task_failed' || kinds[0] === 'retry_timeout') &&
    (typeof (value as Record<string, unknown>)[kinds[0]] !== 'object' ||
      (value as Record<string, unknown>)[kinds[0]] === null)
  )
    return `"${kinds[0]}" must be an object with at least "code"`;
  return undefined;
}

/** Parses an expected file: outcomes by input line, or every problem with its line number. */
export function parseExpected(
  text: string,
  source: string,
): { byLine: Map<number, Record<string, unknown>>; problems: string[] } {
  const byLine = new Map<number, Record<string, unknown>>();
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const where = `${source} line ${i + 1}`;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = parseJsonExact(raw);
    } catch (error) {
      problems.push(`${where}: not valid JSON (${(error as Error).message})`);
      return;
    }
    const problem = outcomeShapeProblem(value);
    if (problem) {
      problems.push(`${where}: ${problem}`);
      return;
    }
    const outcome = value as Record<string, unknown>;
    const line = outcome['line'] as number;
    if (byLine.has(line)) problems.push(`${where}: a second outcome for input line ${line}`);
    else byLine.set(line, outcome);
  });
  return { byLine, problems };
}

export interface Difference {
  path: string;
  expected: unknown;
  actual: unknown;
}

/**
 * The first place where `actual` differs from `expected`, or undefined when they match. Numbers
 * match when they differ by at most `tolerance` × max(1, |expected|); integers held as bigints
 * compare exactly.
 */
export function firstDifference(
  expected: unknown,
  actual: unknown,
  tolerance: number,
  path = '',
): Difference | undefined {
  const here = (): Difference => ({ path: path === '' ? '(whole outcome)' : path, expected, actual });
  if (typeof expected === 'number' && typeof actual === 'number') {
    if (expected === actual) return undefined;
    return Math.abs(expected - actual) <= tolerance * Math.max(1, Math.abs(expected)) ? undefined : here();
  }
  if (
    (typeof expected === 'bigint' || typeof expected === 'number') &&
    (typeof actual === 'bigint' || typeof actual === 'number')
  ) {
    const a = typeof expected === 'number' && Number.isInteger(expected) ? BigInt(expected) : expected;
    const b = typeof actual === 'number' && Number.isInteger(actual) ? BigInt(actual) : actual;
    return a === b ? undefined : here();
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length !== actual.length)
      return { path: `${path}.length`.replace(/^\./, ''), expected: expected.length, actual: actual.length };
    for (let i = 0; i < expected.length; i++) {
      const d = firstDifference(expected[i], actual[i], tolerance, `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (isObject(expected) && isObject(actual)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])];
    for (const key of keys) {
      const sub = path === '' ? key : `${path}.${key}`;
      if (!(key in expected)) return { path: sub, expected: undefined, actual: actual[key] };
      if (!(key in actual)) return { path: sub, expected: expected[key], actual: undefined };
      const d = firstDifference(expected[key], actual[key], tolerance, sub);
      if (d) return d;
    }
    return undefined;
  }
  return Object.is(expected, actual) ? undefined : here();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export interface ComparisonOptions {
  tolerance: number;
  ignoreFields: readonly string[];
  expectedSource: string;
  inputSource: string;
}

/**
 * Compares the run's outcomes with the expected ones, by input line. Returns the number of inputs
 * that differ (including expected lines no input has) and a unified-diff-like report: one hunk
 * per differing input, headed by the first differing path, `-` the expected and `+` the actual
 * comparable form.
 */
export function compareWithExpected(
  outcomes: readonly Outcome[],
  expected: ReadonlyMap<number, Record<string, unknown>>,
  options: ComparisonOptions,
): { differing: number; report: string } {
  const hunks: string[] = [];
  const { tolerance, ignoreFields } = options;
  const seen = new Set<number>();
  for (const outcome of outcomes) {
    seen.add(outcome.line);
    const actual = comparable(parseJsonExact(jsonLine(outcome)) as Record<string, unknown>, ignoreFields);
    const want = expected.get(outcome.line);
    if (want === undefined) {
      hunks.push(`@@ input line ${outcome.line}: no expected outcome @@\n+${jsonLine(actual)}`);
      continue;
    }
    const wanted = comparable(want, ignoreFields);
    const difference = firstDifference(wanted, actual, tolerance);
    if (difference === undefined) continue;
    hunks.push(
      `@@ input line ${outcome.line}: ${difference.path}: expected ${describe(difference.expected)}, got ${describe(difference.actual)} @@\n` +
        `-${jsonLine(wanted)}\n+${jsonLine(actual)}`,
    );
  }
  for (const [line, want] of [...expected].sort(([a], [b]) => a - b)) {
    if (seen.has(line)) continue;
    hunks.push(`@@ input line ${line}: no such input @@\n-${jsonLine(comparable(want, ignoreFields))}`);
  }
  const total = outcomes.length;
  const summary =
    hunks.length === 0
      ? `all ${total} inputs match ${options.expectedSource}`
      : `${hunks.length} of ${total} inputs differ from ${options.expectedSource}`;
  const settings = `float tolerance ${tolerance}${ignoreFields.length > 0 ? `, ignored fields ${ignoreFields.join(',')}` : ''}`;
  const header =
    hunks.length === 0 ? '' : `--- ${options.expectedSource}\n+++ actual (${options.inputSource})\n`;
  return {
    differing: hunks.length,
    report: `${header}${hunks.map((h) => `${h}\n`).join('')}${summary} (${settings})\n`,
  };
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = jsonLine(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A human-readable line (or two) per outcome, then a summary. */
export function renderPretty(outcomes: readonly Outcome[]): string {
  const lines: string[] = [];
  for (const o of outcomes) {
    const at = `line ${o.line}`.padEnd(9);
    if ('outputs' in o) {
      if (o.outputs.length === 0) lines.push(`${at} -> no output`);
      for (const out of o.outputs) {
        const headers = out.headers ? ` headers=${jsonLine(out.headers)}` : '';
        lines.push(`${at} -> ${out.topic} key=${jsonLine(out.key)}${headers} ${jsonLine(out.value)}`);
      }
    } else if ('written' in o) lines.push(`${at} -> written`);
    else if ('dead_letter' in o) {
      const d = o.dead_letter;
      const where =
        d.topic === null
          ? 'skipped (errors.tolerance=all, no dead-letter topic)'
          : `dead letter to ${d.topic}`;
      lines.push(`${at} -> ${where}: ${d.code ?? d.class} at ${d.stage}: ${d.message}`);
      if (d.context && Object.keys(d.context).length > 0)
        lines.push(
          `${' '.repeat(13)}context ${Object.entries(d.context)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`,
        );
    } else if ('task_failed' in o)
      lines.push(
        `${at} -> task FAILED: ${o.task_failed.code ?? 'error'} at ${o.task_failed.stage}: ${o.task_failed.message}`,
      );
    else if ('retry_timeout' in o)
      lines.push(
        `${at} -> transient failure after ${o.retry_timeout.attempts} attempt(s), gave up: ${o.retry_timeout.code}: ${o.retry_timeout.message}`,
      );
    else lines.push(`${at} -> not processed: ${o.not_processed}`);
  }
  lines.push(summarize(outcomes));
  return `${lines.join('\n')}\n`;
}

/** `21 inputs: 20 with outputs (20 records), 1 dead letter`, and any failures. */
export function summarize(outcomes: readonly Outcome[]): string {
  const count = (kind: (typeof OUTCOME_KINDS)[number]) => outcomes.filter((o) => kind in o).length;
  const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  const records = outcomes.reduce((n, o) => n + ('outputs' in o ? o.outputs.length : 0), 0);
  const parts = [
    `${count('outputs')} with outputs (${plural(records, 'record')})`,
    ...(count('written') > 0 ? [`${count('written')} written`] : []),
    plural(count('dead_letter'), 'dead letter'),
    ...(count('task_failed') > 0 ? [plural(count('task_failed'), 'task failure')] : []),
    ...(count('retry_timeout') > 0 ? [`${count('retry_timeout')} timed out`] : []),
    ...(count('not_processed') > 0 ? [`${count('not_processed')} not processed`] : []),
  ];
  return `${plural(outcomes.length, 'input')}: ${parts.join(', ')}`;
}

/** The failure fields of an error: its catalogue code and stage when it has them. */
export function failureInfo(error: Error, redact: (text: string) => string): FailureInfo {
  const connect = error as Partial<RecordError>;
  return {
    code: typeof connect.code === 'string' ? connect.code : null,
    stage: connect.stage ?? null,
    message: redact(error.message),
  };
}
