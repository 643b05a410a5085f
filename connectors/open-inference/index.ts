// OpenInference: scores records with any model server speaking the Open Inference Protocol
// (KServe v2 gRPC: KServe, NVIDIA Triton, Seldon MLServer, TorchServe) and writes them with the
// model's outputs added, exactly as TFServingInference does: it is the same task
// (connectors/tf-serving/inference-task.ts, with its batcher, rate limiter, breaker, status policy
// and derived output schema) given the OIP keys (config.ts) and an OIP client pool
// (oip-client-pool.ts), whose client turns ModelInfer and ModelMetadata into the task's shapes.
import type { ProcessorPlugin, TaskContext } from '../../runtime/api.js';
import { TFServingInferenceTask, type InferenceTaskDependencies } from '../tf-serving/inference-task.js';
import { openInferenceConfigSpec, readOpenInferenceSettings, readRawInputContents } from './config.js';
import { oipClients } from './oip-client-pool.js';

export { openInferenceConfigSpec } from './config.js';
export { OipClient, OipCallError, OIP_SIGNATURE } from './oip-client.js';

/** The plugin; `dependencies` replace the shared OIP client pool and timers (tests use fakes). */
export function createOpenInferencePlugin(
  dependencies: Omit<InferenceTaskDependencies, 'readSettings'> = {},
): ProcessorPlugin {
  return {
    name: 'OpenInference',
    aliases: ['io.inferconnect.OpenInference', 'KServeV2Inference', 'io.inferconnect.KServeV2Inference'],
    kind: 'processor',
    version: '0.1.0',
    description:
      'Scores records with a model served over the Open Inference Protocol (KServe v2 gRPC ModelInfer: KServe, ' +
      'Triton, Seldon MLServer), micro-batched, rate limited and behind a circuit breaker, and writes them with ' +
      'the model outputs added to output.topic under a derived Avro schema.',
    config: openInferenceConfigSpec,
    createTask: (context: TaskContext) =>
      new TFServingInferenceTask(context, {
        connect: oipClients(readRawInputContents(context.config)),
        ...dependencies,
        readSettings: readOpenInferenceSettings,
      }),
  };
}

export const openInferencePlugin: ProcessorPlugin = createOpenInferencePlugin();
