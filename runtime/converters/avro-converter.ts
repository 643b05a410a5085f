// Avro with Confluent framing: magic byte 0, the writer schema's registry id as a 4-byte
// big-endian int, then the Avro binary body. Subjects follow Confluent's subject name strategies:
// TopicNameStrategy (`<topic>-key` / `<topic>-value`, the default), RecordNameStrategy (the
// record's full name) or TopicRecordNameStrategy (`<topic>-<full name>`); with
// `autoRegister: false` a schema is looked up under its subject instead of registered, or, with
// `useLatestVersion`, values are written with the subject's latest version (after checking that it
// reads the value's own schema unless `latestCompatibilityStrict` is false), as Confluent's
// serializer does. Schemas come from a RegistryClient (cached per id);
// `prepare` / `prepareEncode` do all the waiting so that `toConnect` / `fromConnect` are
// synchronous on the hot path.
import avro from 'avsc';
import type { Type as AvroType } from 'avsc';
import type { SchemaRef } from '../api.js';
import { ConnectError, FatalError, RecordError, RetriableError, type Stage } from '../errors.js';
import { installAvroBounds } from './avro-bounds.js';
import type { Converter, Decoded } from './converter.js';
import { parseAvroSchema, UnreadableSchema, type RegistryClient } from './schema-registry.js';

const MAGIC_BYTE = 0;
const HEADER_BYTES = 5;
const INITIAL_SCRATCH_BYTES = 64 * 1024;

/** Confluent's `key.subject.name.strategy` / `value.subject.name.strategy`, by short class name. */
export type SubjectNameStrategy = 'TopicNameStrategy' | 'RecordNameStrategy' | 'TopicRecordNameStrategy';

interface EncodeState {
  type: AvroType;
  /** Registered id per topic (the subject is per topic). */
  ids: Map<string, number>;
  /** With useLatestVersion: per topic, the latest version's type and how values of `type` become its values. */
  latest: Map<string, { type: AvroType; resolver: avro.Resolver | undefined }>;
}

export class AvroConverter implements Converter {
  readonly isKey: boolean;
  readonly className = 'io.confluent.connect.avro.AvroConverter';
  private readonly stage: Stage;
  private readonly what: 'key' | 'value';
  /** Per schema object as the connector passes it (an avsc Type, or a schema object). */
  private readonly encoding = new WeakMap<object, EncodeState>();
  /** Records are encoded here after the header space, then copied into one exact-size Buffer. */
  private scratch = Buffer.allocUnsafeSlow(INITIAL_SCRATCH_BYTES);

  constructor(
    private readonly registry: RegistryClient,
    options: {
      isKey: boolean;
      autoRegister?: boolean;
      subjectNameStrategy?: SubjectNameStrategy;
      /** With autoRegister false: write with the subject's latest version (`use.latest.version`). */
      useLatestVersion?: boolean;
      /** With useLatestVersion: refuse a latest version that cannot read the value's schema. Default true. */
      latestCompatibilityStrict?: boolean;
    },
  ) {
    // Item counts in the data are checked against the bytes left before anything is read.
    installAvroBounds();
    this.isKey = options.isKey;
    this.what = options.isKey ? 'key' : 'value';
    this.stage = options.isKey ? 'KEY_CONVERTER' : 'VALUE_CONVERTER';
    this.autoRegister = options.autoRegister ?? true;
    this.strategy = options.subjectNameStrategy ?? 'TopicNameStrategy';
    this.useLatest = !this.autoRegister && (options.useLatestVersion ?? false);
    this.latestStrict = options.latestCompatibilityStrict ?? true;
  }

  private readonly useLatest: boolean;
  private readonly latestStrict: boolean;
  private readonly autoRegister: boolean;
  private readonly strategy: SubjectNameStrategy;

