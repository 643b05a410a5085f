// Keeps the task's ModelPlan in step with the signature the server serves, when the task follows
// the latest version or a version label (either can move to a version with another signature while
// the task runs).
//
// The task asks for a check when an answer suggests the model changed: a Predict answered by
// another version than the plan's, or a whole request refused with INVALID_ARGUMENT or
// FAILED_PRECONDITION. A check re-reads GetModelMetadata; the same signature only updates the
// plan's version, another signature becomes a new plan (the old one stays valid for the rows and
// answers that already use it). Checks are shared and ordered: a check that started after a request
// was sent answers for that request too, so many concurrent refusals cost one GetModelMetadata,
// and checks run one at a time so plans replace each other in the order they were read.
import type { ModelMetadata, SignatureSpec } from './grpc-client.js';
import { sameSignature, type ModelPlan } from './model-plan.js';

export interface SignatureTrackerOptions {
  initial: ModelPlan;
  /** GetModelMetadata for the configured model spec; rejects with the error the task should throw. */
  readMetadata(): Promise<ModelMetadata>;
  /** The configured signature of `metadata`; throws FatalError when the version lacks it. */
  signatureOf(metadata: ModelMetadata): SignatureSpec;
  /**
   * A new plan for a changed signature served by `version`, after `previous`. Throws FatalError
   * when the records cannot feed it as configured.
   */
  build(signature: SignatureSpec, version: number | undefined, previous: ModelPlan): ModelPlan;
}

interface Check {
  /** Requests sent before the check was asked for; it answers for each of them. */
  after: number;
  result: Promise<ModelPlan>;
}

export class SignatureTracker {
  private plan: ModelPlan;
  private sent = 0;
  private lastCheck: Check | undefined;
  private fatal: unknown;

  constructor(private readonly options: SignatureTrackerOptions) {
    this.plan = options.initial;
  }

  /** The plan new rows are extracted with and new requests are sent under. */
  get current(): ModelPlan {
    return this.plan;
  }

  /** What a check failed with when the new signature cannot be used: the task cannot go on. */
  get failure(): unknown {
    return this.fatal;
  }

  /** Call right before sending a request; pass the ticket to `recheck` if its answer is suspect. */
  requestSent(): number {
    return ++this.sent;
  }

  /**
   * The plan after re-reading the signature, for the request with `ticket`. Resolves the current
   * plan itself when the signature did not change. Rejects with what the metadata read threw, or
   * with the FatalError of a signature the records cannot feed (and every later check with it too).
   */
  recheck(ticket: number): Promise<ModelPlan> {
    const last = this.lastCheck;
    if (last !== undefined && last.after >= ticket) return last.result;
    const run = () => this.check();
    const result = last === undefined ? run() : last.result.then(run, run);
    this.lastCheck = { after: this.sent, result };
    return result;
  }

  private async check(): Promise<ModelPlan> {
    if (this.fatal !== undefined) throw this.fatal;
    const metadata = await this.options.readMetadata();
    try {
      const signature = this.options.signatureOf(metadata);
      const version = metadata.model.version;
      if (sameSignature(signature, this.plan.signature)) {
        if (version !== undefined) this.plan.version = version;
        return this.plan;
      }
      this.plan = this.options.build(signature, version, this.plan);
      return this.plan;
    } catch (error) {
      this.fatal = error;
      throw error;
    }
  }
}
