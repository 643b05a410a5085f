// TFServingInference: the flagship processor. Scores each record of `topics` with a TensorFlow
// Serving model over gRPC and writes it, with the model's outputs (and optional metadata) added,
// to `output.topic` under a derived Avro schema registered as `<output.topic>-value`.
import type { ProcessorPlugin, TaskContext } from '../../runtime/api.js';
import { tfServingConfigSpec } from './config.js';
import { TFServingInferenceTask, type InferenceTaskDependencies } from './inference-task.js';

export { TFServingInferenceTask, type InferenceTaskDependencies } from './inference-task.js';
export { tfServingConfigSpec } from './config.js';

/** The plugin; `dependencies` replace the shared gRPC client pool and timers (tests use fakes). */
export function createTfServingInferencePlugin(
  dependencies: InferenceTaskDependencies = {},
): ProcessorPlugin {
  return {
    name: 'TFServingInference',
    aliases: [
      'io.inferconnect.TFServingInference',
      'io.inferconnect.connect.tfserving.TFServingInferenceConnector',
    ],
    kind: 'processor',
    version: '0.1.0',
    description:
      'Scores records with a TensorFlow Serving model (gRPC Predict), micro-batched, rate limited and behind a ' +
      'circuit breaker, and writes them with the model outputs added to output.topic under a derived Avro schema.',
    config: tfServingConfigSpec,
    createTask: (context: TaskContext) => new TFServingInferenceTask(context, dependencies),
  };
}

export const tfServingInferencePlugin: ProcessorPlugin = createTfServingInferencePlugin();
