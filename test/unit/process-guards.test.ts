import { Writable } from 'node:stream';
import { expect } from 'chai';
import { KafkaJSConnectionError, KafkaJSNonRetriableError } from 'kafkajs';
import { createLogger } from '../../runtime/logger.js';
import { guardProcess, isKafkaClientError } from '../../runtime/process-guards.js';

describe('the process guards of a worker', () => {
  const logger = createLogger('fatal', new Writable({ write: (_c, _e, done) => done() }));

  it('recognise Kafka client errors, also as the cause of another error', () => {
    expect(isKafkaClientError(new KafkaJSConnectionError('Connection error: ECONNREFUSED'))).to.equal(true);
    expect(isKafkaClientError(new Error('wrapped', { cause: new KafkaJSNonRetriableError('x') }))).to.equal(
      true,
    );
    expect(isKafkaClientError(new TypeError('x is undefined'))).to.equal(false);
    expect(isKafkaClientError('a string')).to.equal(false);
  });

  it('keep the worker running after an unhandled Kafka client error and exit 1 after any other', () => {
    const exits: number[] = [];
    const undo = guardProcess(logger, (code) => exits.push(code));
    try {
      process.emit('unhandledRejection', new KafkaJSConnectionError('Connection timeout'), Promise.resolve());
      expect(exits).to.deep.equal([]);
      process.emit('unhandledRejection', new TypeError('boom'), Promise.resolve());
      expect(exits[0]).to.equal(1);
    } finally {
      undo();
    }
  });
});
