// Which files connectors may touch: the worker's `allowed.paths` (and, for `${file:...}` references
// in connector configs, `config.providers.file.param.allowed.paths`, Kafka's KIP-993 key). An
// entry is a directory (everything below it) or a single file; an empty list allows nothing.
//
// A path is judged by where it really leads, not by how it is written: relative paths are taken
// against the worker's working directory, every existing component is resolved with realpath (so
// neither `..` nor a symbolic link can leave an allowed directory), and the part that does not
// exist yet (a file a sink will create) is taken as written. Callers open the resolved path, not
// the one given, so a link swapped in after the check is not followed to its end either (open it
// with O_NOFOLLOW).
import { lstatSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolveLexically, sep } from 'node:path';
import { errorMessage } from './error-catalogue.js';
import { FatalError } from './errors.js';

/** What a connector learns about the files it may read and write (`TaskContext.paths`). */
export interface AllowedPaths {
  /** The allowed directories and files, absolute with symbolic links resolved. Empty: none. */
  readonly directories: readonly string[];
  /**
   * Why `path` (relative to the worker's working directory) may not be used, phrased to follow
   * the path ("is outside ..."), without repeating it; undefined when it lies inside.
   */
  problem(path: string): string | undefined;
  /**
   * `path` as an absolute path with every symbolic link resolved, when it lies inside: open this
   * one. Otherwise throws FatalError FILE_PATH_NOT_ALLOWED naming `key`.
   */
  resolve(path: string, key: string): string;
}

/**
 * Where `path` really leads: absolute, each existing component resolved the way the kernel would
 * (symbolic links followed, `..` taken after them), the rest normalised as written. Throws the
 * file system's error for a component that exists but cannot be resolved (EACCES, ELOOP).
 */
export function realPath(path: string, cwd: string = process.cwd()): string {
  // Not path.resolve: it folds `link/..` lexically, where the kernel goes to the link target's parent.
  const absolute = isAbsolute(path) ? path : `${cwd}${sep}${path}`;
  let current: string = sep;
  for (const part of absolute.split(sep)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      current = dirname(current);
      continue;
    }
    const next = current === sep ? `${sep}${part}` : `${current}${sep}${part}`;
    current = exists(next) ? realpathSync.native(next) : next;
  }
  return current;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw error;
  }
}

const inside = (entry: string, path: string): boolean =>
  path === entry || path.startsWith(entry.endsWith(sep) ? entry : `${entry}${sep}`);

export interface AllowListOptions {
  /** The worker key that lists the entries, for messages (default `allowed.paths`). */
  key?: string;
  /** What an empty list means, for messages (default "connectors may read and write no file"). */
  subject?: string;
  /** What relative paths are relative to (default the working directory). */
  cwd?: string;
}

/** An allow-list of directories and files, resolved once when the worker starts. */
export class AllowedDirectories implements AllowedPaths {
  readonly directories: readonly string[];
  /** The entries as configured (made absolute), to tell a link escape from a plain outside path. */
  private readonly written: readonly string[];

  private readonly key: string;
  private readonly subject: string;
  private readonly cwd: string;

  /**
   * `entries` as configured (relative ones against `cwd`). An entry that cannot be resolved
   * (EACCES) stays as written: nothing below it will resolve either.
   */
  constructor(entries: readonly string[], options: AllowListOptions = {}) {
    this.key = options.key ?? 'allowed.paths';
    this.subject = options.subject ?? 'connectors may read and write no file';
    const cwd = (this.cwd = options.cwd ?? process.cwd());
    const given = entries.map((e) => e.trim()).filter((e) => e !== '');
    this.written = given.map((e) => resolveLexically(cwd, e));
    this.directories = [
      ...new Set(
        given.map((entry, i) => {
          try {
            return realPath(entry, cwd);
          } catch {
            return this.written[i]!;
          }
        }),
      ),
    ];
  }

  problem(path: string): string | undefined {
    const checked = this.check(path);
    return 'problem' in checked ? checked.problem : undefined;
  }

  resolve(path: string, key: string): string {
    const checked = this.check(path);
    if ('path' in checked) return checked.path;
    throw new FatalError(
      'FILE_PATH_NOT_ALLOWED',
      errorMessage('FILE_PATH_NOT_ALLOWED', { key, path: `"${path}"`, details: checked.problem }),
      { stage: 'TASK_START' },
    );
  }

  private check(path: string): { path: string } | { problem: string } {
    const fix = `add the directory that holds it to ${this.key} in the worker config`;
    if (path.trim() === '') return { problem: 'is empty: name a file' };
    if (this.directories.length === 0)
      return {
        problem: `is not allowed: ${this.key} is empty, so ${this.subject} on this worker; ${fix}`,
      };
    let real: string;
    try {
      real = realPath(path, this.cwd);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      return { problem: `cannot be resolved on the worker (${code}); name a file inside ${this.key}` };
    }
    if (this.directories.some((entry) => inside(entry, real))) return { path: real };
    const list = this.directories.join(', ');
    const written = resolveLexically(this.cwd, path);
    if (this.written.some((entry) => inside(entry, written)))
      return {
        problem: `leads through a symbolic link to a place outside ${this.key} (${list}); name a file whose real path is inside them`,
      };
    return { problem: `is outside ${this.key} (${list}); move it into one of them, or ${fix}` };
  }
}