  /** Fetches the schemas of the batch that are not cached yet, each id once. */
  async prepare(payloads: ReadonlyArray<Buffer | null>): Promise<void> {
    let wanted: Set<number> | undefined;
    for (const payload of payloads) {
      if (payload === null || payload.length < HEADER_BYTES || payload[0] !== MAGIC_BYTE) continue;
      const id = payload.readInt32BE(1);
      const cached = this.registry.cachedSchema(id);
      if (cached !== undefined && !(cached instanceof UnreadableSchema)) continue;
      (wanted ??= new Set()).add(id);
    }
    if (wanted === undefined) return;
    try {
      await Promise.all(Array.from(wanted, (id) => this.registry.schemaById(id)));
    } catch (error) {
      throw withStage(error, this.stage);
    }
  }

  toConnect(topic: string, payload: Buffer | null): Decoded {
    if (payload === null) return { value: null };
    if (payload.length < HEADER_BYTES) throw this.tooShort(topic, payload.length);
    if (payload[0] !== MAGIC_BYTE) throw this.wrongMagicByte(topic, payload[0]!);
    const id = payload.readInt32BE(1);
    const schema = this.registry.cachedSchema(id);
    if (schema === undefined) {
      throw new Error(
        `Bug: the avro ${this.what} converter was asked to decode a record of ${topic} with schema id ${id} before prepare() fetched that schema; the runtime must await prepare() with the batch first`,
      );
    }
    if (schema instanceof UnreadableSchema) throw this.unreadable(topic, schema);
    let decoded: { value: unknown; offset: number };
    try {
      decoded = schema.type.decode(payload, HEADER_BYTES);
    } catch (error) {
      throw this.decodeFailed(topic, schema, (error as Error).message, error);
    }
    if (decoded.offset !== payload.length)
      throw this.badLength(topic, schema, payload.length, decoded.offset);
    return { value: decoded.value, schema };
  }

  /** Registers `schema` under `<topic>-value` (or `-key`) unless this schema object already is. */
  async prepareEncode(topic: string, schema: AvroType | undefined): Promise<void> {
    if (schema === undefined) return; // only null values can be written; fromConnect says so otherwise
    let state = this.encoding.get(schema);
    if (state?.ids.has(topic)) return;
    if (state === undefined) {
      let type: AvroType;
      try {
        type = avro.Type.isType(schema) ? schema : parseAvroSchema(schema as object);
      } catch (error) {
        throw new FatalError(
          'SCHEMA_INCOMPATIBLE',
          `The ${this.what} schema for topic ${topic} is not a valid Avro schema (${(error as Error).message}); fix the schema the connector writes with`,
          { stage: this.stage, cause: error, context: { topic } },
        );
      }
      state = { type, ids: new Map(), latest: new Map() };
    }
    let id: number;
    try {
      const subject = this.subject(topic, state.type);
      if (this.useLatest) {
        const latest = await this.registry.latest(subject);
        state.latest.set(topic, {
          type: latest.type,
          resolver: this.resolverTo(latest, state.type, subject),
        });
        id = latest.id;
      } else {
        id = await (this.autoRegister
          ? this.registry.register(subject, state.type)
          : this.registry.lookup(subject, state.type));
      }
    } catch (error) {
      throw withStage(error, this.stage);
    }
    state.ids.set(topic, id);
    this.encoding.set(schema, state);
  }

  fromConnect(topic: string, value: unknown, schema?: AvroType): Buffer | null {
    if (value === null || value === undefined) return null;
    if (schema === undefined) {
      throw new FatalError(
        'CONFIG_INVALID',
        this.isKey
          ? `The avro key converter needs a schema to write the key of a record for ${topic}, and output records carry no key schema; set key.converter to string, json or bytes (or have the connector pass rawKey)`
          : `The avro value converter needs a schema to write a value for ${topic}, but the connector gave the record no valueSchema; have the connector set valueSchema, or set value.converter to json, string or bytes`,
        { stage: this.stage, context: { topic } },
      );
    }
    const state = this.encoding.get(schema);
    const id = state?.ids.get(topic);
    if (state === undefined || id === undefined) {
      throw new Error(
        `Bug: the avro ${this.what} converter was asked to encode for ${topic} with a schema that prepareEncode(${JSON.stringify(topic)}, schema) did not register; the runtime must await prepareEncode for each distinct (topic, schema) first`,
      );
    }
    if (!this.useLatest) return this.encode(topic, state.type, id, value);
    const latest = state.latest.get(topic)!;
    let converted = value;
    if (latest.resolver !== undefined) {
      try {
        converted = latest.type.fromBuffer(state.type.toBuffer(value), latest.resolver);
      } catch (error) {
        throw this.encodeFailed(topic, state.type, id, value, error);
      }
    }
    return this.encode(topic, latest.type, id, converted);
  }

