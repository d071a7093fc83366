// Runs the mocha suite (test/e2e/suite) inside code-server's extension host with Gemma Tune as
// the development extension. code-server takes the development and test paths only from the
// browser (`?payload=`), and only with the smoke-test driver enabled; the workbench then calls
// window.codeAutomationExit(code) when the suite's run() settles. See vscode-e2e.md section 4.
//
// Two runs: 'trusted' (Workspace Trust off, as every other part) runs the main suite; 'restricted'
// keeps Workspace Trust on, so the folder opens in Restricted Mode, plants a .vscode/settings.json
// that tries to choose the model, its precision and 64 threads, and runs suite/restricted.test.ts.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';
import { launchBrowser } from './lib/browser';
import { endSession, newSession, ROOT, startServer, stopServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';
import { addUserSettings } from './lib/workbench';

/** What an untrusted repository's .vscode/settings.json asks for in the restricted run. */
export const PLANTED_SETTINGS = {
  'gemmaTune.model.path': 'models/planted.gguf',
  'gemmaTune.model.precision': 'f32',
  'gemmaTune.engine.threads': 64,
  'gemmaTune.engine.device': 'webgpu',
  'gemmaTune.extract.placement': 'replace',
};

interface SuiteResult {
  title: string;
  ok: boolean;
  ms: number;
  error?: string;
}

/** Runs the in-host suite and adds one outcome per mocha test to `report`. */
export async function runInHost(report: Report, artifacts: string, mode: 'trusted' | 'restricted' = 'trusted'): Promise<void> {
  const restricted = mode === 'restricted';
  const group = restricted ? 'in-host (Restricted Mode)' : 'in-host';
  const session = await newSession(restricted ? 'restricted' : 'host', { 'sample.txt': 'hello from the in-host suite\n' });
  if (restricted) {
    mkdirSync(path.join(session.workspace, '.vscode'));
    writeFileSync(path.join(session.workspace, '.vscode/settings.json'), JSON.stringify(PLANTED_SETTINGS, null, 2));
    mkdirSync(path.join(session.workspace, 'models'));
    writeFileSync(path.join(session.workspace, 'models/planted.gguf'), 'not a model: loading it would be the bug');
    // Workspace Trust on, no dialog: the folder opens untrusted, in Restricted Mode.
    addUserSettings(session, {
      'security.workspace.trust.enabled': true,
      'security.workspace.trust.startupPrompt': 'never',
      'security.workspace.trust.emptyWindow': false,
      'security.workspace.trust.untrustedFiles': 'open',
    });
  }
  const resultsFile = path.join(session.dir, 'results.json');
  const suite = path.join(ROOT, 'test/e2e/out/suite/index.js');
  if (!existsSync(suite)) throw new Error(`${suite} is missing: run node test/e2e/build.mjs`);
  const remote = (p: string): string => `vscode-remote://127.0.0.1:${session.port}${p}`;
  const payload = JSON.stringify([
    ['extensionDevelopmentPath', remote(ROOT)],
    ['extensionTestsPath', remote(suite)],
  ]);

  await startServer(session, {
    env: { GEMMA_TUNE_E2E_RESULTS: resultsFile, GEMMA_TUNE_EVENTS_FILE: session.eventsFile, GEMMA_TUNE_E2E_SUITE: mode },
    extraArgs: ['--vscode-option', 'enable-smoke-test-driver'],
    log: path.join(artifacts, `code-server-in-host${restricted ? '-restricted' : ''}.log`),
    workspaceTrust: restricted,
  });
  const browser = await launchBrowser();
  const lines: string[] = [];
  let exitCode: number | undefined;
  let results: SuiteResult[];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    const exited = new Promise<number>((resolve) => {
      void page.exposeFunction('codeAutomationExit', (code: number) => resolve(code));
    });
    await page.exposeFunction('codeAutomationLog', (_level: string, args: unknown[]) => lines.push(format(...args)));
    await page.goto(workbenchUrl(session, { payload }));
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('the in-host suite did not finish within 120 s')), 120_000).unref(),
    );
    exitCode = await Promise.race([exited, timeout]);
    await page.screenshot({ path: path.join(artifacts, `in-host${restricted ? '-restricted' : ''}-01-finished.png`) });
  } catch (e) {
    report.add({ group, name: 'in-host suite ran to the end', ok: false, ms: 0, error: (e as Error).message });
  } finally {
    writeFileSync(path.join(artifacts, `in-host${restricted ? '-restricted' : ''}-console.log`), lines.join('\n'));
    await browser.close();
    await stopServer(session);
    // Read before the session folder (which holds the results file) is removed.
    results = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as SuiteResult[]) : [];
    await endSession(session);
  }
  if (exitCode === undefined) return;

  for (const r of results) report.add({ group, name: `[in host${restricted ? ', Restricted Mode' : ''}] ${r.title}`, ok: r.ok, ms: r.ms, error: r.error });
  // codeAutomationExit is the authoritative verdict; a suite that failed to load writes no results.
  if (exitCode !== 0 && !results.some((r) => !r.ok)) {
    report.add({ group, name: 'in-host suite loaded and ran', ok: false, ms: 0, error: `exit code ${exitCode}; see in-host-console.log` });
  }
  if (results.length === 0 && exitCode === 0) {
    report.add({ group, name: 'in-host suite reported its tests', ok: false, ms: 0, error: 'no results file was written' });
  }
}
