// A cached client for a Confluent-compatible schema registry (Confluent Schema Registry, or
// Apicurio Registry's `/apis/ccompat/v7`), used by the Avro converter.
//
// Schema ids are immutable, so a schema fetched by id is cached for the life of the process and
// fetched at most once, however many records and callers ask for it at the same time. A
// registration is cached per subject and schema text, so a schema registers once per subject.
//
// The HTTP calls use `fetch` rather than @kafkajs/confluent-schema-registry's client because that
// client (4.1.0) reports a refused connection as HTTP 400, drops the registry's `error_code` (so a
// wrong URL path looks like "schema not found" and would dead-letter every record), rewrites a
// subject's compatibility level on first registration and refuses to register when that level
// differs from its own default, and retries by itself (the runtime is the one layer that retries).
// Its wire format is the same; the integration tests check both read each other's records.
import { Agent, request as httpsRequest } from 'node:https';
import avro from 'avsc';
import type { Type as AvroType } from 'avsc';
import type { SchemaRef } from '../api.js';
import { FatalError, RetriableError } from '../errors.js';
import { tlsClientOptions, type TlsMaterial } from '../kafka-security.js';

/**
 * How every Avro schema in the runtime is parsed (records read, schemas registered):
 * - `wrapUnions: 'auto'`: a union is a bare value when its branches can be told apart by the
 *   JavaScript value (`["null", "string"]` reads as `null` or a string), and `{ "<branch>": value }`
 *   only when they cannot (e.g. two record branches, or `int` and `long`). This is avsc's default
 *   and what @kafkajs/confluent-schema-registry decodes, so both read records the same way.
 * - `omitRecordMethods: true`: decoded records are instances of a per-schema constructor with no
 *   methods, so they hold only their fields as own enumerable properties (JSON, spread,
 *   `Object.keys` and chai's deep equality see plain objects; only the prototype differs, which
 *   `assert.deepStrictEqual` notices). Copying each into an `Object` literal costs about a quarter
 *   of decode throughput (bench/converters.bench.ts measures it).
 * - logical types pass through: `timestamp-millis` reads as a number, `decimal` as a Buffer, `uuid`
 *   as a string (the underlying type's value), and the logical type with its attributes (`precision`,
 *   `scale`...) is kept in the schema, so a schema derived from an input schema and registered again
 *   keeps them (without this avsc drops unknown logical types when it exports a schema).
 * - `long` is a JavaScript number; a long beyond ±2^53 fails to decode (AVRO_DECODE_FAILED) rather
 *   than silently losing precision.
 */
export const AVRO_PARSE_OPTIONS = Object.freeze({
  wrapUnions: 'auto',
  omitRecordMethods: true,
  logicalTypes: passThroughLogicalTypes(),
} as const);

/** Avro's standard logical types, read and written as their underlying type's values. */
function passThroughLogicalTypes(): avro.ForSchemaOptions['logicalTypes'] {
  class PassThroughLogicalType extends avro.types.LogicalType {
    private readonly attributes: Record<string, unknown>;
    constructor(schema: avro.Schema, opts?: unknown) {
      super(schema, opts);
      const { type: _type, logicalType: _logical, ...attributes } = schema as Record<string, unknown>;
      this.attributes = attributes;
    }
    protected override _fromValue(value: unknown): unknown {
      return value;
    }
    protected override _toValue(value: unknown): unknown {
      return value;
    }
    protected override _resolve(type: AvroType): ((value: unknown) => unknown) | undefined {
      const underlying = (this as unknown as { underlyingType: AvroType }).underlyingType;
      const other = avro.Type.isType(type, 'logical')
        ? (type as unknown as { underlyingType: AvroType }).underlyingType
        : type;
      return other.typeName === underlying.typeName ? (value) => value : undefined;
    }
    protected override _export(schema: avro.Schema): void {
      Object.assign(schema as object, this.attributes);
    }
  }
  const names = [
    'decimal',
    'uuid',
    'date',
    'time-millis',
    'time-micros',
    'timestamp-millis',
    'timestamp-micros',
    'timestamp-nanos',
    'local-timestamp-millis',
    'local-timestamp-micros',
    'local-timestamp-nanos',
    'duration',
  ];
  return Object.fromEntries(names.map((name) => [name, PassThroughLogicalType]));
}

