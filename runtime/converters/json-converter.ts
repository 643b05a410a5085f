// UTF-8 JSON, like Kafka Connect's JsonConverter. With `schemas.enable=true` records use Kafka
// Connect's envelope `{"schema": ..., "payload": ...}`:
// - reading, a Connect schema becomes the record's schema: the avsc Type Confluent's AvroConverter
//   would make of it (runtime/converters/connect-schema.ts), with a process-local negative id
//   (ConnectSchemaIds), and the payload becomes the value that Type describes
//   (runtime/converters/connect-values.ts). `"schema": null` gives a schemaless value.
// - writing, a value with an Avro schema is written with the Connect schema derived from it;
//   without one, with `"schema": null` (what Kafka Connect writes for a schemaless value).
// Without the envelope a value with a schema is still written the way JsonConverter writes it
// (bytes as base64, Decimal per `decimal.format`), unless the schema has no Connect equivalent.
import type { Type as AvroType } from 'avsc';
import type { SchemaRef } from '../api.js';
import { RecordError, type Stage } from '../errors.js';
import {
  ConnectSchemaError,
  DECIMAL,
  connectSchemaJson,
  isAvroType,
  parseConnectSchema,
  toAvroType,
  toConnectSchema,
  type ConnectSchema,
} from './connect-schema.js';
import {
  ConnectValueError,
  fromConnectJson,
  parseJsonLossless,
  plainJson,
  toConnectJson,
  type DecimalFormat,
} from './connect-values.js';
import type { Converter, Decoded } from './converter.js';
import { allocateLocalSchemaId } from './local-schema-ids.js';
import { parseAvroSchema } from './schema-registry.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** `JSON.rawJSON` (Node 21+) writes a bigint as a JSON number without losing digits. */
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

interface KnownSchema {
  ref: SchemaRef;
  connect: ConnectSchema;
  /** Which payload numbers a double may not hold: big int64s, or also long Decimal numbers. */
  exact: 'none' | 'int64' | 'decimal';
}

/** An integer literal of 16+ digits (perhaps beyond 2^53), not part of a fraction or exponent. */
const LONG_INTEGER = /(?<![\d.eE])\d{16,}(?![\d.eE])/;
/** A run of 16+ digits and points: a number with 16+ significant digits. */
const LONG_NUMBER = /[\d.]{16}/;

function exactNumbers(schema: ConnectSchema): KnownSchema['exact'] {
  let exact: KnownSchema['exact'] = 'none';
  const walk = (s: ConnectSchema): void => {
    if (s.name === DECIMAL) exact = 'decimal';
    else if (s.type === 'int64' && exact === 'none') exact = 'int64';
    for (const f of s.fields ?? []) walk(f.schema);
    for (const child of [s.items, s.keys, s.values]) if (child) walk(child);
  };
  walk(schema);
  return exact;
}

/**
 * The ids of schemas read from JSON envelopes: from the process's local id space
 * (runtime/converters/local-schema-ids.ts: negative, so never a registry's id, and never the id of
 * another local schema), one per distinct Connect schema, so tasks that cache per schema id
 * (TFServingInference's plans) see one id per schema. At most `maxSchemas` are kept; past that the
 * oldest is forgotten and gets a new id if it returns.
 */
export class ConnectSchemaIds {
  /** By the envelope's schema text as written (the fast path), and by its canonical form. */
  private readonly byText = new Map<string, KnownSchema>();
  private readonly byCanonical = new Map<string, KnownSchema>();

  constructor(private readonly maxSchemas = 10_000) {}

  /** The schema of an envelope: parsed, mapped to Avro and given an id once per distinct schema. Throws ConnectSchemaError. */
  schemaOf(raw: unknown): KnownSchema {
    const text = JSON.stringify(raw);
    const cached = this.byText.get(text);
    if (cached) return cached;
    const connect = parseConnectSchema(raw);
    const canonical = JSON.stringify(connectSchemaJson(connect));
    let known = this.byCanonical.get(canonical);
    if (!known) {
      let type: AvroType;
      try {
        type = toAvroType(connect);
      } catch (error) {
        throw new ConnectSchemaError(`schema has no Avro equivalent: ${(error as Error).message}`);
      }
      known = {
        ref: Object.freeze({ id: allocateLocalSchemaId(), type }),
        connect,
        exact: exactNumbers(connect),
      };
      remember(this.byCanonical, canonical, known, this.maxSchemas);
    }
    remember(this.byText, text, known, this.maxSchemas);
    return known;
  }

  get size(): number {
    return this.byCanonical.size;
  }
}

function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

/** The schema ids of every JSON converter that is not given its own. */
export const PROCESS_CONNECT_SCHEMA_IDS = new ConnectSchemaIds();

export interface JsonConverterOptions {
  isKey: boolean;
  /** Kafka Connect's `{"schema", "payload"}` envelope. Default false. */
  schemasEnable?: boolean;
  /** How Decimals are written: base64 of the unscaled value (Connect's default) or a JSON number. */
  decimalFormat?: DecimalFormat;
  /** Where envelope schemas get their ids; default PROCESS_CONNECT_SCHEMA_IDS. */
  schemaIds?: ConnectSchemaIds;
}

/** What writing needs per Avro type: its Connect schema and that schema's JSON text, or why there is none. */
type Writable = { connect: ConnectSchema; schemaText: string } | ConnectSchemaError;

