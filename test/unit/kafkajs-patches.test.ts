import { expect } from 'chai';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

// patches/kafkajs+2.2.4.patch (applied by `npm ci` through patch-package) replaces two hot
// kafkajs producer functions; these tests pin that it is applied and that kafkajs still
// behaves as before.
const require = createRequire(import.meta.url);

type Partitioner = (args: { message: { partition: number } }) => number;
const groupMessagesPerPartition = require('kafkajs/src/producer/groupMessagesPerPartition') as (args: {
  topic: string;
  partitionMetadata: unknown[];
  messages: Array<{ partition: number; seq: number }>;
  partitioner: Partitioner;
}) => Record<string, Array<{ seq: number }>>;
interface KafkaEncoder {
  writeVarInt(value: number): KafkaEncoder;
  writeUVarInt(value: number): KafkaEncoder;
  writeVarLong(value: unknown): KafkaEncoder;
  writeBytes(value: Buffer): KafkaEncoder;
  buffer: Buffer;
}
const Encoder = require('kafkajs/src/protocol/encoder') as { new (initialSize?: number): KafkaEncoder };
const Decoder = require('kafkajs/src/protocol/decoder') as {
  new (buffer: Buffer): { readVarInt(): number; readVarLong(): { toString(): string }; readBytes(): Buffer };
};
const Long = require('kafkajs/src/utils/long') as { fromNumber(value: number): unknown };
const crc32C = require('kafkajs/src/protocol/recordBatch/crc32C') as (buffer: Buffer) => number;
const crc32CJavaScript = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C') as (
  buffer: Buffer,
) => number;

