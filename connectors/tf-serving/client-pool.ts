// One TFServingClient (one gRPC channel) per model server target and TLS setting, shared by every
// task of the process that calls it, and closed when the last one lets go. Tasks acquire a lease in
// start() and release it in stop(), after their calls settled.
import { readFile } from 'node:fs/promises';
import { FatalError } from '../../runtime/api.js';
import { TFServingClient, type TFServingClientOptions, type TlsOptions } from './grpc-client.js';

/** What the inference task needs from a TF Serving client (a fake implements it in tests). */
export type TFServingApi = Pick<TFServingClient, 'predict' | 'getModelMetadata'>;

export interface ClientLease {
  client: TFServingApi;
  /** Gives the client back; the last release closes its channel. Idempotent. */
  release(): void;
}

export interface ClientRequest {
  target: string;
  tls: false | { caFile?: string; certFile?: string; keyFile?: string };
  maxSendMessageBytes: number;
  maxReceiveMessageBytes: number;
  /** Used for calls that give no deadline of their own; tasks give theirs on every call. */
  deadlineMs: number;
}

/** Opens (or shares) a client. Throws FatalError CONFIG_INVALID when a TLS file cannot be read. */
export type ClientConnector = (request: ClientRequest) => Promise<ClientLease>;

interface Entry {
  client: TFServingClient;
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
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
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
      let client: TFServingClient;
      try {
        client = new TFServingClient(options);
      } catch (cause) {
        throw new FatalError(
          'CONFIG_INVALID',
          `Cannot create a gRPC client for ${request.target}: ${(cause as Error).message}`,
          {
            stage: 'TASK_START',
            cause,
          },
        );
      }
      entry = { client, refs: 0 };
      shared.set(key, entry);
    }
  }
  const held = entry;
  held.refs++;
  let released = false;
  return {
    client: held.client,
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
