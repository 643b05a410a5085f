// The Dockerfile, followed step by step without a Docker engine: the test parses the Dockerfile
// (dockerfile-ast), copies what each COPY copies (through .dockerignore) into a temporary root
// per stage, runs each RUN natively, and then starts the runtime stage's ENTRYPOINT as an
// unprivileged user (uid 65534 plays the image's `node` user) against the local stack. Every
// instruction and shell command must be one the test knows how to follow, so a change to the
// Dockerfile fails here until the test follows it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { once } from 'node:events';
import avro from 'avsc';
import { DEFAULT_NODE_FLAGS } from '../../bench/process-under-test.js';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { DockerfileParser, From, Healthcheck, JSONInstruction, type Instruction } from 'dockerfile-ast';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { parseCsvLine } from '../../connectors/file/csv.js';
import { repoRoot } from '../../dev/generate-docs.js';
import { parseWorkerConfig } from '../../runtime/config/worker-config.js';
import { silenceKafkajsTimerWarnings } from '../../runtime/node-warnings.js';
import { kafkaBootstrap, modelServerTarget, registryUrl, testKafka, uniqueName } from '../helpers/stack.js';
import { waitFor } from '../helpers/worker.js';

/** The unprivileged user that plays the image's `USER node` natively (nobody). */
const RUN_AS = { uid: 65534, gid: 65534 };
const dockerfileText = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
// A CommonJS module (module.exports = factory) whose types declare a default export.
const ignore = createRequire(import.meta.url)(
  '@balena/dockerignore',
) as typeof import('@balena/dockerignore').default;
const dockerignore = ignore().add(readFileSync(join(repoRoot, '.dockerignore'), 'utf8'));

interface Stage {
  name: string;
  image: string;
  /** The stage's filesystem root; absolute image paths P live at rootfs + P. */
  rootfs: string;
  workdir: string;
  user: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  healthcheck: string[];
  exposed: string[];
  steps: string[];
}

const inRoot = (stage: Stage, path: string): string =>
  join(stage.rootfs, posix.isAbsolute(path) ? path : posix.join(stage.workdir, path));

function run(command: string, args: string[], cwd: string): void {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', env: process.env });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed in ${cwd}:\n${(result.stdout + result.stderr).slice(-3000)}`,
    );
  }
}

/** Copies `from` (file or folder) to `to`, leaving out what `skip` says (folders: contents are copied). */
function copyTree(from: string, to: string, skip: (path: string) => boolean): void {
  if (statSync(from).isDirectory()) {
    mkdirSync(to, { recursive: true });
    for (const entry of readdirSync(from)) {
      const source = join(from, entry);
      if (!skip(source)) copyTree(source, join(to, entry), skip);
    }
  } else {
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to);
  }
}

/** COPY [--from=stage] <src>... <dest>: sources from the build context (through .dockerignore) or a stage. */
function copyStep(stage: Stage, instruction: Instruction, stages: Map<string, Stage>): string {
  const args = instruction.getArguments().map((a) => a.getValue());
  const flags = instruction.getArgumentsContent()?.match(/--\w+=?\S*/g) ?? [];
  const fromStage = (instruction as unknown as { getFromFlag(): { getValue(): string } | null })
    .getFromFlag()
    ?.getValue();
  const unknownFlags = flags.filter((f) => !f.startsWith('--from='));
  if (unknownFlags.length > 0)
    throw new Error(`COPY flags the test cannot follow: ${unknownFlags.join(' ')}`);
  const operands = args.filter((a) => !a.startsWith('--'));
  const dest = operands.pop()!;
  const target = inRoot(stage, dest);
  for (const source of operands) {
    let from: string;
    let skip: (path: string) => boolean;
    if (fromStage !== undefined) {
      const other = stages.get(fromStage);
      if (!other) throw new Error(`COPY --from=${fromStage}: no such stage before it`);
      from = inRoot(other, source);
      skip = () => false;
    } else {
      from = join(repoRoot, source);
      expect(dockerignore.ignores(source.replace(/\/$/, '')), `.dockerignore leaves out ${source}`).to.equal(
        false,
      );
      skip = (path) => dockerignore.ignores(relative(repoRoot, path));
    }
    if (!existsSync(from)) throw new Error(`COPY source ${source} does not exist (${from})`);
    const isDir = statSync(from).isDirectory();
    const into = dest.endsWith('/') || operands.length > 1;
    copyTree(from, isDir || !into ? target : join(target, posix.basename(source)), skip);
  }
  return `COPY ${fromStage ? `--from=${fromStage} ` : ''}${operands.join(' ')} ${dest}`;
}

