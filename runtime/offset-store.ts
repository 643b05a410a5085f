// Source offsets in standalone mode: one JSON file for the worker (Kafka Connect's
// `offset.storage.file.filename`), `{ connector: { partitionKey: offset } }`.
//
// Durability: every write goes to `<file>.tmp` in the same folder, which is fsynced, then renamed
// over the file, then the folder is fsynced; so after a crash or power loss the file holds either
// the old or the new offsets, never a torn mix. Before that rename the current file is kept as
// `<file>.bak` (a hard link, or a copy where links are not supported), one flush behind.
//
// Recovery: a file that is nevertheless unreadable (a disk fault, a hand edit) is not silently
// treated as "no offsets", which would restart every source from the beginning. When `<file>.bak`
// is valid the store starts from it with a warning (sources resume from the flush before, so some
// records are produced again: at-least-once); otherwise it throws OFFSET_FILE_CORRUPT naming the
// file and how to recover. A missing file (never written, or deleted on purpose to start over)
// means no offsets, whatever `.bak` holds.
//
// Connector names and partition keys are data, not property names: they live in Maps, so a
// connector named `__proto__` or `constructor` keeps its offsets like any other.
import {
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { SourceOffset, SourcePartition } from './api.js';
import { FatalError } from './errors.js';

type Offsets = Map<string, SourceOffset>;

/** A stable key for a source partition, whatever the order of its fields. */
export function partitionKey(partition: SourcePartition): string {
  return JSON.stringify(Object.fromEntries(Object.entries(partition).sort(([a], [b]) => a.localeCompare(b))));
}

export interface FileOffsetStoreOptions {
  /** Told when the store started from `<file>.bak` because the file itself was unreadable. */
  onWarning?: (message: string) => void;
}

export class FileOffsetStore {
  private data: Map<string, Offsets>;
  private readonly backup: string;
  private readonly temporary: string;

  /** Throws FatalError OFFSET_FILE_CORRUPT when the file exists but neither it nor `.bak` is valid. */
  constructor(
    private readonly file: string,
    options: FileOffsetStoreOptions = {},
  ) {
    this.backup = `${file}.bak`;
    this.temporary = `${file}.tmp`;
    this.data = this.load(options.onWarning ?? (() => undefined));
  }

  get(connector: string, partition: SourcePartition): SourceOffset | undefined {
    return this.data.get(connector)?.get(partitionKey(partition));
  }

  all(connector: string): Array<{ partition: SourcePartition; offset: SourceOffset }> {
    return [...(this.data.get(connector) ?? new Map<string, SourceOffset>())].map(([key, offset]) => ({
      partition: JSON.parse(key) as SourcePartition,
      offset,
    }));
  }

  /**
   * Records acknowledged offsets (keyed by `partitionKey`) and writes the file. Throws FatalError
   * OFFSET_STORE_WRITE_FAILED when the file cannot be written; the stored offsets, in memory and
   * on disk, are then unchanged.
   */
  commit(connector: string, offsets: ReadonlyMap<string, SourceOffset>): void {
    if (offsets.size === 0) return;
    this.update(connector, (forConnector) => {
      for (const [key, offset] of offsets) forConnector.set(key, offset);
    });
  }

  /** Replaces a connector's offsets (REST PATCH/DELETE /offsets, connector STOPPED). Throws like `commit`. */
  replace(
    connector: string,
    offsets: Array<{ partition: SourcePartition; offset: SourceOffset | null }>,
  ): void {
    this.update(connector, (forConnector) => {
      for (const { partition, offset } of offsets) {
        if (offset === null) forConnector.delete(partitionKey(partition));
        else forConnector.set(partitionKey(partition), offset);
      }
    });
  }

  /** Forgets a connector's offsets. Throws like `commit`. */
  reset(connector: string): void {
    if (!this.data.has(connector)) return;
    const next = new Map(this.data);
    next.delete(connector);
    this.write(next);
    this.data = next;
  }

  /** Applies `change` to a copy, writes it, and only then makes it the store's state. */
  private update(connector: string, change: (forConnector: Offsets) => void): void {
    const forConnector = new Map(this.data.get(connector));
    change(forConnector);
    const next = new Map(this.data);
    next.set(connector, forConnector);
    this.write(next);
    this.data = next;
  }

  private write(data: Map<string, Offsets>): void {
    const json = JSON.stringify(
      Object.fromEntries([...data].map(([connector, offsets]) => [connector, Object.fromEntries(offsets)])),
    );
    let step = 'creating its folder';
    try {
      const folder = dirname(this.file);
      mkdirSync(folder, { recursive: true });
      step = `writing ${this.temporary}`;
      writeDurably(this.temporary, json);
      if (existsSync(this.file)) {
        step = `keeping the previous offsets as ${this.backup}`;
        keepAsBackup(this.file, this.backup);
      }
      step = `renaming ${this.temporary} over it`;
      renameSync(this.temporary, this.file);
      step = `syncing the folder ${folder}`;
      syncFolder(folder);
    } catch (cause) {
      throw new FatalError(
        'OFFSET_STORE_WRITE_FAILED',
        `cannot write the offset file ${this.file} (${step}): ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  private load(warn: (message: string) => void): Map<string, Offsets> {
    if (!existsSync(this.file)) return new Map();
    const main = readOffsets(this.file);
    if (main.data) return main.data;
    const backup = existsSync(this.backup) ? readOffsets(this.backup) : { problem: 'it does not exist' };
    if (backup.data) {
      warn(
        `offset file ${this.file} ${main.problem}; started from its backup ${this.backup}, one offset flush ` +
          'older, so source records since then are produced again',
      );
      return backup.data;
    }
    throw new FatalError(
      'OFFSET_FILE_CORRUPT',
      `offset file ${this.file} ${main.problem}, and its backup ${this.backup} cannot replace it (${backup.problem}). ` +
        `Restore ${this.file} from a copy, or delete it (and ${this.backup}) to start every source connector ` +
        'of this worker from the beginning',
    );
  }
}

/** Reads an offset file: its offsets, or why it cannot be used. */
function readOffsets(
  file: string,
): { data: Map<string, Offsets>; problem?: never } | { data?: never; problem: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return { problem: `cannot be read (${(error as Error).message})` };
  }
  if (text.trim() === '') return { problem: 'is empty' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { problem: `is not valid JSON (${(error as Error).message})` };
  }
  if (!isPlainObject(parsed)) return { problem: 'is not a JSON object of connectors' };
  const data = new Map<string, Offsets>();
  for (const [connector, offsets] of Object.entries(parsed)) {
    if (!isPlainObject(offsets)) return { problem: `has no object of offsets for connector "${connector}"` };
    const forConnector: Offsets = new Map();
    for (const [key, offset] of Object.entries(offsets)) {
      if (!isPlainObject(offset))
        return { problem: `has an offset that is not an object for "${connector}"` };
      forConnector.set(key, offset as SourceOffset);
    }
    data.set(connector, forConnector);
  }
  return { data };
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Writes `text` to `file` (created or truncated) and fsyncs it before returning. */
function writeDurably(file: string, text: string): void {
  const fd = openSync(file, 'w');
  try {
    const bytes = Buffer.from(text, 'utf8');
    for (let written = 0; written < bytes.length;) {
      written += writeSync(fd, bytes, written, bytes.length - written);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes `backup` a complete copy of `file` atomically: a hard link (no data copied) renamed into place. */
function keepAsBackup(file: string, backup: string): void {
  const staging = `${backup}.tmp`;
  rmSync(staging, { force: true });
  try {
    linkSync(file, staging);
  } catch (error) {
    // Some filesystems (FAT, some network mounts) have no hard links.
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'ENOSYS'].includes(errorCode(error))) throw error;
    copyFileSync(file, staging);
    const fd = openSync(staging, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  renameSync(staging, backup);
}

/** Makes the renames in `folder` durable. Platforms that cannot fsync a folder (Windows) skip it. */
function syncFolder(folder: string): void {
  let fd: number;
  try {
    fd = openSync(folder, 'r');
  } catch (error) {
    if (['EISDIR', 'EPERM', 'EACCES'].includes(errorCode(error))) return;
    throw error;
  }
  try {
    fsyncSync(fd);
  } catch (error) {
    if (!['EISDIR', 'EINVAL', 'EPERM', 'EBADF'].includes(errorCode(error))) throw error;
  } finally {
    closeSync(fd);
  }
}

const errorCode = (error: unknown): string => String((error as NodeJS.ErrnoException)?.code ?? '');