/** Parses an Avro schema (JSON text or object) with {@link AVRO_PARSE_OPTIONS}. Throws avsc's error for an invalid schema. */
export function parseAvroSchema(schema: string | object, registry: Record<string, AvroType> = {}): AvroType {
  const parsed: unknown = typeof schema === 'string' ? JSON.parse(schema) : schema;
  // forSchema mutates its options (registry, namespace), so each parse gets its own object.
  return avro.Type.forSchema(parsed as avro.Schema, { ...AVRO_PARSE_OPTIONS, registry });
}

/** The schema text a registration sends, and the key it is cached under. */
export function schemaText(schema: AvroType | object): string {
  const type = avro.Type.isType(schema) ? (schema as AvroType) : parseAvroSchema(schema);
  return JSON.stringify(type.schema({ exportAttrs: true }));
}

/** A schema id the Avro converter cannot read records with. */
export class UnreadableSchema {
  constructor(
    readonly id: number,
    /** True when the registry has no schema with this id; false when it has one that is not usable Avro. */
    readonly notFound: boolean,
    readonly reason: string,
    /** When the registry was asked (for the retry of ids it did not know). */
    readonly at: number,
  ) {}
}

/** What the converters need from a schema registry. */
export interface RegistryClient {
  /**
   * The writer schema with this id, fetched once and cached for good (ids are immutable);
   * concurrent calls for one id share one request. Resolves an {@link UnreadableSchema} when the
   * registry has no such id or the schema is not usable Avro: that is a bad record, not a failure
   * of the registry. Throws RetriableError (SCHEMA_REGISTRY_UNAVAILABLE) when the registry cannot
   * be reached or answers 5xx, FatalError when it refuses the credentials or the URL is wrong.
   */
  schemaById(id: number): Promise<SchemaRef | UnreadableSchema>;
  /** What `schemaById` resolved for this id so far, without waiting; `undefined` if not asked yet. */
  cachedSchema(id: number): SchemaRef | UnreadableSchema | undefined;
  /**
   * Registers `schema` under `subject` (or finds it there) and returns its id; cached per subject
   * and schema text, so each distinct schema registers once. Throws FatalError
   * (SCHEMA_INCOMPATIBLE) when the registry refuses the schema, RetriableError when unreachable.
   */
  register(subject: string, schema: AvroType | object): Promise<number>;
  /**
   * The id of `schema` under `subject` without registering it (`auto.register.schemas=false`);
   * cached like `register`. Throws FatalError (SCHEMA_INCOMPATIBLE) when the subject does not hold
   * it, RetriableError when unreachable.
   */
  lookup(subject: string, schema: AvroType | object): Promise<number>;
  /**
   * The latest version of `subject` (`use.latest.version`), fetched once and cached for the life of
   * the client (Confluent's default `latest.cache.ttl.sec=-1`). Throws FatalError
   * (SCHEMA_INCOMPATIBLE) when the subject has no usable Avro version, RetriableError when unreachable.
   */
  latest(subject: string): Promise<SchemaRef>;
}

/** A schema as the registry's REST API returns it. */
export interface RegistrySchema {
  schema: string;
  /** Absent or `AVRO` for Avro; `JSON` / `PROTOBUF` for the other formats. */
  schemaType?: string;
  references?: ReadonlyArray<{ name: string; subject: string; version: number }>;
}

/**
 * The registry's REST calls, uncached. {@link HttpRegistryTransport} talks HTTP;
 * {@link InMemoryRegistry} is the in-process fake for tests and benchmarks.
 */