export class JsonConverter implements Converter {
  readonly isKey: boolean;
  readonly className = 'org.apache.kafka.connect.json.JsonConverter';
  private readonly stage: Stage;
  private readonly what: 'key' | 'value';
  private readonly schemasEnable: boolean;
  private readonly decimalFormat: DecimalFormat;
  private readonly schemaIds: ConnectSchemaIds;
  private readonly writable = new WeakMap<AvroType, Writable>();

  constructor(options: JsonConverterOptions) {
    this.isKey = options.isKey;
    this.what = options.isKey ? 'key' : 'value';
    this.stage = options.isKey ? 'KEY_CONVERTER' : 'VALUE_CONVERTER';
    this.schemasEnable = options.schemasEnable ?? false;
    this.decimalFormat = options.decimalFormat ?? 'BASE64';
    this.schemaIds = options.schemaIds ?? PROCESS_CONNECT_SCHEMA_IDS;
  }

  toConnect(topic: string, payload: Buffer | null): Decoded {
    if (payload === null) return { value: null };
    let parsed: unknown;
    let text: string;
    try {
      text = utf8.decode(payload);
      parsed = JSON.parse(text);
    } catch (error) {
      throw new RecordError(
        'JSON_DECODE_FAILED',
        `Cannot decode JSON from ${topic}: the ${this.what} (${payload.length} bytes) is not valid UTF-8 JSON (${(error as Error).message}); fix the producer, or set ${this.what}.converter to the format the topic holds (avro, string, bytes)`,
        { stage: this.stage, cause: error, context: { topic } },
      );
    }
    if (!this.schemasEnable) return { value: parsed };
    if (!isEnvelope(parsed)) {
      throw new RecordError(
        'JSON_DECODE_FAILED',
        `Cannot decode JSON from ${topic}: with ${this.what}.converter.schemas.enable=true the ${this.what} must be an object with exactly the fields "schema" and "payload"; if the topic holds plain JSON, set ${this.what}.converter.schemas.enable=false`,
        { stage: this.stage, context: { topic } },
      );
    }
    // JSON.parse rounds numbers a double cannot hold; parsing again with the numbers' source text
    // (slower) is needed only when the schema has such numbers and the text has a long one.
    if (parsed.schema === null) {
      const exact = LONG_INTEGER.test(text) ? (parseJsonLossless(text) as typeof parsed) : parsed;
      return { value: plainJson(exact.payload) };
    }
    try {
      const { ref, connect, exact } = this.schemaIds.schemaOf(parsed.schema);
      const reparse =
        (exact === 'int64' && LONG_INTEGER.test(text)) || (exact === 'decimal' && LONG_NUMBER.test(text));
      const payload = reparse ? (parseJsonLossless(text) as typeof parsed).payload : parsed.payload;
      return { value: fromConnectJson(connect, payload), schema: ref };
    } catch (error) {
      // The bytes are the record's: whatever fails in reading them (a schema too deep to walk
      // included) is a bad record, never a failure of the task.
      const reason =
        error instanceof ConnectSchemaError || error instanceof ConnectValueError
          ? error.message
          : `${(error as Error).message}`;
      throw new RecordError(
        'JSON_DECODE_FAILED',
        `Cannot decode JSON from ${topic}: the ${this.what}'s Connect envelope is not usable: ${reason}; fix the producer (Kafka Connect's JsonConverter writes schemas and payloads that agree)`,
        { stage: this.stage, cause: error, context: { topic } },
      );
    }
  }

  fromConnect(topic: string, value: unknown, schema?: AvroType): Buffer | null {
    if (value === null || value === undefined) return null;
    const writable = schema === undefined ? undefined : this.writableOf(schema);
    let text: string;
    try {
      if (writable !== undefined && !(writable instanceof ConnectSchemaError)) {
        const payload = JSON.stringify(toConnectJson(writable.connect, value, this.decimalFormat));
        text = this.schemasEnable ? `{"schema":${writable.schemaText},"payload":${payload}}` : payload;
      } else if (writable !== undefined && this.schemasEnable) {
        throw writable;
      } else {
        text = JSON.stringify(this.schemasEnable ? { schema: null, payload: value } : value, bigintAsNumber);
      }
    } catch (error) {
      throw new RecordError(
        'JSON_ENCODE_FAILED',
        `Cannot write the ${this.what} of a record for ${topic} as JSON: ${(error as Error).message}; make the connector output values that fit their schema`,
        { stage: this.stage, cause: error, context: { topic } },
      );
    }
    return Buffer.from(text, 'utf8');
  }

  private writableOf(schema: AvroType): Writable {
    let writable = this.writable.get(schema);
    if (writable === undefined) {
      try {
        const type = isAvroType(schema) ? schema : parseAvroSchema(schema as object);
        const connect = toConnectSchema(type);
        writable = { connect, schemaText: JSON.stringify(connectSchemaJson(connect)) };
      } catch (error) {
        writable =
          error instanceof ConnectSchemaError
            ? error
            : new ConnectSchemaError(`the schema is not a valid Avro schema: ${(error as Error).message}`);
      }
      this.writable.set(schema, writable);
    }
    return writable;
  }
}

function isEnvelope(value: unknown): value is { schema: unknown; payload: unknown } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 2 && Object.hasOwn(value, 'schema') && Object.hasOwn(value, 'payload');
}

function bigintAsNumber(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? rawJSON(value.toString()) : value;
}
