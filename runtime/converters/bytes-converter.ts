// Bytes passed through unchanged, like Kafka Connect's ByteArrayConverter.
import { FatalError, type Stage } from '../errors.js';
import type { Converter, Decoded } from './converter.js';
import { describe } from './string-converter.js';

export class BytesConverter implements Converter {
  readonly isKey: boolean;
  readonly className = 'org.apache.kafka.connect.converters.ByteArrayConverter';
  private readonly stage: Stage;
  private readonly what: 'key' | 'value';

  constructor(options: { isKey: boolean }) {
    this.isKey = options.isKey;
    this.what = options.isKey ? 'key' : 'value';
    this.stage = options.isKey ? 'KEY_CONVERTER' : 'VALUE_CONVERTER';
  }

  toConnect(_topic: string, payload: Buffer | null): Decoded {
    return { value: payload };
  }

  /** A Buffer as is; any other Uint8Array as a Buffer over the same memory (no copy). */
  fromConnect(topic: string, value: unknown): Buffer | null {
    if (value === null || value === undefined) return null;
    if (Buffer.isBuffer(value)) return value;
    if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    throw new FatalError(
      'CONFIG_INVALID',
      `The bytes ${this.what} converter writes Buffers or Uint8Arrays only, and got ${describe(value)} for ${topic}; set ${this.what}.converter to string or json for other values`,
      { stage: this.stage, context: { topic } },
    );
  }
}
