import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ConnectError } from '../../runtime/errors.js';
import { FileOffsetStore, partitionKey } from '../../runtime/offset-store.js';

const offsetFile = () => join(mkdtempSync(join(tmpdir(), 'offsets-')), 'offsets.json');
const at = (line: number) => new Map([[partitionKey({ file: '/x' }), { line, position: line * 30 }]]);

function thrown(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (error) {
    return error as ConnectError;
  }
  throw new Error('expected an error');
}

describe('standalone source offsets', () => {
  it('survive a restart of the store and are kept per connector and source partition', () => {
    const file = offsetFile();
    const store = new FileOffsetStore(file);
    store.commit('a', new Map([[JSON.stringify({ file: '/x' }), { line: 10, position: 300 }]]));
    store.commit('b', new Map([[JSON.stringify({ file: '/x' }), { line: 3, position: 30 }]]));
    const reopened = new FileOffsetStore(file);
    expect(reopened.get('a', { file: '/x' })).to.deep.equal({ line: 10, position: 300 });
    expect(reopened.get('b', { file: '/x' })).to.deep.equal({ line: 3, position: 30 });
    reopened.reset('a');
    expect(new FileOffsetStore(file).get('a', { file: '/x' })).to.equal(undefined);
    expect(JSON.parse(readFileSync(file, 'utf8'))).to.have.keys('b');
  });

  it('keep the previous file as .bak and leave no temporary file behind', () => {
    const file = offsetFile();
    const store = new FileOffsetStore(file);
    store.commit('a', at(1));
    store.commit('a', at(2));
    expect(JSON.parse(readFileSync(file, 'utf8')).a).to.deep.equal({
      '{"file":"/x"}': { line: 2, position: 60 },
    });
    expect(JSON.parse(readFileSync(`${file}.bak`, 'utf8')).a).to.deep.equal({
      '{"file":"/x"}': { line: 1, position: 30 },
    });
    expect(existsSync(`${file}.tmp`)).to.equal(false);
    expect(existsSync(`${file}.bak.tmp`)).to.equal(false);
  });

  it('start from .bak, with a warning naming the file, when the file is torn', () => {
    const file = offsetFile();
    const store = new FileOffsetStore(file);
    store.commit('a', at(1));
    store.commit('a', at(2));
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, text.length / 2));
    const warnings: string[] = [];
    const recovered = new FileOffsetStore(file, { onWarning: (message) => warnings.push(message) });
    expect(recovered.get('a', { file: '/x' })).to.deep.equal({ line: 1, position: 30 });
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.contain(file).and.to.contain('not valid JSON').and.to.contain(`${file}.bak`);
  });

  it('refuse a torn file without a usable backup, naming it and how to recover', () => {
    const file = offsetFile();
    writeFileSync(file, '{"a": {"{\\"file\\":\\"/x\\"}": {"line": 1');
    const error = thrown(() => new FileOffsetStore(file));
    expect(error).to.be.instanceOf(ConnectError);
    expect(error.code).to.equal('OFFSET_FILE_CORRUPT');
    expect(error.message)
      .to.contain(`offset file ${file} is not valid JSON`)
      .and.to.contain(`${file}.bak`)
      .and.to.contain('Restore')
      .and.to.contain('delete it');
  });

  it('refuse an empty file rather than start every source from the beginning', () => {
    const file = offsetFile();
    writeFileSync(file, '');
    const error = thrown(() => new FileOffsetStore(file));
    expect(error.code).to.equal('OFFSET_FILE_CORRUPT');
    expect(error.message).to.contain(`offset file ${file} is empty`);
  });

  it('refuse valid JSON of the wrong shape', () => {
    const file = offsetFile();
    writeFileSync(file, '{"a": [1, 2]}');
    expect(thrown(() => new FileOffsetStore(file)).message).to.contain(
      'no object of offsets for connector "a"',
    );
  });

  it('start with no offsets when the file was deleted, whatever .bak holds', () => {
    const file = offsetFile();
    const store = new FileOffsetStore(file);
    store.commit('a', at(1));
    store.commit('a', at(2));
    rmSync(file);
    expect(new FileOffsetStore(file).all('a')).to.deep.equal([]);
  });

  it('keep offsets of connectors named like Object.prototype members', () => {
    const file = offsetFile();
    const names = ['__proto__', 'constructor', 'hasOwnProperty', 'toString'];
    const fresh = new FileOffsetStore(file);
    for (const name of names) expect(fresh.all(name), name).to.deep.equal([]);
    for (const [i, name] of names.entries()) fresh.commit(name, at(i + 1));
    const reopened = new FileOffsetStore(file);
    for (const [i, name] of names.entries()) {
      expect(reopened.get(name, { file: '/x' }), name).to.deep.equal({ line: i + 1, position: (i + 1) * 30 });
      expect(reopened.all(name), name).to.deep.equal([
        { partition: { file: '/x' }, offset: { line: i + 1, position: (i + 1) * 30 } },
      ]);
    }
    expect(JSON.parse(readFileSync(file, 'utf8'))).to.have.all.keys(names);
    expect(
      ({} as Record<string, unknown>)[partitionKey({ file: '/x' })],
      'Object.prototype polluted',
    ).to.equal(undefined);
  });

  it('report a write failure to the caller and keep the offsets stored before it', () => {
    const file = offsetFile();
    const store = new FileOffsetStore(file);
    store.commit('a', at(1));
    mkdirSync(`${file}.tmp`); // the temporary file cannot be created
    const error = thrown(() => store.commit('a', at(2)));
    expect(error.code).to.equal('OFFSET_STORE_WRITE_FAILED');
    expect(error.message).to.contain(`cannot write the offset file ${file}`);
    expect(store.get('a', { file: '/x' })).to.deep.equal({ line: 1, position: 30 });
    expect(new FileOffsetStore(file).get('a', { file: '/x' })).to.deep.equal({ line: 1, position: 30 });
  });

  it('report a folder that cannot be created (its parent is a file) as a write failure', () => {
    const parent = offsetFile();
    writeFileSync(parent, 'not a folder');
    const store = new FileOffsetStore(join(parent, 'offsets', 'offsets.json'));
    const error = thrown(() => store.commit('a', at(1)));
    expect(error.code).to.equal('OFFSET_STORE_WRITE_FAILED');
    expect(error.message).to.contain('creating its folder');
    expect(store.all('a')).to.deep.equal([]);
  });
});
