// Declarative config specs: the one source of truth for a key's type, default, validation,
// documentation and secrecy. Parsing reports every problem at once, each against its key with a
// hint on how to fix it; cross-key rules run after every key parsed.
//
// Problem messages never contain the value of a secret key, nor a value that came from a
// `${env:...}`/`${file:...}` reference: they name the reference instead (a REST client could
// otherwise read any file the worker can by putting a reference into a validated key).
//
// Keys that name files (`filePath`) are checked against the worker's `allowed.paths` when a
// validation context gives them (`ParseOptions.paths`): a path outside is a problem of its key.

export type ConfigType = 'string' | 'int' | 'long' | 'double' | 'boolean' | 'list' | 'password' | 'class';
export type Importance = 'high' | 'medium' | 'low';
export type ConfigValue = string | number | boolean | string[] | null;

export interface ConfigKey {
  name: string;
  type: ConfigType;
  documentation: string;
  importance: Importance;
  /** Absent means the key is required. `null` means optional with no value. */
  default?: ConfigValue;
  group?: string;
  displayName?: string;
  /** Allowed values for `string` keys (and each element of `list` keys), case-sensitive. */
  validValues?: readonly string[];
  min?: number;
  max?: number;
  /** Returns a problem (what is wrong and how to fix it), or undefined when the value is fine. */
  validate?: (value: ConfigValue, values: ReadonlyMap<string, ConfigValue>) => string | undefined;
  /** Never logged or returned unmasked. `password` keys are always secret. */
  secret?: boolean;
  /** Keys whose meaning depends on this one (Kafka Connect's `dependents`, shown by the REST API). */
  dependents?: readonly string[];
  /**
   * The value names a file (or directory) the connector reads or writes: the runtime refuses a
   * path outside the worker's `allowed.paths` when the config is validated or submitted and again
   * before each task is created. Say so in `documentation` too. `list` keys: every element.
   */
  filePath?: 'read' | 'write';
}

export interface CrossKeyRule {
  /** The keys the problem is reported against (the first one gets the message). */
  keys: readonly string[];
  check: (values: ReadonlyMap<string, ConfigValue>) => string | undefined;
}

export interface ConfigSpec {
  keys: readonly ConfigKey[];
  rules: readonly CrossKeyRule[];
}

export interface ConfigProblem {
  key: string;
  message: string;
}

export function defineConfig(keys: readonly ConfigKey[], rules: readonly CrossKeyRule[] = []): ConfigSpec {
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key.name)) throw new Error(`config spec declares "${key.name}" twice`);
    seen.add(key.name);
  }
  return { keys, rules };
}

/** Later specs' keys replace earlier ones of the same name; rules accumulate. */
export function mergeSpecs(...specs: ConfigSpec[]): ConfigSpec {
  const keys = new Map<string, ConfigKey>();
  for (const spec of specs) for (const key of spec.keys) keys.set(key.name, key);
  return { keys: [...keys.values()], rules: specs.flatMap((s) => s.rules) };
}

export const isSecret = (key: ConfigKey): boolean => key.type === 'password' || key.secret === true;

/**
 * Whether a key's name marks its value secret, declared or not (pass-through keys such as
 * `consumer.override.sasl.jaas.config` have no spec): a name containing `password` or `secret`,
 * or ending in `.jaas.config`, `.user.info` or `.key` (a PEM private key: `ssl.keystore.key`).
 */
export const isSecretKeyName = (name: string): boolean => {
  // The alias of a transform or predicate is a name the user chose (`transforms.dropSecret.type`),
  // not a kind of value: judge only the key under it.
  const own = name.replace(/^(transforms|predicates)\.[^.]+\./, '');
  return /password|secret/i.test(own) || /(^|\.)(jaas\.config|user\.info|key)$/i.test(own);
};

export const MASK = '[hidden]';

/**
 * Shorter sensitive values are never replaced in text: masking every "true" or "1" would garble
 * messages, and values that short cannot be meaningful secrets.
 */
