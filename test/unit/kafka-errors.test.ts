import { expect } from 'chai';
import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
} from 'kafkajs';
import { FatalError, outcomeOf, RecordError, RetriableError } from '../../runtime/errors.js';
import { classifyProducerError } from '../../runtime/kafka-errors.js';

/** A broker error as kafkajs raises it after its own retries gave up or bailed out. */
function brokerError(type: string, code: number, retriable: boolean): Error {
  const protocol = new KafkaJSProtocolError({
    message: `broker says ${type}`,
    type,
    code,
    retriable,
  } as never);
  return retriable
    ? new KafkaJSNumberOfRetriesExceeded(protocol as never, { retryCount: 5, retryTime: 1000 } as never)
    : Object.assign(new KafkaJSNonRetriableError(protocol as never), { cause: protocol });
}

describe('classifying a failed produce the way Kafka Connect does', () => {
  const classify = (error: unknown) => classifyProducerError(error, { topics: ['out'] });

  it('makes a record too large for its topic a bad record, not a retry', () => {
    for (const type of ['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD']) {
      const error = classify(brokerError(type, 10, false));
      expect(error, type).to.be.instanceOf(RecordError);
      expect(error.code).to.equal('KAFKA_RECORD_TOO_LARGE');
      expect(error.message).to.contain(type).and.contain('out');
    }
  });

  it('fails the task on authorization errors and requests the broker will never accept', () => {
    const denied = classify(brokerError('TOPIC_AUTHORIZATION_FAILED', 29, false));
    expect(denied).to.be.instanceOf(FatalError);
    expect(denied.code).to.equal('KAFKA_AUTHORIZATION_FAILED');
    const invalid = classify(brokerError('INVALID_TOPIC_EXCEPTION', 17, false));
    expect(outcomeOf(invalid)).to.equal('fatal');
    expect(invalid.code).to.equal('KAFKA_PRODUCE_REJECTED');
  });

  it('retries what kafkajs gave up on only when the underlying error was retriable', () => {
    expect(classify(brokerError('NOT_LEADER_FOR_PARTITION', 6, true))).to.be.instanceOf(RetriableError);
    expect(classify(new KafkaJSConnectionError('Connection timeout'))).to.be.instanceOf(RetriableError);
    expect(
      classify(new KafkaJSRequestTimeoutError('Request Produce(key: 0) timed out' as never)),
    ).to.be.instanceOf(RetriableError);
    expect(classify(new Error('something else entirely'))).to.be.instanceOf(FatalError);
  });

  it('recognises a deleted topic and a fenced transactional producer as retriable with their own codes', () => {
    expect(classify(brokerError('UNKNOWN_TOPIC_OR_PARTITION', 3, true)).code).to.equal('KAFKA_TOPIC_MISSING');
    const fenced = classify(brokerError('INVALID_PRODUCER_EPOCH', 47, false));
    expect(fenced).to.be.instanceOf(RetriableError);
    expect(fenced.code).to.equal('KAFKA_PRODUCER_FENCED');
  });

  it('makes a dead letter too large for the DLQ topic fatal: it cannot be dead-lettered', () => {
    const error = classifyProducerError(brokerError('MESSAGE_TOO_LARGE', 10, false), {
      topics: ['dlq'],
      dlq: true,
    });
    expect(error).to.be.instanceOf(FatalError);
    expect(error.code).to.equal('DLQ_RECORD_TOO_LARGE');
  });
});
