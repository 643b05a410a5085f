// Kafka client security from Kafka's own keys: the JAAS parser (Kafka's tokenizer rules), the
// checks that run at config validation, the PEM loading at start, the translation to kafkajs
// options, connector overrides under the override policy, and how connection failures are
// explained. PEM material is made by openssl in a temp dir (test/helpers/secure-stack.ts).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { Kafka } from 'kafkajs';
import { pino } from 'pino';
import type { ConfigProblem } from '../../runtime/config/config-spec.js';
import { parseWorkerConfig } from '../../runtime/config/worker-config.js';
import { ConnectError, FatalError } from '../../runtime/errors.js';
import {
  connectorOverrideProblems,
  createKafka,
  explainKafkaFailure,
  kafkaClientOverrides,
  kafkaFor,
} from '../../runtime/kafka-clients.js';
import {
  describeKafkaSecurity,
  JaasSyntaxError,
  kafkaSecurityProblems,
  loadKafkaSecurity,
  loadTls,
  parseJaasConfig,
  parseJaasFile,
  tlsClientOptions,
} from '../../runtime/kafka-security.js';
import { makeTestPki, type TestPki } from '../helpers/secure-stack.js';

const PLAIN = 'org.apache.kafka.common.security.plain.PlainLoginModule';
const SCRAM = 'org.apache.kafka.common.security.scram.ScramLoginModule';
const SECRET = 'pa55-w0rd;/x=y';
const jaas = (module = SCRAM, user = 'alice', password = SECRET) =>
  `${module} required username="${user}" password="${password.replace(/["\\]/g, '\\$&')}";`;
const keysOf = (problems: ConfigProblem[]) => problems.map((p) => p.key);
const messageOf = (problems: ConfigProblem[], key: string) => problems.find((p) => p.key === key)?.message;
const silent = pino({ level: 'silent' });

describe('JAAS config parsing (Kafka syntax)', () => {
  it('reads the login module, its flag and quoted options as Kafka does', () => {
    expect(parseJaasConfig(`${PLAIN} required username="alice" password="s3cret";`)).to.deep.equal([
      { loginModule: PLAIN, controlFlag: 'required', options: { username: 'alice', password: 's3cret' } },
    ]);
  });

  it('accepts single quotes, unquoted words, any case of the flag and line breaks', () => {
    const [module] = parseJaasConfig(
      `${SCRAM}\n  REQUIRED\n  username='{{ KEY }}'\n  tokenauth=false\n  password='a b';`,
    );
    expect(module).to.deep.equal({
      loginModule: SCRAM,
      controlFlag: 'required',
      options: { username: '{{ KEY }}', tokenauth: 'false', password: 'a b' },
    });
  });

  it("decodes Java escapes inside quotes, so quotes, backslashes and ';' can be part of a password", () => {
    const [module] = parseJaasConfig(`${PLAIN} required username="a\\"b" password="x\\\\y;z\\101\\n";`);
    expect(module!.options).to.deep.equal({ username: 'a"b', password: 'x\\y;zA\n' });
  });

  it('skips /* */ and // comments', () => {
    const [module] = parseJaasConfig(
      `/* managed */ ${PLAIN} required // the user\n username="u" password="p";`,
    );
    expect(module!.options).to.deep.equal({ username: 'u', password: 'p' });
  });

  it('reads several modules; the checks refuse more than one for a client, as Kafka does', () => {
    expect(parseJaasConfig(`${PLAIN} required a="1"; ${SCRAM} optional b="2";`)).to.have.length(2);
    const problems = kafkaSecurityProblems({
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'PLAIN',
      'sasl.jaas.config': `${PLAIN} required username="u" password="p"; ${PLAIN} required username="v" password="q";`,
    });
    expect(messageOf(problems, 'sasl.jaas.config')).to.equal(
      'JAAS config property contains 2 login modules, should be 1 module',
    );
  });

  for (const [text, expected] of [
    ['', /Login module not specified/],
    [PLAIN, /control flag not specified/],
    [`${PLAIN} mandatory username="u";`, /Invalid login module control flag/],
    [`${PLAIN} required username;`, /Value not specified for key 'username'/],
    [`${PLAIN} required username="u"`, /not terminated by semi-colon/],
  ] as const) {
    it(`refuses ${JSON.stringify(text)} with Kafka's message`, () => {
      expect(() => parseJaasConfig(text)).to.throw(JaasSyntaxError, expected);
    });
  }

  it('never puts an option value into a parse error', () => {
    // An unquoted '/' starts a comment, so the rest of the value is lost and the entry unterminated.
    for (const text of [
      `${PLAIN} required username="u" password=abc/hidden-part;`,
      `${PLAIN} required username="u" password=;`,
    ]) {
      const problems = kafkaSecurityProblems({
        'security.protocol': 'SASL_SSL',
        'sasl.mechanism': 'PLAIN',
        'sasl.jaas.config': text,
      });
      const message = messageOf(problems, 'sasl.jaas.config')!;
      expect(message).to.match(/^is not valid JAAS/);
      expect(message).not.to.include('abc').and.not.to.include('hidden');
    }
  });

  it("reads a JAAS file's entries, as Kafka Connect's basic-auth extension is configured", () => {
    const entries = parseJaasFile(
      [
        '// connect_jaas.conf',
        'KafkaConnect {',
        '  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required',
        '  file="/mnt/secret/credentials.properties";',
        '};',
        'KafkaClient { org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p"; };',
      ].join('\n'),
    );
    expect([...entries.keys()]).to.deep.equal(['KafkaConnect', 'KafkaClient']);
    expect(entries.get('KafkaConnect')![0]!.options).to.deep.equal({
      file: '/mnt/secret/credentials.properties',
    });
    expect(() => parseJaasFile('KafkaConnect { x required file="f";')).to.throw(
      JaasSyntaxError,
      /not closed/,
    );
  });
});