export interface RegistryTransport {
  /** `GET /schemas/ids/{id}`; `undefined` when the registry has no such id. */
  schemaById(id: number): Promise<RegistrySchema | undefined>;
  /** `GET /subjects/{subject}/versions/{version}` (for schema references); `undefined` when missing. */
  schemaByVersion(subject: string, version: number): Promise<RegistrySchema | undefined>;
  /** `POST /subjects/{subject}/versions`: the id of `schema` under `subject`, registering it if new. */
  register(subject: string, schema: string): Promise<number>;
  /** `POST /subjects/{subject}`: the id of `schema` under `subject`; `undefined` when it is not there. */
  lookup(subject: string, schema: string): Promise<number | undefined>;
  /** `GET /subjects/{subject}/versions/latest`: its id and schema; `undefined` when the subject has none. */
  latest(subject: string): Promise<(RegistrySchema & { id: number }) | undefined>;
}

export interface CachedSchemaRegistryOptions {
  /** How long an id the registry did not know stays known as unknown before it is asked again. */
  unknownIdRetryMs?: number;
  now?: () => number;
}

/** Caches a {@link RegistryTransport}: the {@link RegistryClient} the converters use. */
export class CachedSchemaRegistry implements RegistryClient {
  private readonly transport: RegistryTransport;
  private readonly schemas = new Map<number, SchemaRef | UnreadableSchema>();
  private readonly fetching = new Map<number, Promise<SchemaRef | UnreadableSchema>>();
  private readonly registrations = new Map<string, Promise<number>>();
  private readonly unknownIdRetryMs: number;
  private readonly now: () => number;

