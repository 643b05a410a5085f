// The Kubernetes manifests in deploy/k8s: valid against the Kubernetes API schema (kubernetes-models,
// generated from the upstream OpenAPI spec), and consistent with the image and the configs they
// carry: probes on /health, the REST port, a non-root user, and configs that pass the same
// validation the worker runs at start, with the Deployment's environment.
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { builtinPlugins } from '../../connectors/index.js';
import { repoRoot } from '../../dev/generate-docs.js';
import { envConfigProvider, fileConfigProvider } from '../../runtime/config/config-providers.js';
import { parseConnectorConfig } from '../../runtime/config/connector-config.js';
import { parseWorkerConfig } from '../../runtime/config/worker-config.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';

const k8sDir = join(repoRoot, 'deploy', 'k8s');

interface Manifest {
  file: string;
  doc: Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };
}

function manifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')) {
    for (const document of parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8'))) {
      expect(document.errors, `${file}: YAML errors`).to.deep.equal([]);
      const doc = document.toJS() as Manifest['doc'] | null;
      if (doc !== null) out.push({ file, doc });
    }
  }
  return out;
}

/** Validates a manifest with the kubernetes-models class of its apiVersion/kind; throws on a schema error. */
const VALIDATORS: Record<string, (doc: unknown) => void> = {
  'v1/ConfigMap': (doc) => new ConfigMap(doc as never).validate(),
  'v1/Service': (doc) => new Service(doc as never).validate(),
  'apps/v1/Deployment': (doc) => new Deployment(doc as never).validate(),
  'policy/v1/PodDisruptionBudget': (doc) => new PodDisruptionBudget(doc as never).validate(),
};

function one<K extends string>(all: Manifest[], kind: K): Manifest['doc'] {
  const found = all.filter((m) => m.doc.kind === kind);
  expect(found, `exactly one ${kind}`).to.have.length(1);
  return found[0]!.doc;
}

