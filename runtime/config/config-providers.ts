// Variable references in config values, resolved when a config is parsed (Kafka Connect's config
// providers, KIP-297): `${env:VAR}` reads an environment variable, `${file:/path:key}` reads one key
// of a Java-properties file. Configs are stored and shown with the references unresolved; resolved
// values live only in the parsed config. Problems name the config key and the reference, never a
// resolved value.
//
// The worker's own config may reference any file (the operator wrote it). Connector configs arrive
// over REST, so the worker gives them a file provider bounded by Kafka's KIP-993 key
// `config.providers.file.param.allowed.paths` (`connectorConfigProviders`): unset, they may not
// reference files at all, or any REST client could read a key of any file the worker can read.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import type { AllowedPaths } from '../allowed-paths.js';
import { errorMessage } from '../error-catalogue.js';
import {
  parseConfig,
  stringifyValues,
  type ConfigProblem,
  type ConfigSpec,
  type ConfigValue,
  type ParsedConfig,
  type PathCheck,
} from './config-spec.js';

/** The outcome of looking up one variable: its value, or why it has none (no secret in it). */
export type Lookup = { value: string } | { problem: string };

export interface ConfigProvider {
  /** What comes before the first colon: `env` in `${env:HOME}`. */
  readonly name: string;
  /** The reference form shown in problems, e.g. `${file:/path/to/file.properties:key}`. */
  readonly usage: string;
  /**
   * Looks up one variable. `path` is the middle part of `${provider:path:key}` and undefined for
   * `${provider:key}`. Called synchronously while a config is parsed, once per reference.
   */
  lookup(path: string | undefined, key: string): Lookup;
}

/** `${env:VAR}`: Kafka Connect's EnvVarConfigProvider. An empty variable resolves to "". */
export function envConfigProvider(
  env: Readonly<Record<string, string | undefined>> = process.env,
): ConfigProvider {
  return {
    name: 'env',
    usage: '${env:VARIABLE_NAME}',
    lookup(path, key) {
      if (path !== undefined) return { problem: `an env reference has no path; write \${env:${key}}` };
      const value = env[key];
      return value === undefined ? { problem: `environment variable ${key} is not set` } : { value };
    },
  };
}

/** Largest file a `${file:...}` reference may read: properties files of secrets are small. */
export const MAX_PROVIDER_FILE_BYTES = 1024 * 1024;

/** Why a file a reference names is not read (not a regular file, too large). */
class ProviderFileRefused extends Error {}

/**
 * Reads a regular file of at most `maxBytes`, synchronously. The file is opened non-blocking and
 * checked before any byte is read, because a reference arrives over REST
 * (`PUT .../config/validate`) and is resolved on the worker's event loop: a FIFO would block it
 * for good, `/dev/zero` would fill its memory.
 */