export const MIN_SECRET_LENGTH = 4;

/** How a validation sees the worker's file allow-list (a subset of the plugin API's AllowedPaths). */
export interface PathCheck {
  /** Why `path` may not be used, phrased to follow the value; undefined when it may. */
  problem(path: string): string | undefined;
}

/** A validated config: typed getters over parsed values, plus the keys no spec declared. */
export class ParsedConfig {
  constructor(
    private readonly spec: ConfigSpec,
    private readonly values: ReadonlyMap<string, ConfigValue>,
    /** Every key as given (after variable resolution), including undeclared pass-through keys. */
    readonly originals: Readonly<Record<string, string>>,
    /** For keys whose value came from variable references: the text before resolution. */
    private readonly references: Readonly<Record<string, string>> = {},
    /** Every value a `${...}` reference resolved to (a part of a key's value, or all of it). */
    private readonly resolved: readonly string[] = [],
  ) {}

  /** The keys whose value came (at least partly) from `${...}` references. */
  referencedKeys(): string[] {
    return Object.keys(this.references);
  }

  /**
   * The values that must never be shown (logs, traces, dead-letter headers, REST answers): each
   * value a `${env:...}`/`${file:...}` reference resolved to, the resolved values of keys with
   * references, and the values of secret keys (declared, or named like one). Values shorter than
   * MIN_SECRET_LENGTH are left out.
   */
  secretValues(): string[] {
    const secret = new Set(this.spec.keys.filter(isSecret).map((k) => k.name));
    const values = [
      ...this.resolved,
      ...Object.keys(this.references).map((key) => this.originals[key]),
      ...Object.entries(this.originals)
        .filter(([key]) => secret.has(key) || isSecretKeyName(key))
        .map(([, value]) => value),
    ];
    return [
      ...new Set(values.filter((v): v is string => v !== undefined && v.trim().length >= MIN_SECRET_LENGTH)),
    ];
  }

  has(name: string): boolean {
    const v = this.values.get(name);
    return v !== undefined && v !== null;
  }

  get(name: string): ConfigValue {
    if (!this.spec.keys.some((k) => k.name === name)) throw new Error(`config key "${name}" is not declared`);
    return this.values.get(name) ?? null;
  }

  getString(name: string): string {
    return this.typed(name, 'string') as string;
  }

  getOptionalString(name: string): string | undefined {
    const v = this.get(name);
    return v === null || v === '' ? undefined : String(v);
  }

  getNumber(name: string): number {
    return this.typed(name, 'number') as number;
  }

  getOptionalNumber(name: string): number | undefined {
    const v = this.get(name);
    return v === null ? undefined : (v as number);
  }

  getBoolean(name: string): boolean {
    return this.typed(name, 'boolean') as boolean;
  }

  getList(name: string): string[] {
    const v = this.get(name);
    return v === null ? [] : (v as string[]);
  }

  /** Keys starting with `prefix`, with the prefix removed (e.g. `consumer.override.`). */
  withPrefix(prefix: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.originals))
      if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
    return out;
  }

  /**
   * The config as given, secrets masked and variable references shown unresolved (as Kafka
   * Connect returns them): safe to log or return over REST.
   */
  masked(): Record<string, string> {
    return maskSecrets(this.spec, { ...this.originals, ...this.references });
  }

  private typed(name: string, expected: 'string' | 'number' | 'boolean'): ConfigValue {
    const v = this.get(name);
    if (typeof v !== expected) throw new Error(`config key "${name}" has no ${expected} value`);
    return v;
  }
}

export function maskSecrets(
  spec: ConfigSpec,
  config: Readonly<Record<string, string>>,
): Record<string, string> {
  const secret = new Set(spec.keys.filter(isSecret).map((k) => k.name));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) out[k] = secret.has(k) || isSecretKeyName(k) ? MASK : v;
  return out;
}

