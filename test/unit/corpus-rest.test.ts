// The malformed-request corpus (test/corpus/rest/requests.jsonl, one request per line), sent over
// a real socket to the real REST server of a real Worker (fake task runners, no Kafka). Every
// request must answer its 4xx with Kafka Connect's `{"error_code", "message"}` body, never a 5xx,
// and the worker must still answer afterwards. Requests are written byte for byte (raw request
// line, headers and body), so the corpus can hold what an HTTP client library would refuse to send.
import { connect } from 'node:net';
import { expect } from 'chai';
import { loadCorpus, startCorpusWorker } from '../corpus/corpus.js';

interface RestCase {
  case: string;
  method: string;
  path: string;
  /** `null` leaves a header out (by default a body is sent as application/json). */
  headers?: Record<string, string | null>;
  body?: string;
  bodyBase64?: string;
  /** Send the body with `Transfer-Encoding: chunked` instead of a Content-Length. */
  chunked?: boolean;
  expect: { status: number | '4xx'; phrase?: string };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const cases = loadCorpus<RestCase>('rest/requests.jsonl');
const REQUEST_TIMEOUT_MS = 15_000;
const CHUNK_BYTES = 64 * 1024;

/** Sends one request exactly as the case describes it and reads the whole answer (the server closes). */
function send(host: string, port: number, c: Omit<RestCase, 'case' | 'expect'>): Promise<RawResponse> {
  const body =
    c.bodyBase64 !== undefined
      ? Buffer.from(c.bodyBase64, 'base64')
      : c.body !== undefined
        ? Buffer.from(c.body, 'utf8')
        : undefined;
  const headers: Record<string, string | null> = { host: `${host}:${port}`, connection: 'close' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  Object.assign(headers, c.headers);
  if (body !== undefined) {
    if (c.chunked) headers['transfer-encoding'] = 'chunked';
    else headers['content-length'] = String(body.length);
  }
  const head =
    `${c.method} ${c.path} HTTP/1.1\r\n` +
    Object.entries(headers)
      .filter((entry): entry is [string, string] => entry[1] !== null)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('') +
    '\r\n';

  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${REQUEST_TIMEOUT_MS} ms`));
    }, REQUEST_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    // The server may answer (413, 431...) and close before the whole body is written: keep what came.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseResponse(Buffer.concat(received)));
      } catch (error) {
        reject(error as Error);
      }
    });
    socket.write(head, 'latin1');
    if (body !== undefined) {
      if (!c.chunked) socket.write(body);
      else {
        for (let offset = 0; offset < body.length; offset += CHUNK_BYTES) {
          const chunk = body.subarray(offset, offset + CHUNK_BYTES);
          socket.write(`${chunk.length.toString(16)}\r\n`);
          socket.write(chunk);
          socket.write('\r\n');
        }
        socket.write('0\r\n\r\n');
      }
    }
  });
}

function parseResponse(raw: Buffer): RawResponse {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1)
    throw new Error(`not an HTTP response: ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  else if (headers['content-length'] !== undefined)
    body = body.subarray(0, Number(headers['content-length']));
  return { status, headers, body: body.toString('utf8') };
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset);
    const size = parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!(size > 0)) return Buffer.concat(parts);
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
}

describe(`REST corpus (${cases.length} malformed requests over a socket)`, function () {
  this.timeout(60_000);
  let server: Awaited<ReturnType<typeof startCorpusWorker>>;

  before(async () => {
    server = await startCorpusWorker();
    // A connector the requests can address, so the corpus reaches past "not found".
    const created = await send(server.host, server.port, {
      method: 'POST',
      path: '/connectors',
      body: JSON.stringify({
        name: 'existing',
        config: {
          'connector.class': 'PassThrough',
          topics: 'in',
          'output.topic': 'out',
          'key.converter': 'string',
          'value.converter': 'json',
        },
      }),
    });
    expect(created.status, created.body).to.equal(201);
  });

  after(() => server?.close());

  for (const c of cases) {
    const expected = c.expect.status;
    const shownPath = JSON.stringify(c.path.length > 80 ? `${c.path.slice(0, 77)}...` : c.path).slice(1, -1);
    it(`${c.case}: ${c.method} ${shownPath} answers ${expected}`, async () => {
      const response = await send(server.host, server.port, c);
      const shown = response.body.slice(0, 500);
      expect(response.status, `never a 5xx: ${shown}`).to.be.below(500);
      if (expected === '4xx') expect(response.status, shown).to.be.within(400, 499);
      else expect(response.status, shown).to.equal(expected);
      expect(response.headers['content-type'], 'a JSON error body').to.match(/^application\/json/);
      const body = JSON.parse(response.body) as unknown;
      expect(body, "Kafka Connect's error body").to.have.all.keys('error_code', 'message');
      const { error_code: code, message } = body as { error_code: unknown; message: unknown };
      expect(code).to.equal(response.status);
      expect(message).to.be.a('string').and.not.equal('');
      if (c.expect.phrase !== undefined) expect(message).to.include(c.expect.phrase);
    });
  }

  it('after the corpus the worker still answers and no malformed request created a connector', async () => {
    const root = await send(server.host, server.port, { method: 'GET', path: '/' });
    expect(root.status).to.equal(200);
    expect(JSON.parse(root.body)).to.have.property('version');
    const status = await send(server.host, server.port, {
      method: 'GET',
      path: '/connectors/existing/status',
    });
    expect(status.status).to.equal(200);
    expect(server.worker.connectorNames()).to.deep.equal(['existing']);
  });
});