describe('Kafka security keys', () => {
  it('needs nothing for PLAINTEXT, the default', () => {
    expect(kafkaSecurityProblems({})).to.deep.equal([]);
    expect(loadKafkaSecurity({}).options).to.deep.equal({});
  });

  it('translates SASL_SSL with SCRAM to kafkajs options, trusting the system CAs without a truststore', () => {
    const { options, problems } = loadKafkaSecurity({
      'security.protocol': 'sasl_ssl',
      'sasl.mechanism': 'SCRAM-SHA-512',
      'sasl.jaas.config': jaas(),
    });
    expect(problems).to.deep.equal([]);
    expect(options!.sasl).to.deep.equal({ mechanism: 'scram-sha-512', username: 'alice', password: SECRET });
    expect(options!.ssl).to.deep.equal({ rejectUnauthorized: true });
  });

  it('accepts PLAIN and SCRAM-SHA-256, and PlainLoginModule with SCRAM as the Java client does', () => {
    for (const [mechanism, module] of [
      ['PLAIN', PLAIN],
      ['SCRAM-SHA-256', SCRAM],
      ['SCRAM-SHA-256', PLAIN],
    ]) {
      const { options } = loadKafkaSecurity({
        'security.protocol': 'SASL_PLAINTEXT',
        'sasl.mechanism': mechanism!,
        'sasl.jaas.config': jaas(module),
      });
      expect(options!.sasl, mechanism).to.include({ mechanism: mechanism!.toLowerCase(), username: 'alice' });
      expect(options!.ssl).to.equal(undefined);
    }
  });

  it('reports a missing mechanism and a missing credential together, each against its key with a fix', () => {
    const problems = kafkaSecurityProblems({ 'security.protocol': 'SASL_SSL' });
    expect(keysOf(problems)).to.deep.equal(['sasl.mechanism', 'sasl.jaas.config']);
    expect(messageOf(problems, 'sasl.mechanism')).to.match(
      /is required with security.protocol=SASL_SSL: set PLAIN/,
    );
    expect(messageOf(problems, 'sasl.jaas.config')).to.match(/PlainLoginModule required username="<user>"/);
  });

  it('refuses GSSAPI, OAUTHBEARER and AWS_MSK_IAM saying why, and unknown mechanisms', () => {
    const mechanismProblem = (mechanism: string) =>
      messageOf(
        kafkaSecurityProblems({
          'security.protocol': 'SASL_SSL',
          'sasl.mechanism': mechanism,
          'sasl.jaas.config': jaas(),
        }),
        'sasl.mechanism',
      );
    expect(mechanismProblem('GSSAPI')).to.match(/Kerberos \(GSSAPI\) is not supported/);
    expect(mechanismProblem('OAUTHBEARER')).to.match(/kafkajs needs a token provider written in code/);
    expect(mechanismProblem('AWS_MSK_IAM')).to.match(/enable SASL\/SCRAM on the MSK cluster/);
    expect(mechanismProblem('DIGEST-MD5')).to.match(/must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512/);
  });

  it('refuses login modules kafkajs cannot use and SCRAM delegation tokens', () => {
    const jaasProblem = (text: string) =>
      messageOf(
        kafkaSecurityProblems({
          'security.protocol': 'SASL_SSL',
          'sasl.mechanism': 'PLAIN',
          'sasl.jaas.config': text,
        }),
        'sasl.jaas.config',
      );
    expect(
      jaasProblem(
        'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId="c";',
      ),
    ).to.match(/OAUTHBEARER is not supported/);
    expect(jaasProblem(`${SCRAM} required username="u" password="p" tokenauth="true";`)).to.match(
      /delegation tokens/,
    );
    expect(jaasProblem(`${PLAIN} required username="u";`)).to.match(/needs password/);
  });

  it('says when credentials or TLS keys are set but security.protocol does not use them', () => {
    expect(
      messageOf(
        kafkaSecurityProblems({ 'sasl.mechanism': 'PLAIN', 'sasl.jaas.config': jaas() }),
        'security.protocol',
      ),
    ).to.match(/^is PLAINTEXT but sasl.mechanism, sasl.jaas.config are set: use SASL_SSL/);
    expect(
      messageOf(
        kafkaSecurityProblems({
          'security.protocol': 'SASL_PLAINTEXT',
          'ssl.truststore.location': '/ca.pem',
          'sasl.mechanism': 'PLAIN',
          'sasl.jaas.config': jaas(),
        }),
        'security.protocol',
      ),
    ).to.match(/is SASL_PLAINTEXT but ssl keys are set: use SSL or SASL_SSL/);
  });

  it('refuses JKS and PKCS12 stores with the command that converts them to PEM', () => {
    const problems = kafkaSecurityProblems({
      'security.protocol': 'SSL',
      'ssl.truststore.type': 'JKS',
      'ssl.truststore.location': '/etc/kafka/truststore.jks',
      'ssl.truststore.password': 'changeit',
      'ssl.keystore.type': 'PKCS12',
      'ssl.keystore.location': '/etc/kafka/keystore.p12',
      'ssl.keystore.password': 'changeit',
    });
    expect(messageOf(problems, 'ssl.truststore.type')).to.match(
      /JKS stores are not supported.*keytool -exportcert -rfc/,
    );
    expect(messageOf(problems, 'ssl.keystore.type')).to.match(
      /PKCS12 stores are not supported.*openssl pkcs12 -in keystore.p12/,
    );
    // The store passwords belong to the refused stores: no second problem about them.
    expect(keysOf(problems)).to.have.members(['ssl.truststore.type', 'ssl.keystore.type']);
    expect(problems.map((p) => p.message).join()).not.to.include('changeit');
  });

  it('reports conflicting and incomplete PEM keys, and store passwords PEM has no use for', () => {
    const problems = kafkaSecurityProblems({
      'security.protocol': 'SSL',
      'ssl.truststore.location': '/ca.pem',
      'ssl.truststore.certificates': '-----BEGIN CERTIFICATE-----',
      'ssl.truststore.password': 'x',
      'ssl.keystore.key': '-----BEGIN PRIVATE KEY-----',
      'ssl.endpoint.identification.algorithm': 'http',
      'ssl.cipher.suites': 'TLS_AES_128_GCM_SHA256',
    });
    expect(keysOf(problems)).to.have.members([
      'ssl.truststore.location',
      'ssl.truststore.password',
      'ssl.keystore.certificate.chain',
      'ssl.endpoint.identification.algorithm',
      'ssl.cipher.suites',
    ]);
    expect(messageOf(problems, 'ssl.truststore.password')).to.match(/PEM truststores have no store password/);
    expect(messageOf(problems, 'ssl.cipher.suites')).to.match(
      /is not supported here; the supported ssl keys are/,
    );
  });

  it('names problems after the keys as written, e.g. with their consumer. prefix', () => {
    const problems = kafkaSecurityProblems({ 'security.protocol': 'SASL_SSL' }, (key) => `consumer.${key}`);
    expect(keysOf(problems)).to.deep.equal(['consumer.sasl.mechanism', 'consumer.sasl.jaas.config']);
  });

  it('describes a client for logs by protocol, mechanism, user and trust, never by password', () => {
    const described = describeKafkaSecurity({
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'scram-sha-512',
      'sasl.jaas.config': jaas(),
      'ssl.truststore.location': '/etc/ca.pem',
      'ssl.endpoint.identification.algorithm': '',
    });
    expect(described).to.deep.equal({
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'SCRAM-SHA-512',
      user: 'alice',
      trust: '/etc/ca.pem',
      'host name verification': 'off',
    });
  });
});

