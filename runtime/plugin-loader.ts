// Loads the connector plugins named by the worker key `plugin.path` (Kafka Connect's name): a
// comma-separated list of folders and npm package names, read once when the worker starts.
//
// The contract (docs/writing-a-connector.md):
// - An entry that is absolute or starts with `.` is a folder, relative to the working directory;
//   any other entry is an npm package name (`name` or `@scope/name`), looked up in the
//   node_modules folders from the working directory upwards, as Node would.
// - A folder with a package.json is one plugin package; a folder without one holds plugin
//   packages, one per subfolder (Kafka Connect's layout). A package's module is its package.json
//   "exports" (the "." entry: a string, or its "import" or "default" condition), else its "main",
//   else index.js, index.mjs or index.ts.
// - That module's default export is one plugin definition or an array of them.
// - Plugins import the contract as `infer-connect/api`: the loader resolves that specifier (and
//   `infer-connect`) to this runtime's own api module (Kafka Connect's plugin class loaders
//   delegate the API packages to the runtime the same way), so a plugin's RecordError is the
//   class the runtime checks with `instanceof`, whatever copy of the package the plugin installed.
//
// Every problem (a missing folder, a module that fails to load, an export that is not a plugin
// definition, a name already taken) is collected and reported at
// once as one CONFIG_INVALID error naming each file and what is wrong, never as a stack trace.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as api from './api.js';
import type { ConnectorPlugin, PluginKind } from './api.js';
import { errorMessage } from './error-catalogue.js';
import { ConnectError } from './errors.js';
import { PluginRegistry } from './plugin-registry.js';

/** The worker key listing folders and packages of connector plugins. */
export const PLUGIN_PATH = 'plugin.path';

/** A plugin definition and the module file it was exported by. */
export interface LoadedPlugin {
  plugin: ConnectorPlugin;
  source: string;
}

const ENTRY_FILES = ['index.js', 'index.mjs', 'index.ts'];
const KINDS: readonly PluginKind[] = ['source', 'sink', 'processor'];

/**
 * Imports the plugin modules of every `plugin.path` entry, in order. Throws one CONFIG_INVALID
 * ConnectError listing every problem when any entry cannot be used.
 */
export async function loadPluginPath(
  entries: readonly string[],
  options: { cwd?: string } = {},
): Promise<LoadedPlugin[]> {
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];
  const modules: string[] = [];
  for (const entry of entries) {
    const found = pluginModulesOf(entry, cwd);
    if ('problem' in found) problems.push(`"${entry}": ${found.problem}`);
    else modules.push(...found.modules);
  }
  const loaded: LoadedPlugin[] = [];
  if (modules.length > 0) resolveContractForPlugins();
  for (const file of modules) {
    let exported: unknown;
    try {
      exported = ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
    } catch (error) {
      problems.push(`${file}: the module failed to load: ${(error as Error)?.message ?? String(error)}`);
      continue;
    }
    const definitions = Array.isArray(exported) ? (exported as unknown[]) : [exported];
    if (exported === undefined || definitions.length === 0) {
      problems.push(`${file}: has no default export; export default a plugin definition or an array of them`);
      continue;
    }
    definitions.forEach((definition, index) => {
      const where = Array.isArray(exported) ? `${file} (default export [${index}])` : file;
      const problem = definitionProblem(definition);
      if (problem) problems.push(`${where}: ${problem}`);
      else loaded.push({ plugin: definition as ConnectorPlugin, source: file });
    });
  }
  if (problems.length > 0) throw invalid(problems);
  return loaded;
}

/**
 * The registry a worker runs with: the built-ins, then every plugin `plugin.path` names, in order.
 * A name or alias taken twice is a CONFIG_INVALID error naming both sources.
 */
