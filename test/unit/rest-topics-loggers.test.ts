import { expect } from 'chai';
import type { InjectOptions } from 'fastify';
import type { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { ActiveTopics, trackingKafka } from '../../runtime/active-topics.js';
import { LoggerLevels } from '../../runtime/logger-levels.js';
import { createRestServer, type RestServer } from '../../runtime/rest-server.js';
import { FakeHerder } from '../helpers/fake-herder.js';

describe('REST: active topics (KIP-558), log levels (KIP-495) and plugin listing', () => {
  let herder: FakeHerder;
  let server: RestServer;

  async function call(options: InjectOptions) {
    const response = await server.app.inject(options);
    return {
      status: response.statusCode,
      body: response.body === '' ? undefined : (response.json() as unknown),
    };
  }

  beforeEach(async () => {
    herder = new FakeHerder();
    server = createRestServer({
      herder,
      metrics: new Registry(),
      logger: pino({ level: 'silent' }),
      listeners: 'http://127.0.0.1:0',
    });
    await server.app.ready();
  });

  afterEach(() => server.close());

  it('GET /connectors/{name}/topics answers the tracked topics keyed by the connector name, as Kafka Connect', async () => {
    herder.activeTopics.record('sink', 'b-topic');
    herder.activeTopics.record('sink', 'a-topic');
    expect(await call({ method: 'GET', url: '/connectors/sink/topics' })).to.deep.equal({
      status: 200,
      body: { sink: { topics: ['a-topic', 'b-topic'] } },
    });
    // Kafka Connect answers an unknown connector with no topics rather than 404.
    expect(await call({ method: 'GET', url: '/connectors/other/topics' })).to.deep.equal({
      status: 200,
      body: { other: { topics: [] } },
    });
  });

  it('PUT /connectors/{name}/topics/reset answers 202 with no body and forgets the topics', async () => {
    herder.activeTopics.record('sink', 'a-topic');
    expect(await call({ method: 'PUT', url: '/connectors/sink/topics/reset' })).to.deep.equal({
      status: 202,
      body: undefined,
    });
    expect((await call({ method: 'GET', url: '/connectors/sink/topics' })).body).to.deep.equal({
      sink: { topics: [] },
    });
  });

  it('topic tracking switched off answers 403 with Kafka Connect messages', async () => {
    herder.topicTracking = { enable: true, allowReset: false };
    expect(await call({ method: 'PUT', url: '/connectors/sink/topics/reset' })).to.deep.equal({
      status: 403,
      body: { error_code: 403, message: 'Topic tracking reset is disabled.' },
    });
    herder.topicTracking = { enable: false, allowReset: false };
    expect(await call({ method: 'GET', url: '/connectors/sink/topics' })).to.deep.equal({
      status: 403,
      body: { error_code: 403, message: 'Topic tracking is disabled.' },
    });
  });

  it('GET /admin/loggers lists root with its level and no last_modified before a change', async () => {
    expect(await call({ method: 'GET', url: '/admin/loggers' })).to.deep.equal({
      status: 200,
      body: { root: { level: 'INFO', last_modified: null } },
    });
    expect(await call({ method: 'GET', url: '/admin/loggers/root' })).to.deep.equal({
      status: 200,
      body: { level: 'INFO', last_modified: null },
    });
    expect(await call({ method: 'GET', url: '/admin/loggers/nope' })).to.deep.equal({
      status: 404,
      body: { error_code: 404, message: 'Logger nope not found.' },
    });
  });

  it('PUT /admin/loggers/{logger} sets the namespace and the loggers below it and answers their names', async () => {
    herder.loggers.child('connectors.a', { connector: 'a' });
    herder.loggers.child('connectors.b', { connector: 'b' });
    const set = await call({
      method: 'PUT',
      url: '/admin/loggers/connectors',
      payload: { level: 'debug' },
    });
    expect(set).to.deep.equal({ status: 200, body: ['connectors', 'connectors.a', 'connectors.b'] });
    expect((await call({ method: 'GET', url: '/admin/loggers/connectors.a' })).body).to.deep.equal({
      level: 'DEBUG',
      last_modified: 1700000000000,
    });
    expect((await call({ method: 'GET', url: '/admin/loggers/root' })).body).to.deep.equal({
      level: 'INFO',
      last_modified: null,
    });
  });

  it('PUT /admin/loggers/{logger}?scope=cluster answers 204 (a standalone worker is its cluster)', async () => {
    const response = await call({
      method: 'PUT',
      url: '/admin/loggers/root?scope=cluster',
      payload: { level: 'WARN' },
    });
    expect(response).to.deep.equal({ status: 204, body: undefined });
    expect((await call({ method: 'GET', url: '/admin/loggers/root' })).body).to.have.property(
      'level',
      'WARN',
    );
  });

  it('PUT /admin/loggers/{logger} without a level or with an unknown one answers 400', async () => {
    expect(await call({ method: 'PUT', url: '/admin/loggers/root', payload: {} })).to.deep.equal({
      status: 400,
      body: { error_code: 400, message: "Desired 'level' parameter was not specified in request." },
    });
    const unknown = await call({ method: 'PUT', url: '/admin/loggers/root', payload: { level: 'LOUD' } });
    expect(unknown.status).to.equal(400);
    expect(unknown.body)
      .to.have.property('message')
      .that.matches(/Invalid log level 'LOUD'/);
  });

  it('GET /connector-plugins?connectorsOnly=false adds the other plugins; the default lists connectors only', async () => {
    herder.otherPlugins = [
      { class: 'org.apache.kafka.connect.transforms.Filter', type: 'transformation', version: '1' },
    ];
    const all = (await call({ method: 'GET', url: '/connector-plugins?connectorsOnly=false' }))
      .body as Array<{
      class: string;
    }>;
    expect(all.map((p) => p.class)).to.deep.equal([
      'FileSource',
      'FileSink',
      'org.apache.kafka.connect.transforms.Filter',
    ]);
    const connectors = (await call({ method: 'GET', url: '/connector-plugins' })).body as Array<{
      class: string;
    }>;
    expect(connectors.map((p) => p.class)).to.deep.equal(['FileSource', 'FileSink']);
  });
});

describe('LoggerLevels', () => {
  const lines: Array<Record<string, unknown>> = [];
  const root = () =>
    pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );

  it('a task logger created after its namespace was set takes that level, and root changes reach every logger', () => {
    const levels = new LoggerLevels(root(), () => 5);
    levels.setLevel('connectors.a', 'DEBUG');
    const a = levels.child('connectors.a', { connector: 'a' });
    const b = levels.child('connectors.b', { connector: 'b' });
    expect([a.level, b.level]).to.deep.equal(['debug', 'info']);
    expect(levels.setLevel('root', 'ERROR')).to.deep.equal(['connectors.a', 'connectors.b', 'root']);
    expect([a.level, b.level]).to.deep.equal(['error', 'error']);
    expect(levels.levels()).to.deep.equal({
      'connectors.a': { level: 'ERROR', last_modified: 5 },
      'connectors.b': { level: 'ERROR', last_modified: 5 },
      root: { level: 'ERROR', last_modified: 5 },
    });
  });

  it('OFF silences a connector logger', () => {
    lines.length = 0;
    const levels = new LoggerLevels(root());
    const a = levels.child('connectors.a', { connector: 'a' });
    levels.setLevel('connectors.a', 'OFF');
    a.error('not written');
    expect(lines).to.have.length(0);
  });
});