/** One `&&`-joined command of a RUN, done natively where it is safe to. */
function runCommand(stage: Stage, words: string[]): string {
  const [command, ...args] = words;
  const line = words.join(' ');
  if (command === 'npm' && args[0] === 'ci') {
    run('npm', args, inRoot(stage, '.'));
    return line;
  }
  if (command === 'npm' && args[0] === 'run' && args.length === 2) {
    run('npm', args, inRoot(stage, '.'));
    return line;
  }
  if (line === 'npm cache clean --force') {
    // In an image this only shrinks the layer; natively it would empty the machine's shared cache.
    return `${line} (skipped natively)`;
  }
  if (command === 'ln' && args[0] === '-s' && args.length === 3) {
    const link = inRoot(stage, args[2]!);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(inRoot(stage, args[1]!), link);
    return line;
  }
  if (command === 'mkdir' && args[0] === '-p') {
    for (const dir of args.slice(1)) mkdirSync(inRoot(stage, dir), { recursive: true });
    return line;
  }
  if (command === 'chown' && args[0] === 'node:node') {
    for (const path of args.slice(1)) chownSync(inRoot(stage, path), RUN_AS.uid, RUN_AS.gid);
    return line;
  }
  throw new Error(`the Dockerfile runs "${line}", which this test does not know how to follow natively`);
}

