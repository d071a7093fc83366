// Bundles the in-host mocha suite to test/e2e/out/suite/. mocha stays external so it resolves
// from test/e2e/node_modules at run time; vscode is provided by the extension host.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
await build({
  entryPoints: ['index.ts', 'extension.test.ts', 'model.test.ts', 'settings.test.ts', 'restricted.test.ts'].map((f) => path.join(here, 'suite', f)),
  outdir: path.join(here, 'out/suite'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  external: ['vscode', 'mocha'],
  logLevel: 'warning',
});
