// Secured servers for the security tests, started on demand next to the shared dev stack (which
// they never touch): a CA and certificates made with openssl, a single-node KRaft broker with
// SASL_SSL (SCRAM and PLAIN users) and mutual-TLS SSL listeners on free loopback ports, and nginx
// terminating TLS with basic auth in front of the dev stack's schema registry. Every process is a
// child of the test process, with its own files in a temp dir, and is stopped by `stop()` (or at
// exit, should a test abort).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { cacheDir, repoRoot } from '../../dev/stack.js';

// ---------------------------------------------------------------------------------------------
// Certificates

export interface TestPki {
  dir: string;
  /** The test CA (PEM), which signs every certificate below. */
  caFile: string;
  /** A CA nobody trusts, for "untrusted certificate" cases. */
  otherCaFile: string;
  /** Server key (unencrypted PEM) and certificate for localhost and 127.0.0.1. */
  serverKeyFile: string;
  serverCertFile: string;
  /** key + chain in one PEM file, the key encrypted with `clientKeyPassword` (mutual TLS). */
  clientKeystoreFile: string;
  clientKeyPassword: string;
}

function openssl(dir: string, args: string[]): void {
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (result.error) throw new Error(`openssl is needed for the security tests: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${result.stderr}`);
}

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '3',
    '-subj',
    `/CN=infer-connect ${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

function makeLeaf(dir: string, name: string, subject: string, extensions: string[]): void {
  writeFileSync(join(dir, `${name}.ext`), `${extensions.join('\n')}\n`);
  openssl(dir, [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '3',
    '-extfile',
    `${name}.ext`,
  ]);
}

/** A fresh CA, server certificate and client certificate in a new temp dir (a second or two). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'infer-connect-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  makeLeaf(dir, 'server', '/CN=localhost', [
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    'extendedKeyUsage=serverAuth',
    'basicConstraints=CA:FALSE',
  ]);
  makeLeaf(dir, 'client', '/CN=infer-connect-worker', [
    'extendedKeyUsage=clientAuth',
    'basicConstraints=CA:FALSE',
  ]);
  const clientKeyPassword = `key-${randomBytes(6).toString('hex')}`;
  openssl(dir, [
    'pkcs8',
    '-topk8',
    '-in',
    'client.key',
    '-out',
    'client-encrypted.key',
    '-passout',
    `pass:${clientKeyPassword}`,
  ]);
  writeFileSync(
    join(dir, 'client-keystore.pem'),
    readFileSync(join(dir, 'client-encrypted.key'), 'utf8') + readFileSync(join(dir, 'client.crt'), 'utf8'),
  );
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    serverKeyFile: join(dir, 'server.key'),
    serverCertFile: join(dir, 'server.crt'),
    clientKeystoreFile: join(dir, 'client-keystore.pem'),
    clientKeyPassword,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function startChild(command: string, args: string[], log: string): ChildProcess {
  writeFileSync(log, '');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout!, child.stderr!])
    stream.on('data', (chunk: Buffer) => writeFileSync(log, chunk, { flag: 'a' }));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** SIGTERM the child's process group, SIGKILL after `graceMs`; resolves once it exited. */
async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Kafka with SASL_SSL and SSL listeners

/** Java 17+ for the broker, as dev/stack.ts finds it. */
function findJava(): string {
  const homes = [
    process.env.INFER_CONNECT_JAVA_HOME,
    process.env.JAVA_HOME,
    ...(existsSync('/usr/lib/jvm') ? readdirSync('/usr/lib/jvm').map((d) => join('/usr/lib/jvm', d)) : []),
  ].filter((d): d is string => Boolean(d));
  for (const home of homes) {
    const bin = join(home, 'bin', 'java');
    if (!existsSync(bin)) continue;
    const version = /version "(\d+)/.exec(spawnSync(bin, ['-version'], { encoding: 'utf8' }).stderr ?? '');
    if (version && Number(version[1]) >= 17) return bin;
  }
  throw new Error('no Java 17+ found for the secured Kafka broker (set INFER_CONNECT_JAVA_HOME)');
}

export interface SecureKafka {
  /** SASL_SSL listener: SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN users below. */
  saslSsl: string;
  /** SSL listener that requires a client certificate signed by the test CA. */
  mutualTls: string;
  /** PLAINTEXT listener for the test's own setup (topics, producing input, reading output). */
  plaintext: string;
  users: {
    scram512: { username: string; password: string };
    scram256: { username: string; password: string };
    plain: { username: string; password: string };
  };
  log: string;
  stop(): Promise<void>;
}

const props = (entries: Record<string, string>) =>
  Object.entries(entries)
    .map(([k, v]) => `${k}=${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`)
    .join('\n') + '\n';

/**
 * Starts a broker from the Kafka jars dev/stack.ts caches, formatted with the SCRAM users, and
 * waits until a SCRAM client is served (at most `timeoutMs`).
 */
export async function startSecureKafka(pki: TestPki, timeoutMs = 90_000): Promise<SecureKafka> {
  const libs = join(cacheDir, 'kafka-4.1.1', 'libs');
  if (!existsSync(join(libs, '.complete')))
    throw new Error(`no Kafka jars in ${libs}: run \`npx tsx dev/stack.ts up\` once first`);
  const java = findJava();
  const home = join(pki.dir, `kafka-${randomBytes(3).toString('hex')}`);
  mkdirSync(home, { recursive: true });
  const [controller, internal, saslPort, sslPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const secret = () => randomBytes(9).toString('base64url');
  const users = {
    scram512: { username: 'alice', password: `alice-${secret()}` },
    scram256: { username: 'carol', password: `carol-${secret()}` },
    plain: { username: 'bob', password: `bob-${secret()}` },
  };
  const serverProperties = join(home, 'server.properties');
  writeFileSync(
    serverProperties,
    props({
      'process.roles': 'broker,controller',
      'node.id': '1',
      'controller.quorum.voters': `1@127.0.0.1:${controller}`,
      listeners: `CONTROLLER://127.0.0.1:${controller},INTERNAL://127.0.0.1:${internal},SASL_SSL://127.0.0.1:${saslPort},SSL://127.0.0.1:${sslPort}`,
      'advertised.listeners': `INTERNAL://127.0.0.1:${internal},SASL_SSL://127.0.0.1:${saslPort},SSL://127.0.0.1:${sslPort}`,
      'controller.listener.names': 'CONTROLLER',
      'inter.broker.listener.name': 'INTERNAL',
      'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL',
      'sasl.enabled.mechanisms': 'SCRAM-SHA-512,SCRAM-SHA-256,PLAIN',
      'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config':
        'org.apache.kafka.common.security.scram.ScramLoginModule required;',
      'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config':
        'org.apache.kafka.common.security.scram.ScramLoginModule required;',
      'listener.name.sasl_ssl.plain.sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required user_${users.plain.username}="${users.plain.password}";`,
      'ssl.keystore.type': 'PEM',
      'ssl.keystore.key': readFileSync(pki.serverKeyFile, 'utf8'),
      'ssl.keystore.certificate.chain': readFileSync(pki.serverCertFile, 'utf8'),
      'ssl.truststore.type': 'PEM',
      'ssl.truststore.location': pki.caFile,
      'listener.name.ssl.ssl.client.auth': 'required',
      'log.dirs': join(home, 'data'),
      'num.partitions': '1',
      'offsets.topic.replication.factor': '1',
      'offsets.topic.num.partitions': '3',
      'transaction.state.log.replication.factor': '1',
      'transaction.state.log.min.isr': '1',
      'transaction.state.log.num.partitions': '3',
      'group.initial.rebalance.delay.ms': '0',
      'auto.create.topics.enable': 'false',
    }),
  );
  const log4j = `-Dlog4j2.configurationFile=${join(repoRoot, 'dev', 'kafka', 'log4j2.properties')}`;
  execFileSync(
    java,
    [
      '-cp',
      `${libs}/*`,
      log4j,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      randomBytes(16).toString('base64url'),
      '-c',
      serverProperties,
      '--add-scram',
      `SCRAM-SHA-512=[name=${users.scram512.username},password=${users.scram512.password}]`,
      '--add-scram',
      `SCRAM-SHA-256=[name=${users.scram256.username},password=${users.scram256.password}]`,
    ],
    { stdio: 'pipe' },
  );
  const log = join(home, 'kafka.log');
  const child = startChild(
    java,
    ['-Xms128m', '-Xmx512m', '-cp', `${libs}/*`, log4j, 'kafka.Kafka', serverProperties],
    log,
  );
  const secure: SecureKafka = {
    saslSsl: `127.0.0.1:${saslPort}`,
    mutualTls: `127.0.0.1:${sslPort}`,
    plaintext: `127.0.0.1:${internal}`,
    users,
    log,
    stop: async () => {
      await stopChild(child);
      rmSync(join(home, 'data'), { recursive: true, force: true });
    },
  };
  const admin = new Kafka({
    clientId: 'secure-stack-probe',
    brokers: [secure.saslSsl],
    ssl: { ca: [readFileSync(pki.caFile, 'utf8')] },
    sasl: { mechanism: 'scram-sha-512', ...users.scram512 },
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  }).admin();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the secured broker exited; see ${log}`);
    try {
      await admin.connect();
      await admin.describeCluster();
      await admin.disconnect();
      return secure;
    } catch {
      await admin.disconnect().catch(() => undefined);
      if (Date.now() > deadline) {
        await secure.stop();
        throw new Error(`the secured broker did not serve SCRAM clients within ${timeoutMs} ms; see ${log}`);
      }
      await sleep(500);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// nginx: TLS and basic auth in front of the schema registry

function findNginx(): string | undefined {
  return ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((p) => existsSync(p));
}

/**
 * Debian's nginx binary, installed with apt-get when missing. The package's service is not
 * started by the install here (no init system; invoke-rc.d finds no runlevel) and is never used:
 * each test runs its own nginx process with its own config.
 */
export function ensureNginx(): string {
  let nginx = findNginx();
  if (nginx) return nginx;
  const install = () =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'nginx'], {
      encoding: 'utf8',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  let result = install();
  if (result.status !== 0) {
    spawnSync('apt-get', ['update'], { encoding: 'utf8' });
    result = install();
  }
  nginx = findNginx();
  if (!nginx) throw new Error(`could not install nginx with apt-get:\n${result.stderr ?? ''}`);
  return nginx;
}

export interface RegistryProxy {
  /** The registry's Confluent-compatible API through nginx: `https://127.0.0.1:<port>/apis/ccompat/v7`. */
  url: string;
  user: string;
  password: string;
  stop(): Promise<void>;
}