/** Follows the whole Dockerfile; returns its stages in order. */
function buildNatively(root: string): Stage[] {
  const dockerfile = DockerfileParser.parse(dockerfileText);
  const args = new Map<string, string>();
  const stages = new Map<string, Stage>();
  let stage: Stage | undefined;
  const current = (keyword: string): Stage => {
    if (!stage) throw new Error(`${keyword} before FROM`);
    return stage;
  };
  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword();
    const values = instruction.getArguments().map((a) => a.getValue());
    switch (keyword) {
      case 'ARG':
        for (const value of values) {
          const [name, ...rest] = value.split('=');
          args.set(name!, rest.join('='));
        }
        break;
      case 'FROM': {
        const from = instruction as From;
        const name = from.getBuildStage() ?? `stage${stages.size}`;
        const image = values[0]!.replace(
          /\$\{(\w+)\}|\$(\w+)/g,
          (_, a: string, b: string) => args.get(a ?? b) ?? '',
        );
        stage = {
          name,
          image,
          rootfs: join(root, name),
          workdir: '/',
          user: 'root',
          env: {},
          entrypoint: [],
          cmd: [],
          healthcheck: [],
          exposed: [],
          steps: [],
        };
        mkdirSync(stage.rootfs, { recursive: true });
        // The node images carry node in /usr/local/bin; hard-link (or copy) ours there.
        const node = join(stage.rootfs, 'usr', 'local', 'bin', 'node');
        mkdirSync(dirname(node), { recursive: true });
        try {
          linkSync(process.execPath, node);
        } catch {
          copyFileSync(process.execPath, node);
          chmodSync(node, 0o755);
        }
        stages.set(name, stage);
        break;
      }
      case 'WORKDIR':
        current(keyword).workdir = posix.resolve(current(keyword).workdir, values[0]!);
        mkdirSync(inRoot(current(keyword), '.'), { recursive: true });
        break;
      case 'COPY':
        current(keyword).steps.push(copyStep(current(keyword), instruction, stages));
        break;
      case 'RUN': {
        const text = instruction.getArgumentsContent() ?? '';
        if (/[;|<>`$'"]|\|\||(?<!&)&(?!&)/.test(text)) {
          throw new Error(`RUN ${text}: only plain commands joined with && can be followed natively`);
        }
        for (const part of text.split('&&')) {
          current(keyword).steps.push(`RUN ${runCommand(current(keyword), part.trim().split(/\s+/))}`);
        }
        break;
      }
      case 'USER':
        current(keyword).user = values[0]!;
        break;
      case 'ENV':
        for (const property of (
          instruction as unknown as { getProperties(): Array<{ getName(): string; getValue(): string }> }
        ).getProperties()) {
          current(keyword).env[property.getName()] = property.getValue();
        }
        break;
      case 'EXPOSE':
        current(keyword).exposed.push(...values);
        break;
      case 'HEALTHCHECK': {
        const match = /\bCMD\s+(\[.*\])\s*$/s.exec((instruction as Healthcheck).getArgumentsContent() ?? '');
        if (!match) throw new Error('HEALTHCHECK must use the exec form: CMD ["...", ...]');
        current(keyword).healthcheck = JSON.parse(match[1]!) as string[];
        break;
      }
      case 'ENTRYPOINT':
        current(keyword).entrypoint = (instruction as JSONInstruction)
          .getJSONStrings()
          .map((s) => s.getJSONValue());
        break;
      case 'CMD':
        current(keyword).cmd = (instruction as JSONInstruction).getJSONStrings().map((s) => s.getJSONValue());
        break;
      case 'VOLUME':
      case 'STOPSIGNAL':
        break;
      default:
        throw new Error(`the Dockerfile uses ${keyword}, which this test does not follow`);
    }
  }
  return [...stages.values()];
}

function chmodTree(path: string): void {
  // Readable (and folders enterable) by the unprivileged user, as files in an image are.
  const stat = statSync(path);
  chmodSync(path, stat.mode | (stat.isDirectory() ? 0o755 : 0o644));
  if (stat.isDirectory()) for (const entry of readdirSync(path)) chmodTree(join(path, entry));
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** Runs `argv` as the unprivileged user with the image's environment, PATH first on its /usr/local/bin. */
function asImageUser(stage: Stage, argv: string[], env: Record<string, string>, log?: number) {
  return spawn(
    'setpriv',
    [`--reuid=${RUN_AS.uid}`, `--regid=${RUN_AS.gid}`, '--clear-groups', '--', ...argv],
    {
      cwd: inRoot(stage, '.'),
      env: {
        PATH: `${join(stage.rootfs, 'usr', 'local', 'bin')}:/usr/bin:/bin`,
        HOME: '/nonexistent',
        ...stage.env,
        ...env,
      },
      stdio: ['ignore', log ?? 'pipe', log ?? 'pipe'],
    },
  );
}

async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

describe('the Dockerfile, followed natively', function () {
  this.timeout(300_000);
  let root: string;
  let stages: Stage[];
  let image: Stage;
  let worker: ChildProcess | undefined;
  let workerLog: string;
  let port: number;
  let input: string;
  let healthEnv: Record<string, string>;

  before(function () {
    this.timeout(600_000);
    silenceKafkajsTimerWarnings();
    expect(spawnSync('setpriv', ['--version']).status, 'setpriv (util-linux) is needed').to.equal(0);
    root = mkdtempSync(join(tmpdir(), 'infer-connect-image-'));
    const started = Date.now();
    stages = buildNatively(root);
    image = stages[stages.length - 1]!;
    chmodSync(root, 0o755);
    chmodTree(image.rootfs);
    process.stdout.write(`      (built natively in ${((Date.now() - started) / 1000).toFixed(1)}s)\n`);
  });

  after(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGKILL');
      await exitCode(worker);
    }
    if (root && !process.env.INFER_CONNECT_KEEP_TMP) rmSync(root, { recursive: true, force: true });
  });

  it('is a lint-clean multi-stage build on Node 24 whose runtime stage runs as a non-root user', () => {
    expect(lintDockerfile(dockerfileText), 'dockerfile-utils problems').to.deep.equal([]);
    expect(stages.map((s) => s.name)).to.deep.equal(['build', 'runtime']);
    for (const stage of stages) expect(stage.image).to.match(/^node:24[-.]/);
    expect(stages[0]!.steps).to.include.members(['RUN npm ci --no-audit --no-fund', 'RUN npm run build']);
    expect(image.steps).to.include('RUN npm ci --omit=dev --no-audit --no-fund');
    expect(image.user).to.equal('node');
    expect(image.exposed).to.deep.equal(['8083']);
    expect(image.entrypoint).to.deep.equal(['infer-connect']);
    expect(image.cmd).to.deep.equal([
      'standalone',
      '/etc/infer-connect/worker.json',
      '/etc/infer-connect/census-inference.json',
    ]);
  });

  it('ships the compiled runtime with production dependencies only, and no TypeScript sources', () => {
    const app = inRoot(image, '.');
    for (const path of [
      'dist/runtime/cli.js',
      'dist/app/main.js',
      'dist/runtime/status-page/index.html',
      'dist/connectors/tf-serving/grpc-client.js',
      'bin/infer-connect.js',
    ]) {
      expect(existsSync(join(app, path)), path).to.equal(true);
    }
    for (const path of ['proto/tensorflow_serving/apis/prediction_service.proto', 'schemas/census.avsc']) {
      expect(existsSync(join(app, path)), path).to.equal(true);
    }
    for (const dependency of ['@grpc/grpc-js', 'kafkajs', 'prom-client', 'fastify']) {
      expect(existsSync(join(app, 'node_modules', dependency)), dependency).to.equal(true);
    }
    for (const devDependency of ['typescript', 'tsx', 'mocha', 'eslint']) {
      expect(existsSync(join(app, 'node_modules', devDependency)), devDependency).to.equal(false);
    }
    expect(existsSync(join(app, 'runtime')), 'runtime/*.ts sources').to.equal(false);
    expect(existsSync(join(app, 'test')), 'tests').to.equal(false);
  });

  it("carries default configs that name the container hosts and pass the worker's validation", () => {
    const [, workerFile, ...connectorFiles] = image.cmd;
    const workerConfig = JSON.parse(readFileSync(inRoot(image, workerFile!), 'utf8')) as Record<
      string,
      unknown
    >;
    const parsed = parseWorkerConfig(workerConfig);
    expect(parsed.problems).to.deep.equal([]);
    expect(parsed.config!.getString('listeners')).to.equal(`http://0.0.0.0:${image.exposed[0]}`);
    expect(new URL(image.env.INFER_CONNECT_HEALTH_URL!).port).to.equal(image.exposed[0]);
    // npm run bench measures the worker with the image's Node flags.
    const imageFlags = (image.env.NODE_OPTIONS ?? '').split(/\s+/);
    for (const flag of DEFAULT_NODE_FLAGS) expect(imageFlags, 'NODE_OPTIONS').to.include(flag);
    for (const file of connectorFiles) {
      const check = spawnSync(
        'setpriv',
        [
          `--reuid=${RUN_AS.uid}`,
          `--regid=${RUN_AS.gid}`,
          '--clear-groups',
          '--',
          ...image.entrypoint,
          'validate',
          inRoot(image, file),
        ],
        {
          cwd: inRoot(image, '.'),
          encoding: 'utf8',
          env: { PATH: `${join(image.rootfs, 'usr', 'local', 'bin')}:/usr/bin:/bin`, ...image.env },
        },
      );
      expect(check.status, `${file}: ${check.stdout}${check.stderr}`).to.equal(0);
    }
  });

  it('starts as the unprivileged user from the compiled dist, and its HEALTHCHECK passes once the worker is up', async () => {
    port = await freePort();
    input = uniqueName('packaging-census');
    const confDir = join(root, 'conf');
    mkdirSync(confDir, { recursive: true });
    // The image's own configs, pointed at the local stack instead of the compose hosts.
    const imageWorker = JSON.parse(readFileSync(inRoot(image, image.cmd[1]!), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(
      join(confDir, 'worker.json'),
      JSON.stringify({
        ...imageWorker,
        'bootstrap.servers': kafkaBootstrap,
        'schema.registry.url': registryUrl,
        listeners: `http://127.0.0.1:${port}`,
        // The folder the Dockerfile created and gave to the image user, inside this root.
        'offset.storage.file.filename': inRoot(image, String(imageWorker['offset.storage.file.filename'])),
      }),
    );
    const imageConnector = JSON.parse(readFileSync(inRoot(image, image.cmd[2]!), 'utf8')) as {
      name: string;
      config: Record<string, string>;
    };
    writeFileSync(
      join(confDir, 'census-inference.json'),
      JSON.stringify({
        name: input,
        config: {
          ...imageConnector.config,
          topics: input,
          'output.topic': `${input}-scored`,
          'errors.deadletterqueue.topic.name': `${input}-dlq`,
          'tfserving.target': modelServerTarget,
          'key.converter': 'string',
        },
      }),
    );
    chmodTree(confDir);
    await createTopic(input);

    healthEnv = { INFER_CONNECT_HEALTH_URL: `http://127.0.0.1:${port}/health` };
    const before = asImageUser(image, image.healthcheck, healthEnv);
    expect(await exitCode(before), 'HEALTHCHECK before the worker runs').to.equal(1);

    workerLog = join(root, 'worker.log');
    const log = openSync(workerLog, 'a');
    worker = asImageUser(
      image,
      [
        ...image.entrypoint,
        'standalone',
        join(confDir, 'worker.json'),
        join(confDir, 'census-inference.json'),
      ],
      {},
      log,
    );
    await waitFor(
      async () => {
        if (worker!.exitCode !== null)
          throw new Error(`worker exited ${worker!.exitCode}: ${tail(workerLog)}`);
        return (await exitCode(asImageUser(image, image.healthcheck, healthEnv))) === 0;
      },
      60_000,
      `the HEALTHCHECK to pass (log: ${workerLog})`,
    );
    const status = readFileSync(`/proc/${worker.pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)![1]).to.equal(String(RUN_AS.uid));
    const cmdline = readFileSync(`/proc/${worker.pid}/cmdline`, 'utf8').split('\0');
    // The ENTRYPOINT's link to bin/infer-connect.js, which ran the compiled CLI in dist/ (tsx, its
    // fallback for source checkouts, is not installed in the image).
    expect(cmdline.some((arg) => arg.endsWith('/usr/local/bin/infer-connect'))).to.equal(true);
  });

  it('scores census records end to end', async () => {
    const rows = censusRows(20);
    const schemaText = readFileSync(join(repoRoot, 'schemas', 'census.avsc'), 'utf8');
    const type = avro.Type.forSchema(JSON.parse(schemaText) as avro.Schema);
    const registry = new SchemaRegistry({ host: registryUrl });
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: schemaText },
      { subject: `${input}-value` },
    );
    const header = Buffer.alloc(5);
    header.writeInt32BE(id, 1);
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({
      topic: input,
      messages: rows.map((row, i) => ({
        key: String(i),
        value: Buffer.concat([header, type.toBuffer(row)]),
      })),
    });
    await producer.disconnect();

    const scored = await readTopic(`${input}-scored`, rows.length);
    expect(scored).to.have.length(rows.length);
    for (const message of scored) {
      const value = (await registry.decode(message.value)) as Record<string, unknown>;
      expect(value.age).to.equal(rows[Number(message.key)]!.age);
      expect(value.probability).to.be.within(0, 1);
      expect(value.predicted_class).to.be.oneOf(['>50K', '<=50K']);
      expect(value).to.include({ model_name: 'census', model_version: 1 });
    }
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).to.match(
      new RegExp(
        `kafka_connect_sink_task_sink_record_send_total\\{connector="${input}",task="0"\\} ${rows.length}\\b`,
      ),
    );
  });

  it('drains on its STOPSIGNAL and exits 0', async () => {
    const stopSignal = /^STOPSIGNAL\s+(\S+)/m.exec(dockerfileText)?.[1] ?? 'SIGTERM';
    worker!.kill(stopSignal as NodeJS.Signals);
    expect(await exitCode(worker!), tail(workerLog)).to.equal(0);
    expect(readFileSync(workerLog, 'utf8')).to.include('worker stopped');
  });
});

function tail(file: string, lines = 40): string {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n') : '(no log)';
}

function censusRows(count: number): Array<Record<string, string | number>> {
  const lines = readFileSync(join(repoRoot, 'data', 'census', 'adult.test.csv'), 'utf8').split('\n');
  const header = parseCsvLine(lines[0]!);
  const schema = JSON.parse(readFileSync(join(repoRoot, 'schemas', 'census.avsc'), 'utf8')) as {
    fields: Array<{ name: string; type: unknown }>;
  };
  const numeric = new Set(schema.fields.filter((f) => f.type === 'long').map((f) => f.name));
  return lines.slice(1, count + 1).map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      header.map((name, i) => [name, numeric.has(name) ? Number(cells[i]) : cells[i]!]),
    );
  });
}

async function createTopic(topic: string): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

async function readTopic(topic: string, count: number): Promise<Array<{ key: string; value: Buffer }>> {
  const admin = testKafka().admin();
  await admin.connect();
  await waitFor(async () => (await admin.listTopics()).includes(topic), 30_000, `topic ${topic}`).finally(
    () => admin.disconnect(),
  );
  const consumer = testKafka().consumer({ groupId: uniqueName('packaging-reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: Array<{ key: string; value: Buffer }> = [];
  await consumer.run({
    eachMessage: async ({ message }) =>
      void out.push({ key: message.key?.toString() ?? '', value: message.value! }),
  });
  try {
    await waitFor(() => out.length >= count, 60_000, `${count} records on ${topic} (have ${out.length})`);
    return out;
  } finally {
    await consumer.disconnect();
  }
}
