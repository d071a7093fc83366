// Imported by `npm run test:unit` (node --import) into the test runner and every test file's process: the
// CLI runs the tests start keep their converted models (engine/gemma/runtimeCache.ts) in a folder of this
// run's, not in the user's ~/.cache/gemma-tune, whose entries they would otherwise evict. The runner sets
// it before it starts the files, which inherit it; the runner removes it at exit.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

if (!process.env.GEMMA_TUNE_TEST_RUN) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-tune-test-cache-'));
  process.env.GEMMA_TUNE_TEST_RUN = dir;
  process.env.GEMMA_TUNE_CACHE = dir;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
}
