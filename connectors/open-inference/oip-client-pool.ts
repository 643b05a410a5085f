// One OipClient (one gRPC channel) per target, TLS setting, message limits and content encoding,
// shared by every OpenInference task of the process that calls it, and closed when the last one
// lets go: the OIP counterpart of connectors/tf-serving/client-pool.ts, handing the task the same
// ClientLease. TLS failures are explained in the words of the `oip.tls.*` keys.
import { readFile } from 'node:fs/promises';
import { FatalError } from '../../runtime/api.js';
import type { ClientConnector, ClientRequest, TFServingApi, TlsRequest } from '../tf-serving/client-pool.js';
import { TFServingCallError, type TlsFailureKind, type TlsOptions } from '../tf-serving/grpc-client.js';
import { OipClient } from './oip-client.js';

interface Entry {
  client: OipClient;
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
    read('oip.tls.ca.file', tls.caFile),
    read('oip.tls.cert.file', tls.certFile),
    read('oip.tls.key.file', tls.keyFile),
  ]);
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(tls.serverName !== undefined ? { serverName: tls.serverName } : {}),
  };
}

const TLS_HINTS: Record<TlsFailureKind, (tls: TlsRequest | false) => string> = {
  'untrusted-server-certificate': (tls) =>
    tls && tls.caFile !== undefined
      ? `the server certificate is not signed by a CA in oip.tls.ca.file "${tls.caFile}": set it to the PEM certificate of the CA that signed the server certificate`
      : 'the server certificate is not signed by a CA Node.js trusts by default: set oip.tls.ca.file to the PEM certificate of the CA that signed it',
  'server-name-mismatch': () =>
    'the server certificate does not name the host of oip.target: set oip.target to a host name the certificate holds, or oip.tls.server.name to the name it holds',
  'client-certificate-refused': () =>
    'the server refused the client certificate or requires one: set oip.tls.cert.file and oip.tls.key.file to a certificate the server trusts and its key',
  'not-tls': () =>
    'the target does not speak TLS: point oip.target at its TLS port, or set oip.tls.enable=false',
  'tls-required': () => 'the target accepts only TLS: set oip.tls.enable=true',
};

/** `client` with calls that failed on the TLS settings turned into MODEL_SERVER_TLS_FAILED. */
function withTlsFailuresExplained(client: OipClient, request: ClientRequest): TFServingApi {
  const explain = (error: unknown): never => {
    if (!(error instanceof TFServingCallError) || error.tlsFailure === undefined) throw error;
    const { kind, reason } = error.tlsFailure;
    throw new FatalError(
      'MODEL_SERVER_TLS_FAILED',
      `TLS connection to the model server ${request.target} failed: ${reason}; ${TLS_HINTS[kind](request.tls)}`,
      {
        stage: 'TASK_PROCESS',
        cause: error,
        context: { 'tls.failure': kind, 'grpc.status.code': error.codeName },
      },
    );
  };
  return {
    predict: (call, options) => client.predict(call, options).catch(explain),
    getModelMetadata: (model, options) => client.getModelMetadata(model, options).catch(explain),
  };
}

/** A ClientConnector over OIP; `rawInputContents` picks the request encoding (oip.raw.input.contents). */
export function oipClients(rawInputContents: boolean): ClientConnector {
  return async (request) => {
    const key = JSON.stringify([
      request.target,
      request.tls,
      request.maxSendMessageBytes,
      request.maxReceiveMessageBytes,
      rawInputContents,
    ]);
    let entry = shared.get(key);
    if (entry === undefined) {
      const tls = await readTls(request.tls);
      entry = shared.get(key);
      if (entry === undefined) {
        let client: OipClient;
        try {
          client = new OipClient({
            target: request.target,
            tls,
            deadlineMs: request.deadlineMs,
            maxSendMessageBytes: request.maxSendMessageBytes,
            maxReceiveMessageBytes: request.maxReceiveMessageBytes,
            rawInputContents,
          });
        } catch (cause) {
          throw new FatalError(
            'CONFIG_INVALID',
            `Cannot create a gRPC client for ${request.target}: ${(cause as Error).message}`,
            { stage: 'TASK_START', cause },
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
}

/** How many shared OIP clients are open (for tests). */
export function sharedOipClientCount(): number {
  return shared.size;
}
