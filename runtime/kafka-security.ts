// Kafka's client security settings, with Kafka's own names and meaning (`security.protocol`,
// `sasl.mechanism`, `sasl.jaas.config` in JAAS syntax, PEM `ssl.*` stores), checked and translated
// to kafkajs' `sasl` and `ssl` options, so a block copied from a managed service's Java client
// snippet works as is. The same PEM handling serves the schema registry client
// (`schema.registry.ssl.*`) and the HTTPS REST listener (`listeners.https.ssl.*`).
//
// Two steps: the `*Problems` functions check config text without touching the disk (config
// validation, every problem at once, against its key); the `load*` functions read and verify the
// PEM material when the worker starts. No message ever contains a password, a JAAS config, key
// material or a value taken from a secret key: they name keys and files instead.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import type { ConfigKey, ConfigProblem } from './config/config-spec.js';

/** Kafka properties with the client's prefix removed (`ssl.truststore.location`, not `consumer.ssl...`). */
export type Properties = Readonly<Record<string, string>>;
/** The full name of a key as the user wrote it, for messages (adds back `consumer.`, `schema.registry.`...). */
export type KeyName = (key: string) => string;

// ---------------------------------------------------------------------------------------------
// JAAS syntax (org.apache.kafka.common.security.JaasConfig): `<LoginModule> <flag> (<key>=<value>)*;`
// tokenized as Kafka's StreamTokenizer does: whitespace is 0-32, `;` and `=` stand alone, `/`
// starts a comment (`//`, `/* */`, or a lone `/` to the end of the line), values are words or
// strings in single or double quotes with Java escapes; a string ends at its quote or the line end.

export interface JaasModule {
  loginModule: string;
  controlFlag: 'required' | 'requisite' | 'sufficient' | 'optional';
  options: Record<string, string>;
}

/** A JAAS text that does not parse; the message names keys and positions, never values. */
export class JaasSyntaxError extends Error {}

interface Token {
  kind: 'word' | 'symbol';
  text: string;
}

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

