// One TFServingClient (one gRPC channel) per model server target and TLS setting, shared by every
// task of the process that calls it, and closed when the last one lets go. Tasks acquire a lease in
// start() and release it in stop(), after their calls settled.
//
// Failures of the connection's setup are the pool's to explain, in the words of the settings that
// cause them: an unreadable TLS file fails the lease (CONFIG_INVALID), and a call whose connection
// failed on the TLS settings (TFServingCallError.tlsFailure) rejects with MODEL_SERVER_TLS_FAILED
// instead of its UNAVAILABLE, which the status policy would retry for ever. Call statuses are the
// task's to classify.
import { readFile } from 'node:fs/promises';
import { FatalError } from '../../runtime/api.js';
import {
  TFServingCallError,
  TFServingClient,
  type TFServingClientOptions,
  type TlsFailureKind,
  type TlsOptions,
} from './grpc-client.js';
import { TFServingRestClient } from './rest-client.js';

/** What the inference task needs from a TF Serving client (a fake implements it in tests). */
export type TFServingApi = Pick<TFServingClient, 'predict' | 'getModelMetadata'>;

export interface ClientLease {
  client: TFServingApi;
  /** Gives the client back; the last release closes its channel. Idempotent. */
  release(): void;
}

/** The TLS settings of a request: file paths as configured, and the certificate name override. */
export interface TlsRequest {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** The name the server certificate must hold when it is not the target's host. */
  serverName?: string;
}

export interface ClientRequest {
  /**
   * host:port of the gRPC API, or the base URL of TF Serving's REST API (`http://host:port`, or
   * `https://host:port` with TLS): see clientTarget in config.ts.
   */
  target: string;
  tls: false | TlsRequest;
  maxSendMessageBytes: number;
  maxReceiveMessageBytes: number;
  /** Used for calls that give no deadline of their own; tasks give theirs on every call. */
  deadlineMs: number;
}

/**
 * Opens (or shares) a client. Throws FatalError CONFIG_INVALID when a TLS file cannot be read; the
 * client's calls reject with FatalError MODEL_SERVER_TLS_FAILED when the TLS settings keep the
 * connection from being set up, and with TFServingCallError for every other failed call.
 */
export type ClientConnector = (request: ClientRequest) => Promise<ClientLease>;

interface Entry {
  client: TFServingClient | TFServingRestClient;
  /** `client` as tasks see it: TLS failures turned fatal. */
  api: TFServingApi;
  refs: number;
}

const shared = new Map<string, Entry>();

async function readTls(tls: ClientRequest['tls']): Promise<TlsOptions | false> {
  if (tls === false) return false;
  const read = async (key: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (cause) {
      throw new FatalError(
        'CONFIG_INVALID',
        `${key} "${path}" cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); fix the path or its permissions`,
        { stage: 'TASK_START', cause },
      );
    }
  };
  const [ca, cert, key] = await Promise.all([
    read('tfserving.tls.ca.file', tls.caFile),
    read('tfserving.tls.cert.file', tls.certFile),
    read('tfserving.tls.key.file', tls.keyFile),
  ]);
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(tls.serverName !== undefined ? { serverName: tls.serverName } : {}),
  };
}

/** What to do about each kind of TLS failure, naming the keys to change and their values. */
const TLS_FAILURE_HINTS: Record<TlsFailureKind, (target: string, tls: TlsRequest | false) => string> = {
  'untrusted-server-certificate': (_target, tls) =>
    tls && tls.caFile !== undefined
      ? `the server certificate is not signed by a CA in tfserving.tls.ca.file "${tls.caFile}": set it to the PEM certificate of the CA that signed the server certificate`
      : 'the server certificate is not signed by a CA Node.js trusts by default: set tfserving.tls.ca.file to the PEM certificate of the CA that signed it',
  'server-name-mismatch': (target, tls) =>
    `the server certificate does not name "${(tls && tls.serverName) || hostOf(target)}": set tfserving.target to a host name or address the certificate holds`,
  'client-certificate-refused': (_target, tls) =>
    tls && tls.certFile !== undefined
      ? `the server refused the client certificate tfserving.tls.cert.file "${tls.certFile}": use one signed by a CA the server trusts (with its key in tfserving.tls.key.file)`
      : 'the server requires a client certificate (mutual TLS): set tfserving.tls.cert.file and tfserving.tls.key.file to a certificate the server trusts and its key',
  'not-tls': () =>
    'the target does not speak TLS: point tfserving.target at the TLS port of the server, or set tfserving.tls.enable=false',
  'tls-required': () =>
    'the target accepts only TLS: set tfserving.tls.enable=true (and tfserving.tls.ca.file to the CA that signed its certificate)',
};

