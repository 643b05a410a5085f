// The dev model server (dev/model-server/server.py) serving TLS on a second port, for the tests of
// TLS and mutual TLS to the model server. Each call starts a server.py process of its own on free
// loopback ports, over a temp model base that links the cached dev models; the shared stack's model
// server is never touched. Certificates come from test/helpers/secure-stack.ts's test PKI, plus
// leaves made here for the names and signers those tests need.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDir, repoRoot } from '../../dev/stack.js';
import type { TestPki } from './secure-stack.js';

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

function openssl(dir: string, args: string[]): void {
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (result.error) throw new Error(`openssl is needed for the TLS tests: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${result.stderr}`);
}

/**
 * A certificate and unencrypted key in `pki.dir`, signed by the test CA (`signer` "ca") or by the
 * CA nobody trusts ("other-ca"), with the given X.509v3 extension lines.
 */
export function makeCertificate(
  pki: TestPki,
  name: string,
  extensions: string[],
  signer: 'ca' | 'other-ca' = 'ca',
): CertificateFiles {
  writeFileSync(join(pki.dir, `${name}.ext`), `${extensions.join('\n')}\n`);
  openssl(pki.dir, [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=infer-connect ${name}`,
  ]);
  openssl(pki.dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${signer}.pem`,
    '-CAkey',
    `${signer}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '3',
    '-extfile',
    `${name}.ext`,
  ]);
  return { certFile: join(pki.dir, `${name}.crt`), keyFile: join(pki.dir, `${name}.key`) };
}

/** The test PKI's client certificate (signed by the test CA) with its unencrypted key. */
export function testClientCertificate(pki: TestPki): CertificateFiles {
  return { certFile: join(pki.dir, 'client.crt'), keyFile: join(pki.dir, 'client.key') };
}

export interface TlsModelServer {
  /** host:port of the plaintext gRPC port. */
  plainTarget: string;
  /** The TLS port, on 127.0.0.1. */
  tlsPort: number;
  /** `http://127.0.0.1:<port>` of the control API (stats, faults). */
  control: string;
  log: string[];
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts server.py with `--tls-port 0`, the server certificate and key, and with `clientCaFile`
 * mutual TLS (a client certificate signed by that CA required). Serves only `models` (linked from
 * the cached model base, so it starts in seconds). Resolves once the server logged its ports.
 */
export async function startTlsModelServer(options: {
  server: CertificateFiles;
  clientCaFile?: string;
  models: string[];
  startTimeoutMs?: number;
}): Promise<TlsModelServer> {
  const base = mkdtempSync(join(tmpdir(), 'infer-connect-tls-models-'));
  for (const model of options.models) symlinkSync(join(cacheDir, 'models', model), join(base, model));
  const args = [
    join(repoRoot, 'dev', 'model-server', 'server.py'),
    '--port',
    '0',
    '--control-port',
    '0',
    '--model-base',
    base,
    '--tls-port',
    '0',
    '--tls-cert',
    options.server.certFile,
    '--tls-key',
    options.server.keyFile,
    ...(options.clientCaFile !== undefined ? ['--tls-client-ca', options.clientCaFile] : []),
  ];
  const child = spawn(join(cacheDir, 'venv', 'bin', 'python'), args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', PYTHONUNBUFFERED: '1' },
  });
  running.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(base, { recursive: true, force: true });
  };
  const log: string[] = [];
  const timeoutMs = options.startTimeoutMs ?? 180_000;
  try {
    const ports = await new Promise<{ grpc: number; control: number; tls: number }>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server.py did not start in ${timeoutMs} ms:\n${log.slice(-20).join('\n')}`)),
        timeoutMs,
      );
      let pending = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        pending += chunk.toString();
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          log.push(line);
          const match =
            /serving grpc=127\.0\.0\.1:(\d+) control=127\.0\.0\.1:(\d+) .* tls=127\.0\.0\.1:(\d+) /.exec(
              line,
            );
          if (match) {
            clearTimeout(timer);
            resolve({ grpc: Number(match[1]), control: Number(match[2]), tls: Number(match[3]) });
          }
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server.py exited (${code}) before serving:\n${log.slice(-20).join('\n')}`));
      });
    });
    return {
      plainTarget: `127.0.0.1:${ports.grpc}`,
      tlsPort: ports.tls,
      control: `http://127.0.0.1:${ports.control}`,
      log,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
