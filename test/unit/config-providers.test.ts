import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  envConfigProvider,
  fileConfigProvider,
  loadConfigDocument,
  parseProperties,
  parseWithVariables,
  resolveVariables,
} from '../../runtime/config/config-providers.js';
import { defineConfig } from '../../runtime/config/config-spec.js';

describe('config providers', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'infer-connect-providers-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const env = envConfigProvider({ MODEL_HOST: 'models.internal', MODEL_PORT: '8500', EMPTY: '' });

  describe('${env:VAR}', () => {
    it('replaces every reference in a value and keeps the text around them', () => {
      const { values, problems, references } = resolveVariables(
        { target: '${env:MODEL_HOST}:${env:MODEL_PORT}', plain: 'no references', blank: '${env:EMPTY}' },
        [env],
      );
      expect(problems).to.deep.equal([]);
      expect(values).to.deep.equal({ target: 'models.internal:8500', plain: 'no references', blank: '' });
      expect(references).to.deep.equal({
        target: '${env:MODEL_HOST}:${env:MODEL_PORT}',
        blank: '${env:EMPTY}',
      });
    });

    it('reports a missing variable against the config key, naming the reference', () => {
      const { values, problems } = resolveVariables({ 'api.key': 'Bearer ${env:NOT_SET}' }, [env]);
      expect(problems).to.deep.equal([
        { key: 'api.key', message: 'cannot resolve ${env:NOT_SET}: environment variable NOT_SET is not set' },
      ]);
      expect(values['api.key']).to.equal('Bearer ${env:NOT_SET}');
    });

    it('does not resolve references inside resolved values', () => {
      const nested = envConfigProvider({ OUTER: '${env:INNER}', INNER: 'secret' });
      expect(resolveVariables({ a: '${env:OUTER}' }, [nested]).values['a']).to.equal('${env:INNER}');
    });

    it('leaves dollar signs and braces that are not references alone', () => {
      const { values, references } = resolveVariables({ regex: 'orders-.*$', price: '$5 {each}' }, [env]);
      expect(values).to.deep.equal({ regex: 'orders-.*$', price: '$5 {each}' });
      expect(references).to.deep.equal({});
    });
  });

  describe('${file:/path:key}', () => {
    it('reads one key of a properties file from disk', () => {
      const path = join(dir, 'secrets.properties');
      writeFileSync(path, '# credentials\ndb.user=scorer\ndb.password = s3cr3t  \n');
      const { values, problems } = resolveVariables(
        { user: `\${file:${path}:db.user}`, pw: `\${file:${path}:db.password}` },
        [fileConfigProvider()],
      );
      expect(problems).to.deep.equal([]);
      expect(values).to.deep.equal({ user: 'scorer', pw: 's3cr3t' });
    });

    it('reports a missing file and a missing key against the config key, without any file content', () => {
      const path = join(dir, 'partial.properties');
      writeFileSync(path, 'other=value-that-must-not-leak\n');
      const missingFile = join(dir, 'absent.properties');
      const { problems } = resolveVariables({ a: `\${file:${missingFile}:k}`, b: `\${file:${path}:k}` }, [
        fileConfigProvider(),
      ]);
      expect(problems).to.deep.equal([
        {
          key: 'a',
          message: `cannot resolve \${file:${missingFile}:k}: cannot read file ${missingFile} (ENOENT)`,
        },
        { key: 'b', message: `cannot resolve \${file:${path}:k}: file ${path} has no key "k"` },
      ]);
      expect(JSON.stringify(problems)).not.to.include('value-that-must-not-leak');
    });

    it('refuses a file reference without a path', () => {
      const { problems } = resolveVariables({ a: '${file:k}' }, [fileConfigProvider(() => 'k=v')]);
      expect(problems[0]!.message).to.include('write ${file:/path/to/file.properties:key}');
    });
  });

  it('reports an unknown provider instead of passing the reference on literally', () => {
    const { problems } = resolveVariables({ token: '${vault:secret/model:token}' }, [env]);
    expect(problems).to.have.length(1);
    expect(problems[0]!.key).to.equal('token');
    expect(problems[0]!.message).to.match(
      /unknown config provider "vault"; use one of: \$\{env:VARIABLE_NAME\}/,
    );
  });

  describe('properties files', () => {
    it('reads =, : and whitespace separators, comments and blank lines, trimming whitespace', () => {
      const parsed = parseProperties(
        [
          '# comment',
          '! also a comment',
          '',
          '  a=1',
          'b : 2',
          'c 3',
          'd=  spaced value  ',
          'e=',
          'a=last wins',
        ].join('\r\n'),
      );
      expect(Object.fromEntries(parsed)).to.deep.equal({
        a: 'last wins',
        b: '2',
        c: '3',
        d: 'spaced value',
        e: '',
      });
    });

    it('joins continued lines and decodes escapes', () => {
      const parsed = parseProperties(
        'list=one,\\\n    two,\\\n    three\nkey\\=with\\:seps=v\ntab=a\\tb\nunicode=caf\\u00e9\nkept=x\\ \n',
      );
      expect(Object.fromEntries(parsed)).to.deep.equal({
        list: 'one,two,three',
        'key=with:seps': 'v',
        tab: 'a\tb',
        unicode: 'café',
        kept: 'x ',
      });
    });
  });

  describe('parsing with variables', () => {
    const spec = defineConfig([
      { name: 'port', type: 'int', importance: 'high', documentation: 'Port.' },
      { name: 'host', type: 'string', importance: 'high', documentation: 'Host.' },
    ]);

    it('validates resolved values and reports an unresolved key once, not also as invalid', () => {
      const result = parseWithVariables(
        spec,
        { port: '${env:NOT_SET}', host: '${env:MODEL_HOST}' },
        { providers: [env] },
      );
      expect(result.problems).to.deep.equal([
        { key: 'port', message: 'cannot resolve ${env:NOT_SET}: environment variable NOT_SET is not set' },
      ]);
      const ok = parseWithVariables(spec, { port: '${env:MODEL_PORT}', host: 'h' }, { providers: [env] });
      expect(ok.config!.getNumber('port')).to.equal(8500);
      expect(ok.given['port']).to.equal('${env:MODEL_PORT}');
    });

    it('takes references literally when resolution is off', () => {
      const result = parseWithVariables(
        spec,
        { port: 1, host: '${env:MODEL_HOST}' },
        { resolveVariables: false },
      );
      expect(result.config!.getString('host')).to.equal('${env:MODEL_HOST}');
    });
  });

  describe('config documents', () => {
    it('names the line and column of bad JSON', () => {
      const path = join(dir, 'bad.json');
      writeFileSync(path, '{\n  "name": "x",\n  "config" {}\n}\n');
      const loaded = loadConfigDocument(path);
      expect(loaded)
        .to.have.property('error')
        .that.matches(/^not valid JSON: .*line 3 column \d+/);
    });

    it('does not quote the file in a JSON error, since it may hold secrets', () => {
      const path = join(dir, 'secret.json');
      writeFileSync(path, '{"sasl.password": "hunter2" "next": 1}');
      expect(loadConfigDocument(path)).to.deep.equal({
        error: "not valid JSON: expected ',' or '}' at line 1 column 29",
      });
    });

    it('reads .properties files as flat string maps', () => {
      const path = join(dir, 'connector.properties');
      writeFileSync(path, 'name=scores\ntasks.max=2\n');
      expect(loadConfigDocument(path)).to.deep.equal({ document: { name: 'scores', 'tasks.max': '2' } });
    });

    it('says when a file cannot be read', () => {
      expect(loadConfigDocument(join(dir, 'missing.json'))).to.deep.equal({
        error: 'cannot read the file (ENOENT)',
      });
    });
  });
});
