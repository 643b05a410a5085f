// The worker's REST API: Kafka Connect's paths, JSON shapes and status codes over a Herder, so
// existing tooling and scripts work unchanged. Every error answers Kafka Connect's
// `{"error_code": <http status>, "message": "..."}`; client mistakes get a 4xx that says what to
// fix, and only failures of the worker itself answer 5xx (logged with their stack).
//
// Status-code decisions where Kafka Connect is silent or unhelpful:
// - A task id that is not a non-negative integer answers 400 (Kafka Connect's Jersey answers a
//   bare 404); 400 with the reason tells the caller the id, not the connector, is wrong.
// - An unknown `expand` value answers 400 (Kafka Connect ignores it and returns empty objects).
// - `POST /connectors` without `config` answers 400 (Kafka Connect answers 500).
// - A body with a media type other than JSON answers 415; an empty JSON body counts as no body.
// - An invalid log level in `PUT /admin/loggers/{logger}` answers 400 (Kafka Connect answers 404).
// - `GET /health` answers 503 for both `starting` and `unhealthy` (KIP-1017 uses 500 for the
//   latter) so load balancers and probes see one "not ready" code.
//
// Security, as Kafka Connect offers it: an `https://` listener (PEM key and chain, optional mutual
// TLS), HTTP basic auth over the users of its BasicAuthSecurityRestExtension (every path, `/health`
// included, as its JAAS filter does; 401 with Kafka Connect's message and a `WWW-Authenticate`
// challenge), a body limit (413), and CORS only when `access.control.allow.origin` is set.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController } from 'fastify';
import type {
  FastifyBaseLogger,
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HTTPMethods,
} from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { duplicateJsonKey, duplicateKeyMessage, parseProperties } from './config/config-providers.js';
import { errorMessage } from './error-catalogue.js';
import { ConnectError } from './errors.js';
import { HerderError } from './herder.js';
import type { ConnectorOffsets, Herder } from './herder.js';
import { JaasSyntaxError, parseJaasFile, type TlsMaterial } from './kafka-security.js';
import { registerStatusPage } from './status-page.js';

export interface RestServerOptions {
  herder: Herder;
  /** Served at `GET /metrics`. */
  metrics: Registry;
  logger: Logger;
  /** Kafka Connect's `listeners`: one `http://` or `https://host:port` URL. Default `http://127.0.0.1:8083`. */
  listeners?: string;
  /** Largest accepted request body in bytes (larger answers 413). Default 1 MiB. */
  bodyLimit?: number;
  /** Required for an `https://` listener: the server's key and chain, and the CAs of client certificates. */
  tls?: TlsMaterial & { clientAuthentication: 'none' | 'requested' | 'required' };
  /** HTTP basic auth for every request, against these users and passwords (`loadBasicAuthUsers`). */
  basicAuth?: { users: ReadonlyMap<string, string> };
  /** CORS: allowed origins (`*` for any) and methods; absent or no origins: no CORS headers. */
  cors?: { origins: readonly string[]; methods: readonly string[] };
  /**
   * Hides known secret values in every error message answered (the worker's SecretRedactor), in
   * case one reaches an error the herder did not redact. Default: messages as they are.
   */
  redact?: (text: string) => string;
}

