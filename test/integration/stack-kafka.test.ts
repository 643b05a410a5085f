import { expect } from 'chai';
import type { Consumer, IHeaders } from 'kafkajs';
import { testKafka, uniqueName } from '../helpers/stack.js';

describe('the local Kafka broker', function () {
  this.timeout(60_000);
  const kafka = testKafka();

  it('creates a topic, then gives back produced records with exact bytes and headers', async () => {
    const topic = uniqueName('stack-kafka');
    const admin = kafka.admin();
    await admin.connect();
    try {
      const created = await admin.createTopics({
        topics: [{ topic, numPartitions: 2 }],
        waitForLeaders: true,
      });
      expect(created).to.equal(true);
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(metadata.topics[0]?.partitions).to.have.length(2);
    } finally {
      await admin.disconnect();
    }

    const sent = Array.from({ length: 20 }, (_, i) => ({
      key: Buffer.from([i, 0xff, 0x00]),
      value: Buffer.from([0x00, 0x01, 0x02, 0xfe, i]),
      headers: { 'trace-id': Buffer.from(`t-${i}`), binary: Buffer.from([0, 1, 2]) } as IHeaders,
      partition: i % 2,
    }));
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: sent });
    await producer.disconnect();

    const consumer: Consumer = kafka.consumer({ groupId: uniqueName('stack-kafka-group') });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received: { partition: number; key: Buffer; value: Buffer; headers: IHeaders }[] = [];
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            received.push({
              partition,
              key: message.key!,
              value: message.value!,
              headers: message.headers ?? {},
            });
            if (received.length === sent.length) resolve();
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();

    for (const s of sent) {
      const r = received.find((x) => x.key.equals(s.key));
      expect(r, `record with key ${s.key.toString('hex')}`).to.not.equal(undefined);
      expect(r!.partition).to.equal(s.partition);
      expect(r!.value.equals(s.value)).to.equal(true);
      expect((r!.headers['trace-id'] as Buffer).toString()).to.equal(
        (s.headers['trace-id'] as Buffer).toString(),
      );
      expect((r!.headers.binary as Buffer).equals(Buffer.from([0, 1, 2]))).to.equal(true);
    }
    // Per-partition order is the send order.
    for (const partition of [0, 1]) {
      const keys = received.filter((r) => r.partition === partition).map((r) => r.key[0]);
      expect(keys).to.deep.equal([...keys].sort((a, b) => a! - b!));
    }
  });
});
