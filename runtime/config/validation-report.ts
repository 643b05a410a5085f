// Kafka Connect's JSON views of a config spec, for the REST API and the CLI:
// `GET /connector-plugins/{plugin}/config` (describeSpec) and
// `PUT /connector-plugins/{plugin}/config/validate` (validationReport).
import { parseWithVariables, type VariableOptions } from './config-providers.js';
import {
  isSecret,
  isSecretKeyName,
  MASK,
  type ConfigKey,
  type ConfigProblem,
  type ConfigSpec,
  type ConfigValue,
} from './config-spec.js';

export type ConfigKeyType = 'STRING' | 'INT' | 'LONG' | 'DOUBLE' | 'BOOLEAN' | 'LIST' | 'PASSWORD' | 'CLASS';

/** One item of `GET /connector-plugins/{plugin}/config`, and the `definition` of a validated key. */
export interface ConfigKeyInfo {
  name: string;
  type: ConfigKeyType;
  required: boolean;
  default_value: string | null;
  importance: 'HIGH' | 'MEDIUM' | 'LOW';
  documentation: string;
  group: string | null;
  width: 'NONE' | 'SHORT' | 'MEDIUM' | 'LONG';
  display_name: string;
  dependents: string[];
  /** Position within its group, from 1; -1 for a key without a group (Kafka's orderInGroup). */
  order: number;
}

export interface ConfigValueInfo {
  name: string;
  /** As given (references unresolved), else the default; secrets masked. */
  value: string | null;
  recommended_values: string[];
  errors: string[];
  visible: boolean;
}

export interface ConfigInfo {
  definition: ConfigKeyInfo;
  value: ConfigValueInfo;
}

/** Kafka Connect's validate response. */
export interface ConfigInfos {
  name: string;
  error_count: number;
  groups: string[];
  configs: ConfigInfo[];
}

function valueText(value: ConfigValue | undefined): string | null {
  if (value === undefined || value === null) return null;
  return Array.isArray(value) ? value.join(',') : String(value);
}

function keyInfo(key: ConfigKey, order: number): ConfigKeyInfo {
  const defaultValue = valueText(key.default);
  return {
    name: key.name,
    type: key.type.toUpperCase() as ConfigKeyType,
    required: key.default === undefined,
    default_value: defaultValue !== null && isSecret(key) ? MASK : defaultValue,
    importance: key.importance.toUpperCase() as ConfigKeyInfo['importance'],
    documentation: key.documentation,
    group: key.group ?? null,
    width: 'NONE',
    display_name: key.displayName ?? key.name,
    dependents: [...(key.dependents ?? [])],
    order,
  };
}

/** `GET /connector-plugins/{plugin}/config`: every key of `spec`, in spec order. */
export function describeSpec(spec: ConfigSpec): ConfigKeyInfo[] {
  const positions = new Map<string, number>();
  return spec.keys.map((key) => {
    if (key.group === undefined) return keyInfo(key, -1);
    const order = (positions.get(key.group) ?? 0) + 1;
    positions.set(key.group, order);
    return keyInfo(key, order);
  });
}

/**
 * `PUT /connector-plugins/{plugin}/config/validate`: every key of `spec` with its value and its
 * problems, plus an entry for each undeclared key that has a problem (e.g. an object value), so
 * `error_count` counts every problem. Variable references are resolved for validation (unless
 * `resolveVariables` is false) but shown unresolved; secret values (declared, or keys named like
 * secrets) are masked. With `options.paths`, `filePath` keys outside the worker's allow-list are
 * problems of their key.
 */
export function validationReport(
  pluginName: string,
  spec: ConfigSpec,
  rawConfig: Readonly<Record<string, unknown>>,
  options: VariableOptions = {},
): ConfigInfos {
  const { problems, values, given } = parseWithVariables(spec, rawConfig, options);
  const errors = new Map<string, string[]>();
  for (const p of problems) errors.set(p.key, [...(errors.get(p.key) ?? []), p.message]);

  const configs: ConfigInfo[] = describeSpec(spec).map((definition, i) => {
    const key = spec.keys[i]!;
    const shown = given[key.name] ?? valueText(values.get(key.name) ?? key.default);
    return {
      definition,
      value: {
        name: key.name,
        value: shown !== null && (isSecret(key) || isSecretKeyName(key.name)) ? MASK : shown,
        recommended_values: [...(key.validValues ?? [])],
        errors: errors.get(key.name) ?? [],
        visible: true,
      },
    };
  });
  const declared = new Set(spec.keys.map((k) => k.name));
  for (const [name, messages] of errors) {
    if (declared.has(name)) continue;
    configs.push({
      definition: keyInfo({ name, type: 'string', importance: 'low', documentation: '', default: null }, -1),
      value: { name, value: null, recommended_values: [], errors: messages, visible: true },
    });
  }
  const groups = [...new Set(spec.keys.map((k) => k.group).filter((g) => g !== undefined))];
  return { name: pluginName, error_count: problems.length, groups, configs };
}

/**
 * Adds problems found outside the spec (e.g. ones that depend on the worker) to a report: each
 * against its key's entry (one is added for an undeclared key), counted in `error_count`.
 */
export function addProblems(report: ConfigInfos, problems: readonly ConfigProblem[]): ConfigInfos {
  for (const { key, message } of problems) {
    let entry = report.configs.find((c) => c.value.name === key);
    if (!entry) {
      entry = {
        definition: keyInfo(
          { name: key, type: 'string', importance: 'low', documentation: '', default: null },
          -1,
        ),
        value: { name: key, value: null, recommended_values: [], errors: [], visible: true },
      };
      report.configs.push(entry);
    }
    entry.value.errors.push(message);
    report.error_count++;
  }
  return report;
}

/** For the CLI: one line per key, `  <key>: <message>` (a key's messages joined by "; "). */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  const byKey = new Map<string, string[]>();
  for (const p of problems) byKey.set(p.key, [...(byKey.get(p.key) ?? []), p.message]);
  return [...byKey].map(([key, messages]) => `  ${key}: ${messages.join('; ')}`).join('\n');
}
