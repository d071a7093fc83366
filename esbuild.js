// Bundles the four programs of Gemma Tune: the extension (host), the engine worker, the CLI and the
// panel's browser code. `--watch` rebuilds on change, `--production` minifies without sourcemaps.
const esbuild = require('esbuild');
const { buildNative } = require('./scripts/build-native');
const fs = require('node:fs');
const path = require('node:path');

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

// onnxruntime-node is native: it must stay a real node_modules package next to the bundles.
const nodeCommon = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  external: ['vscode', 'onnxruntime-node'],
  logLevel: 'info',
};

const bundles = [
  { name: 'extension', entryPoints: ['src/extension.ts'], outfile: 'dist/extension.js', ...nodeCommon },
  { name: 'worker', entryPoints: ['src/engine/worker.ts'], outfile: 'dist/worker.js', ...nodeCommon },
  {
    name: 'cli', entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.js', ...nodeCommon,
    banner: { js: '#!/usr/bin/env node' },
  },
  {
    name: 'webview', entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js',
    bundle: true, platform: 'browser', target: 'es2022', format: 'iife',
    sourcemap: !production, minify: production, logLevel: 'info',
  },
];

async function main() {
  // A bundle whose entry has not landed yet is skipped by name, so the build says what it left out.
  const present = bundles.filter((b) => {
    const ok = fs.existsSync(path.join(__dirname, b.entryPoints[0]));
    if (!ok) console.log(`[esbuild] skip ${b.name}: ${b.entryPoints[0]} does not exist yet`);
    return ok;
  });
  const contexts = await Promise.all(present.map(({ name: _name, ...opts }) => esbuild.context(opts)));
  buildNative();
  // The training job's script is a file the export copies, beside the bundles that export it.
  fs.mkdirSync('dist/job', { recursive: true });
  fs.copyFileSync('src/job/train.py', 'dist/job/train.py');
  if (watch) {
    await Promise.all(contexts.map((c) => c.watch()));
    console.log('[esbuild] watching');
    return;
  }
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
  if (fs.existsSync('dist/cli.js')) fs.chmodSync('dist/cli.js', 0o755);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