/**
 * Kafka Connect sends every value as a string; JSON configs may also use numbers and booleans, and
 * arrays of strings for `list` keys (joined with commas). With `spec`, an array given for a key the
 * spec declares with another type is a problem (`["FileSink"]` is not a connector class); without
 * it, and for undeclared pass-through keys, arrays of strings are joined.
 */
export function stringifyValues(
  raw: Readonly<Record<string, unknown>>,
  spec?: ConfigSpec,
): {
  values: Record<string, string>;
  problems: ConfigProblem[];
} {
  const types = new Map((spec?.keys ?? []).map((k) => [k.name, k.type]));
  const values: Record<string, string> = {};
  const problems: ConfigProblem[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (value === null || value === undefined) continue;
    const type = types.get(key);
    if (typeof value === 'string') values[key] = value;
    else if (typeof value === 'number' || typeof value === 'boolean') values[key] = String(value);
    else if (Array.isArray(value) && type !== undefined && type !== 'list')
      problems.push({
        key,
        message: `takes one value, got an array; write it as a string (only list keys such as topics take arrays)`,
      });
    else if (Array.isArray(value) && value.every((v) => typeof v === 'string')) values[key] = value.join(',');
    else
      problems.push({
        key,
        message: `must be a string, number or boolean, got ${Array.isArray(value) ? 'an array' : 'an object'}; write it as a string`,
      });
  }
  return { values, problems };
}

/**
 * How a problem message shows the offending value: quoted as given, or (for secrets and resolved
 * references) a phrase that does not reveal it.
 */
type ShowValue = (value: string) => string;
const quoted: ShowValue = (value) => `"${value}"`;

function parseValue(key: ConfigKey, raw: string, show: ShowValue): { value?: ConfigValue; problem?: string } {
  const text = raw.trim();
  switch (key.type) {
    case 'string':
    case 'password':
    case 'class':
      return { value: raw };
    case 'int':
    case 'long': {
      if (!/^-?\d+$/.test(text)) return { problem: `must be a whole number, got ${show(raw)}` };
      const n = Number(text);
      if (key.type === 'int' && (n > 2 ** 31 - 1 || n < -(2 ** 31)))
        return { problem: `must fit in 32 bits, got ${show(text)}` };
      if (!Number.isSafeInteger(n)) return { problem: `is too large: ${show(text)}` };
      return { value: n };
    }
    case 'double': {
      const n = Number(text);
      if (text === '' || !Number.isFinite(n)) return { problem: `must be a number, got ${show(raw)}` };
      return { value: n };
    }
    case 'boolean':
      if (/^true$/i.test(text)) return { value: true };
      if (/^false$/i.test(text)) return { value: false };
      return { problem: `must be true or false, got ${show(raw)}` };
    case 'list':
      return {
        value:
          text === ''
            ? []
            : text
                .split(',')
                .map((s) => s.trim())
                .filter((s) => s.length > 0),
      };
  }
}

function checkRange(key: ConfigKey, value: ConfigValue, show: ShowValue): string | undefined {
  if (typeof value === 'number') {
    const got = show === quoted ? String(value) : show(String(value));
    if (key.min !== undefined && value < key.min) return `must be at least ${key.min}, got ${got}`;
    if (key.max !== undefined && value > key.max) return `must be at most ${key.max}, got ${got}`;
  }
  if (key.validValues) {
    const list = Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
    const bad = list.filter((v) => !key.validValues!.includes(v));
    if (bad.length > 0) return `${show(bad.join(', '))} is not one of: ${key.validValues.join(', ')}`;
  }
  return undefined;
}

export interface ParseOptions {
  /**
   * Keys whose value came from `${...}` variable references, mapped to the text before
   * resolution: their values are kept out of problem messages and `ParsedConfig.masked()`.
   */
  references?: Readonly<Record<string, string>>;
  /** The values those references resolved to: kept out of problem messages too. */
  resolved?: readonly string[];
  /**
   * The worker's file allow-list: `filePath` keys outside it are problems. Absent when there is
   * no worker to ask (`infer-connect validate` without `--worker`): those keys are not checked.
   */
  paths?: PathCheck;
}

