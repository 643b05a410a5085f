// Files named by records (`input.file.fields`): a record's field holds a path, and the file's bytes
// feed the tensor. Any producer can write any path into a topic, so every read is confined and
// bounded, and each refusal fails only its record:
// - The path resolves inside `input.file.base.dir` (a relative path against it). `..` escapes and
//   absolute paths elsewhere are refused before anything is touched; a symlink resolving elsewhere
//   is refused on its real path before opening and, on Linux, on the opened descriptor itself
//   (/proc/self/fd), so a directory swapped for a symlink between the check and the open cannot
//   escape either.
// - Only regular files. The file is opened non-blocking, so opening a FIFO never waits for a
//   writer, and checked with fstat on the open descriptor, not a separate stat that could race.
// - At most `input.file.max.bytes`: the size is checked before reading, and at most one byte more
//   than the cap is read, so a file that grows meanwhile is refused too.
// - Within `input.file.read.timeout.ms`, the wait for a read slot included.
// - At most `input.file.max.concurrent.reads` reads at once. A read that outlives its timeout fails
//   its record but keeps its slot until the file system call returns: a stuck call holds a libuv
//   thread, and the slots keep those below the thread pool's size.
import { constants } from 'node:fs';
import { open as openFile, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { FatalError } from '../../runtime/api.js';

/** Which rule a refused file broke; also its `__connect.errors.rule` dead-letter header. */
export type FileRule = 'outside-base-dir' | 'not-regular-file' | 'too-large' | 'timeout';

/** A file the record names that cannot feed the model; `rule` is undefined when it cannot be read. */
export interface FileRefusal {
  rule: FileRule | undefined;
  /** Why, naming the limit or what the path turned out to be. */
  detail: string;
}

export interface FileInputOptions {
  baseDir: string;
  maxBytes: number;
  timeoutMs: number;
  maxConcurrentReads: number;
  /** Starts a timer and returns its cancel; tests inject a fake. */
  setTimer?: (fn: () => void, ms: number) => () => void;
  /** Opens a file; tests inject one that never answers. */
  open?: (path: string, flags: number) => Promise<FileHandle>;
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW;

function defaultTimer(fn: () => void, ms: number): () => void {
  const timer = setTimeout(fn, ms);
  return () => clearTimeout(timer);
}

export function isFileRefusal(value: Buffer | FileRefusal): value is FileRefusal {
  return !Buffer.isBuffer(value);
}

export class FileInputReader {
  private readonly slots: Slots;
  private readonly setTimer: NonNullable<FileInputOptions['setTimer']>;
  private readonly open: NonNullable<FileInputOptions['open']>;
  private realBase: string | undefined;

  constructor(private readonly options: FileInputOptions) {
    this.slots = new Slots(options.maxConcurrentReads);
    this.setTimer = options.setTimer ?? defaultTimer;
    this.open = options.open ?? openFile;
  }

  /** Resolves the base directory once. Throws FatalError CONFIG_INVALID when it is not a directory. */
  async start(): Promise<void> {
    const { baseDir } = this.options;
    try {
      this.realBase = await realpath(baseDir);
      if (!(await stat(this.realBase)).isDirectory()) throw new Error('it is not a directory');
    } catch (error) {
      throw new FatalError(
        'CONFIG_INVALID',
        `input.file.base.dir "${baseDir}" cannot be used: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; ` +
          'set it to an existing directory on the worker that holds the files records name',
        { stage: 'TASK_START', cause: error },
      );
    }
  }

  /** The bytes of the file `path` names, or why it is refused. Never rejects, never outlives the timeout. */
  read(path: string): Promise<Buffer | FileRefusal> {
    const realBase = this.realBase;
    if (realBase === undefined) throw new Error('Bug: FileInputReader.read() before start()');
    const configuredBase = resolve(this.options.baseDir);
    const lexical = resolve(configuredBase, path);
    if (!inside(configuredBase, lexical) && !inside(realBase, lexical))
      return Promise.resolve(outside(path, this.options.baseDir, lexical));
    const { timeoutMs } = this.options;
    return new Promise((settle) => {
      const slot = this.slots.acquire();
      let done = false;
      let cancelTimer: () => void = () => undefined;
      const finish = (result: Buffer | FileRefusal) => {
        if (done) return;
        done = true;
        cancelTimer();
        slot.cancel();
        settle(result);
      };
      cancelTimer = this.setTimer(
        () =>
          finish({
            rule: 'timeout',
            detail: `reading it took longer than input.file.read.timeout.ms (${timeoutMs} ms)`,
          }),
        timeoutMs,
      );
      void slot.granted.then((release) => {
        if (done) return release();
        void this.readConfined(lexical, realBase)
          .catch((error: unknown) => unreadable(error))
          .then(finish)
          .finally(release);
      });
    });
  }

  private async readConfined(lexical: string, realBase: string): Promise<Buffer | FileRefusal> {
    const { maxBytes, baseDir } = this.options;
    let real: string;
    try {
      real = await realpath(lexical);
    } catch (error) {
      return unreadable(error);
    }
    if (!inside(realBase, real)) return outside(lexical, baseDir, real);
    let handle: FileHandle;
    try {
      handle = await this.open(real, OPEN_FLAGS);
    } catch (error) {
      return unreadable(error);
    }
    try {
      const opened = await openedPath(handle);
      if (opened !== undefined && !inside(realBase, opened)) return outside(lexical, baseDir, opened);
      const info = await handle.stat();
      if (!info.isFile()) {
        return {
          rule: 'not-regular-file',
          detail: `it is ${kindOf(info)}; only regular files are read`,
        };
      }
      if (info.size > maxBytes) return tooLarge(`it has ${info.size} bytes`, maxBytes);
      const content = await readAtMost(handle, info.size, maxBytes + 1);
      if (content.length > maxBytes) return tooLarge(`it grew past ${maxBytes} bytes while read`, maxBytes);
      return content;
    } finally {
      await handle.close().catch(() => undefined);
    }
  }
}

function inside(base: string, path: string): boolean {
  const rel = relative(base, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

function outside(path: string, baseDir: string, resolved: string): FileRefusal {
  return {
    rule: 'outside-base-dir',
    detail: `"${path}" resolves to ${resolved}, outside input.file.base.dir (${baseDir})`,
  };
}

function tooLarge(what: string, maxBytes: number): FileRefusal {
  return { rule: 'too-large', detail: `${what}, more than input.file.max.bytes (${maxBytes})` };
}

function unreadable(error: unknown): FileRefusal {
  const code = (error as NodeJS.ErrnoException).code;
  return { rule: undefined, detail: `cannot be read: ${code ?? (error as Error).message}` };
}

/** The path of the file behind an open descriptor (Linux); undefined where /proc is not there. */
async function openedPath(handle: FileHandle): Promise<string | undefined> {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return undefined;
  }
}

function kindOf(info: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Reads from the start up to `limit` bytes, starting with room for `expected` + 1. */
async function readAtMost(handle: FileHandle, expected: number, limit: number): Promise<Buffer> {
  let buffer = Buffer.allocUnsafe(Math.min(expected + 1, limit));
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (length >= limit) break;
      const grown = Buffer.allocUnsafe(Math.min(buffer.length * 2, limit));
      buffer.copy(grown, 0, 0, length);
      buffer = grown;
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
  }
  return buffer.subarray(0, length);
}

/** A counting semaphore whose waits can be cancelled (a read that timed out while waiting). */
class Slots {
  private free: number;
  private readonly waiting: Array<(release: () => void) => void> = [];

  constructor(size: number) {
    this.free = size;
  }

  /** `granted` resolves the release once a slot is free; `cancel` withdraws a wait not granted yet. */
  acquire(): { granted: Promise<() => void>; cancel: () => void } {
    let grant!: (release: () => void) => void;
    const granted = new Promise<() => void>((resolve) => (grant = resolve));
    if (this.free > 0) {
      this.free--;
      grant(this.releaser());
      return { granted, cancel: () => undefined };
    }
    this.waiting.push(grant);
    return {
      granted,
      cancel: () => {
        const at = this.waiting.indexOf(grant);
        if (at !== -1) this.waiting.splice(at, 1);
      },
    };
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next !== undefined) next(this.releaser());
      else this.free++;
    };
  }
}
