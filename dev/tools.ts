// The tools the packaging tests call, fetched on first use into INFER_CONNECT_CACHE/tools (see
// dev/cached-tool.ts for the caching, locking and deadline contract), so `npm ci && npm test` needs
// nothing installed by hand beyond the README's requirements:
//
// - docker-compose 1.29.2 (the Python one, as Debian ships it), from PyPI into its own virtualenv.
// - promtool of Prometheus 3.5.0, the version of the prom/prometheus image docker-compose.yml runs,
//   built from the Go module proxy.
//
// The cached, pinned tools are used even when the machine has its own on PATH: every machine then
// checks the files with the same versions, and a machine that happens to have them installed (as
// CI's did) cannot hide a broken fetch.
//
//   npx tsx dev/tools.ts [docker-compose] [promtool]   # fetch what is missing; print the paths
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureCachedTool, type CachedToolSpec, type InstallContext } from './cached-tool.js';
import { cacheDir } from './stack.js';

const toolsDir = join(cacheDir, 'tools');

export const DOCKER_COMPOSE_VERSION = '1.29.2';
/**
 * The docker-compose virtualenv. docker-compose 1.29.2 needs PyYAML < 6, whose sdists do not build
 * in pip's isolated build environment any more (it pulls Cython 3); built without isolation they
 * install as pure Python. docker is pinned because compose 1.x imports its internals.
 */
const DOCKER_COMPOSE_PINS = [`docker-compose==${DOCKER_COMPOSE_VERSION}`, 'PyYAML==5.4.1', 'docker==7.2.0'];
/** What the PyYAML and docopt sdists are built with (Python >= 3.12 venvs have no setuptools). */
const PYTHON_BUILD_PINS = ['setuptools<72', 'wheel'];
/** pip's own bound per network request, and its retries; the install deadline bounds the rest. */
const PIP_NETWORK = ['--timeout', '60', '--retries', '3'];

export const dockerComposeTool: CachedToolSpec = {
  name: `docker-compose ${DOCKER_COMPOSE_VERSION}`,
  source: 'PyPI',
  dir: join(toolsDir, `docker-compose-${DOCKER_COMPOSE_VERSION}`),
  executable: join('bin', 'docker-compose'),
  identity: JSON.stringify([...PYTHON_BUILD_PINS, ...DOCKER_COMPOSE_PINS]),
  timeoutMs: 10 * 60_000,
  remedy:
    'It is installed with pip into a Python virtualenv: it needs python3 (3.11, with venv) and access to ' +
    'the Python package index. Retry with `npx tsx dev/tools.ts docker-compose`.',
  async install({ dir, run }: InstallContext) {
    const python = join(dir, 'bin', 'python');
    const pip = [
      '-m',
      'pip',
      'install',
      '--quiet',
      '--disable-pip-version-check',
      '--no-input',
      ...PIP_NETWORK,
    ];
    await run('python3', ['-m', 'venv', dir], { what: 'creating the virtualenv' });
    await run(python, [...pip, ...PYTHON_BUILD_PINS], { what: 'installing the build tools' });
    await run(python, [...pip, '--no-build-isolation', ...DOCKER_COMPOSE_PINS], {
      what: 'installing docker-compose',
    });
  },
};

export const PROMETHEUS_VERSION = '3.5.0';
const PROMETHEUS_MODULE = 'github.com/prometheus/prometheus';
/** Prometheus 3.x's Go module versions are v0.3MM.P for 3.MM.P. */
const PROMETHEUS_MODULE_VERSION = 'v0.305.0';
const PROMTOOL_PACKAGE = `${PROMETHEUS_MODULE}/cmd/promtool`;

