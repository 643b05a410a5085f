// The contract of dev/cached-tool.ts with an in-memory installer and a fake clock: one install per
// identity, a failure that leaves nothing looking installed and says how to fix it, a lock held by a
// live process waited for, a lock left by a dead one taken over, and commands bounded by the
// install's deadline.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  ensureCachedTool,
  runBounded,
  type CachedToolDeps,
  type CachedToolSpec,
  type RunOptions,
} from '../../dev/cached-tool.js';

describe('a tool cached for the tests (dev/cached-tool.ts)', () => {
  let root: string;
  let clock: number;
  let logs: string[];
  let runs: Array<{ command: string; timeoutMs: number }>;
  let onSleep: () => void;
  let alive: Set<number>;

  const deps = (): CachedToolDeps => ({
    now: () => clock,
    sleep: (ms) => {
      clock += ms;
      onSleep();
      return Promise.resolve();
    },
    log: (message) => logs.push(message),
    isAlive: (pid) => alive.has(pid),
    run: (command: string, _args: string[], options: RunOptions & { timeoutMs: number }) => {
      runs.push({ command, timeoutMs: options.timeoutMs });
      clock += 1000;
      return Promise.resolve('');
    },
  });

  /** A tool whose install writes `bin/tool` after running one command. */
  const spec = (overrides: Partial<CachedToolSpec> = {}): CachedToolSpec & { installs: number } => {
    const tool = {
      name: 'tool 1.0',
      source: 'a registry',
      dir: join(root, 'tools', 'tool-1.0'),
      executable: join('bin', 'tool'),
      identity: 'tool==1.0',
      timeoutMs: 60_000,
      remedy: 'Install it by hand.',
      installs: 0,
      async install({ dir, run }: Parameters<CachedToolSpec['install']>[0]) {
        tool.installs++;
        await run('fetch', [], { what: 'fetching' });
        mkdirSync(join(dir, 'bin'));
        writeFileSync(join(dir, 'bin', 'tool'), '#!/bin/sh\n');
      },
      ...overrides,
    };
    return tool;
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cached-tool-'));
    clock = 0;
    logs = [];
    runs = [];
    onSleep = () => {};
    alive = new Set();
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('installs on first use and answers from the cache afterwards', async () => {
    const tool = spec();
    const first = await ensureCachedTool(tool, deps());
    const second = await ensureCachedTool(tool, deps());
    expect(first).to.equal(join(tool.dir, 'bin', 'tool'));
    expect(second).to.equal(first);
    expect(tool.installs).to.equal(1);
    expect(logs[0]).to.equal(`fetching tool 1.0 from a registry into ${tool.dir} (first run only)`);
    expect(existsSync(`${tool.dir}.lock`), 'lock released').to.equal(false);
  });

  it('installs again, from an empty folder, when its pins change', async () => {
    await ensureCachedTool(spec(), deps());
    writeFileSync(join(root, 'tools', 'tool-1.0', 'leftover'), '');
    const repinned = spec({ identity: 'tool==1.0 dep==2' });
    await ensureCachedTool(repinned, deps());
    expect(repinned.installs).to.equal(1);
    expect(existsSync(join(repinned.dir, 'leftover'))).to.equal(false);
  });

  it('reports a failed install with the tool, the source, the cause and the remedy, and retries next time', async () => {
    const failing = spec({
      install: () => Promise.reject(new Error('fetching exited with 1 (pip install x):\nno route')),
    });
    let error: Error | undefined;
    try {
      await ensureCachedTool(failing, deps());
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).to.equal(
      `could not fetch tool 1.0 from a registry into ${failing.dir}: fetching exited with 1 (pip install x):\nno route\nInstall it by hand.`,
    );
    expect(existsSync(`${failing.dir}.lock`), 'lock released').to.equal(false);
    const tool = spec();
    await ensureCachedTool(tool, deps());
    expect(tool.installs).to.equal(1);
  });

  it('fails an install that ends without its executable', async () => {
    const empty = spec({ install: () => Promise.resolve() });
    let error: Error | undefined;
    await ensureCachedTool(empty, deps()).catch((e: Error) => (error = e));
    expect(error?.message).to.include('the install finished without bin/tool');
    await ensureCachedTool(empty, deps()).catch(() => undefined);
    expect(existsSync(join(empty.dir, '.installed')), 'no stamp').to.equal(false);
  });

  it('gives each command only what is left of the install deadline, and none once it passed', async () => {
    const slow = spec({
      timeoutMs: 2000,
      async install({ run }) {
        await run('one', [], { what: 'step one' });
        await run('two', [], { what: 'step two' });
        await run('three', [], { what: 'step three' });
      },
    });
    let error: Error | undefined;
    await ensureCachedTool(slow, deps()).catch((e: Error) => (error = e));
    expect(runs).to.deep.equal([
      { command: 'one', timeoutMs: 2000 },
      { command: 'two', timeoutMs: 1000 },
    ]);
    expect(error?.message).to.include('step three: out of time (2 s in all)');
  });

  it('waits while a live process holds the lock, then uses what that process installed', async () => {
    const tool = spec();
    mkdirSync(join(root, 'tools'), { recursive: true });
    writeFileSync(`${tool.dir}.lock`, '4242');
    alive.add(4242);
    let sleeps = 0;
    onSleep = () => {
      if (++sleeps < 3) return;
      // The other process finishes: its files, its stamp, its lock gone.
      mkdirSync(join(tool.dir, 'bin'), { recursive: true });
      writeFileSync(join(tool.dir, 'bin', 'tool'), '');
      writeFileSync(join(tool.dir, '.installed'), tool.identity);
      rmSync(`${tool.dir}.lock`);
    };
    const path = await ensureCachedTool(tool, deps());
    expect(path).to.equal(join(tool.dir, 'bin', 'tool'));
    expect(tool.installs).to.equal(0);
    expect(sleeps).to.equal(3);
    expect(logs).to.include('waiting for process 4242, which is installing tool 1.0');
  });

  it('takes over a lock whose process is gone', async () => {
    const tool = spec();
    mkdirSync(join(root, 'tools'), { recursive: true });
    writeFileSync(`${tool.dir}.lock`, '4243');
    await ensureCachedTool(tool, deps());
    expect(tool.installs).to.equal(1);
    expect(logs[0]).to.equal(`taking over ${tool.dir}.lock (its process 4243 is gone)`);
    expect(existsSync(`${tool.dir}.lock`)).to.equal(false);
  });

  it('gives up waiting for a live lock holder after the install timeout, naming the lock', async () => {
    const tool = spec({ timeoutMs: 5000 });
    mkdirSync(join(root, 'tools'), { recursive: true });
    writeFileSync(`${tool.dir}.lock`, '4244');
    alive.add(4244);
    let error: Error | undefined;
    await ensureCachedTool(tool, deps()).catch((e: Error) => (error = e));
    expect(error?.message).to.equal(
      `waited 65 s for process 4244 to install tool 1.0; if no such install is running, delete ${tool.dir}.lock`,
    );
    expect(clock).to.equal(66_000);
  });
});

describe('runBounded (commands of a tool install)', () => {
  it('resolves to the stdout of a command that exits 0', async () => {
    expect(
      await runBounded('sh', ['-c', 'echo out; echo err >&2'], { what: 'echoing', timeoutMs: 10_000 }),
    ).to.equal('out\n');
  });

  it('rejects with the exit code and the end of the output of a failing command', async () => {
    let error: Error | undefined;
    await runBounded('sh', ['-c', 'echo no route to host >&2; exit 3'], {
      what: 'fetching',
      timeoutMs: 10_000,
    }).catch((e: Error) => (error = e));
    expect(error?.message).to.equal(
      'fetching exited with 3 (sh -c echo no route to host >&2; exit 3):\nno route to host',
    );
  });

  it('says which command is not installed', async () => {
    const missing = 'infer-connect-no-such-command';
    expect(spawnSync(missing).error).to.be.an('error');
    let error: Error | undefined;
    await runBounded(missing, [], { what: 'building', timeoutMs: 10_000 }).catch((e: Error) => (error = e));
    expect(error?.message).to.equal(`building: ${missing} is not installed (not found on PATH)`);
  });
});