function hostOf(target: string): string {
  return target
    .replace(/^(?:dns|ipv4|ipv6):(?:\/\/[^/]*\/)?/, '')
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '');
}

/** The FatalError a call that failed on the TLS settings becomes; any other error as it is. */
function explainTlsFailure(error: unknown, request: Pick<ClientRequest, 'target' | 'tls'>): unknown {
  if (!(error instanceof TFServingCallError) || error.tlsFailure === undefined) return error;
  const { kind, reason } = error.tlsFailure;
  const hint = TLS_FAILURE_HINTS[kind](request.target, request.tls);
  return new FatalError(
    'MODEL_SERVER_TLS_FAILED',
    `TLS connection to the model server ${request.target} failed: ${reason}; ${hint}`,
    {
      stage: 'TASK_PROCESS',
      cause: error,
      context: { 'tls.failure': kind, 'grpc.status.code': error.codeName },
    },
  );
}

/** `client` with its TLS failures explained (explainTlsFailure). */
function withTlsFailuresExplained(client: TFServingApi, request: ClientRequest): TFServingApi {
  const explain = (error: unknown): never => {
    throw explainTlsFailure(error, request);
  };
  return {
    predict: (call, options) => client.predict(call, options).catch(explain),
    getModelMetadata: (model, options) => client.getModelMetadata(model, options).catch(explain),
  };
}

/** The process-wide pool: clients keyed by target, TLS files and message limits. */
export const sharedClients: ClientConnector = async (request) => {
  const key = JSON.stringify([
    request.target,
    request.tls,
    request.maxSendMessageBytes,
    request.maxReceiveMessageBytes,
  ]);
  let entry = shared.get(key);
  if (entry === undefined) {
    const options: TFServingClientOptions = {
      target: request.target,
      tls: await readTls(request.tls),
      deadlineMs: request.deadlineMs,
      maxSendMessageBytes: request.maxSendMessageBytes,
      maxReceiveMessageBytes: request.maxReceiveMessageBytes,
    };
    // Another task may have created it while the TLS files were read.
    entry = shared.get(key);
    if (entry === undefined) {
      let client: TFServingClient | TFServingRestClient;
      // An http(s):// target is TF Serving's REST API (tfserving.transport=rest).
      const rest = /^https?:\/\//.test(request.target);
      try {
        client = rest
          ? new TFServingRestClient({ ...options, baseUrl: request.target })
          : new TFServingClient(options);
      } catch (cause) {
        throw new FatalError(
          'CONFIG_INVALID',
          `Cannot create a ${rest ? 'REST' : 'gRPC'} client for ${request.target}: ${(cause as Error).message}`,
          {
            stage: 'TASK_START',
            cause,
          },
        );
      }
      entry = { client, api: withTlsFailuresExplained(client, request), refs: 0 };
      shared.set(key, entry);
    }
  }
  const held = entry;
  held.refs++;
  let released = false;
  return {
    client: held.api,
    release() {
      if (released) return;
      released = true;
      if (--held.refs === 0) {
        shared.delete(key);
        held.client.close();
      }
    },
  };
};

/** How many shared clients are open (for tests and `/status`). */
export function sharedClientCount(): number {
  return shared.size;
}
