// Secrets never leak: one redactor per worker knows the secret values of the worker config and of
// every connector, and replaces them with `[hidden]` wherever text leaves the worker: task traces
// and error messages in REST answers, log lines, dead-letter headers, task details.
//
// A connector's secrets are the values its `${env:...}`/`${file:...}` references resolved to, the
// values of its secret keys (declared, or named like `*.password`, `*.jaas.config`, `*.user.info`,
// `*.key`), and the option values of its JAAS configs that name credentials. Values shorter than
// MIN_SECRET_LENGTH are not replaced (they would garble every message and cannot be secrets).
// Every connector's secrets are hidden everywhere: one connector's log line never shows another's.
import { dirname, resolve, sep } from 'node:path';
import { realPath } from './allowed-paths.js';
import { MASK, MIN_SECRET_LENGTH, type ConfigSpec, type ParsedConfig } from './config/config-spec.js';
import { ConnectError } from './errors.js';
import { parseJaasConfig } from './kafka-security.js';

/** The scope of the worker config's own secrets (connector names are never empty). */
export const WORKER_SCOPE = '';

const JAAS_CREDENTIAL = /password|secret|token|key/i;

/**
 * The values of `config` no answer, log line or header may contain. With `files` (the config's
 * spec and the worker's allowed directories), a `filePath` key whose whole value came from a
 * reference also hides the forms a file system error shows it in: absolute, with links resolved,
 * and each of its directories below the allowed directory (`mkdir` fails on a parent, not on the
 * file).
 */
export function secretsOf(
  config: ParsedConfig,
  files?: { spec: ConfigSpec; directories: readonly string[] },
): string[] {
  const values = config.secretValues();
  if (files) values.push(...pathSecrets(config, files.spec, files.directories));
  for (const [key, value] of Object.entries(config.originals)) {
    if (!/(^|\.)jaas\.config$/i.test(key)) continue;
    try {
      for (const module of parseJaasConfig(value))
        for (const [option, text] of Object.entries(module.options))
          if (JAAS_CREDENTIAL.test(option)) values.push(text);
    } catch {
      // An unparsable JAAS config is refused by validation; its whole value is a secret already.
    }
  }
  return [...new Set(values.filter((v) => v.trim().length >= MIN_SECRET_LENGTH))];
}

function pathSecrets(config: ParsedConfig, spec: ConfigSpec, directories: readonly string[]): string[] {
  const referenced = new Set(config.referencedKeys());
  const out: string[] = [];
  for (const key of spec.keys) {
    if (!key.filePath || !referenced.has(key.name)) continue;
    const value = config.originals[key.name];
    if (!value) continue;
    const forms = new Set([resolve(value)]);
    try {
      forms.add(realPath(value));
    } catch {
      // Unresolvable (EACCES): the task will fail on the path as given, hidden already.
    }
    for (const form of forms)
      for (let path = form; directories.some((d) => below(d, path)); path = dirname(path)) out.push(path);
  }
  return out;
}

/** Whether `path` lies strictly inside directory `dir`. */
const below = (dir: string, path: string): boolean =>
  path !== dir && path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);

export class SecretRedactor {
  private readonly scopes = new Map<string, readonly string[]>();
  /** Every secret, longest first (a secret containing another is hidden whole), with its JSON form. */
  private secrets: ReadonlyArray<{ raw: string; json: string }> = [];

  /** Sets the secrets of `scope` (a connector name, or WORKER_SCOPE), replacing earlier ones. */
  set(scope: string, values: Iterable<string>): void {
    this.scopes.set(
      scope,
      [...values].filter((v) => v.trim().length >= MIN_SECRET_LENGTH),
    );
    this.rebuild();
  }

  /** Whether any secret is known (nothing to redact otherwise). */
  get active(): boolean {
    return this.secrets.length > 0;
  }

  /** The secrets of `scope`, as set. */
  of(scope: string): readonly string[] {
    return this.scopes.get(scope) ?? [];
  }

  /** Forgets the secrets of a deleted connector. */
  forget(scope: string): void {
    if (this.scopes.delete(scope)) this.rebuild();
  }

  /** `text` with every known secret replaced by `[hidden]`. */
  readonly redact = (text: string): string => {
    let out = text;
    for (const { raw } of this.secrets) if (out.includes(raw)) out = out.split(raw).join(MASK);
    return out;
  };

  /** A serialized JSON log line: secrets are hidden in their JSON-escaped form too. */
  readonly redactJsonLine = (line: string): string => {
    let out = line;
    for (const { raw, json } of this.secrets) {
      if (out.includes(raw)) out = out.split(raw).join(MASK);
      if (json !== raw && out.includes(json)) out = out.split(json).join(MASK);
    }
    return out;
  };

  /**
   * Hides secrets in `error` itself (message, stack, context values, causes), so every later
   * reader (the task trace, a dead-letter header, a log line) sees the redacted text; errors keep
   * their class, code and outcome. A thrown non-Error is returned redacted when it is a string.
   */
  redactError<T>(error: T): T {
    if (this.secrets.length === 0) return error;
    return this.redactErrorIn(error, new Set()) as T;
  }

  /** A copy of a JSON-like value (task details, offsets) with secrets hidden in its strings. */
  redactValue<T>(value: T): T {
    if (this.secrets.length === 0) return value;
    return this.copy(value, 0) as T;
  }

  private redactErrorIn(error: unknown, seen: Set<unknown>): unknown {
    if (typeof error === 'string') return this.redact(error);
    if (!(error instanceof Error) || seen.has(error)) return error;
    seen.add(error);
    const target = error as Error & { errors?: unknown };
    assign(target, 'message', this.redact(target.message));
    if (typeof target.stack === 'string') assign(target, 'stack', this.redact(target.stack));
    if (error instanceof ConnectError)
      for (const [key, value] of Object.entries(error.context))
        if (typeof value === 'string') error.context[key] = this.redact(value);
    if (target.cause !== undefined) assign(target, 'cause', this.redactErrorIn(target.cause, seen));
    if (Array.isArray(target.errors)) target.errors.forEach((e) => this.redactErrorIn(e, seen));
    return error;
  }

  private copy(value: unknown, depth: number): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (depth > 32 || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((v) => this.copy(v, depth + 1));
    if (Object.getPrototypeOf(value) !== Object.prototype) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.copy(v, depth + 1)]));
  }

  private rebuild(): void {
    const all = new Set<string>();
    for (const values of this.scopes.values()) for (const v of values) all.add(v);
    this.secrets = [...all]
      .sort((a, b) => b.length - a.length)
      .map((raw) => ({ raw, json: JSON.stringify(raw).slice(1, -1) }));
  }
}

/** Sets a property that may be read-only on some error class; a failure leaves it as it was. */
function assign(target: object, key: string, value: unknown): void {
  try {
    (target as Record<string, unknown>)[key] = value;
  } catch {
    // A frozen error or a getter-only property: nothing to do.
  }
}
