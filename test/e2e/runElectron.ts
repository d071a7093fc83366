// `npm run test:vscode`: the same in-host suite in desktop VS Code through @vscode/test-electron,
// for machines that can download VS Code (update.code.visualstudio.com). It cannot run on the
// offline build machine; there `npm run test:e2e` runs the suite in code-server instead.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runTests } from '@vscode/test-electron';
import { ROOT } from './lib/codeServer';

async function main(): Promise<void> {
  execFileSync(process.execPath, [path.join(ROOT, 'test/e2e/build.mjs')], { stdio: 'inherit' });
  const workspace = mkdtempSync(path.join(tmpdir(), 'gemma-vscode-'));
  writeFileSync(path.join(workspace, 'sample.txt'), 'hello from the desktop suite\n');
  try {
    await runTests({
      version: process.env.GEMMA_TUNE_VSCODE_VERSION ?? 'stable',
      extensionDevelopmentPath: ROOT,
      extensionTestsPath: path.join(ROOT, 'test/e2e/out/suite/index.js'),
      launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
    });
  } finally {
    rmSync(workspace, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`test:vscode failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