export const promtoolTool: CachedToolSpec = {
  name: `promtool ${PROMETHEUS_VERSION}`,
  source: 'the Go module proxy',
  dir: join(toolsDir, `promtool-${PROMETHEUS_VERSION}`),
  executable: 'promtool',
  identity: `${PROMTOOL_PACKAGE}@${PROMETHEUS_MODULE_VERSION}`,
  // 9 to 11 minutes on a 2-core machine (1.4 GB of modules, 1.4 GB of build cache, both removed after).
  timeoutMs: 30 * 60_000,
  remedy:
    'It is built from source with Go 1.23 or newer (`go` on PATH) and needs the Go module proxy and ' +
    'about 3 GB of disk while it builds. ' +
    'Retry with `npx tsx dev/tools.ts promtool`.',
  install: buildPromtool,
};

/**
 * `go install …/promtool@version` refuses Prometheus' module because its go.mod has `replace`
 * directives, so promtool is built from a one-line module that requires Prometheus and repeats
 * those directives (read from Prometheus' go.mod, not copied here by hand). Modules and build
 * cache live inside the tool's folder and are removed once the binary is there.
 */
async function buildPromtool({ dir, run }: InstallContext): Promise<void> {
  const build = join(dir, 'build');
  const module = join(build, 'module');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GOMODCACHE: join(build, 'mod'),
    GOCACHE: join(build, 'cache'),
    GOFLAGS: `${process.env.GOFLAGS ?? ''} -modcacherw`.trim(),
    GO111MODULE: 'on',
    GOWORK: 'off',
  };
  const go = (args: string[], what: string) => run('go', args, { what, cwd: module, env });
  mkdirSync(module, { recursive: true });
  await go(['mod', 'init', 'infer-connect.local/promtool'], 'creating the build module');
  const download = JSON.parse(
    await go(
      ['mod', 'download', '-json', `${PROMETHEUS_MODULE}@${PROMETHEUS_MODULE_VERSION}`],
      'downloading Prometheus',
    ),
  ) as { GoMod: string };
  const prometheusMod = JSON.parse(
    await go(['mod', 'edit', '-json', download.GoMod], "reading Prometheus' go.mod"),
  ) as {
    Replace?: Array<{ Old: { Path: string; Version?: string }; New: { Path: string; Version?: string } }>;
  };
  const at = (m: { Path: string; Version?: string }) => (m.Version ? `${m.Path}@${m.Version}` : m.Path);
  for (const { Old, New } of prometheusMod.Replace ?? []) {
    if (!New.Version) continue; // a folder of Prometheus' own tree: nothing promtool builds from
    await go(['mod', 'edit', `-replace=${at(Old)}=${at(New)}`], "repeating Prometheus' replace directives");
  }
  await go(['get', `${PROMTOOL_PACKAGE}@${PROMETHEUS_MODULE_VERSION}`], "resolving promtool's dependencies");
  await go(
    [
      'build',
      '-trimpath',
      '-ldflags',
      `-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}`,
      '-o',
      join(dir, 'promtool'),
      PROMTOOL_PACKAGE,
    ],
    'building promtool',
  );
  const version = await run(join(dir, 'promtool'), ['--version'], { what: 'running the built promtool' });
  if (!version.includes(`version ${PROMETHEUS_VERSION}`)) {
    throw new Error(`the built promtool reports another version:\n${version}`);
  }
  rmSync(build, { recursive: true, force: true });
}

/** docker-compose's executable, fetched into the cache on first use. */
export function ensureDockerCompose(): Promise<string> {
  return ensureCachedTool(dockerComposeTool);
}

/** promtool's executable, built into the cache on first use. */
export function ensurePromtool(): Promise<string> {
  return ensureCachedTool(promtoolTool);
}

const tools: Record<string, () => Promise<string>> = {
  'docker-compose': ensureDockerCompose,
  promtool: ensurePromtool,
};

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(tools);
  const unknown = wanted.filter((name) => !(name in tools));
  if (unknown.length > 0) {
    process.stderr.write(`unknown tool ${unknown.join(', ')}; known: ${Object.keys(tools).join(', ')}\n`);
    process.exit(2);
  }
  for (const name of wanted) {
    try {
      process.stdout.write(`${name} ${await tools[name]!()}\n`);
    } catch (error) {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exit(1);
    }
  }
}
