// The built-in connector plugins. This list is the only place they are named; the CLI registers
// them into a PluginRegistry instance it owns (importing a connector module registers nothing).
import type { ConnectorPlugin } from '../runtime/api.js';
import { fileSinkPlugin } from './file/file-sink.js';
import { fileSourcePlugin } from './file/file-source.js';
import { openInferencePlugin } from './open-inference/index.js';
import { passThroughPlugin } from './passthrough/passthrough.js';
import { tfServingInferencePlugin } from './tf-serving/index.js';

export const builtinPlugins: readonly ConnectorPlugin[] = [
  tfServingInferencePlugin,
  openInferencePlugin,
  fileSourcePlugin,
  fileSinkPlugin,
  passThroughPlugin,
];