describe('kafkajs patches', () => {
  it('is applied (npm ci runs patch-package as postinstall)', () => {
    for (const file of [
      'src/producer/groupMessagesPerPartition.js',
      'src/protocol/recordBatch/crc32C/index.js',
    ]) {
      const source = readFileSync(require.resolve(`kafkajs/${file}`), 'utf8');
      expect(source, `${file}: run "npx patch-package" to apply patches/`).to.contain(
        'Patched by infer-connect',
      );
    }
  });

  it('groups messages by partition, in their order, in one pass', () => {
    const messages = Array.from({ length: 10_000 }, (_, seq) => ({ partition: (seq * 7) % 3, seq }));
    const grouped = groupMessagesPerPartition({
      topic: 't',
      partitionMetadata: [{}, {}, {}],
      messages,
      partitioner: ({ message }) => message.partition,
    });
    expect(Object.keys(grouped).sort()).to.deep.equal(['0', '1', '2']);
    for (const [partition, list] of Object.entries(grouped)) {
      const expected = messages.filter((m) => m.partition === Number(partition)).map((m) => m.seq);
      expect(list.map((m) => m.seq)).to.deep.equal(expected);
    }
    expect(
      groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 }),
    ).to.deep.equal({});
  });

  it('computes CRC-32C as the JavaScript table does, unsigned', () => {
    // The check value of CRC-32C (Castagnoli) for "123456789".
    expect(crc32C(Buffer.from('123456789'))).to.equal(0xe3069283);
    expect(crc32C(Buffer.alloc(0))).to.equal(0);
    for (const size of [1, 7, 64, 1000, 1 << 20]) {
      const buffer = randomBytes(size);
      expect(crc32C(buffer), `size ${size}`).to.equal(crc32CJavaScript(buffer) >>> 0);
    }
  });

  it('writes varints in place, byte for byte as the Long path and readable by the decoder', () => {
    const values = [0, 1, -1, 63, 64, -64, -65, 127, 128, 300, 2 ** 20, -(2 ** 20), 2 ** 31 - 1, -(2 ** 31)];
    for (const value of values) {
      const fast = new Encoder().writeVarLong(value).buffer;
      expect(fast.toString('hex'), `varlong ${value}`).to.equal(
        new Encoder().writeVarLong(Long.fromNumber(value)).buffer.toString('hex'),
      );
      expect(new Decoder(fast).readVarLong().toString()).to.equal(String(value));
      expect(new Decoder(new Encoder().writeVarInt(value).buffer).readVarInt(), `varint ${value}`).to.equal(
        value,
      );
    }
    expect(new Encoder().writeUVarInt(2 ** 32 - 1).buffer.toString('hex')).to.equal('ffffffff0f');
    // Growing past the initial buffer keeps every byte written before (no zero-filled gaps read).
    const payload = randomBytes(3000);
    const grown = new Encoder(1).writeVarInt(-5).writeBytes(payload).writeUVarInt(300);
    const decoder = new Decoder(grown.buffer);
    expect(decoder.readVarInt()).to.equal(-5);
    expect(decoder.readBytes().equals(payload)).to.equal(true);
  });

  // kafkajs-stock is kafkajs 2.2.4 as published (patches/ does not touch it): the reference.
  type RecordDecoder = (decoder: unknown, context: Record<string, unknown>) => Record<string, unknown>;
  const load = (pkg: 'kafkajs' | 'kafkajs-stock') => ({
    Encoder: require(`${pkg}/src/protocol/encoder`) as { new (): KafkaEncoder },
    Decoder: require(`${pkg}/src/protocol/decoder`) as {
      new (buffer: Buffer): { readVarIntBytes(): Buffer };
    },
    Record: require(`${pkg}/src/protocol/recordBatch/record/v0`) as (
      record: Record<string, unknown>,
    ) => KafkaEncoder,
    decodeRecord: require(`${pkg}/src/protocol/recordBatch/record/v0/decoder`) as RecordDecoder,
    Batch: require(`${pkg}/src/consumer/batch`) as {
      new (
        topic: string,
        fetchedOffset: string,
        data: Record<string, unknown>,
      ): { messages: Array<{ offset: string }> };
    },
  });
  const patched = load('kafkajs');
  const stock = load('kafkajs-stock');

  it('decodes record offsets and timestamps as kafkajs as published does, safe integers or not', () => {
    const firstOffsets = ['0', '41', '9007199254740000', '9007199254740990', '9223372036854775000'];
    const firstTimestamps = ['1764160000000', '-1', '0'];
    const offsetDeltas = [0, 1, 999, 2 ** 20];
    const timestampDeltas = [0, 5, -3, 2 ** 40, -(2 ** 40), 2 ** 47, 2 ** 50, -(2 ** 52)];
    let compared = 0;
    for (const firstOffset of firstOffsets) {
      for (const firstTimestamp of firstTimestamps) {
        for (const offsetDelta of offsetDeltas) {
          for (const timestampDelta of timestampDeltas) {
            const encoded = stock.Record({
              offsetDelta,
              timestampDelta,
              key: Buffer.from('k'),
              value: Buffer.from('v'),
              headers: { h: Buffer.from('x') },
            }).buffer;
            const context = {
              firstOffset,
              firstTimestamp,
              magicByte: 2,
              timestampType: 0,
              maxTimestamp: '0',
            };
            const decode = (impl: typeof stock) =>
              impl.decodeRecord(new impl.Decoder(new impl.Decoder(encoded).readVarIntBytes()), context);
            const expected = decode(stock);
            const actual = decode(patched);
            expect(
              actual,
              `${firstOffset} + ${offsetDelta}, ${firstTimestamp} + ${timestampDelta}`,
            ).to.deep.equal(expected);
            compared++;
          }
        }
      }
    }
    expect(compared).to.equal(480);
  });

  it('keeps the messages at or after the fetched offset as kafkajs as published does', () => {
    for (const [fetched, offsets] of [
      ['5', ['3', '4', '5', '6', '100']],
      ['9007199254740993', ['9007199254740992', '9007199254740993', '9007199254740994']],
      ['0', ['0', '1']],
    ] as const) {
      const data = () => ({
        partition: 0,
        highWatermark: '200',
        abortedTransactions: [],
        messages: offsets.map((offset) => ({ offset, isControlRecord: false })),
      });
      const kept = (impl: typeof stock) => new impl.Batch('t', fetched, data()).messages.map((m) => m.offset);
      expect(kept(patched), `fetched ${fetched}`).to.deep.equal(kept(stock));
    }
  });

  it('drops seeks requested in an earlier group generation when a new assignment arrives', async () => {
    // A seek queued for a partition that then moves to another member must not be applied when
    // the partition comes back: it would rewind the group below offsets committed meanwhile.
    const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup') as new (options: object) => {
      seek(seek: { topic: string; partition: number; offset: string }): void;
      hasSeekOffset(tp: { topic: string; partition: number }): boolean;
      generatePartitionsPerSubscribedTopic(): Map<string, number[]>;
    } & Record<symbol, () => Promise<void>>;
    const { MemberAssignment } = require('kafkajs/src/consumer/assignerProtocol') as {
      MemberAssignment: {
        encode(a: { version: number; assignment: Record<string, number[]>; userData: Buffer }): Buffer;
      };
    };
    const quiet = { debug() {}, info() {}, warn() {}, error() {}, namespace: () => quiet };
    const group = new ConsumerGroup({
      retry: { retries: 0 },
      cluster: {
        refreshMetadata: async () => {},
        findTopicPartitionMetadata: () => [],
        committedOffsets: () => ({}),
      },
      groupId: 'g',
      topics: ['t'],
      topicConfigurations: [],
      logger: quiet,
      instrumentationEmitter: { emit() {} },
      assigners: [],
    });
    Object.assign(group, {
      memberId: 'm',
      leaderId: 'other',
      generatePartitionsPerSubscribedTopic: () => new Map([['t', [0, 1]]]),
      coordinator: {
        syncGroup: async () => ({
          memberAssignment: MemberAssignment.encode({
            version: 0,
            assignment: { t: [1] },
            userData: Buffer.alloc(0),
          }),
        }),
      },
    });
    const sync = Object.getOwnPropertySymbols(Object.getPrototypeOf(group)).find(
      (symbol) => symbol.description === 'private:ConsumerGroup:sync',
    )!;
    // Before the first generation a seek is kept: admin.setOffsets seeks before its consumer joins.
    group.seek({ topic: 't', partition: 1, offset: '3' });
    await group[sync]!.call(group);
    expect(group.hasSeekOffset({ topic: 't', partition: 1 })).to.equal(true);
    group.seek({ topic: 't', partition: 0, offset: '5' });
    expect(group.hasSeekOffset({ topic: 't', partition: 0 })).to.equal(true);
    await group[sync]!.call(group);
    expect(group.hasSeekOffset({ topic: 't', partition: 0 })).to.equal(false);
  });
});