export function readRegularFile(path: string, maxBytes = MAX_PROVIDER_FILE_BYTES, extraFlags = 0): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | extraFlags);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ProviderFileRefused(`${path} is not a regular file`);
    if (stat.size > maxBytes)
      throw new ProviderFileRefused(
        `${path} has ${stat.size} bytes, more than the ${maxBytes} bytes a reference may read`,
      );
    const buffer = Buffer.alloc(stat.size);
    let filled = 0;
    while (filled < buffer.length) {
      const read = readSync(fd, buffer, filled, buffer.length - filled, filled);
      if (read === 0) break;
      filled += read;
    }
    return buffer.subarray(0, filled).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * `${file:/path/to/file.properties:key}`: Kafka Connect's FileConfigProvider. The file is read at
 * every resolution (so a restarted connector sees a rotated secret); relative paths are relative
 * to the worker's working directory. Only regular files up to MAX_PROVIDER_FILE_BYTES are read.
 * With `allowed` (KIP-993's `allowed.paths`), a file outside it is a problem and is not touched;
 * the file read is the resolved path, opened without following a link swapped in since.
 */
export function fileConfigProvider(
  read: (path: string) => string = (path) => readRegularFile(path),
  allowed?: AllowedPaths,
  readResolved: (path: string) => string = (path) =>
    readRegularFile(path, MAX_PROVIDER_FILE_BYTES, constants.O_NOFOLLOW),
): ConfigProvider {
  return {
    name: 'file',
    usage: '${file:/path/to/file.properties:key}',
    lookup(path, key) {
      if (path === undefined || path === '') return { problem: `write ${this.usage}` };
      let text: string;
      try {
        if (allowed) {
          const problem = allowed.problem(path);
          if (problem) return { problem: `${path} ${problem}` };
          text = readResolved(allowed.resolve(path, 'the reference'));
        } else text = read(path);
      } catch (error) {
        if (error instanceof ProviderFileRefused)
          return { problem: `${error.message}; name a properties file` };
        const code = (error as NodeJS.ErrnoException).code;
        return { problem: `cannot read file ${path}${code ? ` (${code})` : ''}` };
      }
      const value = parseProperties(text).get(key);
      return value === undefined ? { problem: `file ${path} has no key "${key}"` } : { value };
    },
  };
}

export function defaultConfigProviders(
  env: Readonly<Record<string, string | undefined>> = process.env,
): ConfigProvider[] {
  return [envConfigProvider(env), fileConfigProvider()];
}

/**
 * The providers for connector configs: `${env:...}`, and `${file:...}` only inside `fileAllowed`
 * (the worker's `config.providers.file.param.allowed.paths`; empty, no file may be referenced).
 */
export function connectorConfigProviders(
  fileAllowed: AllowedPaths,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ConfigProvider[] {
  return [envConfigProvider(env), fileConfigProvider(undefined, fileAllowed)];
}

/**
 * Kafka's variable syntax `${provider:[path:]key}`: the provider ends at the first colon, the
 * path (if any) at the next one, so a path cannot contain a colon.
 */
const VARIABLE = /\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}/g;

export interface ResolvedConfig {
  /** Every key, references replaced; a key with an unresolved reference keeps its text as given. */
  values: Record<string, string>;
  /** One per unresolved reference, against the config key, naming the reference. */
  problems: ConfigProblem[];
  /** The keys that contained references, mapped to their text before resolution. */
  references: Record<string, string>;
  /** Every value a reference resolved to: secrets, wherever they end up. */
  resolved: string[];
}

/**
 * Resolves every `${...}` reference in `config`'s values (not its keys; resolved text is not
 * scanned again). Callers must treat the values of keys listed in `references` like secrets.
 */
export function resolveVariables(
  config: Readonly<Record<string, string>>,
  providers: readonly ConfigProvider[] = defaultConfigProviders(),
): ResolvedConfig {
  const byName = new Map(providers.map((p) => [p.name, p]));
  const values: Record<string, string> = {};
  const problems: ConfigProblem[] = [];
  const references: Record<string, string> = {};
  const found = new Set<string>();
  for (const [key, text] of Object.entries(config)) {
    if (!text.includes('${')) {
      values[key] = text;
      continue;
    }
    let failed = false;
    const resolved = text.replace(
      VARIABLE,
      (reference, name: string, path: string | undefined, variable: string) => {
        const provider = byName.get(name);
        const lookup: Lookup = provider
          ? provider.lookup(path, variable)
          : {
              problem: `unknown config provider "${name}"; use one of: ${providers.map((p) => p.usage).join(', ')}`,
            };
        if ('value' in lookup) {
          found.add(lookup.value);
          return lookup.value;
        }
        failed = true;
        problems.push({
          key,
          message: errorMessage('CONFIG_VARIABLE_UNRESOLVED', { reference, reason: lookup.problem }),
        });
        return reference;
      },
    );
    if (resolved === text && !failed) {
      values[key] = text;
      continue;
    }
    references[key] = text;
    values[key] = failed ? text : resolved;
  }
  return { values, problems, references, resolved: [...found] };
}

export interface VariableOptions {
  /** Resolve `${...}` references (default true); when false they are taken literally. */
  resolveVariables?: boolean;
  /** Default: `env` over `process.env` and `file`. */
  providers?: readonly ConfigProvider[];
  /** The worker's file allow-list for `filePath` keys (ParseOptions.paths). */
  paths?: PathCheck;
}

export interface ParseResult {
  config: ParsedConfig | undefined;
  /** Every problem at once; a key whose reference did not resolve is not also reported as invalid. */
  problems: ConfigProblem[];
  /** Parsed values by key (defaults included) for keys that parsed, even when others did not. */
  values: ReadonlyMap<string, ConfigValue>;
  /** Every key as given, as strings, references unresolved: what may be stored and shown. */
  given: Record<string, string>;
}

/** `parseConfig` after resolving variable references: the way every config is parsed at start. */
export function parseWithVariables(
  spec: ConfigSpec,
  raw: Readonly<Record<string, unknown>>,
  options: VariableOptions = {},
): ParseResult {
  const { values: given, problems } = stringifyValues(raw, spec);
  const resolved =
    options.resolveVariables === false
      ? { values: given, problems: [], references: {}, resolved: [] }
      : resolveVariables(given, options.providers);
  problems.push(...resolved.problems);
  const parsed = parseConfig(spec, resolved.values, {
    references: resolved.references,
    resolved: resolved.resolved,
    ...(options.paths ? { paths: options.paths } : {}),
  });
  const reported = new Set(problems.map((p) => p.key));
  problems.push(...parsed.problems.filter((p) => !reported.has(p.key)));
  return {
    config: problems.length === 0 ? parsed.config : undefined,
    problems,
    values: parsed.values,
    given,
  };
}

/**
 * Parses Java-properties text (java.util.Properties.load): `key=value`, `key: value` or
 * `key value`; `#` and `!` comment lines; a trailing backslash continues a line; `\t`, `\n`,
 * `\uXXXX`-style escapes. Unlike Java, trailing whitespace of a value is trimmed too (a secret
 * file saved with a trailing space is a classic outage); escape it (`\ `) to keep it. A repeated
 * key keeps its last value.
 */
export function parseProperties(text: string): Map<string, string> {
  const result = new Map<string, string>();
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.replace(/^[ \t\f]+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    while (endsWithOddBackslashes(line) && i + 1 < lines.length) {
      line = line.slice(0, -1) + lines[++i]!.replace(/^[ \t\f]+/, '');
    }
    if (endsWithOddBackslashes(line)) line = line.slice(0, -1);

    let keyEnd = 0;
    while (keyEnd < line.length && !/[=: \t\f]/.test(line[keyEnd]!)) keyEnd += line[keyEnd] === '\\' ? 2 : 1;
    keyEnd = Math.min(keyEnd, line.length);
    let valueStart = keyEnd;
    while (valueStart < line.length && /[ \t\f]/.test(line[valueStart]!)) valueStart++;
    if (valueStart < line.length && /[=:]/.test(line[valueStart]!)) valueStart++;
    while (valueStart < line.length && /[ \t\f]/.test(line[valueStart]!)) valueStart++;

    let value = line.slice(valueStart);
    const trimmed = value.replace(/[ \t\f]+$/, '');
    // `\ ` at the end is an escaped space: keep it (and only it).
    value = endsWithOddBackslashes(trimmed) ? value.slice(0, trimmed.length + 1) : trimmed;
    result.set(unescapeProperties(line.slice(0, keyEnd)), unescapeProperties(value));
  }
  return result;
}

function endsWithOddBackslashes(line: string): boolean {
  const match = /\\+$/.exec(line);
  return match !== null && match[0].length % 2 === 1;
}

function unescapeProperties(text: string): string {
  return text.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, escaped: string) => {
    if (escaped.length === 5) return String.fromCharCode(parseInt(escaped.slice(1), 16));
    return ({ t: '\t', n: '\n', r: '\r', f: '\f' } as Record<string, string>)[escaped] ?? escaped;
  });
}

