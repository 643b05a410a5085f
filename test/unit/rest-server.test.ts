import { expect } from 'chai';
import type { InjectOptions } from 'fastify';
import { pino } from 'pino';
import { Counter, Registry } from 'prom-client';
import { createRestServer, parseListeners } from '../../runtime/rest-server.js';
import type { RestServer } from '../../runtime/rest-server.js';
import { FakeHerder } from '../helpers/fake-herder.js';

describe('REST server', () => {
  let herder: FakeHerder;
  let registry: Registry;
  let logLines: Array<Record<string, unknown>>;
  let server: RestServer;

  const fileSource = (extra: Record<string, string> = {}) => ({
    'connector.class': 'FileSource',
    file: '/tmp/in.txt',
    topic: 'lines',
    'tasks.max': '2',
    ...extra,
  });

  async function call(options: InjectOptions) {
    const { statusCode, headers, body, json } = await server.app.inject(options);
    const isJson = String(headers['content-type'] ?? '').startsWith('application/json');
    return { statusCode, headers, body, json: isJson && body !== '' ? (json() as unknown) : undefined };
  }

  async function create(name = 'files', config: Record<string, string> = fileSource()) {
    const response = await call({ method: 'POST', url: '/connectors', payload: { name, config } });
    expect(response.statusCode).to.equal(201);
  }

  function expectError(response: { statusCode: number; json: unknown }, status: number, message?: RegExp) {
    expect(response.statusCode).to.equal(status);
    const body = response.json as { error_code: number; message: string };
    expect(body).to.have.all.keys('error_code', 'message');
    expect(body.error_code).to.equal(status);
    if (message !== undefined) expect(body.message).to.match(message);
  }

  beforeEach(async () => {
    herder = new FakeHerder();
    registry = new Registry();
    logLines = [];
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    server = createRestServer({
      herder,
      metrics: registry,
      logger,
      listeners: 'http://127.0.0.1:0',
      bodyLimit: 4096,
    });
    await server.app.ready();
  });

  afterEach(() => server.close());

  describe('worker endpoints', () => {
    it('GET / answers the version, commit and Kafka cluster id', async () => {
      const response = await call({ method: 'GET', url: '/' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.equal({
        version: '0.1.0',
        commit: 'abc123',
        kafka_cluster_id: 'cluster-1',
      });
    });

    it('GET /health answers 200 when healthy and 503 while starting or unhealthy', async () => {
      const healthy = await call({ method: 'GET', url: '/health' });
      expect(healthy.statusCode).to.equal(200);
      expect(healthy.json).to.include({ status: 'healthy' }).and.to.have.property('message');

      herder.healthStatus = 'starting';
      const starting = await call({ method: 'GET', url: '/health' });
      expect(starting.statusCode).to.equal(503);
      expect(starting.json).to.include({ status: 'starting' });

      herder.healthStatus = 'unhealthy';
      expect((await call({ method: 'GET', url: '/health' })).statusCode).to.equal(503);
    });

    it('GET /metrics answers parseable Prometheus text from the given registry', async () => {
      const counter = new Counter({
        name: 'rest_test_requests_total',
        help: 'Requests seen by the test',
        labelNames: ['connector'],
        registers: [registry],
      });
      counter.inc({ connector: 'files' }, 3);

      const response = await server.app.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).to.equal(200);
      expect(response.headers['content-type']).to.equal(registry.contentType);
      const samples = parsePrometheusText(response.body);
      expect(samples.get('rest_test_requests_total{connector="files"}')).to.equal(3);
      expect(response.body).to.include('# TYPE rest_test_requests_total counter');
    });
  });

  describe('connectors', () => {
    it('POST /connectors creates a connector: 201, Location header and ConnectorInfo', async () => {
      const response = await call({
        method: 'POST',
        url: '/connectors',
        payload: { name: 'my files', config: fileSource() },
      });
      expect(response.statusCode).to.equal(201);
      expect(response.headers['location']).to.equal('/connectors/my%20files');
      expect(response.json).to.deep.equal({
        name: 'my files',
        config: { ...fileSource(), name: 'my files' },
        tasks: [
          { connector: 'my files', task: 0 },
          { connector: 'my files', task: 1 },
        ],
        type: 'source',
      });
    });

    it('POST /connectors with an existing name answers 409', async () => {
      await create('files');
      const response = await call({
        method: 'POST',
        url: '/connectors',
        payload: { name: 'files', config: fileSource() },
      });
      expectError(response, 409, /files already exists/);
    });

    it('POST /connectors rejects a missing or blank name, a missing config and a non-object body with 400', async () => {
      expectError(
        await call({ method: 'POST', url: '/connectors', payload: { config: fileSource() } }),
        400,
        /name/,
      );
      expectError(
        await call({ method: 'POST', url: '/connectors', payload: { name: '  ', config: {} } }),
        400,
        /name/,
      );
      expectError(await call({ method: 'POST', url: '/connectors', payload: { name: 'x' } }), 400, /config/);
      expectError(
        await call({ method: 'POST', url: '/connectors', payload: { name: 'x', config: [] } }),
        400,
        /config/,
      );
      expectError(await call({ method: 'POST', url: '/connectors', payload: [1, 2] }), 400, /JSON object/);
      const string = await call({
        method: 'POST',
        url: '/connectors',
        headers: { 'content-type': 'application/json' },
        payload: '"files"',
      });
      expectError(string, 400, /JSON object/);
      const empty = await call({
        method: 'POST',
        url: '/connectors',
        headers: { 'content-type': 'application/json' },
      });
      expectError(empty, 400, /got nothing/);
    });

    it('POST /connectors rejects a config.name that differs from name with 400', async () => {
      const response = await call({
        method: 'POST',
        url: '/connectors',
        payload: { name: 'files', config: fileSource({ name: 'other' }) },
      });
      expectError(response, 400, /\(other\) doesn't match connector name in the URL \(files\)/);
    });

    it('POST /connectors rejects an initial_state it cannot honour with 400', async () => {
      const response = await call({
        method: 'POST',
        url: '/connectors',
        payload: { name: 'files', config: fileSource(), initial_state: 'PAUSED' },
      });
      expectError(response, 400, /initial_state "PAUSED" is not supported/);
    });

    it('POST /connectors passes the herder’s 400 for an unknown connector.class through', async () => {
      const response = await call({
        method: 'POST',
        url: '/connectors',
        payload: { name: 'files', config: { 'connector.class': 'Nope' } },
      });
      expectError(response, 400, /Nope/);
    });

    it('GET /connectors lists names, and expands status and/or info on request', async () => {
      expect((await call({ method: 'GET', url: '/connectors' })).json).to.deep.equal([]);
      await create('a');
      await create('b');
      expect((await call({ method: 'GET', url: '/connectors' })).json).to.deep.equal(['a', 'b']);

      const status = (await call({ method: 'GET', url: '/connectors?expand=status' })).json as Record<
        string,
        Record<string, unknown>
      >;
      expect(Object.keys(status)).to.deep.equal(['a', 'b']);
      expect(status['a']).to.have.all.keys('status');
      expect(status['a']!['status']).to.deep.include({ name: 'a', type: 'source' });

      const both = (await call({ method: 'GET', url: '/connectors?expand=status&expand=info' }))
        .json as Record<string, Record<string, unknown>>;
      expect(both['b']).to.have.all.keys('status', 'info');
      expect(both['b']!['info']).to.deep.include({ name: 'b' });
    });

    it('GET /connectors with an unknown expand value answers 400', async () => {
      expectError(
        await call({ method: 'GET', url: '/connectors?expand=stats' }),
        400,
        /Unknown expand value "stats"/,
      );
    });

    it('GET /connectors/{name} answers ConnectorInfo, or 404 for an unknown connector', async () => {
      await create('files');
      const response = await call({ method: 'GET', url: '/connectors/files' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.include({ name: 'files', type: 'source' });
      expectError(await call({ method: 'GET', url: '/connectors/nope' }), 404, /Connector nope not found/);
    });

    it('decodes connector names from the path and ignores a trailing slash', async () => {
      await create('a/b c');
      const response = await call({ method: 'GET', url: '/connectors/a%2Fb%20c/' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.include({ name: 'a/b c' });
    });

    it('DELETE /connectors/{name} answers 204, then the connector is gone', async () => {
      await create('files');
      const response = await call({ method: 'DELETE', url: '/connectors/files' });
      expect(response.statusCode).to.equal(204);
      expect(response.body).to.equal('');
      expectError(await call({ method: 'GET', url: '/connectors/files' }), 404);
      expectError(await call({ method: 'DELETE', url: '/connectors/files' }), 404);
    });

    it('GET /connectors/{name}/config answers the config map', async () => {
      await create('files');
      const response = await call({ method: 'GET', url: '/connectors/files/config' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.equal({ ...fileSource(), name: 'files' });
      expectError(await call({ method: 'GET', url: '/connectors/nope/config' }), 404);
    });

    it('PUT /connectors/{name}/config answers 201 when it creates and 200 when it updates', async () => {
      const created = await call({ method: 'PUT', url: '/connectors/files/config', payload: fileSource() });
      expect(created.statusCode).to.equal(201);
      expect(created.headers['location']).to.equal('/connectors/files');
      expect(created.json).to.deep.include({ name: 'files' });

      const updated = await call({
        method: 'PUT',
        url: '/connectors/files/config',
        payload: fileSource({ 'tasks.max': '1', name: 'files' }),
      });
      expect(updated.statusCode).to.equal(200);
      expect(updated.headers['location']).to.equal(undefined);
      expect((updated.json as { tasks: unknown[] }).tasks).to.have.length(1);
    });

    it('PUT /connectors/{name}/config rejects a name mismatch and a non-object body with 400', async () => {
      const mismatch = await call({
        method: 'PUT',
        url: '/connectors/files/config',
        payload: fileSource({ name: 'x' }),
      });
      expectError(mismatch, 400, /doesn't match connector name/);
      expectError(
        await call({ method: 'PUT', url: '/connectors/files/config', payload: ['a'] }),
        400,
        /got an array/,
      );
    });

    it('PATCH /connectors/{name}/config merges keys, removes null ones, and answers 200', async () => {
      await create('files', fileSource({ extra: 'x' }));
      const response = await call({
        method: 'PATCH',
        url: '/connectors/files/config',
        payload: { topic: 'other', extra: null },
      });
      expect(response.statusCode).to.equal(200);
      const config = (response.json as { config: Record<string, string> }).config;
      expect(config['topic']).to.equal('other');
      expect(config).not.to.have.property('extra');
      expectError(await call({ method: 'PATCH', url: '/connectors/nope/config', payload: { a: '1' } }), 404);
      expectError(
        await call({ method: 'PATCH', url: '/connectors/files/config', payload: { name: 'renamed' } }),
        400,
        /doesn't match/,
      );
    });

    it('GET /connectors/{name}/status answers the connector and task states', async () => {
      await create('files');
      const response = await call({ method: 'GET', url: '/connectors/files/status' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.equal({
        name: 'files',
        connector: { state: 'RUNNING', worker_id: herder.workerId, version: '0.1.0' },
        tasks: [
          { id: 0, state: 'RUNNING', worker_id: herder.workerId, version: '0.1.0' },
          { id: 1, state: 'RUNNING', worker_id: herder.workerId, version: '0.1.0' },
        ],
        type: 'source',
      });
      expectError(await call({ method: 'GET', url: '/connectors/nope/status' }), 404);
    });
  });

  describe('lifecycle', () => {
    beforeEach(() => create('files'));

    it('POST /connectors/{name}/restart answers 204 for a plain restart', async () => {
      const response = await call({ method: 'POST', url: '/connectors/files/restart' });
      expect(response.statusCode).to.equal(204);
      expect(response.body).to.equal('');
      const explicit = await call({
        method: 'POST',
        url: '/connectors/files/restart?includeTasks=false&onlyFailed=',
      });
      expect(explicit.statusCode).to.equal(204);
    });

    it('POST /connectors/{name}/restart with includeTasks or onlyFailed answers 202 and the state', async () => {
      herder.connectors.get('files')!.taskStates[1] = 'FAILED';
      const onlyFailed = await call({
        method: 'POST',
        url: '/connectors/files/restart?includeTasks=true&onlyFailed=true',
      });
      expect(onlyFailed.statusCode).to.equal(202);
      const states = (onlyFailed.json as { tasks: Array<{ state: string }> }).tasks.map((t) => t.state);
      expect(states).to.deep.equal(['RUNNING', 'RESTARTING']);

      const all = await call({ method: 'POST', url: '/connectors/files/restart?includeTasks=TRUE' });
      expect(all.statusCode).to.equal(202);
      expect(all.json).to.deep.include({ name: 'files' });
    });

    it('POST /connectors/{name}/restart rejects a non-boolean flag with 400 and an unknown name with 404', async () => {
      expectError(
        await call({ method: 'POST', url: '/connectors/files/restart?includeTasks=yes' }),
        400,
        /includeTasks must be true or false/,
      );
      expectError(await call({ method: 'POST', url: '/connectors/nope/restart' }), 404);
    });

    for (const [action, state, code] of [
      ['pause', 'PAUSED', 202],
      ['stop', 'STOPPED', 204],
      ['resume', 'RUNNING', 202],
    ] as const) {
      it(`PUT /connectors/{name}/${action} answers ${code} and the connector goes ${state}`, async () => {
        const response = await call({ method: 'PUT', url: `/connectors/files/${action}` });
        expect(response.statusCode).to.equal(code);
        expect(response.body).to.equal('');
        const status = (await call({ method: 'GET', url: '/connectors/files/status' })).json;
        expect(status).to.have.nested.property('connector.state', state);
        expectError(await call({ method: 'PUT', url: `/connectors/nope/${action}` }), 404);
      });
    }
  });

  describe('offsets', () => {
    const offsets = { offsets: [{ partition: { file: '/tmp/in.txt' }, offset: { position: 42 } }] };
    beforeEach(() => create('files'));

    it('GET /connectors/{name}/offsets answers the offsets', async () => {
      const response = await call({ method: 'GET', url: '/connectors/files/offsets' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.equal({ offsets: [] });
      expectError(await call({ method: 'GET', url: '/connectors/nope/offsets' }), 404);
    });

    it('PATCH /connectors/{name}/offsets answers 409 while running and 200 with a message once stopped', async () => {
      expectError(
        await call({ method: 'PATCH', url: '/connectors/files/offsets', payload: offsets }),
        409,
        /STOPPED/,
      );
      await call({ method: 'PUT', url: '/connectors/files/stop' });
      const response = await call({ method: 'PATCH', url: '/connectors/files/offsets', payload: offsets });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.have.all.keys('message');
      expect((await call({ method: 'GET', url: '/connectors/files/offsets' })).json).to.deep.equal(offsets);
    });

    it('PATCH /connectors/{name}/offsets rejects a body without an offsets list with 400', async () => {
      await call({ method: 'PUT', url: '/connectors/files/stop' });
      expectError(
        await call({ method: 'PATCH', url: '/connectors/files/offsets', payload: {} }),
        400,
        /offsets/,
      );
      expectError(
        await call({
          method: 'PATCH',
          url: '/connectors/files/offsets',
          payload: { offsets: [{ offset: {} }] },
        }),
        400,
        /offsets\[0\] must have a "partition" object/,
      );
    });

    it('DELETE /connectors/{name}/offsets answers 200 with a message once stopped', async () => {
      await call({ method: 'PUT', url: '/connectors/files/stop' });
      const response = await call({ method: 'DELETE', url: '/connectors/files/offsets' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.have.all.keys('message');
    });
  });

  describe('tasks', () => {
    beforeEach(() => create('files'));

    it('GET /connectors/{name}/tasks answers a TaskInfo per task', async () => {
      const response = await call({ method: 'GET', url: '/connectors/files/tasks' });
      expect(response.statusCode).to.equal(200);
      const tasks = response.json as Array<{ id: unknown; config: Record<string, string> }>;
      expect(tasks.map((t) => t.id)).to.deep.equal([
        { connector: 'files', task: 0 },
        { connector: 'files', task: 1 },
      ]);
      expect(tasks[1]!.config).to.include({ 'task.id': '1' });
    });

    it('GET /connectors/{name}/tasks/{id}/status answers the task state, 404 for an unknown task', async () => {
      herder.connectors.get('files')!.taskStates[1] = 'FAILED';
      const response = await call({ method: 'GET', url: '/connectors/files/tasks/1/status' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.include({ id: 1, state: 'FAILED' }).and.to.have.property('trace');
      expectError(await call({ method: 'GET', url: '/connectors/files/tasks/7/status' }), 404, /files-7/);
    });

    it('answers 400 for a task id that is not a non-negative integer', async () => {
      for (const id of ['abc', '-1', '1.5', '1e3', '99999999999']) {
        expectError(
          await call({ method: 'GET', url: `/connectors/files/tasks/${id}/status` }),
          400,
          /Task id .* is not valid/,
        );
      }
      expectError(await call({ method: 'POST', url: '/connectors/files/tasks/x/restart' }), 400);
    });

    it('POST /connectors/{name}/tasks/{id}/restart answers 204', async () => {
      herder.connectors.get('files')!.taskStates[0] = 'FAILED';
      const response = await call({ method: 'POST', url: '/connectors/files/tasks/0/restart' });
      expect(response.statusCode).to.equal(204);
      expect(herder.connectors.get('files')!.taskStates[0]).to.equal('RUNNING');
      expectError(await call({ method: 'POST', url: '/connectors/nope/tasks/0/restart' }), 404);
    });
  });

  describe('connector plugins', () => {
    it('GET /connector-plugins lists the plugins, accepting connectorsOnly', async () => {
      const response = await call({ method: 'GET', url: '/connector-plugins' });
      expect(response.statusCode).to.equal(200);
      expect(response.json).to.deep.equal([
        { class: 'FileSource', type: 'source', version: '0.1.0' },
        { class: 'FileSink', type: 'sink', version: '0.1.0' },
      ]);
      expect(
        (await call({ method: 'GET', url: '/connector-plugins?connectorsOnly=false' })).statusCode,
      ).to.equal(200);
      expectError(await call({ method: 'GET', url: '/connector-plugins?connectorsOnly=nope' }), 400);
    });

    it('GET /connector-plugins/{plugin}/config answers the config keys, 404 for an unknown plugin', async () => {
      const response = await call({ method: 'GET', url: '/connector-plugins/FileSource/config' });
      expect(response.statusCode).to.equal(200);
      expect((response.json as Array<{ name: string }>).map((k) => k.name)).to.deep.equal(['file', 'topic']);
      expectError(
        await call({ method: 'GET', url: '/connector-plugins/Nope/config' }),
        404,
        /Unknown plugin Nope/,
      );
    });

    it('PUT /connector-plugins/{plugin}/config/validate answers 200 with the report, even with errors', async () => {
      const valid = await call({
        method: 'PUT',
        url: '/connector-plugins/FileSource/config/validate',
        payload: fileSource(),
      });
      expect(valid.statusCode).to.equal(200);
      expect(valid.json).to.include({ name: 'FileSource', error_count: 0 });

      const invalid = await call({
        method: 'PUT',
        url: '/connector-plugins/FileSource/config/validate',
        payload: { 'connector.class': 'FileSource' },
      });
      expect(invalid.statusCode).to.equal(200);
      expect(invalid.json).to.include({ error_count: 2 });
    });

    it('PUT /connector-plugins/{plugin}/config/validate answers 400 when connector.class names another plugin', async () => {
      const response = await call({
        method: 'PUT',
        url: '/connector-plugins/FileSource/config/validate',
        payload: { 'connector.class': 'FileSink' },
      });
      expectError(response, 400, /Included connector type FileSink does not match request type FileSource/);
      const qualified = await call({
        method: 'PUT',
        url: '/connector-plugins/FileSource/config/validate',
        payload: { 'connector.class': 'io.example.FileSourceConnector', file: 'f', topic: 't' },
      });
      expect(qualified.statusCode).to.equal(200);
    });

    it('PUT /connector-plugins/{plugin}/config/validate answers the herder’s 400 for an unknown plugin', async () => {
      const response = await call({
        method: 'PUT',
        url: '/connector-plugins/Nope/config/validate',
        payload: {},
      });
      expectError(response, 400, /Nope/);
    });
  });

  describe('client mistakes', () => {
    it('answers 400 naming the problem for a body that is not valid JSON', async () => {
      const response = await call({
        method: 'POST',
        url: '/connectors',
        headers: { 'content-type': 'application/json' },
        payload: '{"name": "files", "config": {',
      });
      expectError(response, 400, /^Request body is not valid JSON: .*JSON/);
    });

    it('refuses prototype-poisoning keys with 400', async () => {
      const response = await call({
        method: 'PUT',
        url: '/connectors/files/config',
        headers: { 'content-type': 'application/json' },
        payload: '{"connector.class": "FileSource", "__proto__": {"polluted": "yes"}}',
      });
      expectError(response, 400, /__proto__/);
      expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
    });

    it('answers 415 for a body that is not JSON', async () => {
      const text = await call({
        method: 'POST',
        url: '/connectors',
        headers: { 'content-type': 'text/plain' },
        payload: 'name=files',
      });
      expectError(text, 415, /application\/json/);
      const form = await call({
        method: 'POST',
        url: '/connectors',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'name=files',
      });
      expectError(form, 415);
    });

    it('answers 413 for a body over the limit', async () => {
      const response = await call({
        method: 'POST',
        url: '/connectors',
        payload: { name: 'files', config: fileSource({ padding: 'x'.repeat(5000) }) },
      });
      expectError(response, 413, /too large/);
    });

    it('answers Kafka Connect’s 404 body for an unknown route', async () => {
      const response = await call({ method: 'GET', url: '/nope' });
      expect(response.statusCode).to.equal(404);
      expect(response.json).to.deep.equal({ error_code: 404, message: 'HTTP 404 Not Found' });
      const withBody = await call({
        method: 'POST',
        url: '/nope',
        headers: { 'content-type': 'text/plain' },
        payload: 'x',
      });
      expectError(withBody, 404);
    });

    it('answers 405 with an Allow header for a known path with the wrong method', async () => {
      const response = await call({ method: 'DELETE', url: '/connectors' });
      expectError(response, 405, /Method Not Allowed/);
      expect(response.headers['allow']).to.equal('GET, POST, HEAD');
      const put = await call({ method: 'POST', url: '/connectors/files/status', payload: 'not json' });
      expectError(put, 405);
    });

    it('answers 400 for a malformed percent-encoding in the path', async () => {
      expectError(await call({ method: 'GET', url: '/connectors/%E0%A4%A' }), 400);
    });
  });

  it('answers 500 with the message for an unexpected failure and logs its stack', async () => {
    herder.failWith = new TypeError('herder exploded');
    const response = await call({ method: 'GET', url: '/connectors' });
    expectError(response, 500, /^herder exploded$/);
    const logged = logLines.find((line) => line['level'] === 50);
    expect(logged?.['err']).to.have.property('stack').that.includes('TypeError: herder exploded');
  });

  it('logs each request at debug level only', async () => {
    await call({ method: 'GET', url: '/health' });
    const completed = logLines.filter((line) => line['msg'] === 'request completed');
    expect(completed).to.have.length(1);
    expect(completed[0]).to.include({ level: 20 }).and.to.have.nested.property('res.statusCode', 200);
    expect(logLines.find((line) => line['msg'] === 'incoming request')).to.have.nested.property(
      'req.url',
      '/health',
    );
    expect(logLines.filter((line) => (line['level'] as number) >= 30)).to.deep.equal([]);
  });

  it('listens on 127.0.0.1 and serves /health over HTTP until closed', async () => {
    const address = await server.listen();
    expect(address).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${address}/health`);
    expect(response.status).to.equal(200);
    expect(await response.json()).to.include({ status: 'healthy' });
    await server.close();
    await server.close();
    let refused = false;
    await fetch(`${address}/health`).catch(() => (refused = true));
    expect(refused).to.equal(true);
  });
});

describe('parseListeners', () => {
  it('reads host and port from one http URL, defaulting the host to 127.0.0.1', () => {
    expect(parseListeners('http://127.0.0.1:8083')).to.deep.equal({ host: '127.0.0.1', port: 8083 });
    expect(parseListeners(' http://[::1]:9000 ')).to.deep.equal({ host: '::1', port: 9000 });
    expect(parseListeners('http://localhost')).to.deep.equal({ host: 'localhost', port: 80 });
  });

  it('reads an https listener and rejects several listeners and text that is not a URL, saying why', () => {
    expect(parseListeners('https://127.0.0.1:8443')).to.deep.include({ host: '127.0.0.1', port: 8443 });
    expect(() => parseListeners('http://a:1,http://b:2')).to.throw(/exactly one URL/);
    expect(() => parseListeners('8083')).to.throw(/is not a URL/);
  });
});

/** Parses Prometheus exposition text into `name{labels}` -> value, failing on any malformed line. */
function parsePrometheusText(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?(?:[0-9.e+-]+|NaN|\+?Inf))(?: \d+)?$/;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = sample.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}
