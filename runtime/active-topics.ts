// A connector's active topics (Kafka Connect's KIP-558, `GET /connectors/{name}/topics`): the
// topics its tasks consumed records from or produced records to since it was created or its
// topics were last reset. Kept in memory, as a standalone Kafka Connect worker keeps them.
//
// The runners are not told about it: the worker hands each task a Kafka client wrapped by
// `trackingKafka`, which records a topic when a batch with records from it reaches the task, and
// when records sent to it are acknowledged. Writes to the dead-letter queue are not tracked
// (Kafka Connect does not list its DLQ topic either).
import type { Consumer, ConsumerRunConfig, Kafka, Producer, ProducerBatch, ProducerRecord } from 'kafkajs';

export class ActiveTopics {
  private readonly byConnector = new Map<string, Set<string>>();

  record(connector: string, topic: string): void {
    const topics = this.byConnector.get(connector) ?? new Set<string>();
    topics.add(topic);
    this.byConnector.set(connector, topics);
  }

  /** The connector's active topics, sorted; none for a connector that never moved a record. */
  topics(connector: string): string[] {
    return [...(this.byConnector.get(connector) ?? [])].sort();
  }

  /** Forgets the connector's topics (a reset, or the connector was deleted). */
  reset(connector: string): void {
    this.byConnector.delete(connector);
  }
}

type Sender = Pick<Producer, 'send' | 'sendBatch'>;

/**
 * `kafka` with its consumers and producers reporting each topic they move records of to `record`,
 * except the topics `ignored` says (the DLQ). Everything else passes through unchanged (the
 * wrapper forwards to the real object, so `instanceof` and private fields keep working).
 */
export function trackingKafka(
  kafka: Kafka,
  record: (topic: string) => void,
  ignored: (topic: string) => boolean = () => false,
): Kafka {
  const note = (topic: string) => {
    if (!ignored(topic)) record(topic);
  };
  const trackSends = <T extends Sender>(sender: T): T =>
    forwarding(sender, {
      send: async (request: ProducerRecord) => {
        const result = await sender.send(request);
        note(request.topic);
        return result;
      },
      sendBatch: async (batch: ProducerBatch) => {
        const result = await sender.sendBatch(batch);
        for (const { topic } of batch.topicMessages ?? []) if (topic) note(topic);
        return result;
      },
    });
  return forwarding(kafka, {
    consumer: (...args: Parameters<Kafka['consumer']>) => {
      const consumer = kafka.consumer(...args);
      return forwarding(consumer, {
        run: (config?: ConsumerRunConfig) => {
          const each = config?.eachBatch;
          const eachMessage = config?.eachMessage;
          return consumer.run({
            ...config,
            ...(each
              ? {
                  eachBatch: (payload) => {
                    if (payload.batch.messages.length > 0) note(payload.batch.topic);
                    return each(payload);
                  },
                }
              : {}),
            ...(eachMessage
              ? {
                  eachMessage: (payload) => {
                    note(payload.topic);
                    return eachMessage(payload);
                  },
                }
              : {}),
          });
        },
      } satisfies Partial<Consumer>);
    },
    producer: (...args: Parameters<Kafka['producer']>) => {
      const producer = kafka.producer(...args);
      return forwarding(trackSends(producer), {
        transaction: async () => trackSends(await producer.transaction()),
      });
    },
  });
}

/** A view of `target` whose `overrides` replace its members; every other member is the target's own. */
function forwarding<T extends object>(target: T, overrides: Record<string, unknown>): T {
  return new Proxy(target, {
    get(object, property) {
      if (typeof property === 'string' && Object.hasOwn(overrides, property)) return overrides[property];
      const value: unknown = Reflect.get(object, property, object);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(object) : value;
    },
  });
}
