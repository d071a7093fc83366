// The mocha runner VS Code loads as extensionTestsPath: the same module serves code-server's
// extension host (test/e2e/inHost.ts) and desktop VS Code via @vscode/test-electron
// (test/e2e/runElectron.ts). It also writes a JSON summary when GEMMA_TUNE_E2E_RESULTS names a file.
// GEMMA_TUNE_E2E_SUITE=restricted runs the Restricted Mode tests instead (an untrusted folder).

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import Mocha from 'mocha';

const TEST_FILES = process.env.GEMMA_TUNE_E2E_SUITE === 'restricted' ? ['restricted.test.js'] : ['extension.test.js', 'model.test.js', 'settings.test.js'];

interface Result {
  title: string;
  ok: boolean;
  ms: number;
  error?: string;
}

/** Runs the suite; resolves when all tests pass, rejects with the failure count otherwise. */
export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: false, timeout: 60_000, reporter: 'spec' });
  for (const f of TEST_FILES) mocha.addFile(path.join(__dirname, f));
  const results: Result[] = [];
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      const file = process.env.GEMMA_TUNE_E2E_RESULTS;
      if (file) writeFileSync(file, JSON.stringify(results, null, 2));
      if (failures > 0) reject(new Error(`${failures} in-host test(s) failed`));
      else resolve();
    });
    runner.on('pass', (t) => results.push({ title: t.fullTitle(), ok: true, ms: t.duration ?? 0 }));
    runner.on('fail', (t, err: Error) => results.push({ title: t.fullTitle(), ok: false, ms: t.duration ?? 0, error: err.message }));
  });
}