export interface RestServer {
  /** The Fastify instance; tests call `app.inject()` without opening a socket. */
  readonly app: FastifyInstance;
  /** Binds where `listeners` says and resolves with the bound address, e.g. `http://127.0.0.1:8083`. */
  listen(): Promise<string>;
  /** Stops accepting connections and waits for in-flight requests. Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_LISTENERS = 'http://127.0.0.1:8083';

/** Parses Kafka Connect's `listeners` value: one `http://` or `https://` listener. */
export function parseListeners(listeners: string): { host: string; port: number } {
  const { host, port } = parseListenerUrl(listeners);
  return { host, port };
}

function parseListenerUrl(listeners: string): { https: boolean; host: string; port: number } {
  const entries = listeners
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const invalid = (why: string) =>
    new ConnectError('REST_LISTENERS_INVALID', `listeners "${listeners}" ${why}`, { stage: 'CONFIG' });
  if (entries.length !== 1) throw invalid('must name exactly one URL, e.g. http://127.0.0.1:8083');
  let url: URL;
  try {
    url = new URL(entries[0]!);
  } catch {
    throw invalid('is not a URL; use http://<host>:<port>, e.g. http://127.0.0.1:8083');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid(`uses ${url.protocol}; use an http:// or https:// listener`);
  const https = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? (https ? 443 : 80) : Number(url.port);
  return { https, host: host === '' ? '127.0.0.1' : host, port };
}

export function createRestServer(options: RestServerOptions): RestServer {
  const { herder, metrics, logger, tls } = options;
  const listener = parseListenerUrl(options.listeners ?? DEFAULT_LISTENERS);
  if (listener.https !== (tls !== undefined))
    throw new ConnectError(
      'REST_LISTENERS_INVALID',
      errorMessage('REST_LISTENERS_INVALID', {
        listeners: options.listeners ?? DEFAULT_LISTENERS,
        details: listener.https
          ? 'is https:// but no server key and certificate were given (listeners.https.ssl.keystore.*)'
          : 'is http:// but a server key and certificate were given: use https://',
      }),
      { stage: 'CONFIG' },
    );
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;

  const common = {
    loggerInstance: logger as FastifyBaseLogger,
    logController: new DebugRequestLog(),
    bodyLimit,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1000 },
    clientErrorHandler: kafkaConnectClientError,
    frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
      const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      void sendError(reply, status, error.message);
    },
  };
  // The instance type differs only in its `server` (http vs https); routes and hooks are the same.
  const app = (tls
    ? Fastify({
        ...common,
        https: {
          key: tls.key,
          cert: tls.cert,
          ...(tls.passphrase ? { passphrase: tls.passphrase } : {}),
          ...(tls.ca ? { ca: tls.ca } : {}),
          requestCert: tls.clientAuthentication !== 'none',
          rejectUnauthorized: tls.clientAuthentication === 'required',
        },
      })
    : Fastify(common)) as unknown as FastifyInstance;

  // Only JSON bodies: drop Fastify's text/plain parser so other media types answer 415.
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  // Order: CORS (a preflight carries no credentials), then authentication (unknown paths too, so
  // they reveal nothing), then unknown routes; all before any body is read.
  if (options.cors && options.cors.origins.length > 0) app.addHook('onRequest', corsHook(options.cors));
  if (tls?.clientAuthentication === 'requested') app.addHook('onRequest', untrustedClientCertificateHook);
  if (options.basicAuth) app.addHook('onRequest', basicAuthHook(options.basicAuth.users));
  app.addHook('onRequest', async (request, reply) => {
    // Answer unknown routes before reading (and maybe rejecting) a body.
    if (request.is404) return sendError(reply, 404, 'HTTP 404 Not Found');
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, 404, 'HTTP 404 Not Found'));
  const redact = options.redact ?? ((text: string) => text);
  app.setErrorHandler((error: unknown, request, reply) => {
    const { status, message } = describeError(error, bodyLimit);
    const line = `REST request ${request.method} ${request.url}`;
    if (status >= 500) request.log.error({ err: error }, `${line} failed`);
    else request.log.debug({ err: error }, `${line} rejected`);
    return sendError(reply, status, redact(message));
  });

  registerRoutes(app, herder, metrics);
  registerStatusPage(app);

  let closing: Promise<void> | undefined;
  return {
    app,
    async listen() {
      return app.listen({ host: listener.host, port: listener.port });
    },
    close() {
      closing ??= app.close();
      return closing;
    },
  };
}

/** Fastify's per-request log lines, at debug so the hot path stays quiet; failures keep their level. */
class DebugRequestLog extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error) super.requestCompleted(error, request, reply);
    else reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }

  override routeNotFound(request: FastifyRequest): void {
    request.log.debug(`Route ${request.method}:${request.url} not found`);
  }
}

