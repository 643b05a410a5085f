// UTF-8 JSON, like Kafka Connect's JsonConverter. With `schemas.enable=true` records use Kafka
// Connect's envelope `{"schema": ..., "payload": ...}`: decoding checks the envelope and returns
// the payload (the Connect schema is not interpreted), and encoding writes
// `{"schema": null, "payload": value}`, which is what Kafka Connect writes for a schemaless value.
// Limitation: the runtime has no Connect schemas, so an encoded envelope never carries one; a
// consumer that needs typed fields should read an Avro topic instead.
import { RecordError, type Stage } from '../errors.js';
import type { Converter, Decoded } from './converter.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** `JSON.rawJSON` (Node 21+) writes a bigint as a JSON number without losing digits. */
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

export class JsonConverter implements Converter {
  readonly isKey: boolean;
  private readonly stage: Stage;
  private readonly what: 'key' | 'value';
  private readonly schemasEnable: boolean;

  constructor(options: { isKey: boolean; schemasEnable?: boolean }) {
    this.isKey = options.isKey;
    this.what = options.isKey ? 'key' : 'value';
    this.stage = options.isKey ? 'KEY_CONVERTER' : 'VALUE_CONVERTER';
    this.schemasEnable = options.schemasEnable ?? false;
  }

  toConnect(topic: string, payload: Buffer | null): Decoded {
    if (payload === null) return { value: null };
    let parsed: unknown;
    try {
      parsed = JSON.parse(utf8.decode(payload));
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
    return { value: parsed.payload };
  }

  fromConnect(topic: string, value: unknown): Buffer | null {
    if (value === null || value === undefined) return null;
    let text: string;
    try {
      text = JSON.stringify(this.schemasEnable ? { schema: null, payload: value } : value, bigintAsNumber);
    } catch (error) {
      throw new RecordError(
        'JSON_DECODE_FAILED',
        `Cannot write the ${this.what} of a record for ${topic} as JSON: ${(error as Error).message}; make the connector output JSON-serializable values`,
        { stage: this.stage, cause: error, context: { topic } },
      );
    }
    return Buffer.from(text, 'utf8');
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
