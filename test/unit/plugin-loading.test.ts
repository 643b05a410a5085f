// plugin.path: folders and npm packages whose modules export plugin definitions, loaded into the
// worker's registry beside the built-ins, every problem refused at once and naming its file.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { builtinPlugins } from '../../connectors/index.js';
import { RecordError } from '../../runtime/api.js';
import { parseWorkerConfig } from '../../runtime/config/worker-config.js';
import { ConnectError } from '../../runtime/errors.js';
import { loadPluginPath, PLUGIN_PATH, pluginRegistryWith } from '../../runtime/plugin-loader.js';
import { BUILT_IN } from '../../runtime/plugin-registry.js';

const repo = resolve(import.meta.dirname, '../..');
const example = join(repo, 'examples', 'uppercase-processor');

/** A plugin module's source: a processor named `name`, importing the contract as a package would. */
const pluginModule = (name: string) => `import { defineConfig } from 'infer-connect/api';
export default {
  name: ${JSON.stringify(name)}, kind: 'processor', version: '1.0.0', description: 'test plugin',
  config: defineConfig([]),
  createTask: () => ({ process: async (records) => records.map(() => []) }),
};
`;

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'infer-connect-plugins-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

async function refusal(load: Promise<unknown>): Promise<ConnectError> {
  const error = await load.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the load must be refused').to.be.instanceOf(ConnectError);
  expect((error as ConnectError).code).to.equal('CONFIG_INVALID');
  return error as ConnectError;
}

describe('plugin.path', () => {
  it('is a worker key: a comma-separated list, empty by default', () => {
    expect(parseWorkerConfig({ 'bootstrap.servers': 'k:9092' }).config!.getList(PLUGIN_PATH)).to.deep.equal(
      [],
    );
    const { config } = parseWorkerConfig({ 'bootstrap.servers': 'k:9092', [PLUGIN_PATH]: './a, @acme/b' });
    expect(config!.getList(PLUGIN_PATH)).to.deep.equal(['./a', '@acme/b']);
  });

  it('adds the example package, loaded from its folder, to the built-ins with its module as its source', async () => {
    const registry = await pluginRegistryWith(builtinPlugins, [example]);
    expect(registry.list().map((p) => p.name)).to.deep.equal([
      ...builtinPlugins.map((p) => p.name),
      'UppercaseProcessor',
    ]);
    const upper = registry.find('com.example.connect.UppercaseProcessor')!;
    expect(registry.sourceOf(upper)).to.equal(join(example, 'index.ts'));
    expect(registry.sourceOf(builtinPlugins[0]!)).to.equal(BUILT_IN);
  });

  it("resolves a plugin's infer-connect/api to the runtime's own module, so its errors are the runtime's classes", async () => {
    const [loaded] = await loadPluginPath([example]);
    const { config } = await import('../../runtime/config/connector-config.js').then((m) =>
      m.parseConnectorConfig(loaded!.plugin, {
        name: 'u',
        'connector.class': 'UppercaseProcessor',
        topics: 'in',
        'output.topic': 'out',
      }),
    );
    const task = loaded!.plugin.createTask({ config: config! } as never) as {
      process(records: unknown[]): Promise<unknown[]>;
    };
    const [result] = await task.process([{ topic: 'in', partition: 0, offset: '0', value: 7, headers: {} }]);
    expect(result).to.be.instanceOf(RecordError);
  });

  it('loads every package of a folder of packages, and a package name from node_modules of the working directory', async () => {
    const root = tree({
      'plugins/one/package.json': JSON.stringify({
        name: 'one',
        exports: { '.': { import: './lib/one.mjs' } },
      }),
      'plugins/one/lib/one.mjs': pluginModule('One'),
      'plugins/two/index.mjs': pluginModule('Two'),
      'node_modules/@acme/three/package.json': JSON.stringify({ name: '@acme/three', main: 'main.mjs' }),
      'node_modules/@acme/three/main.mjs': pluginModule('Three'),
    });
    const loaded = await loadPluginPath(['./plugins', '@acme/three'], { cwd: join(root) });
    expect(loaded.map((l) => [l.plugin.name, l.source])).to.deep.equal([
      ['One', join(root, 'plugins/one/lib/one.mjs')],
      ['Two', join(root, 'plugins/two/index.mjs')],
      ['Three', join(root, 'node_modules/@acme/three/main.mjs')],
    ]);
  });

  it('refuses a plugin whose name is taken by a built-in, naming both sources', async () => {
    const root = tree({ 'clash/index.mjs': pluginModule('PassThrough') });
    const error = await refusal(pluginRegistryWith(builtinPlugins, [join(root, 'clash')]));
    expect(error.message).to.include(
      `plugin name "PassThrough" of PassThrough from ${join(root, 'clash/index.mjs')} is already taken by PassThrough from ${BUILT_IN}`,
    );
  });

  it('refuses every bad entry at once, naming each file and what is wrong, without a stack trace', async () => {
    const root = tree({
      'throws/index.mjs': "throw new Error('cannot reach the licence server');\n",
      'not-a-plugin/index.mjs': "export default { name: 'Half', kind: 'transformer' };\n",
      'no-default/index.mjs': 'export const plugin = 1;\n',
      'bad-manifest/package.json': JSON.stringify({ main: 'missing.js' }),
    });
    const error = await refusal(
      loadPluginPath(
        ['./throws', './not-a-plugin', './no-default', './bad-manifest', './absent', 'no-such-package'],
        { cwd: root },
      ),
    );
    const lines = error.message
      .split('\n')
      .slice(1)
      .map((l) => l.trim());
    expect(lines).to.deep.equal([
      `"./bad-manifest": ${join(root, 'bad-manifest/package.json')}: its "exports"/"main" names ${join(root, 'bad-manifest/missing.js')}, which does not exist`,
      `"./absent": ${join(root, 'absent')} is not a folder`,
      `"no-such-package": no package of this name in node_modules from ${root} upwards (npm install it there)`,
      `${join(root, 'throws/index.mjs')}: the module failed to load: cannot reach the licence server`,
      `${join(root, 'not-a-plugin/index.mjs')}: plugin "Half": "kind" must be one of source, sink, processor; "version" must be a string; "description" must be a string; "createTask" must be a function; "config" must be a config spec made with defineConfig([...]) from infer-connect/api`,
      `${join(root, 'no-default/index.mjs')}: has no default export; export default a plugin definition or an array of them`,
    ]);
    expect(error.message).to.match(/^Invalid configuration of plugin\.path:/);
    expect(error.message).not.to.match(/\n\s+at /);
  });
});