describe('Kubernetes manifests (deploy/k8s)', () => {
  const all = manifests();
  const deployment = new Deployment(one(all, 'Deployment') as never);
  const configMap = new ConfigMap(one(all, 'ConfigMap') as never);
  const service = new Service(one(all, 'Service') as never);
  const pdb = new PodDisruptionBudget(one(all, 'PodDisruptionBudget') as never);
  const pod = deployment.spec!.template.spec!;
  const container: IContainer = pod.containers[0]!;

  it('validate against the Kubernetes API schema, each kind we rely on', () => {
    expect(all.map((m) => `${m.doc.apiVersion}/${m.doc.kind}`).sort()).to.deep.equal(
      Object.keys(VALIDATORS).sort(),
    );
    for (const { file, doc } of all) {
      const validate = VALIDATORS[`${doc.apiVersion}/${doc.kind}`]!;
      expect(() => validate(doc), `${file}: ${doc.kind} ${doc.metadata.name}`).not.to.throw();
    }
  });

  it('reject a manifest that breaks the schema (the validator is not a no-op)', () => {
    const broken = structuredClone(one(all, 'Deployment')) as unknown as {
      spec: { template: { spec: { containers: Array<{ ports: Array<{ containerPort: unknown }> }> } } };
    };
    broken.spec.template.spec.containers[0]!.ports[0]!.containerPort = 'eighty';
    expect(() => VALIDATORS['apps/v1/Deployment']!(broken)).to.throw(/containerPort/);
  });

  it('list every manifest in kustomization.yaml', () => {
    const kustomization = parseAllDocuments(
      readFileSync(join(k8sDir, 'kustomization.yaml'), 'utf8'),
    )[0]!.toJS() as {
      kind: string;
      resources: string[];
    };
    expect(kustomization.kind).to.equal('Kustomization');
    expect([...kustomization.resources].sort()).to.deep.equal([...new Set(all.map((m) => m.file))].sort());
  });

  it("probe GET /health on the REST port with the probe user's credentials, with resource requests and limits", () => {
    const port = container.ports!.find((p) => p.name === 'http');
    expect(port?.containerPort).to.equal(8083);
    // Basic auth covers every path, /health included (as Kafka Connect's filter does), so the
    // probes are a one-line fetch with credentials from the infer-connect-rest Secret.
    const env = new Map((container.env ?? []).map((e) => [e.name, e]));
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).to.match(/INFER_CONNECT_HEALTH_URL=https?:\/\/[^/\s]+:8083\/health/); // set by the image
    expect(env.get('INFER_CONNECT_HEALTH_CREDENTIALS')?.valueFrom?.secretKeyRef?.name).to.equal(
      'infer-connect-rest',
    );
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
      const script = probe?.exec?.command?.join(' ') ?? '';
      expect(script).to.contain('INFER_CONNECT_HEALTH_URL').and.contain('INFER_CONNECT_HEALTH_CREDENTIALS');
      expect(script).to.contain("authorization:'Basic '");
    }
    for (const kind of ['requests', 'limits'] as const) {
      expect(container.resources?.[kind]?.cpu, `${kind}.cpu`).to.be.a('string');
      expect(container.resources?.[kind]?.memory, `${kind}.memory`).to.be.a('string');
    }
    // The drain on SIGTERM takes at most task.shutdown.graceful.timeout.ms + 5 s.
    expect(pod.terminationGracePeriodSeconds).to.be.at.least(15 + 5);
  });

  it("run as the image's non-root user with a read-only root and writable state folders", () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).to.match(/^USER node$/m); // uid 1000 in the node images
    expect(pod.securityContext?.runAsNonRoot).to.equal(true);
    expect(pod.securityContext?.runAsUser).to.equal(1000);
    expect(container.securityContext?.allowPrivilegeEscalation).to.equal(false);
    expect(container.securityContext?.readOnlyRootFilesystem).to.equal(true);
    const writable = (container.volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath);
    expect(writable).to.include.members(['/tmp', '/var/lib/infer-connect']);
  });

  it('mount the ConfigMap where the args look for the configs', () => {
    const mount = container.volumeMounts!.find((m) => m.mountPath === '/etc/infer-connect');
    const volume = pod.volumes!.find((v) => v.name === mount?.name);
    expect(volume?.configMap?.name).to.equal(configMap.metadata!.name);
    const [command, ...files] = container.args!;
    expect(command).to.equal('standalone');
    expect(files.length).to.be.at.least(2);
    for (const file of files) {
      expect(posix.dirname(file)).to.equal('/etc/infer-connect');
      expect(Object.keys(configMap.data ?? {})).to.include(posix.basename(file));
    }
  });

  it('carry configs that the worker accepts with the Deployment environment, and no source connector', () => {
    const env: Record<string, string> = {};
    for (const variable of container.env ?? []) {
      env[variable.name] = variable.value ?? `value-of-${variable.valueFrom?.fieldRef?.fieldPath ?? '?'}`;
    }
    const options = { providers: [envConfigProvider(env), fileConfigProvider()] };
    const [, workerFile, ...connectorFiles] = container.args!;
    const worker = parseWorkerConfig(
      JSON.parse(configMap.data![posix.basename(workerFile!)]!) as Record<string, unknown>,
      options,
    );
    expect(worker.problems).to.deep.equal([]);
    // Reachable from the Service and the probes, on the container port.
    expect(worker.config!.getString('listeners')).to.equal('http://0.0.0.0:8083');
    const offsets = worker.config!.getString('offset.storage.file.filename');
    expect(offsets.startsWith('/var/lib/infer-connect/')).to.equal(true);

    const plugins = PluginRegistry.of(builtinPlugins);
    for (const file of connectorFiles) {
      const { name, config } = JSON.parse(configMap.data![posix.basename(file)]!) as {
        name: string;
        config: Record<string, unknown>;
      };
      const plugin = plugins.find(String(config['connector.class']));
      expect(plugin, `${file}: plugin`).not.to.equal(undefined);
      const parsed = parseConnectorConfig(plugin!, config, { ...options, name });
      expect(parsed.problems, file).to.deep.equal([]);
      // Replicas of a processor or sink share the group connect-<name>; a source would run once per pod.
      if ((deployment.spec!.replicas ?? 1) > 1) expect(plugin!.kind, file).not.to.equal('source');
    }
  });

  it('select the pods with the Service and the PodDisruptionBudget', () => {
    const labels = deployment.spec!.template.metadata!.labels!;
    expect(deployment.spec!.selector.matchLabels).to.deep.equal(
      Object.fromEntries(Object.entries(labels).filter(([k]) => k in deployment.spec!.selector.matchLabels!)),
    );
    for (const selector of [service.spec!.selector!, pdb.spec!.selector!.matchLabels!]) {
      for (const [key, value] of Object.entries(selector)) expect(labels[key], key).to.equal(value);
    }
    expect(service.spec!.ports!.map((p) => [p.port, p.targetPort])).to.deep.equal([[8083, 'http']]);
  });
});
