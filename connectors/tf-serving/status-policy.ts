// How a failed model call is handled, decided by its gRPC status alone: a data table, overridable
// per connector with `tfserving.status.policy` (e.g. `INTERNAL=fatal,CANCELLED=retry`).
//
//   retry       -> RetriableError: the runtime backs off, then pauses the partitions and redelivers.
//   fail-record -> the rows of the call are bad: a batch is bisected until the bad rows are found,
//                  and each of those becomes a RecordError (dead-letter queue with errors.tolerance=all).
//   fatal       -> FatalError: the task goes to FAILED with the call's status in its trace.
//
// A status the table does not list is retried. That is the conservative choice for a stream: an
// unclassified failure (CANCELLED by a proxy, UNKNOWN from a transport glitch, a DATA_LOSS or
// OUT_OF_RANGE some server variant emits) then pauses the partition and shows up in the metrics
// and logs instead of dropping records into the dead-letter queue or stopping the task; an operator
// who knows better classifies it with the override.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { FatalError, RecordError, RetriableError, type ConnectError } from '../../runtime/api.js';

export type StatusOutcome = 'retry' | 'fail-record' | 'fatal';

export const STATUS_OUTCOMES: readonly StatusOutcome[] = ['retry', 'fail-record', 'fatal'];

/** Every gRPC status name except OK, e.g. `UNAVAILABLE`. */
export const GRPC_STATUS_NAMES: readonly string[] = Object.keys(GrpcStatus).filter(
  (key) => Number.isNaN(Number(key)) && key !== 'OK',
);

