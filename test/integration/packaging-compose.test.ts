// docker-compose.yml without a Docker engine: docker-compose accepts it (`config`; the pinned
// docker-compose 1.29.2 that dev/tools.ts fetches into the cache on first use), the
// services are wired to each other the way the configs they mount expect, every host port is on
// 127.0.0.1, and the model folder that tensorflow/serving mounts holds the exported census
// SavedModel with the same signature as the census model the local stack serves.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { TFServingClient, type SignatureSpec } from '../../connectors/tf-serving/grpc-client.js';
import { CENSUS_EXPORT_DIR, exportCensusModel, listFiles } from '../../dev/export-census-model.js';
import { repoRoot } from '../../dev/generate-docs.js';
import { paths } from '../../dev/stack.js';
import { DOCKER_COMPOSE_VERSION, dockerComposeTool, ensureDockerCompose } from '../../dev/tools.js';
import { modelServerTarget } from '../helpers/stack.js';

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string | number>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const composeFile = join(repoRoot, 'docker-compose.yml');
const compose = parseYaml(readFileSync(composeFile, 'utf8')) as { services: Record<string, ComposeService> };
const services = compose.services;

/** `./host/path:/container/path[:ro]` mounts of a service, by container path. */
function binds(service: ComposeService): Map<string, string> {
  const out = new Map<string, string>();
  for (const volume of service.volumes ?? []) {
    const [host, container] = volume.split(':');
    if (host!.startsWith('./')) out.set(container!, join(repoRoot, host!));
  }
  return out;
}

/** Maps a container path of `service` to the repository file behind its bind mount. */
function hostPathOf(service: ComposeService, containerPath: string): string {
  for (const [mount, host] of binds(service)) {
    if (containerPath === mount || containerPath.startsWith(`${mount}/`)) {
      return join(host, posix.relative(mount, containerPath));
    }
  }
  throw new Error(`${containerPath} is not inside a bind mount`);
}

function serviceWithImage(prefix: string): [string, ComposeService] {
  const found = Object.entries(services).filter(([, s]) => s.image?.startsWith(prefix));
  expect(found, `a service running ${prefix}`).to.have.length.at.least(1);
  return found[0]!;
}

