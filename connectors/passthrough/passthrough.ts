// PassThrough: a processor that writes every record unchanged (same key bytes, same value and
// Avro schema) to `output.topic`. It measures the runtime's own cost (consume, decode, encode,
// produce, commit) in benchmarks and serves as the smallest example of a processor.
import {
  defineConfig,
  type ProcessorPlugin,
  type ProcessorTask,
  type TaskContext,
} from '../../runtime/api.js';

function createTask(context: TaskContext): ProcessorTask {
  const output = context.config.getString('output.topic');
  return {
    async process(records) {
      return records.map((r) => [
        {
          topic: output,
          rawKey: r.rawKey,
          value: r.value,
          ...(r.valueSchema ? { valueSchema: r.valueSchema.type } : {}),
          headers: r.headers as Record<string, Buffer>,
        },
      ]);
    },
  };
}

export const passThroughPlugin: ProcessorPlugin = {
  name: 'PassThrough',
  kind: 'processor',
  version: '0.1.0',
  description: 'Copies records to output.topic unchanged (decoded and re-encoded by the converters).',
  config: defineConfig([]),
  createTask,
};