  /**
   * How values of `own` become values of the subject's latest version: undefined when they are
   * the same schema. A latest version that cannot read `own` is refused (latest.compatibility.strict)
   * or, when not strict, values are written with it as they are.
   */
  private resolverTo(latest: SchemaRef, own: AvroType, subject: string): avro.Resolver | undefined {
    if (latest.type.equals(own)) return undefined;
    try {
      return latest.type.createResolver(own);
    } catch (error) {
      if (!this.latestStrict) return undefined;
      throw new FatalError(
        'SCHEMA_INCOMPATIBLE',
        `The latest version of subject ${subject} (id ${latest.id}) cannot read the ${this.what} schema the records have (${(error as Error).message}); register a compatible version, or set latest.compatibility.strict=false`,
        { stage: this.stage, cause: error, context: { subject, schemaId: latest.id } },
      );
    }
  }

  private encode(topic: string, type: AvroType, id: number, value: unknown): Buffer {
    let end: number;
    try {
      end = type.encode(value, this.scratch, HEADER_BYTES);
      while (end < 0) {
        // avsc returns minus the bytes that did not fit.
        this.scratch = Buffer.allocUnsafeSlow(Math.max(this.scratch.length * 2, this.scratch.length - end));
        end = type.encode(value, this.scratch, HEADER_BYTES);
      }
    } catch (error) {
      throw this.encodeFailed(topic, type, id, value, error);
    }
    const framed = Buffer.allocUnsafe(end);
    framed[0] = MAGIC_BYTE;
    framed.writeInt32BE(id, 1);
    this.scratch.copy(framed, HEADER_BYTES, HEADER_BYTES, end);
    return framed;
  }

  /** The subject `type` is registered under for `topic`, per the subject name strategy. */
  private subject(topic: string, type: AvroType): string {
    if (this.strategy === 'TopicNameStrategy') return `${topic}-${this.what}`;
    if (type.typeName !== 'record' || type.name === undefined) {
      throw new FatalError(
        'SCHEMA_INCOMPATIBLE',
        `${this.what}.subject.name.strategy=${this.strategy} names subjects after records, but the ${this.what} schema for ${topic} is Avro ${describeType(type)}, not a record; use TopicNameStrategy`,
        { stage: this.stage, context: { topic } },
      );
    }
    return this.strategy === 'RecordNameStrategy' ? type.name : `${topic}-${type.name}`;
  }

  // Errors, built off the hot path.

  private tooShort(topic: string, length: number): RecordError {
    return new RecordError(
      'AVRO_MAGIC_BYTE',
      `The ${this.what} of a record from ${topic} is ${length} bytes, shorter than the 5-byte Confluent header (magic byte + schema id), so it was not written by a schema-registry Avro serializer; produce with one, or set ${this.what}.converter to the format the topic holds (json, string, bytes)`,
      { stage: this.stage, context: { topic, bytes: length } },
    );
  }

  private wrongMagicByte(topic: string, byte: number): RecordError {
    const hex = `0x${byte.toString(16).padStart(2, '0')}`;
    const looksLikeJson = byte === 0x7b || byte === 0x5b; // '{' or '['
    return new RecordError(
      'AVRO_MAGIC_BYTE',
      `Unknown magic byte ${hex} in the ${this.what} of a record from ${topic}; expected 0x00 (Confluent Avro framing). ` +
        (looksLikeJson
          ? `It starts with '${String.fromCharCode(byte)}' and looks like JSON: set ${this.what}.converter=json`
          : `Produce with a schema-registry Avro serializer, or set ${this.what}.converter to the format the topic holds (json, string, bytes)`),
      { stage: this.stage, context: { topic, byte: hex } },
    );
  }

