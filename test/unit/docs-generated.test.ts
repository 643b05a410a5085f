import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { builtinPlugins } from '../../connectors/index.js';
import { METRIC_NAMES } from '../../connectors/tf-serving/metrics.js';
import { allGeneratedDocs, connectorDocPath, repoRoot } from '../../dev/generate-docs.js';
import { connectorSpecFor } from '../../runtime/config/connector-config.js';

const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8');

describe('generated reference docs', () => {
  it('are exactly what dev/generate-docs.ts renders (run npx tsx dev/generate-docs.ts when this fails)', async () => {
    const docs = await allGeneratedDocs();
    expect(Object.keys(docs)).to.include.members(['docs/metrics.md', 'docs/errors.md', 'docs/worker.md']);
    const stale = Object.entries(docs)
      .filter(([path, expected]) => {
        try {
          return read(path) !== expected;
        } catch {
          return true;
        }
      })
      .map(([path]) => path);
    expect(stale, 'stale or missing docs: run npx tsx dev/generate-docs.ts').to.deep.equal([]);
  });

  it('have one page per built-in connector plugin and none for a plugin that is gone', () => {
    const pages = readdirSync(join(repoRoot, 'docs', 'connectors'))
      .map((file) => `docs/connectors/${file}`)
      .sort();
    expect(pages).to.deep.equal(builtinPlugins.map(connectorDocPath).sort());
  });

  it("document every key of each plugin's config spec, and its class name and aliases", () => {
    for (const plugin of builtinPlugins) {
      const page = read(connectorDocPath(plugin));
      for (const key of connectorSpecFor(plugin).keys) {
        expect(page, `${plugin.name}: ${key.name}`).to.include(`| \`${key.name}\` |`);
      }
      for (const name of [plugin.name, ...(plugin.aliases ?? [])]) expect(page).to.include(`\`${name}\``);
    }
  });

  it('list every inference metric with its type and labels, and the Kafka Connect task metrics', () => {
    const page = read('docs/metrics.md');
    for (const name of Object.values(METRIC_NAMES)) expect(page, name).to.include(`| \`${name}\``);
    expect(page).to.match(
      /\| `infer_connect_inference_request_duration_seconds` \(`_bucket`, `_sum`, `_count`\) \| histogram \| `connector`, `task`, `model` \|/,
    );
    expect(page).to.match(
      /\| `kafka_connect_connector_task_status` \| gauge \| `connector`, `task`, `status` \|/,
    );
    expect(page).to.match(
      /\| `infer_connect_consumer_lag` \| gauge \| `connector`, `task`, `topic`, `partition` \|/,
    );
  });

  it('are linked from the README', () => {
    const readme = read('README.md');
    for (const path of ['docs/metrics.md', 'docs/worker.md', 'docs/errors.md', 'docs/connectors/']) {
      expect(readme, path).to.include(`](${path}`);
    }
  });
});