/** Largest config file read: far above any real config, far below what would exhaust the process. */
export const MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Reads a config file of at most `maxBytes`. Pipes and devices are read too (`validate <(...)`,
 * `/dev/stdin`), in chunks, so an endless one (`/dev/zero`) stops at the cap instead of filling
 * memory.
 */
function readConfigText(path: string, maxBytes: number): string {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(1024 * 1024, maxBytes + 1 - total));
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      chunks.push(chunk.subarray(0, read));
      total += read;
      if (total > maxBytes) throw new ProviderFileRefused(`it is larger than ${maxBytes} bytes`);
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a config document: Java-properties text when the name ends in `.properties` (a flat
 * object of strings), JSON otherwise. `error` says what is wrong without repeating the path:
 * an unreadable or oversized file, bad JSON with its line and column, or a key given twice in
 * one object (JSON.parse would silently keep the last value).
 */
export function loadConfigDocument(path: string): { document: unknown } | { error: string } {
  let text: string;
  try {
    text = readConfigText(path, MAX_CONFIG_FILE_BYTES);
  } catch (cause) {
    if (cause instanceof ProviderFileRefused) return { error: `cannot read the file: ${cause.message}` };
    const code = (cause as NodeJS.ErrnoException).code;
    return { error: `cannot read the file${code ? ` (${code})` : ''}` };
  }
  if (path.endsWith('.properties')) return { document: Object.fromEntries(parseProperties(text)) };
  let document: unknown;
  try {
    document = JSON.parse(text) as unknown;
  } catch {
    return { error: `not valid JSON: ${jsonSyntaxError(text)}` };
  }
  const duplicate = duplicateJsonKey(text);
  if (duplicate) return { error: duplicateKeyMessage(duplicate) };
  return { document };
}

