// The TFServingInference config spec (the one source of truth for every key: type, default,
// validation and documentation) and its reading into typed settings for the task.
import { defineConfig, type ConfigKey, type ParsedConfig } from '../../runtime/api.js';
import type { ModelSpec } from './grpc-client.js';
import type { NonFinitePolicy } from './input-mapping.js';
import { parseStatusPolicyOverrides, StatusPolicy } from './status-policy.js';

const MiB = 1024 * 1024;

const SERVER = 'Model server';
const MODEL = 'Model';
const INPUT = 'Input mapping';
const OUTPUT = 'Output';
const BATCHING = 'Batching';
const RATE_LIMIT = 'Rate limit';
const BREAKER = 'Circuit breaker';

/** Highest fixed `max.in.flight.requests`, and highest adaptive bound (adaptive-limit.ts). */
export const MAX_IN_FLIGHT = 1024;

/** What `output.metadata.fields` can add to each scored record, with its default field name. */
export const METADATA_KINDS = {
  'model.name': 'model_name',
  'model.version': 'model_version',
  'model.signature': 'model_signature',
  'scored.at': 'scored_at',
} as const;
export type MetadataKind = keyof typeof METADATA_KINDS;

const AVRO_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

type Pair = { left: string; right: string };

/** Splits `left=right` entries; entries without `=` get `right` from `defaultRight`, or a problem. */
function parsePairs(
  entries: readonly string[],
  what: string,
  defaultRight?: (left: string) => string | undefined,
): { pairs: Pair[]; problems: string[] } {
  const pairs: Pair[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const left = (eq === -1 ? entry : entry.slice(0, eq)).trim();
    const right = eq === -1 ? defaultRight?.(left) : entry.slice(eq + 1).trim();
    if (left === '' || right === undefined || right === '') problems.push(`"${entry}" is not ${what}`);
    else pairs.push({ left, right });
  }
  return { pairs, problems };
}

function duplicates(values: readonly string[]): string[] {
  return [...new Set(values.filter((v, i) => values.indexOf(v) !== i))];
}

function inputMappingProblems(entries: readonly string[]): string[] {
  const { pairs, problems } = parsePairs(entries, 'tensor=field.path; write e.g. age=person.age_years');
  for (const { right } of pairs)
    if (!FIELD_PATH.test(right)) problems.push(`"${right}" is not a field path like "person.age"`);
  for (const tensor of duplicates(pairs.map((p) => p.left)))
    problems.push(`input tensor "${tensor}" is mapped twice; keep one entry`);
  return problems;
}

function outputFieldProblems(entries: readonly string[]): string[] {
  const { pairs, problems } = parsePairs(entries, 'tensor or tensor=fieldName', (left) =>
    avroFieldName(left),
  );
  for (const { right } of pairs)
    if (!AVRO_NAME.test(right))
      problems.push(
        `"${right}" is not a valid Avro field name (letters, digits and _, not starting with a digit)`,
      );
  for (const field of duplicates(pairs.map((p) => p.right)))
    problems.push(`field "${field}" is the target of two output tensors; give each its own name`);
  return problems;
}

function metadataFieldProblems(entries: readonly string[]): string[] {
  const { pairs, problems } = parsePairs(
    entries,
    `kind or kind=fieldName with kind one of ${Object.keys(METADATA_KINDS).join(', ')}`,
    // An unknown kind keeps its own name here, so the kind check below reports it.
    (left) => METADATA_KINDS[left as MetadataKind] ?? left.replace(/\W/g, '_'),
  );
  for (const { left, right } of pairs) {
    if (!(left in METADATA_KINDS))
      problems.push(`"${left}" is not a metadata kind; use one of ${Object.keys(METADATA_KINDS).join(', ')}`);
    if (!AVRO_NAME.test(right)) problems.push(`"${right}" is not a valid Avro field name`);
  }
  for (const field of duplicates(pairs.map((p) => p.right)))
    problems.push(`field "${field}" is named twice; give each metadata field its own name`);
  return problems;
}

