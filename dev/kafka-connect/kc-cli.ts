// The `kc` command of kafka-connect-py (a Kafka Connect REST client from PyPI), which the CLI test
// drives against our worker as a Kafka Connect user would. Installed on first use, pinned with its
// dependencies, into its own virtualenv in the cache (see dev/cached-tool.ts for the caching,
// locking and deadline contract).
import { join } from 'node:path';
import { ensureCachedTool, type CachedToolSpec, type InstallContext } from '../cached-tool.js';
import { cacheDir } from '../stack.js';

export const KAFKA_CONNECT_PY_VERSION = '1.0.0';
/** kafka-connect-py and everything it installs, at the versions it was tested with. */
const PINS = [
  `kafka-connect-py==${KAFKA_CONNECT_PY_VERSION}`,
  'click==8.5.1',
  'requests==2.34.2',
  'urllib3==2.8.0',
  'idna==3.20',
  'charset-normalizer==3.5.3',
  'certifi==2026.10.19.post1',
];

export const kcTool: CachedToolSpec = {
  name: `kafka-connect-py ${KAFKA_CONNECT_PY_VERSION}`,
  source: 'PyPI',
  dir: join(cacheDir, 'tools', `kafka-connect-py-${KAFKA_CONNECT_PY_VERSION}`),
  executable: join('bin', 'kc'),
  identity: JSON.stringify(PINS),
  timeoutMs: 5 * 60_000,
  remedy:
    'It is installed with pip into a Python virtualenv: it needs python3 (with venv) and access to the Python ' +
    'package index. Retry by running test/integration/kafka-connect-cli.test.ts again.',
  async install({ dir, run }: InstallContext) {
    await run('python3', ['-m', 'venv', dir], { what: 'creating the virtualenv' });
    await run(
      join(dir, 'bin', 'python'),
      [
        '-m',
        'pip',
        'install',
        '--quiet',
        '--disable-pip-version-check',
        '--no-input',
        '--timeout',
        '60',
        ...PINS,
      ],
      { what: 'installing kafka-connect-py' },
    );
  },
};

/** The path of `kc`, installing it first when the cache does not hold these pins. */
export function ensureKc(): Promise<string> {
  return ensureCachedTool(kcTool);
}
