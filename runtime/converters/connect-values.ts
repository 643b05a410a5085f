// Values between Kafka Connect's JSON payload (JsonConverter with schemas.enable=true) and the
// runtime's Avro-shaped values (runtime/converters/connect-schema.ts says which). Both directions
// are exact: bytes are base64, int64 beyond ±2^53 is a bigint, Decimal is the unscaled
// two's-complement integer (a Buffer) written as base64 (JsonConverter's default
// `decimal.format=BASE64`) or as a JSON number (`NUMERIC`), float32 is written with the fewest
// digits that read back as the same float32 (as Java's Float.toString).
import { DECIMAL, type ConnectSchema } from './connect-schema.js';

/** `JSON.rawJSON` (Node 21+) writes a number's text verbatim. */
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

export type DecimalFormat = 'BASE64' | 'NUMERIC';

/** A JSON number whose text a double cannot hold exactly (more than 15 significant digits). */
export class LosslessNumber {
  constructor(readonly source: string) {}
}

/** A payload that does not fit its Connect schema; the message names where. */
export class ConnectValueError extends Error {}

/**
 * JSON.parse that keeps the text of numbers a double would round (Node's `JSON.parse` source
 * access): they become LosslessNumber. Several times slower than JSON.parse: callers parse with
 * it only when a text may hold such a number.
 */
export function parseJsonLossless(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    if (typeof value !== 'number' || context?.source === undefined) return value;
    const source = context.source;
    // Most doubles print back as they were written: only the others can have lost digits.
    if (source.length < 16 || String(value) === source) return value;
    const digits = source.replace(/[-+.]|[eE].*$/g, '').replace(/^0+/, '');
    return digits.length > 15 ? new LosslessNumber(source) : value;
  });
}

/** Turns the LosslessNumbers of a schemaless payload back into numbers (bigint for exact integers). */
export function plainJson(value: unknown): unknown {
  if (value instanceof LosslessNumber) return integerOrNumber(value.source);
  if (Array.isArray(value)) return value.map(plainJson);
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) (value as Record<string, unknown>)[k] = plainJson(v);
  }
  return value;
}

function integerOrNumber(source: string): number | bigint {
  if (/^-?\d+$/.test(source)) {
    const big = BigInt(source);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(big)
      : big;
  }
  return Number(source);
}

const RANGES: Record<string, [number, number]> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-(2 ** 31), 2 ** 31 - 1],
};

// ---------------------------------------------------------------------------------------------
// JSON payload -> runtime value

