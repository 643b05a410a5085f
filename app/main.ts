// The composition root of the `infer-connect` command: it decides which plugins are built in (the
// list of connectors/index.ts) and hands them to the runtime's CLI, which adds those the worker's
// `plugin.path` names. runtime/ never imports connectors/ (eslint.config.js enforces it), so a
// different command could ship the same runtime with other built-ins, or none.
import { builtinPlugins } from '../connectors/index.js';
import { runCli } from '../runtime/cli.js';

runCli(process.argv, builtinPlugins);
