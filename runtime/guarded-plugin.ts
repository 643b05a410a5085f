// What the worker wraps around every connector plugin before a runner sees it (the runtime owns
// plumbing, connectors own transformation):
// - File access: before each task is created, every `filePath` key of the connector's config is
//   checked again against the worker's `allowed.paths` (the directory may have changed since the
//   config was validated: a link swapped in, a directory moved), and the task gets `paths` in its
//   context to resolve the files it opens.
// - Secrets: errors the task throws or returns (bad records) have the worker's known secrets
//   hidden in place before the runner stores them as a trace, logs them or writes them into
//   dead-letter headers; `describe()` answers are redacted copies.
import type { AllowedPaths } from './allowed-paths.js';
import type { ConnectorPlugin, TaskContext } from './api.js';
import { connectorSpecFor } from './config/connector-config.js';
import type { SecretRedactor } from './secret-redaction.js';

export interface PluginGuard {
  paths: AllowedPaths;
  secrets: SecretRedactor;
}

/** Task methods whose errors and results are redacted; `describe` is synchronous. */
const ASYNC_METHODS = new Set(['start', 'poll', 'put', 'process', 'flush', 'stop']);

/** `plugin` with guarded tasks; everything else (name, kind, config spec) is the plugin's own. */
export function guardPlugin(plugin: ConnectorPlugin, guard: PluginGuard): ConnectorPlugin {
  const spec = connectorSpecFor(plugin);
  const fileKeys = spec.keys.filter((key) => key.filePath !== undefined);
  const createTask = (context: TaskContext): object => {
    try {
      for (const key of fileKeys) {
        const value = context.config.get(key.name);
        const list = Array.isArray(value) ? value : typeof value === 'string' && value !== '' ? [value] : [];
        for (const path of list) guard.paths.resolve(path, key.name);
      }
      const task = (plugin.createTask as (context: TaskContext) => object)({
        ...context,
        paths: guard.paths,
      });
      return guardTask(task, guard.secrets);
    } catch (error) {
      throw guard.secrets.redactError(error);
    }
  };
  // The three kinds differ only in the context and task types, which the guard passes through.
  return { ...plugin, createTask } as ConnectorPlugin;
}

function guardTask<T extends object>(task: T, secrets: SecretRedactor): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(task, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      if (!ASYNC_METHODS.has(property) && property !== 'describe') return value;
      let wrapper = wrapped.get(property);
      if (!wrapper) {
        const method = value as (...args: unknown[]) => unknown;
        wrapper =
          property === 'describe'
            ? () => secrets.redactValue(method.call(target))
            : async (...args: unknown[]) => {
                try {
                  return redactResults(await method.apply(target, args), secrets);
                } catch (error) {
                  throw secrets.redactError(error);
                }
              };
        wrapped.set(property, wrapper);
      }
      return wrapper;
    },
  });
}

/** Redacts, in place, the errors among a poll/put/process result (bare, or a source failure's). */
function redactResults(result: unknown, secrets: SecretRedactor): unknown {
  if (!secrets.active || !Array.isArray(result)) return result;
  for (const item of result) {
    if (item instanceof Error) secrets.redactError(item);
    else if (
      item !== null &&
      typeof item === 'object' &&
      (item as { error?: unknown }).error instanceof Error
    )
      secrets.redactError((item as { error: Error }).error);
  }
  return result;
}
