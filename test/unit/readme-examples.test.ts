import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'chai';

const repo = resolve(import.meta.dirname, '../..');
const readme = readFileSync(resolve(repo, 'README.md'), 'utf8');

describe('the README', () => {
  // Each "`config/<file>.json`" mention directly followed by a JSON block must show that file as it is.
  const examples = [...readme.matchAll(/`(config\/[\w.-]+\.json)`[^\n]*\n\n```json\n([\s\S]*?)```/g)];

  it('shows real config examples', () => {
    expect(examples.length).to.be.at.least(3);
  });

  for (const [, file, block] of examples) {
    it(`shows ${file} exactly as it is in the repository`, () => {
      const actual = JSON.parse(readFileSync(resolve(repo, file!), 'utf8')) as unknown;
      expect(JSON.parse(block!)).to.deep.equal(actual);
    });
  }

  it('names the test command and the demo command', () => {
    expect(readme).to.contain('npm test');
    expect(readme).to.contain('npm ci && npm run demo');
  });
});
