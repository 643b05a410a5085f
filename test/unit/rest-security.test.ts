// REST API security: basic auth with Kafka Connect's BasicAuthSecurityRestExtension files, the
// body limit, CORS, and HTTPS (with mutual TLS) on a real loopback listener with certificates
// made by openssl; and the worker-config composition that builds these options.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { InjectOptions } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { parseWorkerConfig } from '../../runtime/config/worker-config.js';
import { ConnectError } from '../../runtime/errors.js';
import { loadTls } from '../../runtime/kafka-security.js';
import {
  createRestServer,
  loadBasicAuthUsers,
  parseListeners,
  type RestServer,
  type RestServerOptions,
} from '../../runtime/rest-server.js';
import { restSecurityOptions } from '../../runtime/standalone.js';
import { FakeHerder } from '../helpers/fake-herder.js';
import { makeTestPki, type TestPki } from '../helpers/secure-stack.js';

const PASSWORD = 'kc-p4ss:word';
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('REST security', function () {
  this.timeout(20_000);
  let dir: string;
  let logText: string;
  let server: RestServer | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'infer-connect-rest-'));
    logText = '';
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function start(options: Partial<RestServerOptions> = {}): RestServer {
    const logger = pino({ level: 'trace' }, { write: (line: string) => void (logText += line) });
    server = createRestServer({
      herder: new FakeHerder(),
      metrics: new Registry(),
      logger,
      listeners: 'http://127.0.0.1:0',
      ...options,
    });
    return server;
  }

  const call = (options: InjectOptions) => server!.app.inject(options);

  describe('basic auth', () => {
    const users = new Map([
      ['admin', PASSWORD],
      ['reader', 'other'],
    ]);

    for (const [what, authorization] of [
      ['no credentials', undefined],
      ['a wrong password', basic('admin', 'nope')],
      ['an unknown user', basic('mallory', PASSWORD)],
      ['another scheme', `Bearer ${PASSWORD}`],
      ['credentials without a colon', `Basic ${Buffer.from('admin').toString('base64')}`],
    ] as const) {
      it(`answers 401 with a Basic challenge and Kafka Connect's message for ${what}`, async () => {
        start({ basicAuth: { users } });
        const response = await call({
          method: 'GET',
          url: '/connectors',
          headers: authorization ? { authorization } : {},
        });
        expect(response.statusCode).to.equal(401);
        expect(response.headers['www-authenticate']).to.equal('Basic realm="infer-connect", charset="UTF-8"');
        expect(response.json()).to.deep.equal({
          error_code: 401,
          message: 'User cannot access the resource.',
        });
      });
    }

    it('serves a request with the credentials of any listed user, the scheme in any case', async () => {
      start({ basicAuth: { users } });
      expect(
        (
          await call({
            method: 'GET',
            url: '/connectors',
            headers: { authorization: basic('admin', PASSWORD) },
          })
        ).statusCode,
      ).to.equal(200);
      const lower = basic('reader', 'other').replace('Basic', 'basic');
      expect(
        (await call({ method: 'GET', url: '/', headers: { authorization: lower } })).statusCode,
      ).to.equal(200);
    });

    it('guards /health, /metrics and unknown paths too, as Kafka Connect does', async () => {
      start({ basicAuth: { users } });
      for (const url of ['/health', '/metrics', '/no-such-path'])
        expect((await call({ method: 'GET', url })).statusCode, url).to.equal(401);
      const health = await call({
        method: 'GET',
        url: '/health',
        headers: { authorization: basic('admin', PASSWORD) },
      });
      expect(health.statusCode).to.equal(200);
    });

    it('refuses before reading a body, and never logs the credentials', async () => {
      start({ basicAuth: { users }, bodyLimit: 1024 });
      const response = await call({
        method: 'POST',
        url: '/connectors',
        headers: { authorization: basic('admin', 'wrong-secret'), 'content-type': 'application/json' },
        payload: 'x'.repeat(10_000),
      });
      expect(response.statusCode).to.equal(401);
      expect(logText).to.include('failed authentication');
      expect(logText)
        .not.to.include('wrong-secret')
        .and.not.to.include(Buffer.from('admin:wrong-secret').toString('base64'));
    });
  });

  describe("Kafka Connect's credential files", () => {
    it('reads the users of the JAAS file of BasicAuthSecurityRestExtension', () => {
      const users = join(dir, 'credentials.properties');
      writeFileSync(
        users,
        `# Kafka Connect REST users\nadmin: ${PASSWORD.replace(':', '\\:')}\nreader=other\n`,
      );
      const jaasFile = join(dir, 'connect_jaas.conf');
      writeFileSync(
        jaasFile,
        `KafkaConnect {\n  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required\n  file="${users}";\n};\n`,
      );
      expect(loadBasicAuthUsers({ jaasFile })).to.deep.equal(
        new Map([
          ['admin', PASSWORD],
          ['reader', 'other'],
        ]),
      );
      expect(loadBasicAuthUsers({ usersFile: users }).get('reader')).to.equal('other');
    });

    it('says what is wrong with a JAAS file or users file, without their passwords', () => {
      const refusal = (source: Parameters<typeof loadBasicAuthUsers>[0]) => {
        try {
          loadBasicAuthUsers(source);
        } catch (error) {
          expect(error).to.be.instanceOf(ConnectError);
          return (error as Error).message;
        }
        throw new Error('expected a refusal');
      };
      const write = (name: string, text: string) => {
        writeFileSync(join(dir, name), text);
        return join(dir, name);
      };
      expect(refusal({ jaasFile: join(dir, 'missing.conf') })).to.match(
        /cannot read .*missing.conf \(ENOENT\)/,
      );
      expect(refusal({ jaasFile: write('client.conf', 'KafkaClient { x required a="b"; };') })).to.match(
        /has no KafkaConnect entry \(it has: KafkaClient\)/,
      );
      expect(
        refusal({
          jaasFile: write(
            'ldap.conf',
            'KafkaConnect { com.example.LdapLoginModule required url="ldap://x"; };',
          ),
        }),
      ).to.match(/must hold one org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule/);
      expect(refusal({ jaasFile: write('bad.conf', 'KafkaConnect { x required file=; };') })).to.match(
        /not a valid JAAS file/,
      );
      expect(refusal({ usersFile: write('empty.properties', '# nobody\n') })).to.match(
        /lists no users.*infer-connect refuses to start/,
      );
    });
  });

  it('answers 413 with the limit and its key for a body over rest.request.body.max.bytes', async () => {
    start({ bodyLimit: 2048 });
    const response = await call({
      method: 'POST',
      url: '/connectors',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x', config: { big: 'y'.repeat(4096) } }),
    });
    expect(response.statusCode).to.equal(413);
    expect(response.json()).to.deep.equal({
      error_code: 413,
      message: 'Request body is too large: at most 2048 bytes are accepted (rest.request.body.max.bytes)',
    });
  });

  describe('CORS', () => {
    it('sends no CORS headers unless origins are configured', async () => {
      start();
      const response = await call({ method: 'GET', url: '/', headers: { origin: 'https://ui.example' } });
      expect(response.headers['access-control-allow-origin']).to.equal(undefined);
    });

    it('allows a listed origin, answers its preflight without credentials, and ignores other origins', async () => {
      start({
        basicAuth: { users: new Map([['admin', PASSWORD]]) },
        cors: { origins: ['https://ui.example'], methods: ['GET', 'PUT'] },
      });
      const preflight = await call({
        method: 'OPTIONS',
        url: '/connectors/x/config',
        headers: { origin: 'https://ui.example', 'access-control-request-method': 'PUT' },
      });
      expect(preflight.statusCode).to.equal(204);
      expect(preflight.headers).to.include({
        'access-control-allow-origin': 'https://ui.example',
        'access-control-allow-methods': 'GET, PUT',
        'access-control-allow-credentials': 'true',
      });
      expect(String(preflight.headers['access-control-allow-headers'])).to.include('Authorization');

      const simple = await call({
        method: 'GET',
        url: '/connectors',
        headers: { origin: 'https://ui.example', authorization: basic('admin', PASSWORD) },
      });
      expect(simple.statusCode).to.equal(200);
      expect(simple.headers['access-control-allow-origin']).to.equal('https://ui.example');

      const notAllowedMethod = await call({
        method: 'OPTIONS',
        url: '/connectors',
        headers: { origin: 'https://ui.example', 'access-control-request-method': 'DELETE' },
      });
      expect(notAllowedMethod.statusCode).to.equal(401);
      const other = await call({
        method: 'OPTIONS',
        url: '/connectors',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
      });
      expect(other.statusCode).to.equal(401);
      expect(other.headers['access-control-allow-origin']).to.equal(undefined);
    });

    it('answers * without credentials for any origin when configured with *', async () => {
      start({ cors: { origins: ['*'], methods: [] } });
      const response = await call({ method: 'GET', url: '/', headers: { origin: 'https://any.example' } });
      expect(response.headers['access-control-allow-origin']).to.equal('*');
      expect(response.headers['access-control-allow-credentials']).to.equal(undefined);
    });
  });

  describe('HTTPS', () => {
    let pki: TestPki;
    before(() => (pki = makeTestPki()));
    after(() => rmSync(pki.dir, { recursive: true, force: true }));

    const serverTls = (clientAuthentication: 'none' | 'requested' | 'required') => {
      const { material } = loadTls(
        {
          'ssl.keystore.key': readFileSync(pki.serverKeyFile, 'utf8'),
          'ssl.keystore.certificate.chain': readFileSync(pki.serverCertFile, 'utf8'),
          'ssl.truststore.location': pki.caFile,
        },
        (k) => k,
        'server',
      );
      return { ...material!, clientAuthentication };
    };

    /** GET over HTTPS; resolves the status, or the TLS error code when the handshake fails. */
    const get = (url: string, options: RequestOptions = {}) =>
      new Promise<number | string>((resolve) => {
        const request = httpsRequest(url, { ...options, agent: false }, (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode!));
        });
        request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
        request.end();
      });

    it('serves https:// with the PEM key and chain to a client that trusts the CA, and only to one', async () => {
      const address = await start({ listeners: 'https://127.0.0.1:0', tls: serverTls('none') }).listen();
      expect(address).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(await get(`${address}/health`, { ca: readFileSync(pki.caFile) })).to.equal(200);
      expect(await get(`${address}/health`)).to.match(
        /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/,
      );
    });

    it('requires a client certificate signed by the truststore with ssl.client.authentication=required', async () => {
      const address = await start({ listeners: 'https://127.0.0.1:0', tls: serverTls('required') }).listen();
      const ca = readFileSync(pki.caFile);
      const withoutCertificate = await get(`${address}/health`, { ca });
      expect(withoutCertificate)
        .to.be.a('string')
        .that.matches(/CERTIFICATE_REQUIRED|ECONNRESET|HANDSHAKE/);
      const keystore = readFileSync(pki.clientKeystoreFile, 'utf8');
      const withCertificate = await get(`${address}/health`, {
        ca,
        key: keystore,
        cert: keystore,
        passphrase: pki.clientKeyPassword,
      });
      expect(withCertificate).to.equal(200);
    });

    it('lets a client without a certificate in with ssl.client.authentication=requested', async () => {
      const address = await start({ listeners: 'https://127.0.0.1:0', tls: serverTls('requested') }).listen();
      expect(await get(`${address}/health`, { ca: readFileSync(pki.caFile) })).to.equal(200);
    });

    it('refuses an https listener without a key, and a key for an http listener', () => {
      expect(() => start({ listeners: 'https://127.0.0.1:0' })).to.throw(
        ConnectError,
        /no server key and certificate/,
      );
      expect(() => start({ listeners: 'http://127.0.0.1:0', tls: serverTls('none') })).to.throw(
        ConnectError,
        /use https/,
      );
      expect(parseListeners('https://127.0.0.1')).to.deep.equal({ host: '127.0.0.1', port: 443 });
    });

    it('is built from the worker config: listeners.https PEM keys, the JAAS users, CORS and the body limit', async () => {
      const users = join(dir, 'users.properties');
      writeFileSync(users, `admin: ${PASSWORD.replace(':', '\\:')}\n`);
      const jaasFile = join(dir, 'connect_jaas.conf');
      writeFileSync(
        jaasFile,
        `KafkaConnect { org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required file="${users}"; };`,
      );
      const { config, problems } = parseWorkerConfig(
        {
          'bootstrap.servers': 'k:9092',
          listeners: 'https://127.0.0.1:0',
          'listeners.https.ssl.keystore.location': join(pki.dir, 'server-keystore.pem'),
          'rest.basic.auth.jaas.file': jaasFile,
          'rest.request.body.max.bytes': 4096,
          'access.control.allow.origin': 'https://a.example, https://b.example',
        },
        { providers: [] },
      );
      expect(problems).to.deep.equal([]);
      writeFileSync(
        join(pki.dir, 'server-keystore.pem'),
        readFileSync(pki.serverKeyFile, 'utf8') + readFileSync(pki.serverCertFile, 'utf8'),
      );
      const options = restSecurityOptions(config!);
      expect(options.bodyLimit).to.equal(4096);
      expect(options.basicAuth!.users.get('admin')).to.equal(PASSWORD);
      expect(options.cors).to.deep.equal({
        origins: ['https://a.example', 'https://b.example'],
        methods: [],
      });
      expect(options.tls).to.include({ clientAuthentication: 'none' });
      const address = await start({ listeners: config!.getString('listeners'), ...options }).listen();
      const ca = readFileSync(pki.caFile);
      expect(await get(`${address}/connectors`, { ca })).to.equal(401);
      expect(
        await get(`${address}/connectors`, { ca, headers: { authorization: basic('admin', PASSWORD) } }),
      ).to.equal(200);
    });
  });
});
