// Bounded Avro decoding. Any producer can write anything into a topic, and Avro's arrays and maps
// carry their item counts in the data: avsc 5.7 trusts them, so a ten-byte record claiming 2^31
// items loops (and allocates) for minutes before it notices the buffer ended. Installed once
// (idempotent), these readers check each block's count against what the bytes left can hold
// before reading it: an item takes at least `minimumWidth(items)` bytes, and item types that can
// take zero bytes (null, empty records) are capped at MAX_ZERO_WIDTH_ITEMS per block. A count that
// cannot fit is an error at once, which the converter turns into a bad record (dead letter).
// Strings, bytes and fixed values are already bounded by avsc: their reads stop at the buffer end.
import avro from 'avsc';
import type { Type as AvroType } from 'avsc';

/** Items per block of a type that can encode in zero bytes (e.g. `array<null>`): no real data needs more. */
export const MAX_ZERO_WIDTH_ITEMS = 1 << 16;

interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
  readString(): string;
}

type ReaderType = AvroType & { _read(tap: Tap): unknown; itemsType?: AvroType; valuesType?: AvroType };

const widths = new WeakMap<object, number>();

/** The fewest bytes any value of `type` encodes to (arrays and maps: their terminating 0). */
export function minimumWidth(type: AvroType): number {
  const cached = widths.get(type);
  if (cached !== undefined) return cached;
  widths.set(type, 0); // a recursive record refers to itself: count it as zero while computing
  const t = type as AvroType & {
    typeName: string;
    size?: number;
    fields?: Array<{ type: AvroType }>;
    underlyingType?: AvroType;
  };
  let width: number;
  switch (t.typeName) {
    case 'null':
      width = 0;
      break;
    case 'fixed':
      width = t.size ?? 0;
      break;
    case 'float':
      width = 4;
      break;
    case 'double':
      width = 8;
      break;
    case 'record':
    case 'error':
      width = (t.fields ?? []).reduce((sum, field) => sum + minimumWidth(field.type), 0);
      break;
    default:
      // boolean, int, long, enum, string, bytes, array, map, union: at least one byte.
      width = t.underlyingType ? minimumWidth(t.underlyingType) : 1;
  }
  widths.set(type, width);
  return width;
}

function readBlockCount(tap: Tap, itemWidth: number, what: string): number {
  let n = tap.readLong();
  if (n < 0) {
    n = -n;
    tap.skipLong(); // the block's byte size
  }
  const left = tap.buf.length - tap.pos;
  const fits = itemWidth > 0 ? n <= Math.floor(left / itemWidth) : n <= MAX_ZERO_WIDTH_ITEMS;
  if (!Number.isSafeInteger(n) || !fits) {
    throw new Error(
      `${what} block claims ${n} items but ${left} bytes are left` +
        (itemWidth > 0
          ? ` (each item takes at least ${itemWidth})`
          : ` (at most ${MAX_ZERO_WIDTH_ITEMS} zero-width items)`),
    );
  }
  return n;
}

let installed = false;

/** Replaces avsc's array and map readers with bounded ones, once per process. */
export function installAvroBounds(): void {
  if (installed) return;
  installed = true;
  const { ArrayType, MapType } = avro.types as unknown as Record<string, { prototype: ReaderType }>;
  ArrayType!.prototype._read = function (this: ReaderType, tap: Tap) {
    const items = this.itemsType as ReaderType;
    const width = minimumWidth(items);
    const values: unknown[] = [];
    let n: number;
    while ((n = readBlockCount(tap, width, 'array'))) {
      while (n--) values.push(items._read(tap));
    }
    return values;
  };
  MapType!.prototype._read = function (this: ReaderType, tap: Tap) {
    const values = this.valuesType as ReaderType;
    // A map entry is a string key (at least its length byte) and a value.
    const width = 1 + minimumWidth(values);
    const map: Record<string, unknown> = {};
    let n: number;
    while ((n = readBlockCount(tap, width, 'map'))) {
      while (n--) {
        const key = tap.readString();
        const value = values._read(tap);
        // A key "__proto__" is data, not the object's prototype.
        if (key === '__proto__') {
          Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
        } else map[key] = value;
      }
    }
    return map;
  };
}