  /** `target` is the registry's base URL (with any path prefix), HTTP options, or a transport. */
  constructor(
    target: string | HttpRegistryOptions | RegistryTransport,
    options: CachedSchemaRegistryOptions = {},
  ) {
    this.transport =
      typeof target === 'string'
        ? new HttpRegistryTransport({ url: target })
        : 'register' in target
          ? target
          : new HttpRegistryTransport(target);
    this.unknownIdRetryMs = options.unknownIdRetryMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  cachedSchema(id: number): SchemaRef | UnreadableSchema | undefined {
    return this.schemas.get(id);
  }

  schemaById(id: number): Promise<SchemaRef | UnreadableSchema> {
    const cached = this.schemas.get(id);
    if (
      cached !== undefined &&
      !(
        cached instanceof UnreadableSchema &&
        cached.notFound &&
        this.now() - cached.at >= this.unknownIdRetryMs
      )
    ) {
      return Promise.resolve(cached);
    }
    let pending = this.fetching.get(id);
    if (pending === undefined) {
      pending = this.fetch(id).finally(() => this.fetching.delete(id));
      this.fetching.set(id, pending);
    }
    return pending;
  }

  register(subject: string, schema: AvroType | object): Promise<number> {
    return this.resolveId(subject, schema, 'register');
  }

  lookup(subject: string, schema: AvroType | object): Promise<number> {
    return this.resolveId(subject, schema, 'lookup');
  }

  private readonly latestBySubject = new Map<string, Promise<SchemaRef>>();

  latest(subject: string): Promise<SchemaRef> {
    let pending = this.latestBySubject.get(subject);
    if (pending === undefined) {
      pending = this.fetchLatest(subject);
      pending.catch(() => this.latestBySubject.delete(subject));
      this.latestBySubject.set(subject, pending);
    }
    return pending;
  }

  private async fetchLatest(subject: string): Promise<SchemaRef> {
    const found = await this.transport.latest(subject);
    const refuse = (why: string) =>
      new FatalError(
        'SCHEMA_INCOMPATIBLE',
        `use.latest.version=true writes with the latest version of subject ${subject}, but ${why}; register one first (or set use.latest.version=false)`,
        { context: { subject } },
      );
    if (found === undefined) throw refuse('the subject has no version');
    let entry: SchemaRef;
    try {
      entry = freezeRef(found.id, await this.parse(found, found.id));
    } catch (error) {
      if (!(error instanceof UnusableSchemaError)) throw error;
      throw refuse(error.message);
    }
    if (this.schemas.get(found.id) === undefined) this.schemas.set(found.id, entry);
    return entry;
  }

  private resolveId(subject: string, schema: AvroType | object, how: 'register' | 'lookup'): Promise<number> {
    let text: string;
    try {
      text = schemaText(schema);
    } catch (error) {
      return Promise.reject(
        new FatalError(
          'SCHEMA_INCOMPATIBLE',
          `The schema for subject ${subject} is not a valid Avro schema (${(error as Error).message}); fix the schema the connector writes with`,
          { cause: error, context: { subject } },
        ),
      );
    }
    const key = `${how}\u0000${subject}\u0000${text}`;
    let pending = this.registrations.get(key);
    if (pending === undefined) {
      const asked =
        how === 'register'
          ? this.transport.register(subject, text)
          : this.transport.lookup(subject, text).then((id) => {
              if (id !== undefined) return id;
              throw new FatalError(
                'SCHEMA_INCOMPATIBLE',
                `The schema is not registered under subject ${subject}, and auto.register.schemas=false forbids registering it; register it first (or set auto.register.schemas=true)`,
                { context: { subject } },
              );
            });
      pending = asked.then((id) => {
        // The process will likely read what it writes: remember the schema under its id.
        const current = this.schemas.get(id);
        if (current === undefined || current instanceof UnreadableSchema) {
          this.schemas.set(id, freezeRef(id, parseAvroSchema(text)));
        }
        return id;
      });
      pending.catch(() => this.registrations.delete(key));
      this.registrations.set(key, pending);
    }
    return pending;
  }

  private async fetch(id: number): Promise<SchemaRef | UnreadableSchema> {
    const found = await this.transport.schemaById(id);
    let entry: SchemaRef | UnreadableSchema;
    if (found === undefined) {
      entry = new UnreadableSchema(id, true, `the schema registry has no schema with id ${id}`, this.now());
    } else {
      try {
        entry = freezeRef(id, await this.parse(found, id));
      } catch (error) {
        if (!(error instanceof UnusableSchemaError)) throw error;
        entry = new UnreadableSchema(id, false, error.message, this.now());
      }
    }
    this.schemas.set(id, entry);
    return entry;
  }

  /** Parses a fetched schema, with the named types of its references (depth first) in scope. */
  private async parse(found: RegistrySchema, id: number): Promise<AvroType> {
    const registry: Record<string, AvroType> = {};
    const seen = new Set<string>();
    const addReferences = async (schema: RegistrySchema): Promise<void> => {
      for (const ref of schema.references ?? []) {
        const key = `${ref.subject}\u0000${ref.version}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const referenced = await this.transport.schemaByVersion(ref.subject, ref.version);
        if (referenced === undefined) {
          throw new UnusableSchemaError(
            `schema ${id} references ${ref.name} (subject ${ref.subject}, version ${ref.version}), which the registry does not have`,
          );
        }
        await addReferences(referenced);
        parseOrExplain(referenced, id, registry);
      }
    };
    if (found.schemaType !== undefined && found.schemaType.toUpperCase() !== 'AVRO') {
      throw new UnusableSchemaError(
        `schema ${id} is a ${found.schemaType} schema, not Avro; set the converter to the format the topic holds`,
      );
    }
    await addReferences(found);
    return parseOrExplain(found, id, registry);
  }
}

class UnusableSchemaError extends Error {}

function parseOrExplain(found: RegistrySchema, id: number, registry: Record<string, AvroType>): AvroType {
  try {
    return parseAvroSchema(found.schema, registry);
  } catch (error) {
    throw new UnusableSchemaError(`schema ${id} is not a valid Avro schema: ${(error as Error).message}`);
  }
}

function freezeRef(id: number, type: AvroType): SchemaRef {
  return Object.freeze({ id, type });
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface HttpRegistryOptions {
  /** Base URL, with any path prefix (Apicurio: `http://host:8080/apis/ccompat/v7`). */
  url: string;
  /**
   * Basic auth, as `{ username, password }` or Confluent's `<user>:<password>`
   * (`schema.registry.basic.auth.user.info`). Absent: the URL's `user:password@`, if any.
   */
  auth?: { username: string; password: string } | string;
  /** For an https URL: the CAs to trust instead of the system's, a client certificate, host name checking. */
  tls?: TlsMaterial;
  /** Per request; a request that takes longer is a RetriableError. */
  requestTimeoutMs?: number;
  fetch?: typeof globalThis.fetch;
}

/** How a registry answer is handled, by HTTP status (anything not listed is fatal). */
const STATUS_OUTCOMES: Readonly<Record<number, 'retry' | 'auth' | 'incompatible' | 'invalid'>> = {
  401: 'auth',
  403: 'auth',
  408: 'retry',
  409: 'incompatible',
  422: 'invalid',
  429: 'retry',
};
/** Confluent `error_code`s for "no such schema / subject / version" (a 404 without one means a wrong URL). */
const NOT_FOUND_CODES: ReadonlySet<number> = new Set([40401, 40402, 40403]);

export class HttpRegistryTransport implements RegistryTransport {
  /** The URL for messages: never with credentials. */
  readonly url: string;
  private readonly base: string;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof globalThis.fetch;

  constructor(options: HttpRegistryOptions) {
    const url = new URL(options.url);
    let auth = options.auth;
    if (auth === undefined && url.username !== '') {
      auth = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    }
    url.username = '';
    url.password = '';
    this.base = url.href.replace(/\/+$/, '');
    this.url = this.base;
    if (typeof auth === 'string') {
      const colon = auth.indexOf(':');
      auth = { username: auth.slice(0, colon), password: auth.slice(colon + 1) };
    }
    this.authorization =
      auth === undefined
        ? undefined
        : `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? (options.tls ? tlsFetch(options.tls) : globalThis.fetch);
  }

  async schemaById(id: number): Promise<RegistrySchema | undefined> {
    return this.request<RegistrySchema>('GET', `/schemas/ids/${id}`, undefined, `schema id ${id}`);
  }

  async schemaByVersion(subject: string, version: number): Promise<RegistrySchema | undefined> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions/${version}`;
    return this.request<RegistrySchema>('GET', path, undefined, `subject ${subject} version ${version}`);
  }

  async latest(subject: string): Promise<(RegistrySchema & { id: number }) | undefined> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions/latest`;
    return this.request<RegistrySchema & { id: number }>('GET', path, undefined, `subject ${subject}`);
  }

  async lookup(subject: string, schema: string): Promise<number | undefined> {
    const path = `/subjects/${encodeURIComponent(subject)}`;
    const answer = await this.request<{ id: number }>('POST', path, { schema }, `subject ${subject}`);
    return answer === undefined ? undefined : answer.id;
  }

  async register(subject: string, schema: string): Promise<number> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions`;
    const answer = await this.request<{ id: number }>('POST', path, { schema }, `subject ${subject}`);
    if (answer === undefined || typeof answer.id !== 'number') {
      throw new FatalError(
        'CONFIG_INVALID',
        `Schema registry ${this.url} answered POST ${path} without an id; check that schema.registry.url points at a Confluent-compatible API`,
      );
    }
    return answer.id;
  }

  private async request<T>(
    method: string,
    path: string,
    body: unknown,
    what: string,
  ): Promise<T | undefined> {
    const headers: Record<string, string> = {
      accept: 'application/vnd.schemaregistry.v1+json, application/json',
    };
    if (body !== undefined) headers['content-type'] = 'application/vnd.schemaregistry.v1+json';
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    const call = `${method} ${path}`;
    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const tls = tlsFailureOf(error);
      if (tls)
        throw new FatalError(
          'SCHEMA_REGISTRY_MISCONFIGURED',
          `Schema registry ${this.url} cannot serve ${what}: ${call} failed in the TLS handshake (${tls.message} [${tls.code}]); ` +
            (tls.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
              ? 'use a host name the certificate holds in schema.registry.url, or set schema.registry.ssl.endpoint.identification.algorithm= (empty)'
              : tls.code.startsWith('ERR_SSL_')
                ? 'check that the URL is https:// on a TLS port and, with mutual TLS, schema.registry.ssl.keystore.*'
                : 'set schema.registry.ssl.truststore.location to the CA certificate (PEM) that signed the registry certificate'),
          { cause: error, context: { url: this.url } },
        );
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `no answer within ${this.timeoutMs} ms`
          : describeNetworkError(error);
      throw new RetriableError(
        'SCHEMA_REGISTRY_UNAVAILABLE',
        `Schema registry ${this.url} is unavailable: ${call} failed (${reason}); the records are retried, check that the registry runs and schema.registry.url is right`,
        { cause: error, context: { url: this.url } },
      );
    }
    if (response.ok) return JSON.parse(text) as T;

    const { errorCode, message } = parseRegistryError(text);
    const answered = `${call} answered HTTP ${response.status}${errorCode === undefined ? '' : ` (error ${errorCode})`}${message ? `: ${message}` : ''}`;
    const context = { url: this.url, status: response.status, errorCode };
    if (response.status === 404 && errorCode !== undefined && NOT_FOUND_CODES.has(errorCode))
      return undefined;
    const outcome = response.status >= 500 ? 'retry' : STATUS_OUTCOMES[response.status];
    switch (outcome) {
      case 'retry':
        throw new RetriableError(
          'SCHEMA_REGISTRY_UNAVAILABLE',
          `Schema registry ${this.url} is unavailable: ${answered}; the records are retried`,
          { context },
        );
      case 'auth':
        throw new FatalError(
          'CONFIG_INVALID',
          `Schema registry ${this.url} refused access to ${what}: ${answered}; set schema.registry.basic.auth.user.info to credentials the registry accepts`,
          { context },
        );
      case 'incompatible':
      case 'invalid':
        throw new FatalError(
          'SCHEMA_INCOMPATIBLE',
          `The schema registry refused the schema for ${what}: ${answered}; ` +
            (outcome === 'incompatible'
              ? "make the new schema compatible with the subject's existing versions (e.g. give new fields defaults) or change the subject's compatibility level"
              : 'the registry does not accept it as an Avro schema; fix the schema the connector writes with'),
          { context },
        );
      default:
        throw new FatalError(
          'CONFIG_INVALID',
          `Schema registry ${this.url} cannot serve ${what}: ${answered}; ` +
            (response.status === 404
              ? 'check schema.registry.url, including its path prefix (Apicurio Registry: .../apis/ccompat/v7)'
              : 'check schema.registry.url and the registry'),
          { context },
        );
    }
  }
}

function parseRegistryError(text: string): { errorCode: number | undefined; message: string } {
  // A proxy in front of the registry (nginx with basic auth) answers HTML: keep its title only.
  const title = /<title>([^<]{0,200})<\/title>/i.exec(text)?.[1];
  if (title !== undefined || /^\s*</.test(text))
    return { errorCode: undefined, message: title?.trim() ?? '' };
  try {
    // Confluent: {error_code, message}; Apicurio outside its Confluent API: {title, detail}.
    const parsed = JSON.parse(text) as { error_code?: unknown; message?: unknown; title?: unknown };
    const message = [parsed.message, parsed.title].find((m): m is string => typeof m === 'string') ?? '';
    return { errorCode: typeof parsed.error_code === 'number' ? parsed.error_code : undefined, message };
  } catch {
    return { errorCode: undefined, message: text.slice(0, 200) };
  }
}

/** OpenSSL/Node codes of a TLS handshake that retrying cannot fix. */
const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function tlsFailureOf(error: unknown): { code: string; message: string } | undefined {
  let current = error as { code?: unknown; message?: string; cause?: unknown } | undefined;
  for (let depth = 0; current && depth < 4; depth++) {
    const code = typeof current.code === 'string' ? current.code : undefined;
    if (code && (TLS_CODES.has(code) || code.startsWith('ERR_SSL_')))
      return { code, message: current.message ?? code };
    current = current.cause as typeof current;
  }
  return undefined;
}

/**
 * A `fetch` over node:https with `tls`'s trust and client certificate (the global fetch cannot
 * take a CA per request). It does what the transport needs: method, headers, a string body, an
 * abort signal; failures reject like fetch's (`TypeError` with the socket error as `cause`).
 */
export function tlsFetch(tls: TlsMaterial): typeof globalThis.fetch {
  const agent = new Agent({ ...tlsClientOptions(tls), keepAlive: true });
  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined;
      const fail = (cause: unknown) =>
        reject(signal?.aborted ? signal.reason : new TypeError('fetch failed', { cause }));
      const request = httpsRequest(
        String(input instanceof Request ? input.url : input),
        { method: init.method ?? 'GET', headers: init.headers as Record<string, string>, agent, signal },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', fail);
          response.on('end', () => {
            const status = response.statusCode ?? 500;
            const headers = new Headers();
            for (const [name, value] of Object.entries(response.headers))
              if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
            const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status, statusText: response.statusMessage ?? '', headers }));
          });
        },
      );
      request.on('error', fail);
      request.end(typeof init.body === 'string' ? init.body : undefined);
    });
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.message ?? cause?.code ?? (error as Error).message;
}