/** The runtime value of `json` under `schema`; throws ConnectValueError. */
export function fromConnectJson(schema: ConnectSchema, json: unknown, path = 'payload'): unknown {
  if (json === null || json === undefined) {
    if (schema.default !== undefined)
      return fromConnectJson({ ...schema, default: undefined }, schema.default, path);
    if (schema.optional) return null;
    throw new ConnectValueError(`${path} is null, but its schema (${schema.type}) is not optional`);
  }
  switch (schema.type) {
    case 'int8':
    case 'int16':
    case 'int32': {
      const n = json instanceof LosslessNumber ? Number(json.source) : json;
      const [min, max] = RANGES[schema.type]!;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
        throw mismatch(path, `an ${schema.type}`, json);
      return n;
    }
    case 'int64': {
      if (json instanceof LosslessNumber && /^-?\d+$/.test(json.source)) return integerOrNumber(json.source);
      if (typeof json !== 'number' || !Number.isInteger(json)) throw mismatch(path, 'an int64', json);
      return json;
    }
    case 'float32':
    case 'float64': {
      if (json instanceof LosslessNumber) return Number(json.source);
      if (typeof json !== 'number') throw mismatch(path, `a ${schema.type}`, json);
      return json;
    }
    case 'boolean':
      if (typeof json !== 'boolean') throw mismatch(path, 'a boolean', json);
      return json;
    case 'string':
      if (typeof json !== 'string') throw mismatch(path, 'a string', json);
      return json;
    case 'bytes':
      if (schema.name === DECIMAL) return decimalFromJson(schema, json, path);
      if (typeof json !== 'string' || !isBase64(json)) throw mismatch(path, 'base64 bytes', json);
      return Buffer.from(json, 'base64');
    case 'array':
      if (!Array.isArray(json)) throw mismatch(path, 'an array', json);
      return json.map((item, i) => fromConnectJson(schema.items!, item, `${path}[${i}]`));
    case 'map':
      if (schema.keys!.type === 'string' && !schema.keys!.optional) {
        if (!isObject(json)) throw mismatch(path, 'an object (a map with string keys)', json);
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(json))
          setOwn(out, k, fromConnectJson(schema.values!, v, `${path}.${k}`));
        return out;
      }
      if (!Array.isArray(json)) throw mismatch(path, 'an array of [key, value] pairs', json);
      return json.map((pair: unknown, i) => {
        if (!Array.isArray(pair) || pair.length !== 2)
          throw mismatch(`${path}[${i}]`, 'a [key, value] pair', pair);
        return {
          key: fromConnectJson(schema.keys!, pair[0], `${path}[${i}][0]`),
          value: fromConnectJson(schema.values!, pair[1], `${path}[${i}][1]`),
        };
      });
    case 'struct': {
      if (!isObject(json)) throw mismatch(path, 'an object (a struct)', json);
      const out: Record<string, unknown> = {};
      for (const field of schema.fields!)
        setOwn(
          out,
          field.name,
          fromConnectJson(
            field.schema,
            Object.hasOwn(json, field.name) ? json[field.name] : undefined,
            `${path}.${field.name}`,
          ),
        );
      return out;
    }
  }
}

function decimalFromJson(schema: ConnectSchema, json: unknown, path: string): Buffer {
  if (typeof json === 'string') {
    if (!isBase64(json)) throw mismatch(path, 'a Decimal (base64 of its unscaled value, or a number)', json);
    return Buffer.from(json, 'base64');
  }
  const text =
    json instanceof LosslessNumber ? json.source : typeof json === 'number' ? String(json) : undefined;
  if (text === undefined) throw mismatch(path, 'a Decimal (base64 of its unscaled value, or a number)', json);
  const scale = Number(schema.parameters!['scale']);
  const unscaled = unscaledOf(text, scale);
  if (unscaled === undefined)
    throw new ConnectValueError(
      `${path} is ${text}, which has more decimal places than the Decimal's scale ${scale}`,
    );
  return unscaledToBytes(unscaled);
}

/** The unscaled integer of a decimal text at `scale`; undefined when it needs more places. */
export function unscaledOf(text: string, scale: number): bigint | undefined {
  const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/.exec(text.trim());
  if (!match) return undefined;
  const [, sign, whole = '', fraction = '', exponent = '0'] = match;
  let digits = whole + fraction;
  let places = fraction.length - Number(exponent);
  while (places > scale && digits.endsWith('0')) {
    digits = digits.slice(0, -1);
    places--;
  }
  if (places > scale) return undefined;
  const value = BigInt(digits === '' ? '0' : digits) * 10n ** BigInt(scale - places);
  return sign === '-' ? -value : value;
}

/** Java BigInteger.toByteArray: minimal two's-complement big-endian. */
export function unscaledToBytes(value: bigint): Buffer {
  const bytes: number[] = [];
  let v = value;
  for (;;) {
    bytes.unshift(Number(v & 0xffn));
    const sign = (bytes[0]! & 0x80) !== 0;
    v >>= 8n;
    if ((v === 0n && !sign) || (v === -1n && sign)) break;
  }
  return Buffer.from(bytes);
}

export function bytesToUnscaled(bytes: Buffer): bigint {
  if (bytes.length === 0) return 0n;
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return (bytes[0]! & 0x80) !== 0 ? v - (1n << BigInt(bytes.length * 8)) : v;
}

export function decimalText(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  let digits = (negative ? -unscaled : unscaled).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return negative ? `-${digits}` : digits;
}

// ---------------------------------------------------------------------------------------------
// Runtime value -> JSON payload