describe('trackingKafka', () => {
  /** A minimal Kafka double: a consumer that delivers given batches, a producer that acknowledges. */
  function fakeKafka(batches: Array<{ topic: string; messages: unknown[] }>) {
    const sender = { send: async () => [], sendBatch: async () => [] };
    return {
      consumer: () => ({
        connect: async () => undefined,
        run: async (config: { eachBatch: (payload: { batch: unknown }) => Promise<void> }) => {
          for (const batch of batches) await config.eachBatch({ batch });
        },
      }),
      producer: () => ({
        ...sender,
        transaction: async () => ({ ...sender, commit: async () => undefined }),
      }),
    } as unknown as Kafka;
  }

  it('records topics of consumed batches with records and of acknowledged sends, not the ignored DLQ', async () => {
    const topics = new ActiveTopics();
    const kafka = trackingKafka(
      fakeKafka([
        { topic: 'in', messages: [{}] },
        { topic: 'empty', messages: [] },
      ]),
      (topic) => topics.record('c', topic),
      (topic) => topic === 'dlq',
    );
    const consumer = kafka.consumer({ groupId: 'g' });
    await consumer.connect();
    await consumer.run({ eachBatch: async () => undefined });
    const producer = kafka.producer();
    await producer.send({ topic: 'out', messages: [] });
    await producer.sendBatch({ topicMessages: [{ topic: 'dlq', messages: [] }] });
    const transaction = await producer.transaction();
    await transaction.sendBatch({ topicMessages: [{ topic: 'out2', messages: [] }] });
    expect(topics.topics('c')).to.deep.equal(['in', 'out', 'out2']);
    topics.reset('c');
    expect(topics.topics('c')).to.deep.equal([]);
  });
});