type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
type Params = Record<string, string>;
type Query = Record<string, string | string[] | undefined>;

const ALL_METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

function registerRoutes(app: FastifyInstance, herder: Herder, metrics: Registry): void {
  const routes = new Map<string, Map<HTTPMethods, Handler>>();
  const route = (method: HTTPMethods, url: string, handler: Handler) => {
    const methods = routes.get(url) ?? new Map<HTTPMethods, Handler>();
    methods.set(method, handler);
    routes.set(url, methods);
  };
  const params = (request: FastifyRequest) => request.params as Params;
  const query = (request: FastifyRequest) => request.query as Query;
  const connectorName = (request: FastifyRequest) => params(request)['name']!;
  const taskId = (request: FastifyRequest) => parseTaskId(params(request)['task']!);

  route('GET', '/', () => herder.serverInfo());

  route('GET', '/health', async (_request, reply) => {
    const health = herder.health();
    return reply.code(health.status === 'healthy' ? 200 : 503).send(health);
  });

  route('GET', '/metrics', async (_request, reply) => {
    const text = await metrics.metrics();
    return reply.type(metrics.contentType).send(text);
  });

  route('GET', '/connectors', async (request) => {
    const expand = queryList(query(request), 'expand');
    const names = herder.connectorNames();
    if (expand === undefined) return names;
    for (const value of expand) {
      if (value !== 'status' && value !== 'info') {
        throw badRequest(`Unknown expand value "${value}"; use expand=status and/or expand=info`);
      }
    }
    const out = new Map<string, Record<string, unknown>>();
    for (const name of names) {
      try {
        const entry: Record<string, unknown> = {};
        if (expand.includes('status')) entry['status'] = herder.connectorStatus(name);
        if (expand.includes('info')) entry['info'] = herder.connectorInfo(name);
        out.set(name, entry);
      } catch (error) {
        // Deleted between listing and lookup: leave it out, as Kafka Connect does.
        if (error instanceof HerderError && error.httpStatus === 404) continue;
        throw error;
      }
    }
    return Object.fromEntries(out);
  });

  route('POST', '/connectors', async (request, reply) => {
    const body = requireObject(request.body, 'a JSON object like {"name": "...", "config": {...}}');
    if (typeof body['name'] !== 'string' || body['name'].trim() === '') {
      throw badRequest('Connector name is required: set "name" to a non-empty string in the request body');
    }
    const name = body['name'].trim();
    if (body['config'] === undefined) {
      throw badRequest('Connector config is required: set "config" to an object of config keys');
    }
    const config = requireObject(body['config'], 'an object of config keys', '"config"');
    const initialState = body['initial_state'];
    if (initialState !== undefined && initialState !== null && initialState !== 'RUNNING') {
      throw badRequest(
        `initial_state ${JSON.stringify(initialState)} is not supported; create the connector, ` +
          `then PUT /connectors/${name}/pause or /stop`,
      );
    }
    const { info } = await herder.putConnectorConfig(name, withName(name, config), false);
    return reply.code(201).header('location', connectorLocation(name)).send(info);
  });

  route('GET', '/connectors/:name', async (request) => herder.connectorInfo(connectorName(request)));

  route('DELETE', '/connectors/:name', async (request, reply) => {
    await herder.deleteConnector(connectorName(request));
    return reply.code(204).send();
  });

  route('GET', '/connectors/:name/config', async (request) => herder.connectorConfig(connectorName(request)));

  route('PUT', '/connectors/:name/config', async (request, reply) => {
    const name = connectorName(request);
    const config = requireObject(request.body, 'an object of config keys');
    const { created, info } = await herder.putConnectorConfig(name, withName(name, config), true);
    if (created) reply.code(201).header('location', connectorLocation(name));
    return reply.send(info);
  });

  route('PATCH', '/connectors/:name/config', async (request) => {
    const name = connectorName(request);
    const patch = requireObject(request.body, 'an object of config keys to change (null removes a key)');
    if ('name' in patch) checkConfigName(name, patch['name']);
    return herder.patchConnectorConfig(name, patch);
  });

  route('GET', '/connectors/:name/status', async (request) => herder.connectorStatus(connectorName(request)));

  route('POST', '/connectors/:name/restart', async (request, reply) => {
    const includeTasks = queryBoolean(query(request), 'includeTasks', false);
    const onlyFailed = queryBoolean(query(request), 'onlyFailed', false);
    const state = await herder.restartConnector(connectorName(request), { includeTasks, onlyFailed });
    // Kafka Connect: a plain connector restart answers 204; with tasks or onlyFailed, 202 + state.
    if (!includeTasks && !onlyFailed) return reply.code(204).send();
    return reply.code(202).send(state);
  });

  // Kafka Connect 4.1: pause and resume answer 202, stop 204.
  for (const [action, run, status] of [
    ['pause', (name: string) => herder.pauseConnector(name), 202],
    ['resume', (name: string) => herder.resumeConnector(name), 202],
    ['stop', (name: string) => herder.stopConnector(name), 204],
  ] as const) {
    route('PUT', `/connectors/:name/${action}`, async (request, reply) => {
      await run(connectorName(request));
      return reply.code(status).send();
    });
  }

  // KIP-558: `{"<name>": {"topics": [...]}}`; reset answers 202 with no body.
  route('GET', '/connectors/:name/topics', async (request) => {
    const name = connectorName(request);
    return { [name]: herder.connectorActiveTopics(name) };
  });

  route('PUT', '/connectors/:name/topics/reset', async (request, reply) => {
    herder.resetConnectorActiveTopics(connectorName(request));
    return reply.code(202).send();
  });

  // KIP-495: `{"<logger>": {"level": "INFO", "last_modified": null}}`.
  route('GET', '/admin/loggers', async () => herder.loggerLevels());

  route('GET', '/admin/loggers/:logger', async (request) => herder.loggerLevel(params(request)['logger']!));

  route('PUT', '/admin/loggers/:logger', async (request, reply) => {
    const body = requireObject(request.body, '{"level": "<OFF|FATAL|ERROR|WARN|INFO|DEBUG|TRACE>"}');
    const level = body['level'];
    if (typeof level !== 'string' || level === '') {
      throw new HerderError(
        400,
        'LOG_LEVEL_INVALID',
        "Desired 'level' parameter was not specified in request.",
      );
    }
    const changed = herder.setLoggerLevel(params(request)['logger']!, level);
    // scope=cluster: a standalone worker is the whole cluster; Kafka Connect answers 204 for it.
    // Any other scope is the worker's (Kafka Connect logs unknown scopes and applies them so too).
    const scope = query(request)['scope'];
    if (typeof scope === 'string' && scope.toLowerCase() === 'cluster') return reply.code(204).send();
    return changed;
  });

  route('GET', '/connectors/:name/offsets', async (request) =>
    herder.connectorOffsets(connectorName(request)),
  );

  route('PATCH', '/connectors/:name/offsets', async (request) => {
    const offsets = parseOffsetsBody(request.body);
    return { message: await herder.alterConnectorOffsets(connectorName(request), offsets) };
  });

  route('DELETE', '/connectors/:name/offsets', async (request) => ({
    message: await herder.resetConnectorOffsets(connectorName(request)),
  }));

  route('GET', '/connectors/:name/tasks', async (request) => herder.taskConfigs(connectorName(request)));

  route('GET', '/connectors/:name/tasks/:task/status', async (request) =>
    herder.taskStatus(connectorName(request), taskId(request)),
  );

  route('POST', '/connectors/:name/tasks/:task/restart', async (request, reply) => {
    await herder.restartTask(connectorName(request), taskId(request));
    return reply.code(204).send();
  });

  route('GET', '/connector-plugins', async (request) =>
    herder.plugins(queryBoolean(query(request), 'connectorsOnly', true)),
  );

  route('GET', '/connector-plugins/:plugin/config', async (request) =>
    herder.pluginConfig(params(request)['plugin']!),
  );

  route('PUT', '/connector-plugins/:plugin/config/validate', async (request) => {
    const plugin = params(request)['plugin']!;
    const config = requireObject(request.body, 'an object of config keys');
    const included = config['connector.class'];
    if (typeof included === 'string' && !samePlugin(included, plugin)) {
      throw badRequest(`Included connector type ${String(included)} does not match request type ${plugin}`);
    }
    // 200 even when error_count > 0: the report is the answer, as in Kafka Connect.
    return herder.validateConfig(plugin, config);
  });

  for (const [url, methods] of routes) {
    for (const [method, handler] of methods) app.route({ method, url, handler });
    const allowed = [...methods.keys()];
    const others = ALL_METHODS.filter((m) => !methods.has(m) && !(m === 'HEAD' && methods.has('GET')));
    const allow = (methods.has('GET') ? [...allowed, 'HEAD'] : allowed).join(', ');
    app.route({
      method: others,
      url,
      // onRequest: answer before any body is read or rejected.
      onRequest: async (_request, reply) => {
        reply.header('allow', allow);
        return sendError(reply, 405, 'HTTP 405 Method Not Allowed');
      },
      handler: async () => undefined,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Security hooks

/** Kafka Connect's JaasBasicAuthFilter answer, for missing, malformed and wrong credentials alike. */
const UNAUTHORIZED = 'User cannot access the resource.';
const REALM = 'Basic realm="infer-connect", charset="UTF-8"';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * Checks `Authorization: Basic ...` as Kafka Connect's filter parses it (scheme case-insensitive,
 * user up to the first colon, non-empty), comparing passwords in constant time. Nothing about the
 * credentials is logged.
 */
function basicAuthHook(users: ReadonlyMap<string, string>) {
  const digests = new Map([...users].map(([user, password]) => [user, digest(password)]));
  const dummy = digest('');
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const space = header.indexOf(' ');
    let accepted = false;
    if (space > 0 && header.slice(0, space).toLowerCase() === 'basic') {
      const decoded = Buffer.from(header.slice(space + 1).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        const expected = digests.get(decoded.slice(0, colon));
        const same = timingSafeEqual(expected ?? dummy, digest(decoded.slice(colon + 1)));
        accepted = expected !== undefined && same;
      }
    }
    if (accepted) return;
    request.log.debug(`REST request ${request.method} ${request.url} failed authentication`);
    reply.header('www-authenticate', REALM);
    return sendError(reply, 401, UNAUTHORIZED);
  };
}

/** With `ssl.client.authentication=requested`, a client may come without a certificate, not with an untrusted one. */
async function untrustedClientCertificateHook(request: FastifyRequest, reply: FastifyReply) {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function' || socket.authorized) return;
  if (Object.keys(socket.getPeerCertificate()).length === 0) return;
  return sendError(reply, 401, `${UNAUTHORIZED} The client certificate is not trusted.`);
}

/** Jetty's CrossOriginFilter defaults, as Kafka Connect configures it, plus Authorization for basic auth. */
const CORS_HEADERS = 'X-Requested-With, Content-Type, Accept, Origin, Authorization';

function corsHook(cors: { origins: readonly string[]; methods: readonly string[] }) {
  const any = cors.origins.includes('*');
  const methods = (cors.methods.length > 0 ? cors.methods : ['GET', 'POST', 'HEAD']).map((m) =>
    m.toUpperCase(),
  );
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const origin = request.headers.origin;
    if (origin === undefined || (!any && !cors.origins.includes(origin))) return;
    const preflight =
      request.method === 'OPTIONS' ? request.headers['access-control-request-method'] : undefined;
    if (preflight !== undefined && !methods.includes(String(preflight).toUpperCase())) return;
    // A listed origin may send credentials; `*` may not (browsers refuse `*` with credentials anyway).
    reply.header('access-control-allow-origin', any ? '*' : origin);
    if (!any) reply.header('access-control-allow-credentials', 'true');
    reply.header('vary', 'Origin');
    if (preflight === undefined) return;
    reply.header('access-control-allow-methods', methods.join(', '));
    reply.header('access-control-allow-headers', CORS_HEADERS);
    reply.header('access-control-max-age', '1800');
    return reply.code(204).send();
  };
}

/**
 * The users and passwords of Kafka Connect's BasicAuthSecurityRestExtension: from its JAAS file
 * (the `KafkaConnect` entry's PropertyFileLoginModule `file=` option), or from the users file
 * itself (Java properties, `<user>: <password>` or `<user>=<password>` per line). Throws
 * ConnectError (CONFIG_INVALID) saying what is wrong; messages name files and users, never passwords.
 */
export function loadBasicAuthUsers(
  source: { jaasFile: string } | { usersFile: string },
): Map<string, string> {
  const invalid = (key: string, details: string) =>
    new ConnectError('CONFIG_INVALID', errorMessage('CONFIG_INVALID', { source: `(${key})`, details }), {
      stage: 'CONFIG',
    });
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw invalid(key, `cannot read ${path}${code ? ` (${code})` : ''}`);
    }
  };
  let usersFile: string;
  let usersKey = 'rest.basic.auth.users.file';
  if ('jaasFile' in source) {
    const key = 'rest.basic.auth.jaas.file';
    let entries: Map<string, Array<{ loginModule: string; options: Record<string, string> }>>;
    try {
      entries = parseJaasFile(read(key, source.jaasFile));
    } catch (error) {
      if (!(error instanceof JaasSyntaxError)) throw error;
      throw invalid(key, `${source.jaasFile} is not a valid JAAS file: ${error.message}`);
    }
    const modules = entries.get('KafkaConnect');
    if (!modules)
      throw invalid(
        key,
        `${source.jaasFile} has no KafkaConnect entry (it has: ${[...entries.keys()].join(', ') || 'none'}); Kafka Connect's basic auth reads that one`,
      );
    const module = modules[0];
    if (modules.length !== 1 || !module!.loginModule.endsWith('.PropertyFileLoginModule'))
      throw invalid(
        key,
        `the KafkaConnect entry of ${source.jaasFile} must hold one org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule (other login modules are not supported)`,
      );
    const file = module!.options['file'];
    if (!file)
      throw invalid(key, `the PropertyFileLoginModule in ${source.jaasFile} has no file="..." option`);
    usersFile = file;
    usersKey = `${key}: ${source.jaasFile}`;
  } else usersFile = source.usersFile;
  const users = parseProperties(read(usersKey, usersFile));
  if (users.size === 0)
    throw invalid(
      usersKey,
      `${usersFile} lists no users; add \`<user>: <password>\` lines (Kafka Connect would let every request in, infer-connect refuses to start)`,
    );
  return users;
}

