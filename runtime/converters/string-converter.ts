// UTF-8 text, like Kafka Connect's StringConverter. Bytes that are not valid UTF-8 decode with
// U+FFFD replacement characters (as Java's `new String(bytes, UTF_8)` does), never an error.
import { FatalError, type Stage } from '../errors.js';
import type { Converter, Decoded } from './converter.js';

export class StringConverter implements Converter {
  readonly isKey: boolean;
  readonly className = 'org.apache.kafka.connect.storage.StringConverter';
  private readonly stage: Stage;
  private readonly what: 'key' | 'value';

  constructor(options: { isKey: boolean }) {
    this.isKey = options.isKey;
    this.what = options.isKey ? 'key' : 'value';
    this.stage = options.isKey ? 'KEY_CONVERTER' : 'VALUE_CONVERTER';
  }

  toConnect(_topic: string, payload: Buffer | null): Decoded {
    return { value: payload === null ? null : payload.toString('utf8') };
  }

  /** Strings as UTF-8; numbers, booleans and bigints as their decimal text (Kafka's `toString()`). */
  fromConnect(topic: string, value: unknown): Buffer | null {
    if (value === null || value === undefined) return null;
    if (typeof value === 'string') return Buffer.from(value, 'utf8');
    if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
      return Buffer.from(String(value), 'utf8');
    }
    throw new FatalError(
      'CONFIG_INVALID',
      `The string ${this.what} converter cannot write ${describe(value)} for ${topic}; set ${this.what}.converter=json for structured values (or bytes for binary ones)`,
      { stage: this.stage, context: { topic } },
    );
  }
}

export function describe(value: unknown): string {
  if (Buffer.isBuffer(value)) return 'a Buffer';
  if (Array.isArray(value)) return 'an array';
  return `a value of type ${typeof value}`;
}