// ---------------------------------------------------------------------------------------------
// In memory

/**
 * An in-process registry, for tests and benchmarks (like Confluent's `MockSchemaRegistryClient`):
 * ids are global per distinct schema text, a subject lists its versions, and it counts calls.
 * Set `unavailable` to make every call fail as an unreachable registry would.
 */
export class InMemoryRegistry implements RegistryTransport {
  readonly calls = { schemaById: 0, schemaByVersion: 0, register: 0, lookup: 0, latest: 0 };
  unavailable = false;
  private readonly byId = new Map<number, RegistrySchema>();
  private readonly idsByText = new Map<string, number>();
  private readonly subjects = new Map<string, number[]>();
  private nextId = 1;

  /**
   * @param compatible decides whether `next` may follow the subject's latest version; by default
   * everything is (compatibility NONE).
   */
  constructor(
    private readonly compatible: (subject: string, latest: string, next: string) => boolean = () => true,
  ) {}

  /** Stores a schema (e.g. a non-Avro one) under a chosen id, as another producer would have. */
  put(id: number, schema: RegistrySchema): void {
    this.byId.set(id, schema);
    this.nextId = Math.max(this.nextId, id + 1);
  }

  async schemaById(id: number): Promise<RegistrySchema | undefined> {
    this.calls.schemaById++;
    await this.roundTrip();
    return this.byId.get(id);
  }