/**
 * Requests Node's HTTP parser refuses before any route runs (a control character in the request
 * line, headers over the size limit, a request timeout) get Kafka Connect's error body too.
 */
function kafkaConnectClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return;
  const [status, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request header fields too large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request timeout']
        : [400, `Bad request: ${error.message}`];
  const body = JSON.stringify({ error_code: status, message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error_code: status, message });
}

/** Maps anything thrown while handling a request to an HTTP status and a message for the caller. */
function describeError(error: unknown, bodyLimit: number): { status: number; message: string } {
  if (error instanceof HerderError) return { status: error.httpStatus, message: error.message };
  const fastifyError = error as Partial<FastifyError> | undefined;
  switch (fastifyError?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        message: `Request body is too large: at most ${bodyLimit} bytes are accepted (rest.request.body.max.bytes)`,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'Unsupported Media Type: send the request body as application/json' };
  }
  const status = fastifyError?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, message: fastifyError?.message ?? `HTTP ${status}` };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { status: 500, message: message === '' ? 'Internal Server Error' : message };
}

function badRequest(message: string): HerderError {
  return new HerderError(400, 'REST_BAD_REQUEST', message);
}

/**
 * JSON.parse with the parser's own message (it names the problem and position), an empty body as
 * no body, and prototype-poisoning keys refused so the herder may merge configs safely.
 */