/** nginx on a free loopback port: TLS with the test CA's server certificate, basic auth, proxying to `upstream`. */
export async function startRegistryProxy(
  pki: TestPki,
  upstream = 'http://127.0.0.1:8081',
): Promise<RegistryProxy> {
  const nginx = ensureNginx();
  const dir = mkdtempSync(join(pki.dir, 'nginx-'));
  const port = await freePort();
  const user = 'registry-user';
  const password = `reg-${randomBytes(9).toString('base64url')}`;
  const hash = execFileSync('openssl', ['passwd', '-apr1', password], { encoding: 'utf8' }).trim();
  writeFileSync(join(dir, 'htpasswd'), `${user}:${hash}\n`);
  const config = join(dir, 'nginx.conf');
  writeFileSync(
    config,
    [
      // Run as root, workers must still read the htpasswd in this 0700 temp dir.
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      'daemon off;',
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 64; }',
      'http {',
      `  access_log ${join(dir, 'access.log')};`,
      `  client_body_temp_path ${join(dir, 'body')};`,
      `  proxy_temp_path ${join(dir, 'proxy')};`,
      `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
      `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
      `  scgi_temp_path ${join(dir, 'scgi')};`,
      '  server {',
      `    listen 127.0.0.1:${port} ssl;`,
      `    ssl_certificate ${pki.serverCertFile};`,
      `    ssl_certificate_key ${pki.serverKeyFile};`,
      '    auth_basic "schema registry";',
      `    auth_basic_user_file ${join(dir, 'htpasswd')};`,
      `    location / { proxy_pass ${upstream}; }`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const child = startChild(
    nginx,
    ['-p', dir, '-e', join(dir, 'error.log'), '-c', config],
    join(dir, 'stdout.log'),
  );
  const proxy: RegistryProxy = {
    url: `https://127.0.0.1:${port}/apis/ccompat/v7`,
    user,
    password,
    stop: () => stopChild(child, 5_000),
  };
  const deadline = Date.now() + 15_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await proxy.stop();
      throw new Error(`nginx did not start; see ${join(dir, 'error.log')}`);
    }
    await sleep(100);
  }
  return proxy;
}

async function portOpen(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