export interface DuplicateKey {
  key: string;
  line: number;
  column: number;
}

export const duplicateKeyMessage = ({ key, line, column }: DuplicateKey): string =>
  `duplicate key "${key}" at line ${line} column ${column}: a key may appear once per object; keep the value you mean`;

/**
 * The first key that appears twice in one object of `text`, which must be valid JSON (check it
 * with JSON.parse first). Iterative, so any nesting depth JSON.parse accepts is fine.
 */
export function duplicateJsonKey(text: string): DuplicateKey | undefined {
  /** One entry per open container: the keys seen so far for an object, null for an array. */
  const open: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') {
      open.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      open.push(null);
      expectKey = false;
    } else if (c === '}' || c === ']') {
      open.pop();
      expectKey = false;
    } else if (c === ',') expectKey = open.at(-1) instanceof Set;
    else if (c === '"') {
      const start = i++;
      while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      if (!expectKey) continue;
      expectKey = false;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      const keys = open.at(-1)!;
      if (!keys.has(key)) {
        keys.add(key);
        continue;
      }
      const before = text.slice(0, start);
      return { key, line: before.split('\n').length, column: start - before.lastIndexOf('\n') };
    }
  }
  return undefined;
}

/**
 * Where and why `text` is not JSON, found by a small scanner: V8's messages lack a position for
 * some errors and quote the surrounding text, which may hold a secret.
 */
function jsonSyntaxError(text: string): string {
  let i = 0;
  const fail = (what: string): never => {
    throw new JsonSyntax(what, i);
  };
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const unexpected = (): never =>
    fail(i >= text.length ? 'unexpected end of input' : `unexpected ${JSON.stringify(text[i])}`);
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else unexpected();
  };
  const string = () => {
    i++;
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) fail('unescaped control character in a string');
      if (text[i] === '\\') {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail('bad \\u escape');
          i += 4;
        } else if (i >= text.length || !'"\\/bfnrt'.includes(text[i]!)) fail('bad escape');
      }
      i++;
    }
    if (i >= text.length) fail('unterminated string');
    i++;
  };
  const number = () => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!match) unexpected();
    i += match![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"')
          fail(i >= text.length ? 'unexpected end of input' : 'expected a double-quoted property name');
        string();
        ws();
        if (text[i] !== ':') fail("expected ':' after a property name");
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail("expected ',' or ']'");
      }
    } else if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) number();
    else unexpected();
  };
  try {
    value();
    ws();
    if (i < text.length) fail('unexpected text after the JSON value');
    return 'unexpected syntax';
  } catch (error) {
    if (!(error instanceof JsonSyntax)) throw error;
    const before = text.slice(0, error.position);
    const line = before.split('\n').length;
    const column = error.position - before.lastIndexOf('\n');
    return `${error.message} at line ${line} column ${column}`;
  }
}

class JsonSyntax extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
  }
}
