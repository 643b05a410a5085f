import { expect } from 'chai';
import { FatalError, RecordError, RetriableError } from '../../runtime/errors.js';
import {
  DEFAULT_STATUS_POLICY,
  GRPC_STATUS_NAMES,
  parseStatusPolicyOverrides,
  StatusPolicy,
  type CallContext,
} from '../../connectors/tf-serving/status-policy.js';

const context: CallContext = {
  'model.name': 'census',
  'model.version': 1,
  'model.signature': 'serving_default',
  target: '127.0.0.1:8500',
};

describe('TF Serving gRPC status policy', () => {
  it('retries transient statuses, fails the record on INVALID_ARGUMENT and fails the task on missing models or auth', () => {
    const policy = new StatusPolicy();
    const table = Object.fromEntries(
      [
        'UNAVAILABLE',
        'DEADLINE_EXCEEDED',
        'RESOURCE_EXHAUSTED',
        'ABORTED',
        'INTERNAL',
        'INVALID_ARGUMENT',
        'NOT_FOUND',
        'FAILED_PRECONDITION',
        'UNIMPLEMENTED',
        'UNAUTHENTICATED',
        'PERMISSION_DENIED',
      ].map((s) => [s, policy.outcomeOf(s)]),
    );
    expect(table).to.deep.equal({
      UNAVAILABLE: 'retry',
      DEADLINE_EXCEEDED: 'retry',
      RESOURCE_EXHAUSTED: 'retry',
      ABORTED: 'retry',
      INTERNAL: 'retry',
      INVALID_ARGUMENT: 'fail-record',
      NOT_FOUND: 'fatal',
      FAILED_PRECONDITION: 'fatal',
      UNIMPLEMENTED: 'fatal',
      UNAUTHENTICATED: 'fatal',
      PERMISSION_DENIED: 'fatal',
    });
  });

  it('retries every status the table does not list, so an unclassified failure never drops a record', () => {
    const policy = new StatusPolicy();
    const unlisted = GRPC_STATUS_NAMES.filter((s) => !(s in DEFAULT_STATUS_POLICY));
    expect(unlisted).to.include.members([
      'CANCELLED',
      'UNKNOWN',
      'OUT_OF_RANGE',
      'DATA_LOSS',
      'ALREADY_EXISTS',
    ]);
    for (const status of unlisted) expect(policy.outcomeOf(status), status).to.equal('retry');
  });

  it('applies overrides from config and leaves the other statuses at their defaults', () => {
    const policy = StatusPolicy.fromConfig(['INTERNAL=fatal', 'cancelled=fail-record']);
    expect(policy.outcomeOf('INTERNAL')).to.equal('fatal');
    expect(policy.outcomeOf('CANCELLED')).to.equal('fail-record');
    expect(policy.outcomeOf('UNAVAILABLE')).to.equal('retry');
  });

  it('reports every malformed override at once, each saying how to write it', () => {
    const { problems } = parseStatusPolicyOverrides([
      'INTERNAL',
      'NOPE=retry',
      'UNAVAILABLE=later',
      'ABORTED=retry',
    ]);
    expect(problems).to.have.length(3);
    expect(problems[0]).to.contain('STATUS=outcome');
    expect(problems[1]).to.contain('"NOPE" is not a gRPC status name');
    expect(problems[2]).to.contain('"later"').and.contain('retry, fail-record, fatal');
  });

  it('turns a status into the error class of its outcome, with the catalogue code and dead-letter context', () => {
    const policy = StatusPolicy.fromConfig(['INTERNAL=fatal']);
    const unavailable = policy.classify('UNAVAILABLE', 'connection refused', context);
    expect(unavailable).to.be.instanceOf(RetriableError);
    expect(unavailable.code).to.equal('MODEL_UNAVAILABLE');
    const deadline = policy.classify('DEADLINE_EXCEEDED', 'late', context, { deadlineMs: 5000 });
    expect(deadline.code).to.equal('MODEL_DEADLINE_EXCEEDED');
    expect(deadline.message).to.contain('5000 ms');
    expect(policy.classify('RESOURCE_EXHAUSTED', 'queue full', context).code).to.equal('MODEL_OVERLOADED');

    const refused = policy.classify('INVALID_ARGUMENT', 'Expects arg age to be DT_INT64', context);
    expect(refused).to.be.instanceOf(RecordError);
    expect(refused.code).to.equal('MODEL_INVALID_ARGUMENT');
    expect(refused.message).to.contain('Expects arg age to be DT_INT64');
    expect(refused.context).to.deep.equal({
      'model.name': 'census',
      'model.version': 1,
      'model.signature': 'serving_default',
      'grpc.status.code': 'INVALID_ARGUMENT',
    });

    expect(policy.classify('NOT_FOUND', 'Servable not found', context)).to.be.instanceOf(FatalError);
    expect(policy.classify('NOT_FOUND', 'x', context).code).to.equal('MODEL_NOT_FOUND');
    expect(policy.classify('FAILED_PRECONDITION', 'x', context).code).to.equal('MODEL_SIGNATURE_NOT_FOUND');
    expect(policy.classify('PERMISSION_DENIED', 'x', context).code).to.equal('MODEL_AUTH_FAILED');
    const overridden = policy.classify('INTERNAL', 'boom', context);
    expect(overridden).to.be.instanceOf(FatalError);
    expect(overridden.message).to.contain('classified fatal by tfserving.status.policy');
  });
});