/** The default table: what PRODUCT.md section 3 prescribes. */
export const DEFAULT_STATUS_POLICY: Readonly<Record<string, StatusOutcome>> = Object.freeze({
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

/** The outcome of a status the table does not list (see the top of this file for why). */
export const UNLISTED_STATUS_OUTCOME: StatusOutcome = 'retry';

/**
 * Parses `STATUS=outcome` entries (the `tfserving.status.policy` list). Returns the overrides, or
 * the problems (every one, each saying how to fix it).
 */
export function parseStatusPolicyOverrides(entries: readonly string[]): {
  overrides: Record<string, StatusOutcome>;
  problems: string[];
} {
  const overrides: Record<string, StatusOutcome> = {};
  const problems: string[] = [];
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const name = (eq === -1 ? entry : entry.slice(0, eq)).trim().toUpperCase();
    const outcome = eq === -1 ? '' : entry.slice(eq + 1).trim();
    if (eq === -1 || name === '' || outcome === '') {
      problems.push(`"${entry}" is not STATUS=outcome; write e.g. INTERNAL=fatal`);
    } else if (!GRPC_STATUS_NAMES.includes(name)) {
      problems.push(`"${name}" is not a gRPC status name; use one of ${GRPC_STATUS_NAMES.join(', ')}`);
    } else if (!(STATUS_OUTCOMES as readonly string[]).includes(outcome)) {
      problems.push(`"${outcome}" (for ${name}) is not an outcome; use one of ${STATUS_OUTCOMES.join(', ')}`);
    } else if (name in overrides && overrides[name] !== outcome) {
      problems.push(`${name} is given twice with different outcomes; keep one`);
    } else {
      overrides[name] = outcome as StatusOutcome;
    }
  }
  return { overrides, problems };
}

/** The name of a numeric gRPC status, e.g. 14 -> `UNAVAILABLE`. */
export function statusName(code: number): string {
  return GrpcStatus[code] ?? `STATUS_${code}`;
}

/** Context attached to every classified error: it becomes `__connect.errors.*` dead-letter headers. */
export type CallContext = {
  'model.name': string;
  'model.version'?: string | number | undefined;
  'model.signature': string;
  target: string;
  /** How many requests held the record (bisection adds one per halving). */
  attempts?: number;
};

export class StatusPolicy {
  private readonly table: Readonly<Record<string, StatusOutcome>>;

  /** `keyName` is the config key the overrides came from, named in messages (`oip.status.policy`, ...). */
  constructor(
    overrides: Readonly<Record<string, StatusOutcome>> = {},
    private readonly keyName = 'tfserving.status.policy',
  ) {
    this.table = { ...DEFAULT_STATUS_POLICY, ...overrides };
  }

  static fromConfig(entries: readonly string[], keyName = 'tfserving.status.policy'): StatusPolicy {
    const { overrides, problems } = parseStatusPolicyOverrides(entries);
    if (problems.length > 0) throw new Error(`${keyName}: ${problems.join('; ')}`);
    return new StatusPolicy(overrides, keyName);
  }

  outcomeOf(status: string): StatusOutcome {
    return this.table[status] ?? UNLISTED_STATUS_OUTCOME;
  }

  /** The whole table, listed statuses first, for `/status` and logs. */
  describe(): Record<string, StatusOutcome> {
    return { ...this.table };
  }

  /**
   * The error a failed call becomes: its class from the outcome, its catalogue code from the
   * status and the outcome (see errorCodeFor). `details` is the server's status message.
   */
  classify(
    status: string,
    details: string,
    context: CallContext,
    options: { cause?: unknown; method?: string; deadlineMs?: number } = {},
  ): ConnectError {
    const outcome = this.outcomeOf(status);
    const code = errorCodeFor(status, outcome);
    const method = options.method ?? 'Predict';
    const model = describeModel(context);
    let message: string;
    switch (code) {
      case 'MODEL_DEADLINE_EXCEEDED':
        message = `${method} on ${model} did not answer within ${options.deadlineMs ?? '?'} ms (DEADLINE_EXCEEDED): ${details}`;
        break;
      case 'MODEL_OVERLOADED':
        message = `Model server ${context.target} is overloaded (RESOURCE_EXHAUSTED) for ${model}: ${details}`;
        break;
      case 'MODEL_INVALID_ARGUMENT':
        message = `${model} refused the record (${status}): ${details}`;
        break;
      case 'MODEL_NOT_FOUND':
        message = `${model} is not served by ${context.target} (${status}): ${details}`;
        break;
      case 'MODEL_SIGNATURE_NOT_FOUND':
        message = `${model} cannot serve the signature (${status}): ${details}`;
        break;
      case 'MODEL_AUTH_FAILED':
        message = `Model server ${context.target} refused the credentials (${status}): ${details}`;
        break;
      default:
        message = `Model server ${context.target} failed ${method} on ${model} (${status}): ${details}`;
    }
    if (outcome !== DEFAULT_STATUS_POLICY[status] && status in this.table) {
      message += ` [classified ${outcome} by ${this.keyName}]`;
    }
    const errorOptions = {
      stage: 'TASK_PROCESS' as const,
      cause: options.cause,
      context: { ...stripTarget(context), 'grpc.status.code': status },
    };
    switch (outcome) {
      case 'retry':
        return new RetriableError(code, message, errorOptions);
      case 'fail-record':
        return new RecordError(code, message, errorOptions);
      case 'fatal':
        return new FatalError(code, message, errorOptions);
    }
  }
}

/**
 * The catalogue code for a status handled with `outcome`: the code names what happened, the class
 * (from the outcome) what the runtime does. Codes whose catalogue outcome differs from `outcome`
 * are avoided where the catalogue has a better one.
 */
export function errorCodeFor(status: string, outcome: StatusOutcome): string {
  switch (outcome) {
    case 'retry':
      if (status === 'DEADLINE_EXCEEDED') return 'MODEL_DEADLINE_EXCEEDED';
      if (status === 'RESOURCE_EXHAUSTED') return 'MODEL_OVERLOADED';
      return 'MODEL_UNAVAILABLE';
    case 'fail-record':
      return 'MODEL_INVALID_ARGUMENT';
    case 'fatal':
      if (status === 'FAILED_PRECONDITION') return 'MODEL_SIGNATURE_NOT_FOUND';
      if (status === 'UNAUTHENTICATED' || status === 'PERMISSION_DENIED') return 'MODEL_AUTH_FAILED';
      // NOT_FOUND, UNIMPLEMENTED (the target serves no such model or method), and statuses an
      // override made fatal: the model cannot be used as configured.
      return 'MODEL_NOT_FOUND';
  }
}

function describeModel(context: CallContext): string {
  const version = context['model.version'];
  return (
    `model "${context['model.name']}"` +
    (version === undefined || version === '' ? '' : ` version ${version}`) +
    ` signature "${context['model.signature']}"`
  );
}

function stripTarget(context: CallContext): Record<string, string | number | undefined> {
  const { target: _target, ...rest } = context;
  return rest;
}
