// `npm run package [-- --target <os>-<arch>]`: a platform-specific VSIX carrying only that
// platform's onnxruntime binaries. Default target: this machine. vsce runs `vscode:prepublish`
// (the production build) first. Output: gemma-tune-<target>-<version>.vsix in the repository root.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The platforms onnxruntime-node 1.30 ships binaries for (node_modules/onnxruntime-node/bin/napi-v6/<os>/<arch>).
const TARGETS = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'win32-x64', 'win32-arm64'];

const argv = process.argv.slice(2);
const i = argv.indexOf('--target');
const target = i >= 0 ? argv[i + 1] : `${process.platform}-${process.arch}`;
if (!TARGETS.includes(target)) {
  console.error(`package: no onnxruntime-node binaries for target "${target}" (have: ${TARGETS.join(', ')})`);
  process.exit(2);
}
const [os, arch] = target.split('-');

const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const ignoreFile = path.join(root, '.cache/vscodeignore', target);
mkdirSync(path.dirname(ignoreFile), { recursive: true });
// The native decode kernels (scripts/build-native.js) are built for this machine only: a VSIX for another
// platform goes without them and decodes with ONNX Runtime.
const host = target === `${process.platform}-${process.arch}`;
if (host) execFileSync(process.execPath, [path.join(root, 'scripts/build-native.js')], { cwd: root, stdio: 'inherit' });
const nativeLine = host && existsSync(path.join(root, 'dist/gemma_native.node')) ? '!dist/gemma_native.node\n' : '';
if (!nativeLine) console.log(`package: no native decode kernels for ${target} (built only for this machine's platform, when it can build them)`);
writeFileSync(
  ignoreFile,
  `${readFileSync(path.join(root, '.vscodeignore'), 'utf8')}\n# added by scripts/package.mjs for ${target}\n!node_modules/onnxruntime-node/bin/napi-v6/${os}/${arch}/**\n${nativeLine}`,
);

const out = path.join(root, `${pkg.name}-${target}-${pkg.version}.vsix`);
const vsce = path.join(root, 'node_modules/@vscode/vsce/vsce');
const t0 = performance.now();
execFileSync(
  process.execPath,
  [vsce, 'package', '--target', target, '--ignoreFile', ignoreFile, '--out', out, '--allow-missing-repository', '--skip-license'],
  { cwd: root, stdio: 'inherit' },
);
const mb = statSync(out).size / 1024 / 1024;
console.log(`package: ${path.basename(out)} ${mb.toFixed(1)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
