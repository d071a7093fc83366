// Compiles native/*.c into build/native/gemma_native.node (the layers and head, src/engine/gemma/native*.ts)
// and copies it beside the bundles as dist/gemma_native.node. Called by esbuild.js, so `npm run build`,
// `npm run demo` and `npm test` build it; skipped, with the reason printed, where it cannot be built here
// (not x86-64, no C compiler, no Node headers): the engine then runs the model on ONNX Runtime, as it says.
// Plain cc rather than node-gyp: seven C files, no dependencies, and node-gyp would fetch headers that
// Node's own include folder already has.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const SOURCES = ['pool.c', 'kernels.c', 'decoder.c', 'train.c', 'head.c', 'optim.c', 'binding.c'].map((f) => path.join(root, 'native', f));
const HEADERS = ['pool.h', 'kernels.h', 'decoder.h', 'decoder_impl.h', 'train.h', 'head.h', 'optim.h'].map((f) => path.join(root, 'native', f));
const OUT = path.join(root, 'build', 'native', 'gemma_native.node');
const DIST = path.join(root, 'dist', 'gemma_native.node');

/** Node's headers (node_api.h): the include folder of the Node that runs this. */
function nodeInclude() {
  const dir = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  return fs.existsSync(path.join(dir, 'node_api.h')) ? dir : null;
}

function newest(files) {
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

/** Builds the binary when a source is newer; returns its path, or null with the reason logged. */
function buildNative() {
  if (process.arch !== 'x64' || process.platform === 'win32') {
    console.log(`[native] skipped: the kernels are written for x86-64 Linux and macOS, not ${process.platform}-${process.arch} (decoding uses ONNX Runtime)`);
    return null;
  }
  const include = nodeInclude();
  if (!include) {
    console.log(`[native] skipped: no node_api.h beside ${process.execPath} (decoding uses ONNX Runtime)`);
    return null;
  }
  const fresh = fs.existsSync(OUT) && fs.statSync(OUT).mtimeMs >= newest([...SOURCES, ...HEADERS, path.join(__dirname, 'build-native.js')]);
  if (!fresh) {
    const cc = process.env.CC || 'cc';
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    const tmp = `${OUT}.${process.pid}.tmp`;
    const args = ['-O3', '-std=gnu11', '-Wall', '-Wextra', '-fPIC', '-shared', '-pthread', '-fvisibility=hidden',
      '-DNODE_GYP_MODULE_NAME=gemma_native', `-I${include}`, ...SOURCES, '-o', tmp, '-lm'];
    if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup');
    try {
      execFileSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      console.log(`[native] skipped: ${cc} failed (${e.code === 'ENOENT' ? 'no C compiler' : `exit ${e.status}`}); decoding uses ONNX Runtime`);
      return null;
    }
    fs.renameSync(tmp, OUT);
    console.log(`[native] built ${path.relative(root, OUT)}`);
  }
  fs.mkdirSync(path.dirname(DIST), { recursive: true });
  fs.copyFileSync(OUT, DIST);
  return OUT;
}

module.exports = { buildNative };

if (require.main === module) buildNative();