describe('PEM material', function () {
  this.timeout(20_000);
  let pki: TestPki;
  before(() => (pki = makeTestPki()));
  after(() => rmSync(pki.dir, { recursive: true, force: true }));
  const name = (key: string) => key;

  it('trusts the CAs of a PEM file and verifies host names unless the algorithm is empty', () => {
    const { material, problems } = loadTls({ 'ssl.truststore.location': pki.caFile }, name, 'client');
    expect(problems).to.deep.equal([]);
    expect(material!.ca).to.have.length(1);
    expect(tlsClientOptions(material!).checkServerIdentity).to.equal(undefined);
    const relaxed = loadTls(
      { 'ssl.truststore.location': pki.caFile, 'ssl.endpoint.identification.algorithm': '' },
      name,
      'client',
    );
    const options = tlsClientOptions(relaxed.material!);
    expect(options.rejectUnauthorized).to.equal(true);
    expect(options.checkServerIdentity!('wrong.example', {} as never)).to.equal(undefined);
  });

  it('reads inline PEM given on one line, as environment variables carry it', () => {
    const oneLine = readFileSync(pki.caFile, 'utf8').replace(/\n/g, ' ');
    const { material, problems } = loadTls({ 'ssl.truststore.certificates': oneLine }, name, 'client');
    expect(problems).to.deep.equal([]);
    expect(material!.ca![0]).to.match(/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=]{64}\n/);
  });

  it('opens an encrypted client key with ssl.key.password, and says when the password is missing or wrong', () => {
    const good = loadTls(
      { 'ssl.keystore.location': pki.clientKeystoreFile, 'ssl.key.password': pki.clientKeyPassword },
      name,
      'client',
    );
    expect(good.problems).to.deep.equal([]);
    expect(good.material).to.include({ passphrase: pki.clientKeyPassword });
    expect(good.material!.cert).to.match(/BEGIN CERTIFICATE/);

    const missing = loadTls({ 'ssl.keystore.location': pki.clientKeystoreFile }, name, 'client');
    expect(messageOf(missing.problems, 'ssl.keystore.location')).to.match(
      /is encrypted: set ssl.key.password/,
    );
    const wrong = loadTls(
      { 'ssl.keystore.location': pki.clientKeystoreFile, 'ssl.key.password': 'not-the-password' },
      name,
      'client',
    );
    expect(messageOf(wrong.problems, 'ssl.key.password')).to.match(
      /^does not decrypt the private key in ssl.keystore.location/,
    );
    expect(JSON.stringify(wrong.problems)).not.to.include('not-the-password');
  });

  it('refuses a certificate that does not belong to the key', () => {
    const { problems } = loadTls(
      {
        'ssl.keystore.key': readFileSync(pki.serverKeyFile, 'utf8'),
        'ssl.keystore.certificate.chain': readFileSync(join(pki.dir, 'client.crt'), 'utf8'),
      },
      name,
      'client',
    );
    expect(messageOf(problems, 'ssl.keystore.certificate.chain')).to.match(
      /is not the certificate of the private key/,
    );
  });

  it('recognises a JKS or PKCS12 file given as PEM and says how to convert it', () => {
    const jks = join(pki.dir, 'truststore.jks');
    writeFileSync(jks, Buffer.from([0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 1, 2, 3]));
    const { problems } = loadTls({ 'ssl.truststore.location': jks }, name, 'client');
    expect(messageOf(problems, 'ssl.truststore.location')).to.match(
      /is a JKS keystore, not PEM: convert it to PEM: `keytool/,
    );
  });

  it('reports an unreadable file and a file without certificates against their keys', () => {
    const { problems } = loadTls(
      { 'ssl.truststore.location': join(pki.dir, 'missing.pem'), 'ssl.keystore.location': pki.caFile },
      name,
      'client',
    );
    expect(messageOf(problems, 'ssl.truststore.location')).to.match(/cannot read .*missing.pem \(ENOENT\)/);
    expect(messageOf(problems, 'ssl.keystore.location')).to.match(
      /must hold exactly one PEM private key .*, found 0$/,
    );
  });

  it('needs a key and certificate for a server', () => {
    const { problems } = loadTls({}, (key) => `listeners.https.${key}`, 'server');
    expect(keysOf(problems)).to.deep.equal(['listeners.https.ssl.keystore.location']);
    const server = loadTls(
      {
        'ssl.keystore.key': readFileSync(pki.serverKeyFile, 'utf8'),
        'ssl.keystore.certificate.chain': readFileSync(pki.serverCertFile, 'utf8'),
      },
      name,
      'server',
    );
    expect(server.problems).to.deep.equal([]);
  });
});

describe('worker config security checks', () => {
  const parse = (raw: Record<string, unknown>) =>
    parseWorkerConfig({ 'bootstrap.servers': 'broker:9092', ...raw }, { providers: [] });

  it('accepts a managed-Kafka block copied from a Java client snippet', () => {
    const { problems } = parse({
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'PLAIN',
      'sasl.jaas.config': `${PLAIN} required username='KEY' password='SECRET';`,
      'client.dns.lookup': 'use_all_dns_ips',
      'session.timeout.ms': '45000',
      'schema.registry.url': 'https://psrc-123.example.cloud',
      'basic.auth.credentials.source': 'USER_INFO',
      'basic.auth.user.info': 'SRKEY:SRSECRET',
    });
    expect(problems).to.deep.equal([]);
  });

  it('checks each client kind with its consumer./producer./admin. keys on top of the worker ones', () => {
    const { problems } = parse({
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'SCRAM-SHA-512',
      'sasl.jaas.config': jaas(),
      'producer.sasl.mechanism': 'GSSAPI',
      'admin.security.protocol': 'SSL',
    });
    expect(keysOf(problems)).to.deep.equal(['producer.sasl.mechanism', 'admin.security.protocol']);
    expect(messageOf(problems, 'admin.security.protocol')).to.match(
      /is SSL but sasl.mechanism, sasl.jaas.config are set/,
    );
  });

  it('reports every security problem at once with the other problems, and hides the JAAS value', () => {
    const { config, problems } = parse({
      'log.level': 'loud',
      'security.protocol': 'SASL_SSL',
      'sasl.jaas.config': `${PLAIN} required username="u" password="${SECRET}"`,
      listeners: 'https://0.0.0.0:8443',
      'basic.auth.credentials.source': 'USER_INFO',
    });
    expect(config).to.equal(undefined);
    expect(keysOf(problems)).to.have.members([
      'log.level',
      'sasl.mechanism',
      'sasl.jaas.config',
      'listeners',
      'basic.auth.credentials.source',
    ]);
    expect(JSON.stringify(problems)).not.to.include(SECRET);
  });

  it('refuses registry TLS keys with an http URL, and user info the URL source would ignore', () => {
    const { problems } = parse({
      'schema.registry.url': 'http://registry:8081',
      'schema.registry.ssl.truststore.location': '/ca.pem',
      'basic.auth.credentials.source': 'URL',
      'schema.registry.basic.auth.user.info': 'u:p',
    });
    expect(keysOf(problems)).to.have.members([
      'schema.registry.ssl.truststore.location',
      'basic.auth.credentials.source',
    ]);
  });

  it('refuses listeners.https keys on an http listener, two users sources, and CORS methods without origins', () => {
    const { problems } = parse({
      'listeners.https.ssl.keystore.location': '/server.pem',
      'rest.basic.auth.jaas.file': '/jaas.conf',
      'rest.basic.auth.users.file': '/users.properties',
      'access.control.allow.methods': 'GET',
    });
    expect(keysOf(problems)).to.have.members([
      'listeners.https.ssl.keystore.location',
      'rest.basic.auth.users.file',
      'access.control.allow.methods',
    ]);
  });
});

describe('Kafka clients with security', () => {
  const scram = {
    'security.protocol': 'SASL_PLAINTEXT',
    'sasl.mechanism': 'SCRAM-SHA-512',
    'sasl.jaas.config': jaas(),
  };
  const worker = (overridePolicy?: 'None' | 'Principal' | 'All') =>
    createKafka({
      brokers: ['127.0.0.1:1'],
      clientId: 'test',
      logger: silent,
      security: { consumer: scram, producer: scram, admin: scram },
      overridePolicy,
    });
  const connector = (config: Record<string, string>) => ({
    withPrefix: (prefix: string) =>
      Object.fromEntries(
        Object.entries(config)
          .filter(([k]) => k.startsWith(prefix))
          .map(([k, v]) => [k.slice(prefix.length), v]),
      ),
  });

  it('refuses to build clients whose PEM files cannot be read, naming the key as written', () => {
    expect(() =>
      createKafka({
        brokers: ['b:9092'],
        clientId: 't',
        logger: silent,
        security: { consumer: { 'security.protocol': 'SSL', 'ssl.truststore.location': '/nowhere/ca.pem' } },
        keyName: (kind, key) => `${kind}.${key}`,
      }),
    ).to.throw(FatalError, /consumer.ssl.truststore.location: cannot read \/nowhere\/ca.pem \(ENOENT\)/);
  });

  it('gives a connector without security overrides the worker Kafka itself', () => {
    const kafka = worker();
    expect(kafkaFor(kafka, connector({ 'consumer.override.session.timeout.ms': '30000' }))).to.equal(kafka);
  });

  it("gives a connector with its own credentials a Kafka of its own, checked with the worker's other keys", () => {
    const kafka = worker();
    const own = kafkaFor(
      kafka,
      connector({ 'producer.override.sasl.jaas.config': jaas(SCRAM, 'connector-user', 'other') }),
    );
    expect(own).not.to.equal(kafka);
    const problems = connectorOverrideProblems(
      kafka,
      connector({ 'consumer.override.sasl.mechanism': 'OAUTHBEARER' }),
    );
    expect(keysOf(problems)).to.deep.equal(['consumer.override.sasl.mechanism']);
    expect(() => kafkaFor(kafka, connector({ 'consumer.override.sasl.mechanism': 'OAUTHBEARER' }))).to.throw(
      FatalError,
      /consumer.override.sasl.mechanism: OAUTHBEARER is not supported/,
    );
  });

  it('applies connector.client.config.override.policy as Kafka Connect does', () => {
    const overrides = connector({
      'consumer.override.session.timeout.ms': '30000',
      'producer.override.sasl.jaas.config': jaas(),
      'admin.override.retries': '3',
    });
    expect(keysOf(connectorOverrideProblems(worker('All'), overrides))).to.deep.equal([
      'admin.override.retries',
    ]);
    expect(keysOf(connectorOverrideProblems(worker('Principal'), overrides))).to.have.members([
      'consumer.override.session.timeout.ms',
      'admin.override.retries',
    ]);
    expect(keysOf(connectorOverrideProblems(worker('None'), overrides))).to.have.members([
      'consumer.override.session.timeout.ms',
      'producer.override.sasl.jaas.config',
      'admin.override.retries',
    ]);
  });

  it('refuses security overrides on a Kafka that was not built with security settings', () => {
    const plain = new Kafka({ brokers: ['b:9092'] });
    expect(() => kafkaFor(plain, connector({ 'consumer.override.security.protocol': 'SSL' }))).to.throw(
      FatalError,
      /this worker's Kafka has no security settings/,
    );
  });

  it('leaves security keys out of the consumer and producer options (they live on the Kafka)', () => {
    expect(
      kafkaClientOverrides({ 'security.protocol': 'SSL', 'sasl.jaas.config': jaas(), acks: 'all' }),
    ).to.deep.equal({ acks: -1 });
  });

  it('explains SASL and TLS failures found anywhere in a kafkajs error chain, and leaves others alone', () => {
    const how = { 'security.protocol': 'SASL_SSL', user: 'alice' };
    const sasl = Object.assign(new Error('SASL SCRAM SHA512 authentication failed: invalid credentials'), {
      name: 'KafkaJSSASLAuthenticationError',
    });
    const wrapped = Object.assign(new Error('retries exceeded'), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      cause: sasl,
    });
    const explained = explainKafkaFailure(wrapped, how) as ConnectError;
    expect(explained.code).to.equal('KAFKA_AUTHENTICATION_FAILED');
    expect(explained.message)
      .to.include('security.protocol=SASL_SSL, user=alice')
      .and.include('invalid credentials');
    expect(explained.cause).to.equal(wrapped);

    const tls = Object.assign(new Error('Connection error: self-signed certificate in certificate chain'), {
      name: 'KafkaJSConnectionError',
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    const tlsExplained = explainKafkaFailure(tls, how) as ConnectError;
    expect(tlsExplained.code).to.equal('KAFKA_TLS_FAILED');
    expect(tlsExplained.message).to.match(/set ssl.truststore.location/);
    const altName = explainKafkaFailure(
      Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }),
      how,
    );
    expect((altName as Error).message).to.match(/ssl.endpoint.identification.algorithm= \(empty\)/);

    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(explainKafkaFailure(refused, how)).to.equal(refused);
  });
});