/** An Avro field name for a tensor alias: characters Avro does not allow become `_`. */
export function avroFieldName(alias: string): string {
  const cleaned = alias.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

/** gRPC name-resolution schemes a target may start with (`dns:///host:port`, `unix:///path`, ...). */
const GRPC_SCHEMES = new Set(['dns', 'unix', 'unix-abstract', 'ipv4', 'ipv6']);

/** `tfserving.transport`: TF Serving's gRPC API, or its REST API (rest-client.ts). */
export const TRANSPORTS = ['grpc', 'rest'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/**
 * What the client pool connects to: `host:port` for gRPC; for REST the base URL, `https://` with
 * TLS (the tfserving.tls.* files apply to it as to gRPC) and `http://` without.
 */
export function clientTarget(transport: Transport, target: string, tls: boolean): string {
  return transport === 'rest' ? `${tls ? 'https' : 'http'}://${target}` : target;
}

function targetProblem(target: string): string | undefined {
  if (!/^\S+$/.test(target)) return `"${target}" is not host:port, e.g. 127.0.0.1:8500`;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(target)?.[1];
  if (scheme !== undefined && !GRPC_SCHEMES.has(scheme.toLowerCase()))
    return (
      `"${target}" is not host:port: a gRPC target has no ${scheme}:// scheme; write e.g. 127.0.0.1:8500` +
      (scheme.toLowerCase() === 'https' ? ' and set tfserving.tls.enable=true' : '')
    );
  return undefined;
}

const joinProblems = (problems: string[]): string | undefined =>
  problems.length === 0 ? undefined : problems.join('; ');

const asList = (value: unknown): string[] => (Array.isArray(value) ? (value as string[]) : []);

const KEYS: ConfigKey[] = [
  // ------------------------------------------------------------------------- model server
  {
    name: 'tfserving.target',
    type: 'string',
    importance: 'high',
    group: SERVER,
    displayName: 'Model server target',
    documentation:
      'host:port of the TensorFlow Serving gRPC endpoint (port 8500 by default in TF Serving), or of its REST API ' +
      '(port 8501) with `tfserving.transport=rest`. ' +
      'Tasks of this worker that name the same target (and TLS settings) share one gRPC channel.',
    validate: (value) => targetProblem(String(value)),
  },
  // ------------------------------------------------- transport (rest-client.ts)
  {
    name: 'tfserving.transport',
    type: 'string',
    default: 'grpc',
    validate: (value) =>
      (TRANSPORTS as readonly string[]).includes(String(value))
        ? undefined
        : `must be one of ${TRANSPORTS.join(', ')}, got "${String(value)}"`,
    importance: 'medium',
    group: SERVER,
    displayName: 'Transport',
    documentation:
      'How the task calls TensorFlow Serving: `grpc` (its gRPC API, port 8500) or `rest` (its REST API, port 8501: ' +
      '`POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict` with columnar `inputs`, and `GET .../metadata`). ' +
      'With `rest`, `tfserving.target` is the host:port of the REST API, `tfserving.tls.*` apply to HTTPS, and ' +
      "the message limits bound the HTTP bodies; HTTP statuses are read as the gRPC status TF Serving's REST server " +
      'answers them for (400 INVALID_ARGUMENT, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, ...), so ' +
      '`tfserving.status.policy` applies to both. A label or the latest version is resolved to a version number ' +
      'from the model status about once a second, since REST answers do not name the version that answered.',
  },
  // ---------------------------------------------- end transport
  {
    name: 'tfserving.deadline.ms',
    type: 'int',
    default: 5000,
    min: 1,
    importance: 'high',
    group: SERVER,
    displayName: 'Call deadline',
    documentation:
      'Deadline (ms) of every gRPC call; a call that outlasts it fails with DEADLINE_EXCEEDED, which is retried ' +
      'and counts against the circuit breaker. Keep it above the model latency of a full batch.',
  },
  {
    name: 'tfserving.startup.timeout.ms',
    type: 'long',
    default: 60000,
    min: 0,
    importance: 'medium',
    group: SERVER,
    displayName: 'Startup timeout',
    documentation:
      'How long (ms) the task keeps retrying to read the model metadata at start while the model server is ' +
      'unreachable (UNAVAILABLE and other transient statuses), with capped backoff; then the task fails. ' +
      'A missing model, version, label or signature fails the task at once.',
  },
  {
    name: 'tfserving.tls.enable',
    type: 'boolean',
    default: false,
    importance: 'medium',
    group: SERVER,
    displayName: 'TLS',
    dependents: [
      'tfserving.tls.ca.file',
      'tfserving.tls.cert.file',
      'tfserving.tls.key.file',
      'tfserving.tls.server.name',
    ],
    documentation:
      'Connect with TLS. Without `tfserving.tls.ca.file` the root certificates built into Node.js are trusted.',
  },
  {
    name: 'tfserving.tls.ca.file',
    type: 'string',
    default: null,
    importance: 'low',
    group: SERVER,
    displayName: 'TLS CA file',
    documentation: 'PEM file of the root certificates to trust (with `tfserving.tls.enable=true`).',
  },
  {
    name: 'tfserving.tls.cert.file',
    type: 'string',
    default: null,
    importance: 'low',
    group: SERVER,
    displayName: 'TLS client certificate file',
    documentation: 'PEM client certificate chain for mutual TLS; needs `tfserving.tls.key.file`.',
  },
  {
    name: 'tfserving.tls.key.file',
    type: 'string',
    default: null,
    importance: 'low',
    group: SERVER,
    displayName: 'TLS client key file',
    documentation: 'PEM private key of `tfserving.tls.cert.file`.',
  },
  {
    name: 'tfserving.tls.server.name',
    type: 'string',
    default: null,
    importance: 'low',
    group: SERVER,
    displayName: 'TLS server name',
    documentation:
      'The name the model server certificate must hold when it is not the host of `tfserving.target` (a target ' +
      'given as an IP address, or a load balancer name); also sent as the TLS server name (SNI). Needs ' +
      '`tfserving.tls.enable=true`.',
  },
  {
    name: 'tfserving.max.send.message.bytes',
    type: 'int',
    default: 64 * MiB,
    min: 1024,
    importance: 'low',
    group: SERVER,
    displayName: 'Max request size',
    documentation:
      "Largest gRPC request (bytes) the client sends. gRPC's own default (4 MiB) is too small for batched image requests.",
  },
  {
    name: 'tfserving.max.receive.message.bytes',
    type: 'int',
    default: 64 * MiB,
    min: 1024,
    importance: 'low',
    group: SERVER,
    displayName: 'Max response size',
    documentation:
      "Largest gRPC response (bytes) the client accepts. gRPC's own default (4 MiB) is too small for batched responses.",
  },
  {
    name: 'tfserving.status.policy',
    type: 'list',
    default: [],
    importance: 'low',
    group: SERVER,
    displayName: 'gRPC status policy overrides',
    documentation:
      'Overrides of how a failed call is handled, as `STATUS=outcome` entries (e.g. `INTERNAL=fatal,CANCELLED=retry`), ' +
      'outcome one of `retry` (back off, pause the partitions, redeliver), `fail-record` (bisect the batch; the ' +
      'refused records go to the dead-letter queue) or `fatal` (the task fails). Defaults: UNAVAILABLE, ' +
      'DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL -> retry; INVALID_ARGUMENT -> fail-record; ' +
      'NOT_FOUND, FAILED_PRECONDITION, UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED -> fatal; any other ' +
      'status -> retry (never lose or dead-letter records over an unclassified failure).',
    validate: (value) => joinProblems(parseStatusPolicyOverrides(asList(value)).problems),
  },
  // ------------------------------------------------------------------------------- model
  {
    name: 'tfserving.model.name',
    type: 'string',
    importance: 'high',
    group: MODEL,
    displayName: 'Model name',
    documentation: 'Name of the model on the server (`--model_name` / the model config of TF Serving).',
    validate: (value) => (String(value).trim() === '' ? 'must not be empty' : undefined),
  },
  {
    name: 'tfserving.model.version',
    type: 'long',
    default: null,
    min: 0,
    importance: 'medium',
    group: MODEL,
    displayName: 'Model version',
    documentation:
      'Pin a model version. Leave it and `tfserving.model.version.label` unset to use the latest version the server ' +
      'has loaded: new versions are picked up without a restart, even with another signature (the task re-reads ' +
      'the signature when another version answers, or when a whole request is refused with INVALID_ARGUMENT or ' +
      'FAILED_PRECONDITION, and sends the refused request again under the new signature before bisecting it; the ' +
      'output schema follows). A new signature the records cannot feed fails the task (MODEL_SIGNATURE_CHANGED) ' +
      'instead of dead-lettering the stream.',
  },
  {
    name: 'tfserving.model.version.label',
    type: 'string',
    default: null,
    importance: 'medium',
    group: MODEL,
    displayName: 'Model version label',
    documentation:
      'Use the version the server labels so (e.g. `stable`, `canary`); the label can be moved to a new version on ' +
      'the server without touching the connector, even one with another signature (followed as for the latest ' +
      'version, see `tfserving.model.version`). Exclusive with `tfserving.model.version`.',
  },
  {
    name: 'tfserving.signature.name',
    type: 'string',
    default: 'serving_default',
    importance: 'medium',
    group: MODEL,
    displayName: 'Signature',
    documentation: 'The SignatureDef to call.',
  },
  // ------------------------------------------------------------------------------ inputs
  {
    name: 'input.mapping',
    type: 'list',
    default: [],
    importance: 'medium',
    group: INPUT,
    displayName: 'Input mapping',
    documentation:
      'Explicit `tensor=field.path` entries (e.g. `age=person.age_years`; dots go into nested records). Every input ' +
      'tensor of the signature not listed here reads the top-level field of the same name. Avro int/long/float/' +
      'double/boolean/string/bytes (and enum/fixed) feed the matching DT_* (numbers feed any numeric dtype, ' +
      'integers are range-checked), an array adds a dimension; a nullable union is accepted and a null value ' +
      'fails only that record (MODEL_INPUT_MISSING). A record whose writer schema cannot feed an input (the field ' +
      'is missing, or has a type the dtype cannot take: a string for a number, a decimal, a record or map) fails ' +
      'alone too (MODEL_INPUT_SCHEMA_MISMATCH); each writer schema is judged once, at its first record.',
    validate: (value) => joinProblems(inputMappingProblems(asList(value))),
  },
  {
    name: 'input.nonfinite.policy',
    type: 'string',
    default: 'dead-letter',
    validValues: ['dead-letter', 'pass'],
    importance: 'low',
    group: INPUT,
    displayName: 'Non-finite floats',
    documentation:
      'What a NaN or an infinity in a value feeding a floating-point input (DT_FLOAT, DT_DOUBLE, DT_HALF, ' +
      'DT_BFLOAT16) does: `dead-letter` fails that record (MODEL_INPUT_NOT_FINITE; most models answer NaN for ' +
      "it, or poison a whole batch), `pass` sends it to the model as is. A finite value beyond the dtype's " +
      'largest finite value always fails its record (MODEL_INPUT_TYPE_MISMATCH).',
  },
  {
    name: 'input.file.fields',
    type: 'list',
    default: [],
    importance: 'low',
    group: INPUT,
    displayName: 'File path fields',
    dependents: [
      'input.file.base.dir',
      'input.file.max.bytes',
      'input.file.read.timeout.ms',
      'input.file.max.concurrent.reads',
    ],
    documentation:
      'Field paths whose string value is the path of a file whose bytes feed the (DT_STRING) tensor instead, e.g. an ' +
      'image path. Needs `input.file.base.dir`. A file that cannot be read fails only that record ' +
      '(MODEL_INPUT_MISSING); one outside the base directory, not a regular file (a directory, FIFO or device), ' +
      'larger than `input.file.max.bytes` or slower than `input.file.read.timeout.ms` too (MODEL_INPUT_FILE_REFUSED).',
    validate: (value) => {
      const bad = asList(value).filter((path) => !FIELD_PATH.test(path));
      return bad.length > 0
        ? `${bad.map((b) => `"${b}"`).join(', ')} not a field path like "image.path"`
        : undefined;
    },
  },
  {
    name: 'input.file.base.dir',
    type: 'string',
    default: '',
    importance: 'low',
    group: INPUT,
    displayName: 'File base directory',
    filePath: 'read',
    documentation:
      "The directory the files named by `input.file.fields` must be in; required with `input.file.fields`; must lie inside the worker's `allowed.paths`. A " +
      'relative path in a record resolves against it; a path that leads outside it (`..`, an absolute path ' +
      'elsewhere, a symlink whose target is elsewhere) fails the record (MODEL_INPUT_FILE_REFUSED). The task ' +
      'fails at start when it is not an existing directory.',
  },
  {
    name: 'input.file.max.bytes',
    type: 'int',
    default: 16 * MiB,
    min: 1,
    importance: 'low',
    group: INPUT,
    displayName: 'Max file size',
    documentation:
      'Largest file (bytes) a record may name with `input.file.fields`: its size is checked before reading and ' +
      'no more than this is read, so a larger file (or one that grows while read) fails only its record. At most ' +
      '`tfserving.max.send.message.bytes`.',
  },
  {
    name: 'input.file.read.timeout.ms',
    type: 'int',
    default: 5000,
    min: 1,
    importance: 'low',
    group: INPUT,
    displayName: 'File read timeout',
    documentation:
      'How long (ms) reading one file named by `input.file.fields` may take, waiting for a read slot included; a ' +
      'slower read (a hung network file system) fails only its record.',
  },
  {
    name: 'input.file.max.concurrent.reads',
    type: 'int',
    default: 2,
    min: 1,
    max: 64,
    importance: 'low',
    group: INPUT,
    displayName: 'Max concurrent file reads',
    documentation:
      'Most files a task reads at once for `input.file.fields` (files are read only when the rate limiter has room, ' +
      'so a slow model also slows reading). A read that times out keeps its slot until the file system answers: ' +
      'keep this below the libuv thread pool size (`UV_THREADPOOL_SIZE`, 4 by default) so stuck reads cannot ' +
      'starve the worker of threads.',
  },
  // ----------------------------------------------------------------------------- outputs
  {
    name: 'output.fields',
    type: 'list',
    default: [],
    importance: 'medium',
    group: OUTPUT,
    displayName: 'Output fields',
    documentation:
      'Output tensors to write, as `tensor` or `tensor=fieldName` entries; only these are requested from the model ' +
      '(`output_filter`). Empty: every output of the signature, each in a field named after the tensor (characters ' +
      'Avro does not allow become `_`). A tensor with one value per row becomes a primitive field, one with more ' +
      'dimensions an array. New fields are nullable with default null, so the output schema stays compatible.',
    validate: (value) => joinProblems(outputFieldProblems(asList(value))),
  },
  {
    name: 'output.metadata.fields',
    type: 'list',
    default: [],
    importance: 'low',
    group: OUTPUT,
    displayName: 'Metadata fields',
    documentation:
      'Scoring metadata to add to each record, as `kind` or `kind=fieldName` entries: `model.name` (default field ' +
      '`model_name`), `model.version` (`model_version`, the version that answered), `model.signature` ' +
      '(`model_signature`), `scored.at` (`scored_at`, epoch ms, timestamp-millis). Empty: none.',
    validate: (value) => joinProblems(metadataFieldProblems(asList(value))),
  },
  // ---------------------------------------------------------------------------- batching
  {
    name: 'batch.max.records',
    type: 'int',
    default: 128,
    min: 1,
    max: 1_000_000,
    importance: 'medium',
    group: BATCHING,
    displayName: 'Max records per request',
    documentation:
      'Most rows in one PredictRequest. Rows from concurrent partitions are packed together; a request refused ' +
      'as a whole (INVALID_ARGUMENT) is split in halves until the bad rows are isolated.',
  },
  {
    name: 'batch.max.bytes',
    type: 'int',
    default: 4 * MiB,
    min: 1,
    importance: 'low',
    group: BATCHING,
    displayName: 'Max bytes per request',
    documentation:
      'Estimated request size (bytes of the input values) at which a batch is sent without waiting for more rows. ' +
      'A single larger row is still sent, alone. Must not exceed `tfserving.max.send.message.bytes`.',
  },
  {
    name: 'batch.max.wait.ms',
    type: 'int',
    default: 5,
    min: 0,
    importance: 'medium',
    group: BATCHING,
    displayName: 'Max batching wait',
    documentation:
      'How long (ms) a row may wait for more rows to fill its batch; 0 sends what is there at once. A full batch is ' +
      'sent immediately.',
  },
  // ------------------------------------------------- adaptive concurrency (adaptive-limit.ts)
  {
    name: 'max.in.flight.requests',
    type: 'string',
    default: '4',
    validate: (value) => inFlightProblem(String(value)),
    importance: 'medium',
    group: BATCHING,
    displayName: 'Max in-flight requests',
    dependents: ['max.in.flight.requests.min', 'max.in.flight.requests.max'],
    documentation:
      'Most Predict requests a task has outstanding at once (p-queue concurrency): a whole number from 1 to ' +
      `${MAX_IN_FLIGHT}, or \`auto\`. With \`auto\` the limit adapts to the model server (AIMD): it grows by about one ` +
      'request per round trip while the current limit is in use and answers are fast, and shrinks by 10% on an ' +
      'overload answer (UNAVAILABLE, RESOURCE_EXHAUSTED), a DEADLINE_EXCEEDED or an answer slower than half of ' +
      '`tfserving.deadline.ms`, within `max.in.flight.requests.min` and `.max`. An overload answer to the k-th ' +
      'request in flight also caps the limit at k - 1, raised by 1 after 5 s without overload (the step doubling ' +
      'while no overload follows), so the server is rarely refused twice. It starts at 4 and is shared by the ' +
      "worker's tasks that call the same target and model: each task gets an equal part of it (at least 1).",
  },
  {
    name: 'max.in.flight.requests.min',
    type: 'int',
    default: 1,
    min: 1,
    max: MAX_IN_FLIGHT,
    importance: 'low',
    group: BATCHING,
    displayName: 'Min adaptive in-flight limit',
    documentation:
      'Lowest limit `max.in.flight.requests=auto` may shrink to (ignored with a fixed number). 1 keeps one ' +
      'request probing an overloaded server; the circuit breaker, not the limit, stops calls to a failing one.',
  },
  {
    name: 'max.in.flight.requests.max',
    type: 'int',
    default: 64,
    min: 1,
    max: MAX_IN_FLIGHT,
    importance: 'low',
    group: BATCHING,
    displayName: 'Max adaptive in-flight limit',
    documentation:
      'Highest limit `max.in.flight.requests=auto` may grow to (ignored with a fixed number), for the target ' +
      "and model over all of the worker's tasks. 64 is 16 times the fixed default, more than one model server " +
      'instance usefully runs at once, and bounds the rows in flight (64 x `batch.max.records`).',
  },
  // ---------------------------------------------------------------------------- rate limit
  {
    name: 'rate.limit.requests.per.second',
    type: 'double',
    default: 0,
    min: 0,
    importance: 'medium',
    group: RATE_LIMIT,
    displayName: 'Requests per second',
    documentation:
      'Most Predict requests a task sends in any one-second window (fractions allowed, e.g. 0.5 = one every 2 s); ' +
      '0 is unlimited. Windows carry a 50 ms margin so that network jitter never lets the server see more, which ' +
      'makes the sustained rate about 5% lower. Per task: with tasks.max > 1 the connector may send tasks.max times this.',
  },
  {
    name: 'rate.limit.queue.max.requests',
    type: 'int',
    default: 16,
    min: 1,
    importance: 'low',
    group: RATE_LIMIT,
    displayName: 'Max queued requests',
    documentation:
      'Most requests waiting for the rate limiter or a free in-flight slot. When the queue is full no new batch is ' +
      'formed and `process` waits, so backpressure reaches the consumer and memory stays flat; nothing is dropped.',
  },
  // ------------------------------------------------------------------------------- breaker
  {
    name: 'breaker.enable',
    type: 'boolean',
    default: true,
    importance: 'low',
    group: BREAKER,
    displayName: 'Circuit breaker',
    documentation: 'Wrap Predict in a circuit breaker (opossum). Only transient failures count against it.',
  },
  {
    name: 'breaker.error.threshold.percentage',
    type: 'int',
    default: 50,
    min: 1,
    max: 100,
    importance: 'medium',
    group: BREAKER,
    displayName: 'Error threshold',
    documentation:
      'Percentage of failed calls within `breaker.rolling.window.ms` above which the breaker opens. Failures are ' +
      'transient statuses (those the status policy retries); refused records and fatal statuses do not count.',
  },
  {
    name: 'breaker.volume.threshold',
    type: 'int',
    default: 5,
    min: 0,
    importance: 'medium',
    group: BREAKER,
    displayName: 'Volume threshold',
    documentation: 'Calls needed within the rolling window before the breaker may open.',
  },
  {
    name: 'breaker.reset.timeout.ms',
    type: 'long',
    default: 10000,
    min: 1,
    max: 2_147_483_647,
    importance: 'medium',
    group: BREAKER,
    displayName: 'Reset timeout',
    documentation:
      'How long (ms) the breaker stays open before letting one probe call through (half-open); a successful probe ' +
      'closes it. While open, records are redelivered after this time instead of calling the server.',
  },
  {
    name: 'breaker.rolling.window.ms',
    type: 'long',
    default: 20000,
    min: 10,
    max: 2_147_483_647,
    importance: 'low',
    group: BREAKER,
    displayName: 'Rolling window',
    documentation:
      'Window (ms, 10 buckets) over which failures are counted. Longer than the deadline times a few, so a server ' +
      'that stalls (each call failing only at its deadline) still opens the breaker.',
  },
];

const str = (values: ReadonlyMap<string, unknown>, name: string): string | undefined => {
  const v = values.get(name);
  return typeof v === 'string' && v !== '' ? v : undefined;
};

export const tfServingConfigSpec = defineConfig(KEYS, [
  {
    keys: ['tfserving.model.version', 'tfserving.model.version.label'],
    check: (values) =>
      values.get('tfserving.model.version') !== null &&
      values.get('tfserving.model.version') !== undefined &&
      str(values, 'tfserving.model.version.label') !== undefined
        ? 'both a version and a version label are set: keep one (or neither, for the latest version)'
        : undefined,
  },
  {
    keys: ['tfserving.transport', 'tfserving.target'],
    check: (values) =>
      values.get('tfserving.transport') === 'rest' &&
      !/^(?:\[[^\]]+\]|[^:/[\]]+):\d+$/.test(String(values.get('tfserving.target')))
        ? `with tfserving.transport=rest, tfserving.target must be host:port of the REST API (e.g. 127.0.0.1:8501), got "${String(values.get('tfserving.target'))}"`
        : undefined,
  },
  {
    keys: ['tfserving.tls.cert.file', 'tfserving.tls.key.file'],
    check: (values) =>
      (str(values, 'tfserving.tls.cert.file') === undefined) !==
      (str(values, 'tfserving.tls.key.file') === undefined)
        ? 'a client certificate needs its key and the other way round: set both tfserving.tls.cert.file and tfserving.tls.key.file, or neither'
        : undefined,
  },
  {
    keys: [
      'tfserving.tls.enable',
      'tfserving.tls.ca.file',
      'tfserving.tls.cert.file',
      'tfserving.tls.key.file',
      'tfserving.tls.server.name',
    ],
    check: (values) =>
      values.get('tfserving.tls.enable') !== true &&
      [
        'tfserving.tls.ca.file',
        'tfserving.tls.cert.file',
        'tfserving.tls.key.file',
        'tfserving.tls.server.name',
      ].some((k) => str(values, k) !== undefined)
        ? 'TLS files are set but tfserving.tls.enable is false: set tfserving.tls.enable=true or remove them'
        : undefined,
  },
  {
    keys: ['max.in.flight.requests.min', 'max.in.flight.requests.max'],
    check: (values) =>
      Number(values.get('max.in.flight.requests.min')) > Number(values.get('max.in.flight.requests.max'))
        ? `max.in.flight.requests.min (${String(values.get('max.in.flight.requests.min'))}) exceeds max.in.flight.requests.max (${String(values.get('max.in.flight.requests.max'))}): lower the minimum or raise the maximum`
        : undefined,
  },
  {
    keys: ['batch.max.bytes', 'tfserving.max.send.message.bytes'],
    check: (values) =>
      Number(values.get('batch.max.bytes')) > Number(values.get('tfserving.max.send.message.bytes'))
        ? 'batch.max.bytes exceeds tfserving.max.send.message.bytes, so full batches would be refused by gRPC: lower it or raise the message limit'
        : undefined,
  },
  {
    keys: ['input.file.base.dir', 'input.file.fields'],
    check: (values) =>
      asList(values.get('input.file.fields')).length > 0 && str(values, 'input.file.base.dir') === undefined
        ? 'input.file.fields is set, so input.file.base.dir is required: set it to the directory holding the files records name (paths outside it are refused)'
        : undefined,
  },
  {
    keys: ['input.file.max.bytes', 'tfserving.max.send.message.bytes'],
    check: (values) =>
      Number(values.get('input.file.max.bytes')) > Number(values.get('tfserving.max.send.message.bytes'))
        ? 'input.file.max.bytes exceeds tfserving.max.send.message.bytes, so a file of the allowed size could never be sent: lower it or raise the message limit'
        : undefined,
  },
  {
    keys: ['output.fields', 'output.metadata.fields'],
    check: (values) => {
      const outputs = parsePairs(asList(values.get('output.fields')), '', avroFieldName).pairs.map(
        (p) => p.right,
      );
      const metadata = parsePairs(
        asList(values.get('output.metadata.fields')),
        '',
        (k) => METADATA_KINDS[k as MetadataKind],
      ).pairs.map((p) => p.right);
      const clash = outputs.filter((f) => metadata.includes(f));
      return clash.length > 0
        ? `${clash.join(', ')} named both as an output field and a metadata field: rename one`
        : undefined;
    },
  },
]);

// ------------------------------------------------------------------------------ settings

export interface MetadataField {
  kind: MetadataKind;
  field: string;
}

export interface InferenceSettings {
  /** host:port for gRPC; the REST API's base URL with `tfserving.transport=rest` (clientTarget). */
  target: string;
  /** `tfserving.transport`; grpc for a spec without the key. */
  transport: Transport;
  model: ModelSpec & { signatureName: string };
  deadlineMs: number;
  startupTimeoutMs: number;
  tls: false | { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  maxSendMessageBytes: number;
  maxReceiveMessageBytes: number;
  statusPolicy: StatusPolicy;
  /** The prefix of the protocol's keys (`tfserving`, `oip`), for hints that name them. */
  keyPrefix: string;
  /** tensor alias -> field path (dotted). */
  inputMapping: Map<string, string>;
  inputFileFields: Set<string>;
  /** How files named by `inputFileFields` are read; undefined when there are none. */
  inputFile:
    { baseDir: string; maxBytes: number; readTimeoutMs: number; maxConcurrentReads: number } | undefined;
  inputNonFinitePolicy: NonFinitePolicy;
  /** tensor alias -> field name; undefined means every output under its own name. */
  outputFields: Map<string, string> | undefined;
  metadataFields: MetadataField[];
  batch: { maxRecords: number; maxBytes: number; maxWaitMs: number };
  /** A fixed limit, or `auto` with its bounds (adaptive-limit.ts). */
  maxInFlight: MaxInFlight;
  rateLimit: { requestsPerSecond: number; queueMaxRequests: number };
  breaker: {
    enabled: boolean;
    errorThresholdPercentage: number;
    volumeThreshold: number;
    resetTimeoutMs: number;
    rollingWindowMs: number;
  };
}

// ------------------------------------------------- adaptive concurrency (adaptive-limit.ts)

export type MaxInFlight = { fixed: number } | { auto: { min: number; max: number } };

function inFlightProblem(text: string): string | undefined {
  const value = text.trim();
  if (value === 'auto') return undefined;
  if (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_IN_FLIGHT) return undefined;
  return `must be a whole number from 1 to ${MAX_IN_FLIGHT}, or auto, got "${text}"`;
}

function readMaxInFlight(config: ParsedConfig): MaxInFlight {
  const value = config.getString('max.in.flight.requests').trim();
  if (value !== 'auto') return { fixed: Number(value) };
  return {
    auto: {
      min: config.getNumber('max.in.flight.requests.min'),
      max: config.getNumber('max.in.flight.requests.max'),
    },
  };
}
// ---------------------------------------------- end adaptive concurrency

/** The model TFServingInference calls: `tfserving.model.*` and `tfserving.signature.name`. */
function readTfServingModel(config: ParsedConfig): InferenceSettings['model'] {
  const version = config.getOptionalNumber('tfserving.model.version');
  const label = config.getOptionalString('tfserving.model.version.label');
  const model: InferenceSettings['model'] = {
    name: config.getString('tfserving.model.name'),
    signatureName: config.getString('tfserving.signature.name'),
  };
  if (version !== undefined) model.version = version;
  if (label !== undefined) model.versionLabel = label;
  return model;
}

/**
 * Reads a config the runtime already validated against tfServingConfigSpec, or against a spec
 * that declares the same keys under another protocol prefix (connectors/open-inference/config.ts:
 * `oip.target`, ...), with that protocol's reading of the model it calls.
 */
export function readInferenceSettings(
  config: ParsedConfig,
  prefix = 'tfserving',
  readModel: (config: ParsedConfig) => InferenceSettings['model'] = readTfServingModel,
): InferenceSettings {
  const model = readModel(config);
  const transport: Transport = config.has(`${prefix}.transport`)
    ? (config.getString(`${prefix}.transport`) as Transport)
    : 'grpc';
  const tlsFile = (key: string) => config.getOptionalString(key);
  const outputEntries = config.getList('output.fields');
  return {
    transport,
    target: clientTarget(
      transport,
      config.getString(`${prefix}.target`),
      config.getBoolean(`${prefix}.tls.enable`),
    ),
    model,
    deadlineMs: config.getNumber(`${prefix}.deadline.ms`),
    startupTimeoutMs: config.getNumber(`${prefix}.startup.timeout.ms`),
    tls: config.getBoolean(`${prefix}.tls.enable`)
      ? {
          ...(tlsFile(`${prefix}.tls.ca.file`) ? { caFile: tlsFile(`${prefix}.tls.ca.file`)! } : {}),
          ...(tlsFile(`${prefix}.tls.cert.file`) ? { certFile: tlsFile(`${prefix}.tls.cert.file`)! } : {}),
          ...(tlsFile(`${prefix}.tls.key.file`) ? { keyFile: tlsFile(`${prefix}.tls.key.file`)! } : {}),
          ...(tlsFile(`${prefix}.tls.server.name`)
            ? { serverName: tlsFile(`${prefix}.tls.server.name`)! }
            : {}),
        }
      : false,
    maxSendMessageBytes: config.getNumber(`${prefix}.max.send.message.bytes`),
    maxReceiveMessageBytes: config.getNumber(`${prefix}.max.receive.message.bytes`),
    statusPolicy: StatusPolicy.fromConfig(
      config.getList(`${prefix}.status.policy`),
      `${prefix}.status.policy`,
    ),
    keyPrefix: prefix,
    inputMapping: new Map(
      parsePairs(config.getList('input.mapping'), '').pairs.map((p) => [p.left, p.right]),
    ),
    inputFileFields: new Set(config.getList('input.file.fields')),
    inputFile:
      config.getList('input.file.fields').length === 0
        ? undefined
        : {
            baseDir: config.getString('input.file.base.dir'),
            maxBytes: config.getNumber('input.file.max.bytes'),
            readTimeoutMs: config.getNumber('input.file.read.timeout.ms'),
            maxConcurrentReads: config.getNumber('input.file.max.concurrent.reads'),
          },
    inputNonFinitePolicy: config.getString('input.nonfinite.policy') as NonFinitePolicy,
    outputFields:
      outputEntries.length === 0
        ? undefined
        : new Map(parsePairs(outputEntries, '', avroFieldName).pairs.map((p) => [p.left, p.right])),
    metadataFields: parsePairs(
      config.getList('output.metadata.fields'),
      '',
      (k) => METADATA_KINDS[k as MetadataKind],
    )
      .pairs.filter((p) => p.left in METADATA_KINDS)
      .map((p) => ({ kind: p.left as MetadataKind, field: p.right })),
    batch: {
      maxRecords: config.getNumber('batch.max.records'),
      maxBytes: config.getNumber('batch.max.bytes'),
      maxWaitMs: config.getNumber('batch.max.wait.ms'),
    },
    maxInFlight: readMaxInFlight(config),
    rateLimit: {
      requestsPerSecond: config.getNumber('rate.limit.requests.per.second'),
      queueMaxRequests: config.getNumber('rate.limit.queue.max.requests'),
    },
    breaker: {
      enabled: config.getBoolean('breaker.enable'),
      errorThresholdPercentage: config.getNumber('breaker.error.threshold.percentage'),
      volumeThreshold: config.getNumber('breaker.volume.threshold'),
      resetTimeoutMs: config.getNumber('breaker.reset.timeout.ms'),
      rollingWindowMs: config.getNumber('breaker.rolling.window.ms'),
    },
  };
}