function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') throw new SyntaxError('the key "__proto__" is not allowed');
      if (key === 'constructor' && isObject(value) && Object.hasOwn(value, 'prototype')) {
        throw new SyntaxError('the key "constructor.prototype" is not allowed');
      }
      return value;
    });
  } catch (error) {
    throw badRequest(`Request body is not valid JSON: ${(error as Error).message}`);
  }
  const duplicate = duplicateJsonKey(text);
  if (duplicate) throw badRequest(`Request body is not valid: ${duplicateKeyMessage(duplicate)}`);
  return parsed;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireObject(body: unknown, expected: string, what = 'Request body'): Record<string, unknown> {
  if (isObject(body)) return body;
  const got = body === undefined ? 'nothing' : Array.isArray(body) ? 'an array' : JSON.stringify(body);
  throw badRequest(`${what} must be ${expected}, got ${got}`);
}

function checkConfigName(name: string, configName: unknown): void {
  if (configName !== name) {
    throw badRequest(
      `Connector name configuration (${String(configName)}) doesn't match connector name in the URL (${name})`,
    );
  }
}

/** Kafka Connect's rule: `config.name`, when given, must equal the connector's name; else it is set. */
function withName(name: string, config: Record<string, unknown>): Record<string, unknown> {
  if ('name' in config) checkConfigName(name, config['name']);
  return { ...config, name };
}