export async function pluginRegistryWith(
  builtins: readonly ConnectorPlugin[],
  pluginPath: readonly string[],
  options: { cwd?: string } = {},
): Promise<PluginRegistry> {
  const registry = PluginRegistry.of(builtins);
  const problems: string[] = [];
  for (const { plugin, source } of await loadPluginPath(pluginPath, options)) {
    try {
      registry.register(plugin, source);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length > 0) throw invalid(problems);
  return registry;
}

function invalid(problems: readonly string[]): ConnectError {
  return new ConnectError(
    'CONFIG_INVALID',
    errorMessage('CONFIG_INVALID', { source: `of ${PLUGIN_PATH}`, details: `\n  ${problems.join('\n  ')}` }),
    { stage: 'CONFIG' },
  );
}

/** The module files of one `plugin.path` entry, or what is wrong with it. */
function pluginModulesOf(entry: string, cwd: string): { modules: string[] } | { problem: string } {
  const isFolder = isAbsolute(entry) || entry.startsWith('.');
  const folder = isFolder ? resolve(cwd, entry) : packageFolder(entry, cwd);
  if (folder === undefined)
    return { problem: `no package of this name in node_modules from ${cwd} upwards (npm install it there)` };
  if (!isDirectory(folder)) return { problem: `${folder} is not a folder` };
  if (existsSync(join(folder, 'package.json')) || ENTRY_FILES.some((f) => existsSync(join(folder, f)))) {
    const module = packageModule(folder);
    return 'problem' in module ? module : { modules: [module.file] };
  }
  const modules: string[] = [];
  const problems: string[] = [];
  for (const name of readdirSync(folder).sort()) {
    const sub = join(folder, name);
    if (!isDirectory(sub)) continue;
    const module = packageModule(sub);
    if ('problem' in module) problems.push(module.problem);
    else modules.push(module.file);
  }
  if (problems.length > 0) return { problem: problems.join('; ') };
  if (modules.length === 0)
    return {
      problem: `${folder} holds no plugin package (a package.json, index.js, or subfolders with them)`,
    };
  return { modules };
}

/** The module a package folder exports: package.json "exports" ".", then "main", then index.*. */
function packageModule(folder: string): { file: string } | { problem: string } {
  const manifestFile = join(folder, 'package.json');
  if (existsSync(manifestFile)) {
    let manifest: { exports?: unknown; main?: unknown };
    try {
      manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as typeof manifest;
    } catch (error) {
      return { problem: `${manifestFile}: not valid JSON (${(error as Error).message})` };
    }
    const target =
      exportsTarget(manifest.exports) ?? (typeof manifest.main === 'string' ? manifest.main : undefined);
    if (target !== undefined) {
      const file = resolve(folder, target);
      return existsSync(file)
        ? { file }
        : { problem: `${manifestFile}: its "exports"/"main" names ${file}, which does not exist` };
    }
  }
  const index = ENTRY_FILES.map((f) => join(folder, f)).find((f) => existsSync(f));
  return index
    ? { file: index }
    : { problem: `${folder}: no package.json "exports" or "main", and no ${ENTRY_FILES.join(', ')}` };
}

/** The file of an "exports" field's "." entry: a string, or its "import" or "default" condition. */
function exportsTarget(exports: unknown): string | undefined {
  if (typeof exports === 'string') return exports;
  if (typeof exports !== 'object' || exports === null || Array.isArray(exports)) return undefined;
  const record = exports as Record<string, unknown>;
  const dot = '.' in record ? record['.'] : record;
  if (typeof dot === 'string') return dot;
  if (typeof dot !== 'object' || dot === null) return undefined;
  const conditions = dot as Record<string, unknown>;
  for (const condition of ['import', 'default']) {
    const value = conditions[condition];
    if (typeof value === 'string') return value;
    const nested = exportsTarget(value);
    if (nested !== undefined) return nested;
  }
  return undefined;
}

/** node_modules/<name> in `cwd` or the nearest parent that has it. */
function packageFolder(name: string, cwd: string): string | undefined {
  for (let dir = cwd; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** What is wrong with a default export that should be a plugin definition, or undefined. */
export function definitionProblem(definition: unknown): string | undefined {
  if (typeof definition !== 'object' || definition === null)
    return `exports ${definition === null ? 'null' : typeof definition}, not a plugin definition (an object with name, kind, version, description, config and createTask)`;
  const d = definition as Record<string, unknown>;
  const wrong: string[] = [];
  if (typeof d['name'] !== 'string' || d['name'].trim() === '')
    wrong.push('"name" must be a non-empty string');
  if (!KINDS.includes(d['kind'] as PluginKind)) wrong.push(`"kind" must be one of ${KINDS.join(', ')}`);
  if (typeof d['version'] !== 'string') wrong.push('"version" must be a string');
  if (typeof d['description'] !== 'string') wrong.push('"description" must be a string');
  if (typeof d['createTask'] !== 'function') wrong.push('"createTask" must be a function');
  if (
    d['aliases'] !== undefined &&
    !(Array.isArray(d['aliases']) && d['aliases'].every((a) => typeof a === 'string'))
  )
    wrong.push('"aliases" must be an array of strings');
  const config = d['config'] as { keys?: unknown; rules?: unknown } | undefined;
  if (
    typeof config !== 'object' ||
    config === null ||
    !Array.isArray(config.keys) ||
    !Array.isArray(config.rules)
  )
    wrong.push('"config" must be a config spec made with defineConfig([...]) from infer-connect/api');
  if (wrong.length > 0) {
    const named = typeof d['name'] === 'string' ? `plugin "${d['name']}": ` : 'not a plugin definition: ';
    return named + wrong.join('; ');
  }
  return undefined;
}

let contractResolved = false;

/** The module URL plugins get for `infer-connect/api`. */
const CONTRACT_URL = 'infer-connect:api';
/** Where that module finds the runtime's api namespace (set once, read only by that module). */
const CONTRACT_BRIDGE = 'infer-connect.plugin-api';

/**
 * Makes `infer-connect/api` (and `infer-connect`) resolve, for every module imported from now on,
 * to a module re-exporting the very api namespace this runtime imported: plugins then construct
 * the same RecordError the runtime checks with `instanceof`, whether the runtime runs compiled,
 * from TypeScript sources through tsx, or as CommonJS in a test runner (where importing the api
 * file by URL would give a second copy). Installed once per process; other specifiers untouched.
 */
function resolveContractForPlugins(): void {
  if (contractResolved) return;
  contractResolved = true;
  (globalThis as Record<symbol, unknown>)[Symbol.for(CONTRACT_BRIDGE)] = api;
  const source = [
    `const api = globalThis[Symbol.for(${JSON.stringify(CONTRACT_BRIDGE)})];`,
    ...Object.keys(api)
      .filter((name) => name !== 'default' && /^[A-Za-z_$][\w$]*$/.test(name))
      .map((name) => `export const ${name} = api.${name};`),
  ].join('\n');
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === 'infer-connect/api' || specifier === 'infer-connect')
        return { url: CONTRACT_URL, shortCircuit: true };
      return nextResolve(specifier, context);
    },
    load(url, context, nextLoad) {
      if (url === CONTRACT_URL) return { format: 'module', source, shortCircuit: true };
      return nextLoad(url, context);
    },
  });
}
