import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { FatalError } from '../../runtime/errors.js';
import {
  FileInputReader,
  isFileRefusal,
  type FileInputOptions,
  type FileRefusal,
} from '../../connectors/tf-serving/file-input.js';

/** Timers that fire only when the test says so. */
class FakeTimers {
  private readonly pending = new Map<number, () => void>();
  private next = 0;

  setTimer = (fn: () => void, _ms: number): (() => void) => {
    const id = this.next++;
    this.pending.set(id, fn);
    return () => this.pending.delete(id);
  };

  get count(): number {
    return this.pending.size;
  }

  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const fn of due) fn();
  }
}

function fixture(): { base: string; outside: string } {
  const root = mkdtempSync(join(tmpdir(), 'tf-serving-file-input-'));
  const base = join(root, 'images');
  mkdirSync(join(base, 'cats'), { recursive: true });
  writeFileSync(join(base, 'cats', 'tom.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0]));
  writeFileSync(join(base, 'ten.bin'), Buffer.alloc(10, 7));
  writeFileSync(join(base, 'eleven.bin'), Buffer.alloc(11, 7));
  const outside = join(root, 'secret.txt');
  writeFileSync(outside, 'not for records');
  return { base, outside };
}

async function reader(options: Partial<FileInputOptions> & { baseDir: string }): Promise<FileInputReader> {
  const files = new FileInputReader({ maxBytes: 1024, timeoutMs: 1000, maxConcurrentReads: 2, ...options });
  await files.start();
  return files;
}

/** A FileHandle stand-in with the calls the reader makes. */
const wrap = (calls: {
  fd: number;
  stat: FileHandle['stat'];
  read: (...args: never[]) => Promise<{ bytesRead: number }>;
  close: () => Promise<void>;
}): FileHandle => calls as unknown as FileHandle;

const refusal = (result: Buffer | FileRefusal): FileRefusal => {
  if (!isFileRefusal(result)) throw new Error(`expected a refusal, read ${result.length} bytes`);
  return result;
};
const bytes = (result: Buffer | FileRefusal): Buffer => {
  if (isFileRefusal(result)) throw new Error(`expected bytes, got ${result.rule}: ${result.detail}`);
  return result;
};

describe('TF Serving file inputs (input.file.fields)', () => {
  it('reads a regular file named relative to the base directory, or by an absolute path inside it', async () => {
    const { base } = fixture();
    const files = await reader({ baseDir: base });
    expect(bytes(await files.read('cats/tom.jpg'))).to.deep.equal(Buffer.from([0xff, 0xd8, 0xff, 0xe0]));
    expect(bytes(await files.read(join(base, 'cats', 'tom.jpg')))).to.have.length(4);
    expect(bytes(await files.read('cats/../ten.bin'))).to.have.length(10);
  });

  it('refuses paths that lead outside the base directory: .. escapes, absolute paths, symlinks to elsewhere', async () => {
    const { base, outside } = fixture();
    symlinkSync(outside, join(base, 'innocent.jpg'));
    symlinkSync('/', join(base, 'root'));
    symlinkSync(join(base, 'cats'), join(base, 'kittens'));
    const files = await reader({ baseDir: base });
    for (const path of [
      '../secret.txt',
      outside,
      '/etc/passwd',
      'innocent.jpg',
      'root/etc/passwd',
      '/dev/zero',
    ]) {
      const refused = refusal(await files.read(path));
      expect(refused.rule, path).to.equal('outside-base-dir');
      expect(refused.detail).to.contain('outside input.file.base.dir').and.contain(base);
    }
    // A symlink whose target stays inside is fine.
    expect(bytes(await files.read('kittens/tom.jpg'))).to.have.length(4);
  });

  it('refuses what is not a regular file at once: a directory, a FIFO with no writer, a character device', async () => {
    const { base } = fixture();
    execFileSync('mkfifo', [join(base, 'pipe.jpg')]);
    const timers = new FakeTimers();
    const files = await reader({ baseDir: base, setTimer: timers.setTimer });
    // The timers never fire here: a read that blocked would hang the test.
    const directory = refusal(await files.read('cats'));
    expect(directory).to.deep.equal({
      rule: 'not-regular-file',
      detail: 'it is a directory; only regular files are read',
    });
    expect(refusal(await files.read('pipe.jpg')).detail).to.contain('a FIFO (named pipe)');
    expect(refusal(await files.read('')).rule).to.equal('not-regular-file');
    const devices = await reader({ baseDir: '/dev', setTimer: timers.setTimer });
    const zero = refusal(await devices.read('zero'));
    expect(zero.rule).to.equal('not-regular-file');
    expect(zero.detail).to.contain('a character device');
    expect(timers.count, 'every timer cancelled').to.equal(0);
  });

  it('refuses a file larger than input.file.max.bytes before reading it, and one that grows past it while read', async () => {
    const { base } = fixture();
    const files = await reader({ baseDir: base, maxBytes: 10 });
    expect(bytes(await files.read('ten.bin'))).to.have.length(10);
    const large = refusal(await files.read('eleven.bin'));
    expect(large).to.deep.equal({
      rule: 'too-large',
      detail: 'it has 11 bytes, more than input.file.max.bytes (10)',
    });
    // fstat says 5 bytes (the file grew after it), the read finds more: refused after reading 11 at most.
    let asked = 0;
    const growing = await reader({
      baseDir: base,
      maxBytes: 10,
      open: async (path, flags) => {
        const handle = await open(path, flags);
        const stat = handle.stat.bind(handle);
        const read = handle.read.bind(handle) as (...args: unknown[]) => Promise<{ bytesRead: number }>;
        return wrap({
          fd: handle.fd,
          close: () => handle.close(),
          stat: (async () => Object.assign(await stat(), { size: 5 })) as FileHandle['stat'],
          read: async (...args: unknown[]) => {
            const result = await read(...args);
            asked += result.bytesRead;
            return result;
          },
        });
      },
    });
    const grew = refusal(await growing.read('eleven.bin'));
    expect(grew.rule).to.equal('too-large');
    expect(grew.detail).to.contain('grew past 10 bytes');
    expect(asked).to.equal(11);
  });

  it('reports a missing file as unreadable (no rule), naming the error code', async () => {
    const { base } = fixture();
    const files = await reader({ baseDir: base });
    expect(await files.read('cats/felix.jpg')).to.deep.equal({
      rule: undefined,
      detail: 'cannot be read: ENOENT',
    });
    expect(refusal(await files.read('bad\u0000name')).detail).to.contain('ERR_INVALID_ARG');
  });

  it('times out a read that hangs; its slot stays taken until the file system answers, then frees', async () => {
    const { base } = fixture();
    const timers = new FakeTimers();
    let unblock: (() => void) | undefined;
    let opens = 0;
    let closed = 0;
    const files = await reader({
      baseDir: base,
      maxConcurrentReads: 1,
      timeoutMs: 250,
      setTimer: timers.setTimer,
      open: async (path, flags) => {
        opens++;
        if (opens === 1) await new Promise<void>((resolve) => (unblock = resolve));
        const handle = await open(path, flags);
        return wrap({
          fd: handle.fd,
          stat: handle.stat.bind(handle),
          read: handle.read.bind(handle),
          close: async () => {
            closed++;
            await handle.close();
          },
        });
      },
    });
    const stuck = files.read('ten.bin');
    while (unblock === undefined) await new Promise((resolve) => setImmediate(resolve));
    const waiting = files.read('cats/tom.jpg');
    expect(timers.count).to.equal(2);
    timers.fireAll();
    expect(await stuck).to.deep.equal({
      rule: 'timeout',
      detail: 'reading it took longer than input.file.read.timeout.ms (250 ms)',
    });
    expect(refusal(await waiting).rule, 'timed out waiting for the slot').to.equal('timeout');
    expect(opens, 'the waiting read never started').to.equal(1);

    // The stuck call returns: its file is closed and the slot is free for the next read.
    unblock();
    while (closed === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(bytes(await files.read('cats/tom.jpg'))).to.have.length(4);
  });

  it('never reads more than input.file.max.concurrent.reads files at once', async () => {
    const { base } = fixture();
    let inFlight = 0;
    let most = 0;
    const files = await reader({
      baseDir: base,
      maxConcurrentReads: 2,
      open: async (path, flags) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setImmediate(resolve));
        const handle = await open(path, flags);
        return wrap({
          fd: handle.fd,
          stat: handle.stat.bind(handle),
          read: handle.read.bind(handle),
          close: async () => {
            inFlight--;
            await handle.close();
          },
        });
      },
    });
    const results = await Promise.all(Array.from({ length: 8 }, () => files.read('cats/tom.jpg')));
    expect(results.every((r) => !isFileRefusal(r))).to.equal(true);
    expect(most).to.equal(2);
  });

  it('fails the task at start when input.file.base.dir is not an existing directory', async () => {
    const { base } = fixture();
    for (const baseDir of [join(base, 'nowhere'), join(base, 'ten.bin')]) {
      const files = new FileInputReader({ baseDir, maxBytes: 10, timeoutMs: 10, maxConcurrentReads: 1 });
      const error = await files.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, baseDir).to.be.instanceOf(FatalError);
      expect((error as FatalError).code).to.equal('CONFIG_INVALID');
      expect((error as FatalError).message).to.contain(`input.file.base.dir "${baseDir}" cannot be used`);
    }
  });
});
