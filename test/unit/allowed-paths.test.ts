import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { AllowedDirectories, realPath } from '../../runtime/allowed-paths.js';
import { FatalError } from '../../runtime/errors.js';

describe('allowed.paths: which files connectors may touch', () => {
  let root: string;
  let allowed: string;
  let outside: string;

  beforeEach(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'infer-connect-paths-')));
    allowed = join(root, 'allowed');
    outside = join(root, 'outside');
    mkdirSync(join(allowed, 'sub'), { recursive: true });
    mkdirSync(join(outside, 'deep'), { recursive: true });
    writeFileSync(join(allowed, 'in.csv'), 'a\n');
    writeFileSync(join(outside, 'secret.txt'), 'x\n');
  });

  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('resolves a file inside an allowed directory to its real path, relative ones against the working directory', () => {
    const paths = new AllowedDirectories([allowed]);
    expect(paths.problem(join(allowed, 'in.csv'))).to.equal(undefined);
    const relative = new AllowedDirectories(['allowed'], { cwd: root });
    expect(relative.directories).to.deep.equal([allowed]);
    expect(relative.resolve('allowed/sub/../in.csv', 'file')).to.equal(join(allowed, 'in.csv'));
  });

  it('allows a file that does not exist yet inside an allowed directory (a sink target)', () => {
    const paths = new AllowedDirectories([allowed]);
    expect(paths.resolve(join(allowed, 'new', 'dir', 'out.jsonl'), 'file')).to.equal(
      join(allowed, 'new', 'dir', 'out.jsonl'),
    );
  });

  it('refuses ".." that climbs out of the allowed directory', () => {
    const paths = new AllowedDirectories([allowed]);
    const problem = paths.problem(join(allowed, '..', 'outside', 'secret.txt'));
    expect(problem).to.match(/^is outside allowed\.paths \(.*\/allowed\); move it into one of them/);
  });

  it('refuses a symbolic link inside the allowed directory that leads outside', () => {
    symlinkSync(join(outside, 'secret.txt'), join(allowed, 'link.txt'));
    symlinkSync(outside, join(allowed, 'linkdir'));
    const paths = new AllowedDirectories([allowed]);
    expect(paths.problem(join(allowed, 'link.txt'))).to.match(/leads through a symbolic link/);
    expect(paths.problem(join(allowed, 'linkdir', 'new-file'))).to.match(/leads through a symbolic link/);
  });

  it('takes ".." after a symbolic link the way the kernel does, from the link target', () => {
    // allowed/linkdir -> outside/deep, so allowed/linkdir/../secret.txt is outside/secret.txt, although
    // folding ".." by hand would give allowed/secret.txt.
    symlinkSync(join(outside, 'deep'), join(allowed, 'linkdir'));
    // (path.join would fold the ".." away: build the path by hand.)
    const path = `${allowed}/linkdir/../secret.txt`;
    expect(realPath(path)).to.equal(join(outside, 'secret.txt'));
    const paths = new AllowedDirectories([allowed]);
    expect(paths.problem(path)).to.match(/leads through a symbolic link/);
  });

  it('accepts an allowed directory given through a symbolic link, judged by its real path', () => {
    symlinkSync(allowed, join(root, 'alias'));
    const paths = new AllowedDirectories([join(root, 'alias')]);
    expect(paths.directories).to.deep.equal([allowed]);
    expect(paths.resolve(join(root, 'alias', 'in.csv'), 'file')).to.equal(join(allowed, 'in.csv'));
  });

  it('lets a single-file entry allow that file and nothing next to it', () => {
    const paths = new AllowedDirectories([join(allowed, 'in.csv')]);
    expect(paths.problem(join(allowed, 'in.csv'))).to.equal(undefined);
    expect(paths.problem(join(allowed, 'in.csv.bak'))).to.match(/is outside/);
    expect(paths.problem(join(allowed, 'sub'))).to.match(/is outside/);
  });

  it('allows nothing when empty, saying which worker key to set', () => {
    const paths = new AllowedDirectories([]);
    expect(paths.problem(join(allowed, 'in.csv'))).to.equal(
      'is not allowed: allowed.paths is empty, so connectors may read and write no file on this worker; ' +
        'add the directory that holds it to allowed.paths in the worker config',
    );
  });

  it('throws FatalError FILE_PATH_NOT_ALLOWED naming the key when a task resolves a path outside', () => {
    const paths = new AllowedDirectories([allowed]);
    let thrown: unknown;
    try {
      paths.resolve(join(outside, 'secret.txt'), 'value.schema.file');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).to.be.instanceOf(FatalError);
    expect((thrown as FatalError).code).to.equal('FILE_PATH_NOT_ALLOWED');
    expect((thrown as FatalError).stage).to.equal('TASK_START');
    expect((thrown as FatalError).message).to.match(
      /^value\.schema\.file ".*secret\.txt" is outside allowed\.paths/,
    );
  });
});
