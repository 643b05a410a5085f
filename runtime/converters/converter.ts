// Converters turn Kafka bytes into connector values and back, per key and per value. Decoding is
// synchronous on the hot path: `prepare` runs once per consumed batch and fetches whatever the
// batch needs (e.g. unknown Avro schema ids) so that `toConnect` never awaits. Encoding is
// synchronous too once `prepareEncode` registered the schema.
import type { Type as AvroType } from 'avsc';
import type { SchemaRef } from '../api.js';

export interface Decoded {
  value: unknown;
  schema?: SchemaRef;
}

export interface Converter {
  /** For `<topic>-key` vs `<topic>-value` subjects, and error messages. */
  readonly isKey: boolean;
  /**
   * Kafka Connect's class name of the equivalent converter, written as `__connect.errors.class.name`
   * of a record this converter could not read (as Kafka Connect names its converter there).
   */
  readonly className?: string;
  /**
   * Fetches what decoding these payloads needs. Never throws for a bad payload (that is
   * `toConnect`'s RecordError); throws RetriableError when the registry is unreachable.
   */
  prepare?(payloads: ReadonlyArray<Buffer | null>): Promise<void>;
  /** Decodes one payload; throws RecordError (stage KEY_/VALUE_CONVERTER) for bytes it cannot read. */
  toConnect(topic: string, payload: Buffer | null): Decoded;
  /**
   * Makes `fromConnect(topic, _, schema)` possible without awaiting (registers the schema under
   * `<topic>-value` / `-key` once). Throws FatalError when the registry refuses the schema.
   */
  prepareEncode?(topic: string, schema: AvroType | undefined): Promise<void>;
  /** Encodes one value; throws RecordError when the value does not fit its schema. */
  fromConnect(topic: string, value: unknown, schema?: AvroType): Buffer | null;
}

export type ConverterName = 'avro' | 'json' | 'string' | 'bytes';
