// Lint rules: typescript-eslint's recommended type-aware set; formatting is Prettier's job.
// The import boundaries below are the architecture (docs/writing-a-connector.md): runtime/ never
// imports connectors/ or the composition root (app/); plugins import from runtime/ only its
// public contract, runtime/api.ts (plugins outside the repository: `infer-connect/api`).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'dev/model-server/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['runtime/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)(connectors|app)(/|$)',
              message:
                'runtime/ must not import connectors/ or app/: which plugins load is decided by the composition root (app/main.ts) and plugin.path.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['connectors/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)runtime/(?!api\\.js$)',
              message: 'connectors import only the public contract of the runtime: runtime/api.js.',
            },
            {
              regex: '(^|/)app(/|$)',
              message: 'connectors must not import the composition root (app/).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['examples/**/*.ts'],
    ignores: ['examples/*/test/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)(runtime|connectors|app)(/|$)',
              message:
                "an example plugin imports the runtime only as 'infer-connect/api', as an outside package must.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { URL: 'readonly', process: 'readonly', console: 'readonly' },
    },
  },
);