const connectorLocation = (name: string) => `/connectors/${encodeURIComponent(name)}`;

function parseTaskId(raw: string): number {
  if (!/^\d{1,9}$/.test(raw)) {
    throw badRequest(`Task id "${raw}" is not valid: use the task's number (0, 1, ...)`);
  }
  return Number(raw);
}

function queryList(query: Query, key: string): string[] | undefined {
  const raw = query[key];
  if (raw === undefined) return undefined;
  return (Array.isArray(raw) ? raw : [raw]).flatMap((value) => value.split(',')).filter((v) => v !== '');
}

function queryBoolean(query: Query, key: string, defaultValue: boolean): boolean {
  const raw = query[key];
  if (Array.isArray(raw)) throw badRequest(`Query parameter ${key} is given more than once`);
  if (raw === undefined || raw === '') return defaultValue;
  const lower = raw.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw badRequest(`Query parameter ${key} must be true or false, got "${raw}"`);
}

function parseOffsetsBody(body: unknown): ConnectorOffsets {
  const example = '{"offsets": [{"partition": {...}, "offset": {...}}]}';
  const object = requireObject(body, example);
  const offsets = object['offsets'];
  if (!Array.isArray(offsets)) {
    throw badRequest(
      `Partitions / offsets need to be provided for an alter offsets request: send ${example}`,
    );
  }
  offsets.forEach((entry: unknown, index) => {
    if (!isObject(entry) || !isObject(entry['partition'])) {
      throw badRequest(`offsets[${index}] must have a "partition" object`);
    }
    if (entry['offset'] !== null && !isObject(entry['offset'])) {
      throw badRequest(`offsets[${index}].offset must be an object, or null to reset that partition`);
    }
  });
  return { offsets: offsets as ConnectorOffsets['offsets'] };
}

/** Whether a body's `connector.class` names the path's plugin (simple or dotted name, `Connector` suffix optional). */
function samePlugin(a: string, b: string): boolean {
  const normalize = (name: string) =>
    name.endsWith('Connector') ? name.slice(0, -'Connector'.length) : name;
  const [x, y] = [normalize(a), normalize(b)];
  return x === y || x.endsWith(`.${y}`) || y.endsWith(`.${x}`);
}