/** The JSON payload of `value` under `schema` (numbers that need exact text as rawJSON); throws ConnectValueError. */
export function toConnectJson(
  schema: ConnectSchema,
  value: unknown,
  decimalFormat: DecimalFormat,
  path = 'payload',
): unknown {
  if (value === null || value === undefined) {
    if (schema.optional || schema.default !== undefined) return null;
    throw new ConnectValueError(`${path} is missing, but its schema (${schema.type}) is not optional`);
  }
  switch (schema.type) {
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
      if (typeof value === 'bigint') {
        if (schema.type !== 'int64') throw mismatch(path, `an ${schema.type}`, value);
        return rawJSON(value.toString());
      }
      if (typeof value !== 'number' || !Number.isInteger(value))
        throw mismatch(path, `an ${schema.type}`, value);
      return value;
    case 'float32':
      if (typeof value !== 'number') throw mismatch(path, 'a float32', value);
      return Number.isFinite(value) ? rawJSON(shortestFloat32(value)) : value;
    case 'float64':
      if (typeof value !== 'number') throw mismatch(path, 'a float64', value);
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw mismatch(path, 'a boolean', value);
      return value;
    case 'string':
      if (typeof value !== 'string') throw mismatch(path, 'a string', value);
      return value;
    case 'bytes': {
      const bytes = Buffer.isBuffer(value)
        ? value
        : value instanceof Uint8Array
          ? Buffer.from(value)
          : undefined;
      if (bytes === undefined) throw mismatch(path, 'bytes (a Buffer)', value);
      if (schema.name === DECIMAL && decimalFormat === 'NUMERIC')
        return rawJSON(decimalText(bytesToUnscaled(bytes), Number(schema.parameters!['scale'])));
      return bytes.toString('base64');
    }
    case 'array':
      if (!Array.isArray(value)) throw mismatch(path, 'an array', value);
      return value.map((item, i) => toConnectJson(schema.items!, item, decimalFormat, `${path}[${i}]`));
    case 'map':
      if (schema.keys!.type === 'string' && !schema.keys!.optional) {
        if (!isObject(value)) throw mismatch(path, 'an object (a map with string keys)', value);
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value))
          setOwn(out, k, toConnectJson(schema.values!, v, decimalFormat, `${path}.${k}`));
        return out;
      }
      if (!Array.isArray(value)) throw mismatch(path, 'an array of {key, value} entries', value);
      return value.map((entry: unknown, i) => {
        if (!isObject(entry)) throw mismatch(`${path}[${i}]`, 'a {key, value} entry', entry);
        return [
          toConnectJson(schema.keys!, entry['key'], decimalFormat, `${path}[${i}].key`),
          toConnectJson(schema.values!, entry['value'], decimalFormat, `${path}[${i}].value`),
        ];
      });
    case 'struct': {
      if (!isObject(value)) throw mismatch(path, 'an object (a struct)', value);
      const out: Record<string, unknown> = {};
      for (const field of schema.fields!)
        setOwn(
          out,
          field.name,
          toConnectJson(
            field.schema,
            Object.hasOwn(value, field.name) ? value[field.name] : undefined,
            decimalFormat,
            `${path}.${field.name}`,
          ),
        );
      return out;
    }
  }
}

/** The fewest significant digits that read back as the same float32 (Java's Float.toString, without its ".0"). */
export function shortestFloat32(value: number): string {
  const f = Math.fround(value);
  for (let digits = 1; digits <= 9; digits++) {
    const text = f.toPrecision(digits);
    if (Math.fround(Number(text)) === f) return String(Number(text));
  }
  return String(f);
}

/** `out[key] = value`, also for the key `__proto__` (an own property, never the prototype). */
function setOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof LosslessNumber)
  );
}

function isBase64(text: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(text) && text.length % 4 === 0;
}

function mismatch(path: string, expected: string, got: unknown): ConnectValueError {
  return new ConnectValueError(`${path} must be ${expected}, got ${describe(got)}`);
}

function describe(value: unknown): string {
  if (value instanceof LosslessNumber) return value.source;
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