/** The port a service's container listens on for `host:port`, checked against its definition. */
function expectServiceAddress(address: string, why: string): void {
  const [host, port] = address.replace(/^\w+:\/\//, '').split(/[:/]/);
  expect(Object.keys(services), `${why}: ${host} is a compose service`).to.include(host);
  expect(port, `${why}: port`).to.match(/^\d+$/);
}

describe('docker-compose.yml', function () {
  this.timeout(120_000);

  it("is accepted by docker-compose's own parser", async function () {
    this.timeout(dockerComposeTool.timeoutMs + 120_000); // the first run fetches docker-compose
    const dockerCompose = await ensureDockerCompose();
    const version = spawnSync(dockerCompose, ['version', '--short'], { encoding: 'utf8' });
    expect(version.stdout.trim(), `${dockerCompose} version: ${version.stderr}`).to.equal(
      DOCKER_COMPOSE_VERSION,
    );
    const result = spawnSync(dockerCompose, ['-f', composeFile, 'config', '--quiet'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    expect(result.status, result.stderr).to.equal(0);
    const services = spawnSync(dockerCompose, ['-f', composeFile, 'config', '--services'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    expect(services.stdout.trim().split('\n').sort()).to.deep.equal(Object.keys(compose.services).sort());
  });

  it('binds every published port to 127.0.0.1 and health-checks every long-running service', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) expect(port, name).to.match(/^127\.0\.0\.1:\d+:\d+$/);
      if (name !== 'kafka-init') expect(service.healthcheck?.test, `${name} healthcheck`).to.be.an('array');
    }
  });

  it('runs Kafka, a Confluent-API schema registry, TF Serving, Prometheus, Grafana and infer-connect from the Dockerfile', () => {
    serviceWithImage('apache/kafka:');
    serviceWithImage('confluentinc/cp-schema-registry:');
    serviceWithImage('tensorflow/serving:');
    serviceWithImage('prom/prometheus:');
    serviceWithImage('grafana/grafana:');
    const app = services['infer-connect']!;
    expect(app.build?.context).to.equal('.');
    expect(app.build?.dockerfile ?? 'Dockerfile').to.equal('Dockerfile');
    expect(app.depends_on).to.deep.equal({
      'kafka-init': { condition: 'service_completed_successfully' },
      'schema-registry': { condition: 'service_healthy' },
      'tf-serving': { condition: 'service_healthy' },
    });
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(Object.keys(services), `${name} depends on ${dependency}`).to.include(dependency);
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).to.include(
          condition,
        );
      }
    }
  });

  it('gives infer-connect configs whose endpoints are the compose services', () => {
    const app = services['infer-connect']!;
    const [command, ...files] = app.command!;
    expect(command).to.equal('standalone');
    const [workerFile, ...connectorFiles] = files.map((file) => hostPathOf(app, file));
    const worker = JSON.parse(readFileSync(workerFile!, 'utf8')) as Record<string, string>;
    expectServiceAddress(worker['bootstrap.servers']!, 'bootstrap.servers');
    expectServiceAddress(worker['schema.registry.url']!, 'schema.registry.url');
    expect(worker.listeners).to.equal('http://0.0.0.0:8083');
    expect(app.ports).to.include('127.0.0.1:8083:8083');
    let inference = 0;
    for (const file of connectorFiles) {
      const { config } = JSON.parse(readFileSync(file!, 'utf8')) as { config: Record<string, string> };
      if (config['connector.class'] === 'TFServingInference') {
        inference++;
        expectServiceAddress(config['tfserving.target']!, `${file}: tfserving.target`);
        const [host, port] = config['tfserving.target']!.split(':');
        expect(services[host!]!.environment?.MODEL_NAME).to.equal(config['tfserving.model.name']);
        expect(port).to.equal('8500');
      }
      if (config.file)
        expect(existsSync(hostPathOf(app, posix.join('/app', config.file))), config.file).to.equal(true);
    }
    expect(inference).to.equal(1);
  });

  it('wires Prometheus to infer-connect and Grafana to Prometheus and the dashboard', () => {
    const prometheus = services.prometheus!;
    const promConfig = parseYaml(
      readFileSync(hostPathOf(prometheus, '/etc/prometheus/prometheus.yml'), 'utf8'),
    ) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    const job = promConfig.scrape_configs.find((c) => c.job_name === 'infer-connect')!;
    expect(job.static_configs[0]!.targets).to.deep.equal(['infer-connect:8083']);

    const grafana = services.grafana!;
    const datasources = parseYaml(
      readFileSync(hostPathOf(grafana, '/etc/grafana/provisioning/datasources/prometheus.yml'), 'utf8'),
    ) as { datasources: Array<{ uid: string; url: string }> };
    expect(datasources.datasources[0]!.url).to.equal('http://prometheus:9090');
    const providers = parseYaml(
      readFileSync(hostPathOf(grafana, '/etc/grafana/provisioning/dashboards/infer-connect.yml'), 'utf8'),
    ) as { providers: Array<{ options: { path: string } }> };
    const dashboard = JSON.parse(
      readFileSync(
        hostPathOf(grafana, posix.join(providers.providers[0]!.options.path, 'infer-connect.json')),
        'utf8',
      ),
    ) as { panels: Array<{ datasource?: { uid: string } }> };
    for (const panel of dashboard.panels) {
      if (panel.datasource) expect(panel.datasource.uid).to.equal(datasources.datasources[0]!.uid);
    }
  });

  it('health-checks TF Serving with a probe that works without curl (run natively against a stand-in)', async () => {
    const test = services['tf-serving']!.healthcheck!.test;
    expect(test.slice(0, 3)).to.deep.equal(['CMD', 'bash', '-c']);
    const answer = (state: string) =>
      JSON.stringify({ model_version_status: [{ version: '1', state, status: { error_code: 'OK' } }] });
    for (const [state, expected] of [
      ['AVAILABLE', 0],
      ['LOADING', 1],
    ] as const) {
      const server = createServer((request, response) => {
        response.writeHead(request.url === '/v1/models/census' ? 200 : 404, {
          'content-type': 'application/json',
        });
        response.end(answer(state));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as { port: number };
      const probe = spawn(test[1]!, [test[2]!, test[3]!.replace('/127.0.0.1/8501', `/127.0.0.1/${port}`)]);
      const [code] = (await once(probe, 'exit')) as [number];
      server.close();
      expect(code, `probe when the model is ${state}`).to.equal(expected);
    }
  });

  describe('the census model folder mounted into tensorflow/serving', () => {
    const tfServing = Object.values(services).find((s) => s.image?.startsWith('tensorflow/serving:'))!;
    const base = String(tfServing.environment?.MODEL_BASE_PATH ?? '/models');
    const modelName = String(tfServing.environment?.MODEL_NAME);

    it('holds the SavedModel that npm run models:export writes, small enough to commit', () => {
      const folder = hostPathOf(tfServing, posix.join(base, modelName));
      expect(folder).to.equal(join(repoRoot, 'deploy', 'models', 'census'));
      expect(join(folder, '1')).to.equal(CENSUS_EXPORT_DIR);
      const committed = listFiles(CENSUS_EXPORT_DIR);
      expect(committed.files).to.include.members([
        'saved_model.pb',
        'variables/variables.index',
        'variables/variables.data-00000-of-00001',
      ]);
      expect(committed.bytes, 'exported model size').to.be.below(5 * 1024 * 1024);
      // The export step (from the model cache the local stack built) writes the same files.
      expect(
        existsSync(join(paths.modelBase, 'census', '1', 'saved_model.pb')),
        'census model in the cache',
      ).to.equal(true);
      const out = mkdtempSync(join(tmpdir(), 'infer-connect-export-'));
      try {
        expect(exportCensusModel(join(out, '1')).files).to.deep.equal(committed.files);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    it("serves the same census signature as the local stack's model server", async function () {
      this.timeout(120_000);
      // Serve deploy/models with the stack's TF-Serving-compatible server on free ports.
      const server = spawn(
        paths.venvPython,
        [
          join(repoRoot, 'dev', 'model-server', 'server.py'),
          '--port',
          '0',
          '--control-port',
          '0',
          '--model-base',
          join(repoRoot, 'deploy', 'models'),
        ],
        { env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const exited = once(server, 'exit');
      const output: string[] = [];
      const target = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`model server did not start:\n${output.join('\n')}`)),
          90_000,
        );
        for (const stream of [server.stdout, server.stderr]) {
          createInterface({ input: stream }).on('line', (line) => {
            output.push(line);
            const match = /serving grpc=(\S+)/.exec(line);
            if (match) {
              clearTimeout(timer);
              resolve(match[1]!);
            }
          });
        }
        void exited.then(() => reject(new Error(`model server exited:\n${output.join('\n')}`)));
      });
      const signature = async (address: string): Promise<SignatureSpec> => {
        const client = new TFServingClient({
          target: address,
          deadlineMs: 10_000,
          maxSendMessageBytes: 4 << 20,
          maxReceiveMessageBytes: 4 << 20,
        });
        try {
          const metadata = await client.getModelMetadata({ name: modelName });
          expect(metadata.model.version).to.equal(1);
          return metadata.signatures.serving_default!;
        } finally {
          client.close();
        }
      };
      try {
        const exported = await signature(target);
        const served = await signature(modelServerTarget);
        expect(Object.keys(exported.inputs)).to.have.length(14);
        expect(Object.keys(exported.outputs).sort()).to.deep.equal(['predicted_class', 'probability']);
        expect(exported).to.deep.equal(served);
      } finally {
        server.kill('SIGTERM');
        await exited;
      }
    });
  });
});