function tokenize(text: string, symbols: string): Token[] {
  const tokens: Token[] = [];
  const isWordChar = (ch: string) => {
    const c = ch.charCodeAt(0);
    return c > 32 && !(c >= 129 && c <= 159) && !symbols.includes(ch) && !`/"'`.includes(ch);
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch.charCodeAt(0) <= 32) i++;
    else if (ch === '/') {
      const end = text[i + 1] === '*' ? text.indexOf('*/', i + 2) : text.indexOf('\n', i);
      i = end === -1 ? text.length : end + (text[i + 1] === '*' ? 2 : 0);
    } else if (ch === '"' || ch === "'") {
      let value = '';
      let j = i + 1;
      while (j < text.length && text[j] !== ch && text[j] !== '\n' && text[j] !== '\r') {
        if (text[j] !== '\\' || j + 1 >= text.length) value += text[j++];
        else {
          const octal = /^[0-7]{1,3}/.exec(text.slice(j + 1, j + 4))?.[0] ?? '';
          const digits = octal.length === 3 && octal[0]! > '3' ? octal.slice(0, 2) : octal;
          if (digits !== '') {
            value += String.fromCharCode(parseInt(digits, 8));
            j += 1 + digits.length;
          } else {
            value += ESCAPES[text[j + 1]!] ?? text[j + 1];
            j += 2;
          }
        }
      }
      tokens.push({ kind: 'word', text: value });
      i = text[j] === ch ? j + 1 : j;
    } else if (!isWordChar(ch)) {
      tokens.push({ kind: 'symbol', text: ch });
      i++;
    } else {
      let j = i;
      while (j < text.length && isWordChar(text[j]!)) j++;
      tokens.push({ kind: 'word', text: text.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}

const FLAGS = ['required', 'requisite', 'sufficient', 'optional'] as const;
const isSymbol = (token: Token | undefined, symbol: string): boolean =>
  token?.kind === 'symbol' && token.text === symbol;
const JAAS_FORM = 'the form is `<LoginModule> required <key>="<value>" ...;`';

/** Parses login modules from `tokens[at]` until the end or a `}`; returns them and where it stopped. */
function parseModules(tokens: Token[], at: number): { modules: JaasModule[]; next: number } {
  const modules: JaasModule[] = [];
  let i = at;
  while (i < tokens.length && !isSymbol(tokens[i], '}')) {
    const name = tokens[i++]!;
    if (name.kind !== 'word') throw new JaasSyntaxError(`expected a login module class name (${JAAS_FORM})`);
    const flag = tokens[i++];
    if (flag === undefined)
      throw new JaasSyntaxError('Login module control flag not specified in JAAS config');
    const controlFlag = FLAGS.find((f) => f === flag.text.toLowerCase());
    if (flag.kind !== 'word' || controlFlag === undefined)
      throw new JaasSyntaxError(
        `Invalid login module control flag in JAAS config: after the login module comes required, requisite, sufficient or optional (${JAAS_FORM})`,
      );
    const options: Record<string, string> = {};
    while (i < tokens.length && !isSymbol(tokens[i], ';')) {
      const key = tokens[i++]!;
      const equals = tokens[i++];
      const value = tokens[i++];
      if (key.kind !== 'word' || !isSymbol(equals, '=') || value?.kind !== 'word') {
        const which = key.kind === 'word' ? `'${key.text}'` : 'an option';
        throw new JaasSyntaxError(
          `Value not specified for key ${which} in JAAS config; quote values that contain spaces, ';', '=' or '/' (${JAAS_FORM})`,
        );
      }
      options[key.text] = value.text;
    }
    if (!isSymbol(tokens[i], ';'))
      throw new JaasSyntaxError('JAAS config entry not terminated by semi-colon');
    i++;
    modules.push({ loginModule: name.text, controlFlag, options });
  }
  return { modules, next: i };
}

/** Parses a `sasl.jaas.config` value (one or more login modules, each ending in `;`). */
export function parseJaasConfig(text: string): JaasModule[] {
  const tokens = tokenize(text, ';=');
  const { modules } = parseModules(tokens, 0);
  if (modules.length === 0)
    throw new JaasSyntaxError(`Login module not specified in JAAS config (${JAAS_FORM})`);
  return modules;
}

/** Parses a JAAS login configuration file: `<Entry> { <LoginModule> <flag> <options>; ... };` per entry. */
export function parseJaasFile(text: string): Map<string, JaasModule[]> {
  const tokens = tokenize(text, ';={}');
  const entries = new Map<string, JaasModule[]>();
  let i = 0;
  while (i < tokens.length) {
    const name = tokens[i++]!;
    if (name.kind !== 'word' || !isSymbol(tokens[i++], '{'))
      throw new JaasSyntaxError(
        'expected `<EntryName> {` (the form is `KafkaConnect { <LoginModule> required <key>="<value>"; };`)',
      );
    const { modules, next } = parseModules(tokens, i);
    if (!isSymbol(tokens[next], '}')) throw new JaasSyntaxError(`entry ${name.text} is not closed by '}'`);
    i = next + 1;
    if (isSymbol(tokens[i], ';')) i++;
    entries.set(name.text, [...(entries.get(name.text) ?? []), ...modules]);
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// PEM stores (ssl.truststore.*, ssl.keystore.*, ssl.key.password), for clients and servers

/** Trust and identity read from PEM, ready for `tls.connect` / `https.createServer`. */
export interface TlsMaterial {
  /** The CAs to trust instead of the system's; absent: the system's CAs. */
  ca?: string[];
  /** The private key (PEM, maybe encrypted) and its certificate chain, for mutual TLS or a server. */
  key?: string;
  cert?: string;
  passphrase?: string;
  /** `ssl.endpoint.identification.algorithm=https` (default): the peer's name must match its certificate. */
  verifyHostname: boolean;
}

/** Node TLS client options for `material`: the chain is always verified, the host name unless disabled. */
export function tlsClientOptions(material: TlsMaterial): ConnectionOptions {
  return {
    rejectUnauthorized: true,
    ...(material.ca ? { ca: material.ca } : {}),
    ...(material.key ? { key: material.key, cert: material.cert, passphrase: material.passphrase } : {}),
    ...(material.verifyHostname ? {} : { checkServerIdentity: () => undefined }),
  };
}

const TRUST_CONVERSION =
  'convert it to PEM: `keytool -exportcert -rfc -keystore truststore.jks -alias <alias> > ca.pem` (JKS), ' +
  'or `openssl pkcs12 -in truststore.p12 -nokeys -out ca.pem` (PKCS12)';
const KEY_CONVERSION =
  'convert it to PEM: `keytool -importkeystore -srckeystore keystore.jks -destkeystore keystore.p12 -deststoretype PKCS12` ' +
  '(JKS only), then `openssl pkcs12 -in keystore.p12 -out keystore.pem` (the key encrypted with the PEM pass phrase ' +
  'you choose: set it as ssl.key.password; add -nodes for an unencrypted key)';

/** Which TLS keys a role reads: clients verify the server; a server presents its key and may ask for client certificates. */
export type TlsRole = 'client' | 'server';

const TLS_KEYS: Record<TlsRole, readonly string[]> = {
  client: [
    'ssl.truststore.type',
    'ssl.truststore.location',
    'ssl.truststore.certificates',
    'ssl.keystore.type',
    'ssl.keystore.location',
    'ssl.keystore.key',
    'ssl.keystore.certificate.chain',
    'ssl.key.password',
    'ssl.endpoint.identification.algorithm',
  ],
  server: [
    'ssl.keystore.type',
    'ssl.keystore.location',
    'ssl.keystore.key',
    'ssl.keystore.certificate.chain',
    'ssl.key.password',
    'ssl.truststore.type',
    'ssl.truststore.location',
    'ssl.truststore.certificates',
    'ssl.client.authentication',
  ],
};

/** Whether any trust or identity key is set (a TLS client with none of them trusts the system CAs). */
export const hasTlsKeys = (props: Properties): boolean =>
  Object.keys(props).some((key) => key.startsWith('ssl.') && key !== 'ssl.endpoint.identification.algorithm');

const set = (props: Properties, key: string): boolean => (props[key] ?? '').trim() !== '';

/** Problems with the `ssl.*` keys of `props` for `role`, from the text alone. */
export function tlsProblems(props: Properties, name: KeyName, role: TlsRole): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const problem = (key: string, message: string) => problems.push({ key: name(key), message });
  const known = TLS_KEYS[role];
  for (const key of Object.keys(props).filter((k) => k.startsWith('ssl.'))) {
    if (key === 'ssl.truststore.password' || key === 'ssl.keystore.password') {
      const store = key.split('.')[1]!;
      if (!/^(JKS|PKCS12)$/i.test(props[`ssl.${store}.type`] ?? ''))
        problem(
          key,
          `is not used: PEM ${store}s have no store password, remove it` +
            (store === 'keystore' ? ' (an encrypted key takes its pass phrase from ssl.key.password)' : ''),
        );
    } else if (!known.includes(key))
      problem(key, `is not supported here; the supported ssl keys are ${known.join(', ')}`);
  }
  for (const store of ['truststore', 'keystore'] as const) {
    const type = (props[`ssl.${store}.type`] ?? 'PEM').trim();
    if (/^(JKS|PKCS12)$/i.test(type))
      problem(
        `ssl.${store}.type`,
        `${type} stores are not supported (Node reads PEM only): ${store === 'truststore' ? TRUST_CONVERSION : KEY_CONVERSION}, then set ssl.${store}.type=PEM`,
      );
    else if (type.toUpperCase() !== 'PEM') problem(`ssl.${store}.type`, `must be PEM, got "${type}"`);
  }
  if (set(props, 'ssl.truststore.location') && set(props, 'ssl.truststore.certificates'))
    problem('ssl.truststore.location', 'and ssl.truststore.certificates are both set: keep one');
  const keyFile = set(props, 'ssl.keystore.location');
  const inlineKey = set(props, 'ssl.keystore.key');
  const inlineChain = set(props, 'ssl.keystore.certificate.chain');
  if (keyFile && (inlineKey || inlineChain))
    problem(
      'ssl.keystore.location',
      'and ssl.keystore.key / ssl.keystore.certificate.chain are both set: give the key and certificate either as one PEM file or inline',
    );
  else if (inlineKey !== inlineChain)
    problem(
      inlineKey ? 'ssl.keystore.certificate.chain' : 'ssl.keystore.key',
      `is required with ${name(inlineKey ? 'ssl.keystore.key' : 'ssl.keystore.certificate.chain')}: give the private key and its certificate chain (PEM) together`,
    );
  if (set(props, 'ssl.key.password') && !keyFile && !inlineKey)
    problem(
      'ssl.key.password',
      `is set but there is no key: set ${name('ssl.keystore.location')} (or ${name('ssl.keystore.key')})`,
    );
  const algorithm = props['ssl.endpoint.identification.algorithm'];
  if (algorithm !== undefined && !/^(https)?$/i.test(algorithm.trim()))
    problem(
      'ssl.endpoint.identification.algorithm',
      `must be https (verify that the certificate names the host, the default) or empty (do not check the name; the chain is still verified), got "${algorithm}"`,
    );
  if (role === 'server') {
    const clientAuth = (props['ssl.client.authentication'] ?? 'none').trim().toLowerCase();
    if (!['none', 'requested', 'required'].includes(clientAuth))
      problem('ssl.client.authentication', `must be none, requested or required, got "${clientAuth}"`);
    else if (
      clientAuth !== 'none' &&
      !set(props, 'ssl.truststore.location') &&
      !set(props, 'ssl.truststore.certificates')
    )
      problem(
        'ssl.client.authentication',
        `is ${clientAuth} but no truststore is set: set ${name('ssl.truststore.location')} to the CA that signs client certificates`,
      );
  }
  return problems;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const KEY_LABELS = new Set(['PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);

/**
 * The PEM blocks of `text`, re-wrapped as OpenSSL expects: Kafka accepts inline PEM on one line
 * (spaces for line breaks, as environment variables often carry it), Node does not.
 */
function pemBlocks(text: string): Array<{ label: string; pem: string }> {
  return [...text.matchAll(PEM_BLOCK)].map(([whole, label, body]) => {
    // Legacy encrypted keys carry `Proc-Type:` headers whose line breaks matter: keep them as given.
    if (body!.includes(':')) return { label: label!, pem: whole.trim() };
    const base64 = body!.replace(/\s+/g, '');
    const lines = base64.match(/.{1,64}/g) ?? [];
    return {
      label: label!,
      pem: [`-----BEGIN ${label}-----`, ...lines, `-----END ${label}-----`].join('\n'),
    };
  });
}

/** What a non-PEM store file looks like, for the conversion hint. */
function binaryStoreKind(bytes: Buffer): string | undefined {
  if (bytes.length >= 4 && bytes.readUInt32BE(0) === 0xfeedfeed) return 'a JKS keystore';
  if (bytes.length >= 2 && bytes[0] === 0x30 && (bytes[1]! & 0x80) !== 0) return 'a PKCS12 (or DER) file';
  return undefined;
}

interface Source {
  /** How messages name it: `ssl.truststore.location (/etc/ca.pem)` or `ssl.keystore.key`. */
  where: string;
  text: string;
}

function readSource(
  props: Properties,
  name: KeyName,
  fileKey: string,
  inlineKey: string,
  conversion: string,
  problem: (key: string, message: string) => void,
): Source | undefined {
  const path = props[fileKey]?.trim();
  if (path) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      problem(fileKey, `cannot read ${path}${code ? ` (${code})` : ''}`);
      return undefined;
    }
    const binary = binaryStoreKind(bytes);
    if (binary && !bytes.toString('latin1').includes('-----BEGIN ')) {
      problem(fileKey, `${path} is ${binary}, not PEM: ${conversion}`);
      return undefined;
    }
    return { where: `${name(fileKey)} (${path})`, text: bytes.toString('utf8') };
  }
  const inline = props[inlineKey];
  return inline?.trim() ? { where: name(inlineKey), text: inline } : undefined;
}

function certificatesOf(source: Source, problem: (message: string) => void): string[] | undefined {
  const certs = pemBlocks(source.text).filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) {
    problem(`${source.where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return undefined;
  }
  for (const [index, cert] of certs.entries()) {
    try {
      new X509Certificate(cert.pem);
    } catch {
      problem(`certificate ${index + 1} in ${source.where} is not a valid X.509 certificate`);
      return undefined;
    }
  }
  return certs.map((c) => c.pem);
}

/** Reads and verifies the TLS material `props` names; `problems` says what is wrong, per key. */
export function loadTls(
  props: Properties,
  name: KeyName,
  role: TlsRole,
): { material?: TlsMaterial; problems: ConfigProblem[] } {
  const problems = tlsProblems(props, name, role);
  if (problems.length > 0) return { problems };
  const problemAt = (key: string) => (message: string) => problems.push({ key: name(key), message });
  const problem = (key: string, message: string) => problemAt(key)(message);
  const material: TlsMaterial = {
    verifyHostname: (props['ssl.endpoint.identification.algorithm'] ?? 'https').trim() !== '',
  };

  const trust = readSource(
    props,
    name,
    'ssl.truststore.location',
    'ssl.truststore.certificates',
    TRUST_CONVERSION,
    problem,
  );
  if (trust) {
    const trustKey = set(props, 'ssl.truststore.location')
      ? 'ssl.truststore.location'
      : 'ssl.truststore.certificates';
    material.ca = certificatesOf(trust, problemAt(trustKey));
  }

  const identityKey = set(props, 'ssl.keystore.location') ? 'ssl.keystore.location' : 'ssl.keystore.key';
  const keySource = readSource(
    props,
    name,
    'ssl.keystore.location',
    'ssl.keystore.key',
    KEY_CONVERSION,
    problem,
  );
  if (keySource) {
    const chainSource = set(props, 'ssl.keystore.location')
      ? keySource
      : { where: name('ssl.keystore.certificate.chain'), text: props['ssl.keystore.certificate.chain']! };
    const keys = pemBlocks(keySource.text).filter((b) => KEY_LABELS.has(b.label));
    const chainKey = identityKey === 'ssl.keystore.location' ? identityKey : 'ssl.keystore.certificate.chain';
    const chain = certificatesOf(chainSource, problemAt(chainKey));
    const passphrase = props['ssl.key.password'];
    if (keys.length !== 1)
      problem(
        identityKey,
        `${keySource.where} must hold exactly one PEM private key (-----BEGIN PRIVATE KEY----- or ENCRYPTED PRIVATE KEY), found ${keys.length}`,
      );
    else {
      const key = privateKeyOf(
        keys[0]!.pem,
        passphrase,
        keySource.where,
        problemAt(passphrase ? 'ssl.key.password' : identityKey),
        name,
      );
      if (key && chain && !new X509Certificate(chain[0]!).checkPrivateKey(key))
        problem(
          chainKey,
          `the first certificate in ${chainSource.where} is not the certificate of the private key in ${keySource.where}`,
        );
      material.key = keys[0]!.pem;
      material.cert = chain?.join('\n');
      if (passphrase) material.passphrase = passphrase;
    }
  }
  if (role === 'server' && !material.key)
    problems.push({
      key: name('ssl.keystore.location'),
      message: `is required for an https listener: set it to a PEM file with the server's private key and certificate chain (or set ${name('ssl.keystore.key')} and ${name('ssl.keystore.certificate.chain')})`,
    });
  return problems.length > 0 ? { problems } : { material, problems };
}

function privateKeyOf(
  pem: string,
  passphrase: string | undefined,
  where: string,
  problem: (message: string) => void,
  name: KeyName,
): KeyObject | undefined {
  try {
    return createPrivateKey({ key: pem, format: 'pem', ...(passphrase ? { passphrase } : {}) });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (!passphrase && /PASSPHRASE|BAD_DECRYPT|INTERRUPTED_OR_CANCELLED/i.test(code))
      problem(`the private key in ${where} is encrypted: set ${name('ssl.key.password')} to its pass phrase`);
    else if (passphrase)
      problem(`does not decrypt the private key in ${where} (or the key is not valid PEM)`);
    else problem(`the private key in ${where} is not a valid PEM key`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Kafka clients: security.protocol, sasl.*, ssl.*

export const SECURITY_PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'] as const;
export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;
type Protocol = (typeof SECURITY_PROTOCOLS)[number];

/** Keys that belong to Kafka client security: applied per Kafka instance, not per consumer or producer. */
export const isSecurityKey = (key: string): boolean =>
  key === 'security.protocol' || key.startsWith('sasl.') || key.startsWith('ssl.');

/** Kafka Connect's `connector.client.config.override.policy=Principal` allows these overrides only. */
export const PRINCIPAL_KEYS: ReadonlySet<string> = new Set([
  'security.protocol',
  'sasl.mechanism',
  'sasl.jaas.config',
]);

const LOGIN_MODULES: Record<string, 'plain' | 'scram'> = {
  'org.apache.kafka.common.security.plain.PlainLoginModule': 'plain',
  'org.apache.kafka.common.security.scram.ScramLoginModule': 'scram',
};

const UNSUPPORTED_MECHANISMS: Record<string, string> = {
  GSSAPI: 'Kerberos (GSSAPI) is not supported by the Kafka client infer-connect uses (kafkajs)',
  OAUTHBEARER:
    'OAUTHBEARER is not supported: kafkajs needs a token provider written in code, and infer-connect does not fetch ' +
    'OAuth/OIDC tokens (sasl.oauthbearer.token.endpoint.url); use a PLAIN or SCRAM credential (e.g. a Confluent Cloud API key with PLAIN)',
  AWS_MSK_IAM:
    'AWS_MSK_IAM is not supported; enable SASL/SCRAM on the MSK cluster and use SCRAM-SHA-512 with a Secrets Manager credential',
};

const protocolOf = (props: Properties): string =>
  (props['security.protocol'] ?? 'PLAINTEXT').trim().toUpperCase();

/** Problems with the security keys of one Kafka client's properties, from the text alone. */
export function kafkaSecurityProblems(props: Properties, name: KeyName = (k) => k): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const problem = (key: string, message: string) => problems.push({ key: name(key), message });
  const protocol = protocolOf(props);
  if (!(SECURITY_PROTOCOLS as readonly string[]).includes(protocol)) {
    problem(
      'security.protocol',
      `must be one of ${SECURITY_PROTOCOLS.join(', ')}, got "${props['security.protocol']}"`,
    );
    return problems;
  }
  const usesSasl = protocol.startsWith('SASL_');
  const usesTls = protocol.endsWith('SSL');
  const saslKeys = Object.keys(props).filter((k) => k.startsWith('sasl.'));
  if (!usesSasl && saslKeys.length > 0)
    problem(
      'security.protocol',
      `is ${protocol} but ${saslKeys.map(name).join(', ')} ${saslKeys.length > 1 ? 'are' : 'is'} set: use SASL_SSL (or SASL_PLAINTEXT) to authenticate with SASL`,
    );
  if (!usesTls && hasTlsKeys(props))
    problem(
      'security.protocol',
      `is ${protocol} but ssl keys are set: use SSL or SASL_SSL to connect with TLS, or remove the ssl keys`,
    );
  if (usesTls) problems.push(...tlsProblems(props, name, 'client'));
  if (usesSasl) problems.push(...saslProblems(props, name, protocol));
  return problems;
}

function saslProblems(props: Properties, name: KeyName, protocol: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const problem = (key: string, message: string) => problems.push({ key: name(key), message });
  for (const key of Object.keys(props).filter((k) => k.startsWith('sasl.')))
    if (key !== 'sasl.mechanism' && key !== 'sasl.jaas.config')
      problem(key, 'is not supported; the supported sasl keys are sasl.mechanism and sasl.jaas.config');
  const mechanism = props['sasl.mechanism']?.trim().toUpperCase();
  if (!mechanism)
    problem(
      'sasl.mechanism',
      `is required with security.protocol=${protocol}: set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Kafka's default, GSSAPI, is Kerberos, which is not supported)`,
    );
  else if (UNSUPPORTED_MECHANISMS[mechanism]) problem('sasl.mechanism', UNSUPPORTED_MECHANISMS[mechanism]);
  else if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism))
    problem(
      'sasl.mechanism',
      `must be one of ${SASL_MECHANISMS.join(', ')}, got "${props['sasl.mechanism']}"`,
    );
  const jaas = props['sasl.jaas.config'];
  if (!jaas?.trim()) {
    problem(
      'sasl.jaas.config',
      `is required with security.protocol=${protocol}: set it to ` +
        '`org.apache.kafka.common.security.plain.PlainLoginModule required username="<user>" password="<password>";` ' +
        '(or ScramLoginModule for SCRAM), with the password from ${file:...} or ${env:...}',
    );
    return problems;
  }
  const login = credentialsOf(jaas);
  if ('problem' in login) problem('sasl.jaas.config', login.problem);
  return problems;
}

/** The username and password of a `sasl.jaas.config` value, or what is wrong with it (never echoing it). */
function credentialsOf(jaas: string): { username: string; password: string } | { problem: string } {
  let modules: JaasModule[];
  try {
    modules = parseJaasConfig(jaas);
  } catch (error) {
    return { problem: `is not valid JAAS: ${(error as Error).message}` };
  }
  if (modules.length !== 1)
    return { problem: `JAAS config property contains ${modules.length} login modules, should be 1 module` };
  const [{ loginModule, options }] = modules as [JaasModule];
  if (!LOGIN_MODULES[loginModule]) {
    const hint = /OAuthBearer/i.test(loginModule)
      ? UNSUPPORTED_MECHANISMS['OAUTHBEARER']
      : /Krb5|kerberos/i.test(loginModule)
        ? UNSUPPORTED_MECHANISMS['GSSAPI']
        : 'use org.apache.kafka.common.security.plain.PlainLoginModule or org.apache.kafka.common.security.scram.ScramLoginModule';
    return { problem: `login module ${loginModule} is not supported: ${hint}` };
  }
  if (options['tokenauth']?.toLowerCase() === 'true')
    return { problem: 'delegation tokens (tokenauth=true) are not supported; use a SCRAM user credential' };
  const missing = ['username', 'password'].filter((k) => options[k] === undefined || options[k] === '');
  if (missing.length > 0)
    return {
      problem: `the login module needs ${missing.join(' and ')}: \`${loginModule} required username="<user>" password="<password>";\``,
    };
  return { username: options['username']!, password: options['password']! };
}

/** kafkajs `ssl` and `sasl` options for one client, read from `props` (PEM files read now). */
export interface KafkaSecurityOptions {
  ssl?: ConnectionOptions;
  sasl?: SASLOptions;
}

export function loadKafkaSecurity(
  props: Properties,
  name: KeyName = (k) => k,
): { options?: KafkaSecurityOptions; problems: ConfigProblem[] } {
  const problems = kafkaSecurityProblems(props, name);
  if (problems.length > 0) return { problems };
  const protocol = protocolOf(props) as Protocol;
  const options: KafkaSecurityOptions = {};
  if (protocol.endsWith('SSL')) {
    const tls = loadTls(props, name, 'client');
    if (!tls.material) return { problems: tls.problems };
    options.ssl = tlsClientOptions(tls.material);
  }
  if (protocol.startsWith('SASL_')) {
    const { username, password } = credentialsOf(props['sasl.jaas.config']!) as {
      username: string;
      password: string;
    };
    const mechanism = props['sasl.mechanism']!.trim().toLowerCase() as
      'plain' | 'scram-sha-256' | 'scram-sha-512';
    options.sasl = { mechanism, username, password };
  }
  return { options, problems };
}

/**
 * What a client's security is, for the startup log and error messages: protocol, mechanism,
 * user name, where trust comes from. Never a password or key material.
 */
export function describeKafkaSecurity(props: Properties): Record<string, string> {
  const protocol = protocolOf(props);
  const out: Record<string, string> = { 'security.protocol': protocol };
  if (protocol.startsWith('SASL_')) {
    out['sasl.mechanism'] = props['sasl.mechanism']?.trim().toUpperCase() ?? '';
    const login = props['sasl.jaas.config'] ? credentialsOf(props['sasl.jaas.config']) : undefined;
    if (login && 'username' in login) out['user'] = login.username;
  }
  if (protocol.endsWith('SSL')) {
    out['trust'] = props['ssl.truststore.location']?.trim()
      ? props['ssl.truststore.location'].trim()
      : props['ssl.truststore.certificates']?.trim()
        ? 'ssl.truststore.certificates'
        : 'the system CAs';
    if (set(props, 'ssl.keystore.location') || set(props, 'ssl.keystore.key'))
      out['client certificate'] = props['ssl.keystore.location']?.trim() || 'ssl.keystore.key';
    if ((props['ssl.endpoint.identification.algorithm'] ?? 'https').trim() === '')
      out['host name verification'] = 'off';
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Config spec keys (documentation, types, secrecy); the checks above do the validation.

/** The TLS keys of a client or server under `prefix` (`schema.registry.`, `listeners.https.`). */
export function tlsConfigKeys(prefix: string, group: string, role: TlsRole, peer: string): ConfigKey[] {
  const keys: ConfigKey[] = [
    {
      name: `${prefix}ssl.truststore.type`,
      type: 'string',
      default: 'PEM',
      importance: 'low',
      group,
      documentation: `Format of the trust store. Only PEM is read; JKS and PKCS12 are refused with the command that converts them.`,
    },
    {
      name: `${prefix}ssl.truststore.location`,
      type: 'string',
      default: null,
      importance: 'medium',
      group,
      documentation:
        role === 'client'
          ? `PEM file of the CA certificates that sign ${peer}'s certificate. Unset: the system's CAs.`
          : `PEM file of the CA certificates that sign client certificates, for ${prefix}ssl.client.authentication.`,
    },
    {
      name: `${prefix}ssl.truststore.certificates`,
      type: 'string',
      default: null,
      importance: 'low',
      group,
      documentation: `The same CA certificates inline (PEM text), instead of ${prefix}ssl.truststore.location.`,
    },
    {
      name: `${prefix}ssl.keystore.type`,
      type: 'string',
      default: 'PEM',
      importance: 'low',
      group,
      documentation:
        'Format of the key store. Only PEM is read; JKS and PKCS12 are refused with the command that converts them.',
    },
    {
      name: `${prefix}ssl.keystore.location`,
      type: 'string',
      default: null,
      importance: role === 'server' ? 'high' : 'medium',
      group,
      documentation:
        role === 'client'
          ? `PEM file with the private key and certificate chain this worker presents to ${peer} (mutual TLS).`
          : "PEM file with the server's private key and certificate chain. Required for an `https://` listener (or the two inline keys below).",
    },
    {
      name: `${prefix}ssl.keystore.key`,
      type: 'password',
      default: null,
      importance: 'low',
      group,
      documentation: `The private key inline (PEM text), with ${prefix}ssl.keystore.certificate.chain, instead of ${prefix}ssl.keystore.location.`,
    },
    {
      name: `${prefix}ssl.keystore.certificate.chain`,
      type: 'string',
      default: null,
      importance: 'low',
      group,
      documentation: `The certificate chain of ${prefix}ssl.keystore.key inline (PEM text).`,
    },
    {
      name: `${prefix}ssl.key.password`,
      type: 'password',
      default: null,
      importance: 'medium',
      group,
      documentation: 'Pass phrase of an encrypted private key (`-----BEGIN ENCRYPTED PRIVATE KEY-----`).',
    },
  ];
  if (role === 'client')
    keys.push({
      name: `${prefix}ssl.endpoint.identification.algorithm`,
      type: 'string',
      default: 'https',
      importance: 'low',
      group,
      documentation: `\`https\` checks that ${peer}'s certificate names the host connected to; empty skips that check (the certificate chain is still verified).`,
    });
  else
    keys.push({
      name: `${prefix}ssl.client.authentication`,
      type: 'string',
      default: 'none',
      validValues: ['none', 'requested', 'required'],
      importance: 'medium',
      group,
      documentation: `Mutual TLS: \`required\` refuses clients without a certificate signed by ${prefix}ssl.truststore.location; \`requested\` asks for one and refuses an untrusted one.`,
    });
  return keys;
}

/** The worker-level Kafka security keys; `consumer.`/`producer.`/`admin.` prefixed copies override them per client kind. */
export function kafkaSecurityConfigKeys(group: string): ConfigKey[] {
  return [
    {
      name: 'security.protocol',
      type: 'string',
      default: 'PLAINTEXT',
      validValues: SECURITY_PROTOCOLS,
      importance: 'high',
      group,
      documentation:
        'How every Kafka client of the worker connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS, what managed Kafka services use). `consumer.`, `producer.` and `admin.` prefixed keys override it (and the keys below) per client kind; connectors override them with `consumer.override.`/`producer.override.`/`admin.override.`.',
    },
    {
      name: 'sasl.mechanism',
      type: 'string',
      default: null,
      importance: 'high',
      group,
      documentation:
        'SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. GSSAPI, OAUTHBEARER and AWS_MSK_IAM are refused (kafkajs cannot use them from configuration).',
    },
    {
      name: 'sasl.jaas.config',
      type: 'password',
      default: null,
      importance: 'high',
      group,
      documentation:
        'Credentials in Kafka\'s JAAS syntax: `org.apache.kafka.common.security.plain.PlainLoginModule required username="<user>" password="<password>";` (ScramLoginModule for SCRAM). Put the password in a `${file:...}` or `${env:...}` reference.',
    },
    ...tlsConfigKeys('', group, 'client', 'the brokers'),
  ];
}
