import { expect } from 'chai';
import { FatalError } from '../../runtime/errors.js';
import {
  sharedClientCount,
  sharedClients,
  type ClientRequest,
} from '../../connectors/tf-serving/client-pool.js';

const request = (target: string, extra: Partial<ClientRequest> = {}): ClientRequest => ({
  target,
  tls: false,
  maxSendMessageBytes: 1 << 20,
  maxReceiveMessageBytes: 1 << 20,
  deadlineMs: 1000,
  ...extra,
});

describe('TF Serving client pool', () => {
  it('shares one client (one channel) per target among tasks and closes it with the last release', async () => {
    const before = sharedClientCount();
    const a = await sharedClients(request('127.0.0.1:1'));
    const b = await sharedClients(request('127.0.0.1:1'));
    const other = await sharedClients(request('127.0.0.1:2'));
    expect(a.client).to.equal(b.client);
    expect(other.client).to.not.equal(a.client);
    expect(sharedClientCount()).to.equal(before + 2);
    a.release();
    a.release(); // idempotent: does not release b's reference
    expect(sharedClientCount()).to.equal(before + 2);
    b.release();
    other.release();
    expect(sharedClientCount()).to.equal(before);
    const closed = await a.client.predict({ model: { name: 'm' }, inputs: {} }).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(closed?.message).to.contain('is closed');
  });

  it('fails the task with CONFIG_INVALID when a TLS file cannot be read', async () => {
    const error = await sharedClients(
      request('127.0.0.1:3', { tls: { caFile: '/nonexistent/ca.pem' } }),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.be.instanceOf(FatalError);
    expect((error as FatalError).code).to.equal('CONFIG_INVALID');
    expect((error as FatalError).message).to.contain(
      'tfserving.tls.ca.file "/nonexistent/ca.pem" cannot be read (ENOENT)',
    );
  });
});