  async schemaByVersion(subject: string, version: number): Promise<RegistrySchema | undefined> {
    this.calls.schemaByVersion++;
    await this.roundTrip();
    const id = this.subjects.get(subject)?.[version - 1];
    return id === undefined ? undefined : this.byId.get(id);
  }

  async latest(subject: string): Promise<(RegistrySchema & { id: number }) | undefined> {
    this.calls.latest++;
    await this.roundTrip();
    const id = this.subjects.get(subject)?.at(-1);
    return id === undefined ? undefined : { ...this.byId.get(id)!, id };
  }

  async lookup(subject: string, schema: string): Promise<number | undefined> {
    this.calls.lookup++;
    await this.roundTrip();
    const id = this.idsByText.get(schema);
    return id !== undefined && (this.subjects.get(subject) ?? []).includes(id) ? id : undefined;
  }

  /** The subjects and their versions' ids, as the registry holds them. */
  subjectVersions(): Record<string, number[]> {
    return Object.fromEntries(this.subjects);
  }

  async register(subject: string, schema: string): Promise<number> {
    this.calls.register++;
    await this.roundTrip();
    const versions = this.subjects.get(subject) ?? [];
    const known = this.idsByText.get(schema);
    if (known !== undefined && versions.includes(known)) return known;
    const latest = versions.at(-1);
    if (latest !== undefined && !this.compatible(subject, this.byId.get(latest)!.schema, schema)) {
      throw new FatalError(
        'SCHEMA_INCOMPATIBLE',
        `The schema registry refused the schema for subject ${subject}: it is incompatible with the latest version`,
        { context: { subject } },
      );
    }
    const id = known ?? this.nextId++;
    this.idsByText.set(schema, id);
    this.byId.set(id, { schema });
    versions.push(id);
    this.subjects.set(subject, versions);
    return id;
  }

  private async roundTrip(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.unavailable) {
      throw new RetriableError(
        'SCHEMA_REGISTRY_UNAVAILABLE',
        'Schema registry in-memory is unavailable (the test made it so); the records are retried',
      );
    }
  }
}