/** Parses and validates `raw` against `spec`, reporting every problem at once. */
export function parseConfig(
  spec: ConfigSpec,
  raw: Readonly<Record<string, unknown>>,
  options: ParseOptions = {},
): { config: ParsedConfig | undefined; problems: ConfigProblem[]; values: ReadonlyMap<string, ConfigValue> } {
  const references = options.references ?? {};
  const resolved = options.resolved ?? [];
  const { values: given, problems } = stringifyValues(raw, spec);
  const values = new Map<string, ConfigValue>();
  const failed = new Set<string>(problems.map((p) => p.key));
  const secretKeys = new Set(spec.keys.filter(isSecret).map((k) => k.name));
  const showFor = (name: string): ShowValue => {
    if (secretKeys.has(name)) return () => 'a hidden value';
    const reference = references[name];
    return reference === undefined ? quoted : () => `the value resolved from ${reference}`;
  };

  for (const key of spec.keys) {
    const text = given[key.name];
    if (text === undefined) {
      if (key.default === undefined) {
        problems.push({ key: key.name, message: `is required: ${firstSentence(key.documentation)}` });
        failed.add(key.name);
      } else values.set(key.name, key.default);
      continue;
    }
    const show = showFor(key.name);
    const parsed = parseValue(key, text, show);
    const problem = parsed.problem ?? checkRange(key, parsed.value!, show);
    if (problem) {
      problems.push({ key: key.name, message: problem });
      failed.add(key.name);
    } else values.set(key.name, parsed.value!);
  }
  // Key-level validators and cross-key rules see only keys that parsed.
  for (const key of spec.keys) {
    if (!key.validate || failed.has(key.name)) continue;
    const value = values.get(key.name);
    if (value === undefined || value === null) continue;
    const problem = key.validate(value, values);
    if (problem) {
      problems.push({ key: key.name, message: problem });
      failed.add(key.name);
    }
  }
  for (const rule of spec.rules) {
    if (rule.keys.some((k) => failed.has(k))) continue;
    const problem = rule.check(values);
    if (problem) problems.push({ key: rule.keys[0]!, message: problem });
  }
  if (options.paths) problems.push(...pathProblems(spec, values, failed, options.paths, showFor));
  // Validators and rules are written by connector authors and may echo values: hide sensitive
  // ones (longest first, so a secret containing another is hidden whole).
  const sensitive = [
    ...resolved,
    ...Object.keys(given)
      .filter((name) => secretKeys.has(name) || references[name] !== undefined || isSecretKeyName(name))
      .map((name) => given[name]!),
  ]
    .filter((value) => value.trim().length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  const redacted = problems.map((p) => ({
    key: p.key,
    message: sensitive.reduce((message, value) => message.split(value).join(MASK), p.message),
  }));
  return {
    config: problems.length === 0 ? new ParsedConfig(spec, values, given, references, resolved) : undefined,
    problems: redacted,
    values,
  };
}

/** `filePath` keys whose (parsed) value lies outside the allow-list, shown the way `show` says. */
function pathProblems(
  spec: ConfigSpec,
  values: ReadonlyMap<string, ConfigValue>,
  failed: ReadonlySet<string>,
  paths: PathCheck,
  showFor: (name: string) => ShowValue,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const key of spec.keys) {
    if (!key.filePath || failed.has(key.name)) continue;
    const value = values.get(key.name);
    const list = Array.isArray(value) ? value : typeof value === 'string' && value !== '' ? [value] : [];
    for (const path of list) {
      const problem = paths.problem(path);
      if (problem) problems.push({ key: key.name, message: `${showFor(key.name)(path)} ${problem}` });
    }
  }
  return problems;
}

function firstSentence(text: string): string {
  const end = text.indexOf('. ');
  return end === -1 ? text : text.slice(0, end + 1);
}
