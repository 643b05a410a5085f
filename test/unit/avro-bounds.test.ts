import avro from 'avsc';
import { expect } from 'chai';
import {
  installAvroBounds,
  MAX_ZERO_WIDTH_ITEMS,
  minimumWidth,
} from '../../runtime/converters/avro-bounds.js';

installAvroBounds();

/** Avro's zig-zag varint of a long, as a writer would put it before a block of `n` items. */
function varint(n: number): number[] {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  const out: number[] = [];
  while (z >= 0x80) {
    out.push((z % 0x80) | 0x80);
    z = Math.floor(z / 0x80);
  }
  out.push(z);
  return out;
}

const bomb = (prefix: number[], count: number, tail: number[] = []) =>
  Buffer.from([...prefix, ...varint(count), ...tail]);

describe('bounded Avro decoding', () => {
  const cases: Array<{
    kind: string;
    schema: unknown;
    prefix?: number[];
    count: number;
    negative?: boolean;
  }> = [
    { kind: 'array<int> claiming 2^31 items', schema: { type: 'array', items: 'int' }, count: 2 ** 31 },
    { kind: 'array<int> claiming 2^50 items', schema: { type: 'array', items: 'int' }, count: 2 ** 50 },
    { kind: 'array<null> claiming 10^9 items', schema: { type: 'array', items: 'null' }, count: 1e9 },
    {
      kind: 'array<empty record>',
      schema: { type: 'array', items: { type: 'record', name: 'E', fields: [] } },
      count: 1e8,
    },
    {
      kind: 'array<double> with 3 bytes left per item',
      schema: { type: 'array', items: 'double' },
      count: 5,
    },
    { kind: 'map<string>', schema: { type: 'map', values: 'string' }, count: 2 ** 40 },
    { kind: 'map<null>', schema: { type: 'map', values: 'null' }, count: 2 ** 31 },
    {
      kind: 'negative block count (with a byte size)',
      schema: { type: 'array', items: 'long' },
      count: -(2 ** 31),
    },
    {
      kind: 'array inside a union',
      schema: ['null', { type: 'array', items: 'string' }],
      prefix: varint(1),
      count: 2 ** 31,
    },
    {
      kind: 'map nested in an array of records',
      schema: {
        type: 'array',
        items: { type: 'record', name: 'R', fields: [{ name: 'm', type: { type: 'map', values: 'int' } }] },
      },
      prefix: varint(1),
      count: 2 ** 33,
    },
    {
      kind: 'fixed items inside a union',
      schema: ['null', { type: 'array', items: { type: 'fixed', name: 'F', size: 16 } }],
      prefix: varint(1),
      count: 1000,
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.kind} at once, naming the claimed count`, () => {
      const type = avro.Type.forSchema(c.schema as avro.Schema);
      const buffer = bomb(c.prefix ?? [], c.count, [...varint(8), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(() => type.decode(buffer, 0)).to.throw(/block claims \d+ items but \d+ bytes are left/);
    });
  }

  it('still decodes valid arrays and maps, in blocks, as avsc did', () => {
    const type = avro.Type.forSchema({
      type: 'record',
      name: 'Row',
      fields: [
        { name: 'xs', type: { type: 'array', items: 'int' } },
        { name: 'tags', type: { type: 'map', values: 'string' } },
        { name: 'nulls', type: { type: 'array', items: 'null' } },
        { name: 'nested', type: { type: 'array', items: { type: 'array', items: 'double' } } },
      ],
    });
    const value = {
      xs: Array.from({ length: 1000 }, (_, i) => i - 500),
      tags: { a: 'x', ['__proto__']: 'kept as data', b: '' },
      nulls: Array.from({ length: MAX_ZERO_WIDTH_ITEMS }, () => null),
      nested: [[1.5, 2.5], [], [3]],
    };
    const decoded = type.fromBuffer(type.toBuffer(value)) as typeof value;
    expect(decoded.xs).to.deep.equal(value.xs);
    expect(Object.getPrototypeOf(decoded.tags)).to.equal(Object.prototype);
    expect(Object.keys(decoded.tags)).to.include('__proto__');
    expect(decoded.nulls).to.have.length(MAX_ZERO_WIDTH_ITEMS);
    expect(decoded.nested).to.deep.equal(value.nested);
    // Negative block counts (a writer that records block sizes) are read too.
    const blocked = Buffer.from([...varint(-2), ...varint(2), ...varint(1), ...varint(2), 0]);
    expect(avro.Type.forSchema({ type: 'array', items: 'int' }).fromBuffer(blocked)).to.deep.equal([1, 2]);
  });

  it('knows the fewest bytes each type takes', () => {
    const width = (schema: unknown) => minimumWidth(avro.Type.forSchema(schema as avro.Schema));
    expect(width('null')).to.equal(0);
    expect(width('double')).to.equal(8);
    expect(width({ type: 'fixed', name: 'F4', size: 4 })).to.equal(4);
    expect(
      width({
        type: 'record',
        name: 'P',
        fields: [
          { name: 'a', type: 'float' },
          { name: 'b', type: 'int' },
        ],
      }),
    ).to.equal(5);
    expect(width(['null', 'string'])).to.equal(1);
    expect(width({ type: 'int', logicalType: 'date' })).to.equal(1);
  });
});