  private unreadable(topic: string, schema: UnreadableSchema): RecordError {
    if (schema.notFound) {
      return new RecordError(
        'AVRO_UNKNOWN_SCHEMA_ID',
        `Schema id ${schema.id} is not in the schema registry (${this.what} of a record from ${topic}); the record was written against another registry or its schema was deleted: point schema.registry.url at the registry the producer uses`,
        { stage: this.stage, context: { topic, schemaId: schema.id } },
      );
    }
    return new RecordError(
      'AVRO_DECODE_FAILED',
      `Cannot decode the Avro ${this.what} of a record from ${topic} with schema id ${schema.id}: ${schema.reason}`,
      { stage: this.stage, context: { topic, schemaId: schema.id } },
    );
  }

  private decodeFailed(topic: string, schema: SchemaRef, details: string, cause?: unknown): RecordError {
    return new RecordError(
      'AVRO_DECODE_FAILED',
      `Cannot decode the Avro ${this.what} of a record from ${topic} with schema id ${schema.id} (${describeType(schema.type)}): ${details}; the producer wrote bytes that do not match the schema id it framed them with (the raw bytes are in the dead-letter record)`,
      { stage: this.stage, cause, context: { topic, schemaId: schema.id } },
    );
  }

  private badLength(topic: string, schema: SchemaRef, length: number, offset: number): RecordError {
    const body = length - HEADER_BYTES;
    return this.decodeFailed(
      topic,
      schema,
      offset < 0
        ? `the ${body}-byte body is truncated (it ends before the schema's last field)`
        : `${length - offset} bytes are left after the ${offset - HEADER_BYTES}-byte Avro body of the ${body}-byte payload`,
    );
  }

  private encodeFailed(
    topic: string,
    type: AvroType,
    id: number,
    value: unknown,
    cause: unknown,
  ): RecordError {
    const problems: string[] = [];
    let firstPath: string | undefined;
    type.isValid(value, {
      errorHook: (path: string[], bad: unknown, badType: AvroType) => {
        const at = path.length > 0 ? path.join('.') : '(the value itself)';
        firstPath ??= at;
        if (problems.length < 3)
          problems.push(`${at}: expected ${describeType(badType)}, got ${describeValue(bad)}`);
      },
    });
    const details = problems.length > 0 ? problems.join('; ') : (cause as Error).message;
    return new RecordError(
      'AVRO_ENCODE_FAILED',
      `Cannot encode a ${this.what} for ${topic} with its Avro schema ${describeType(type)} (id ${id}): ${details}; make the connector output match the schema`,
      { stage: this.stage, cause, context: { topic, schemaId: id, field: firstPath } },
    );
  }
}

/** The same error with the converter's stage (registry errors do not know which converter asked). */
function withStage(error: unknown, stage: Stage): unknown {
  if (!(error instanceof ConnectError) || error.stage !== undefined) return error;
  const options = { stage, cause: error, context: error.context };
  if (error instanceof RetriableError) {
    return new RetriableError(error.code, error.message, { ...options, retryAfterMs: error.retryAfterMs });
  }
  if (error instanceof RecordError) return new RecordError(error.code, error.message, options);
  if (error instanceof FatalError) return new FatalError(error.code, error.message, options);
  return error;
}

function describeType(type: AvroType): string {
  if (type.name !== undefined) return type.name;
  const schema = type.schema();
  if (typeof schema === 'string') return schema; // a primitive, e.g. long
  const text = JSON.stringify(schema);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (missing)';
  if (typeof value === 'bigint') return `${value}n`;
  if (Buffer.isBuffer(value)) return `a ${value.length}-byte Buffer`;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  text ??= String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
