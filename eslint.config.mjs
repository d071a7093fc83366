// Lint: typescript-eslint's recommended rules over the extension, engine, webview, tests and benches.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importCycles from './scripts/importCycles.mjs';

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**', '.e2e/**', 'artifacts/**', 'test/e2e/node_modules/**', 'test/e2e/out/**', '.cache/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    // Imports point one way, between files and between folders (scripts/importCycles.mjs says why not import-x/no-cycle).
    files: ['src/**/*.ts', 'webview/**/*.ts'],
    plugins: { local: importCycles },
    rules: {
      'local/no-import-cycle': 'error',
    },
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    languageOptions: { globals: { require: 'readonly', module: 'writable', process: 'readonly', console: 'readonly', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // engine/ runs in the worker and the CLI: it must never pull in the editor API.
    files: ['src/engine/**/*.ts', 'src/cli/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [{ name: 'vscode', message: 'engine/ and cli/ never import vscode' }] }] },
  },
  {
    // Only the worker and the CLI load the native runtime; the extension host talks to it over RPC.
    files: ['src/extension.ts', 'src/commands/**', 'src/codeActions/**', 'src/panel/**', 'src/store/**', 'src/client/**', 'src/protocol/**', 'webview/**'],
    rules: { 'no-restricted-imports': ['error', { paths: [{ name: 'onnxruntime-node', message: 'only the worker and the CLI load onnxruntime-node' }] }] },
  },
);
