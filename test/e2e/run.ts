// `npm run test:e2e`: Gemma Tune in a real VS Code (code-server 4.139 = VS Code 1.139).
//   1. the UI path (ui.ts): palette command, editor selection, notification, output channel;
//   2. the in-host mocha suite (inHost.ts): the extension API from inside the extension host, then
//   the Restricted Mode suite in an untrusted folder;
//   3. the training panel: labeling, hostile messages, reload, themes (panel.ts); 4. code actions on
//   trained tasks (codeActions.ts); 5. the whole flow: label, train, classify, cancel, reload (flow.ts);
//   6. the engine process killed while it loads, trains and generates (faults.ts);
//   7. "Gemma: Choose model…" and a task refused on another base (models.ts).
// One part alone: `node --import tsx test/e2e/runPart.ts panel|actions|flow|faults|models|host|restricted`.
// Expects `npm run build` and test/e2e/setup.sh to have run. Screenshots and logs go to
// artifacts/e2e/. Ends with "E2E: N passed, N failed"; exit code 1 when anything failed.
// GEMMA_TUNE_E2E_VSIX=path.vsix runs the UI part against a packaged extension instead of the tree.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCodeActions } from './codeActions';
import { runFaults } from './faults';
import { runFlow } from './flow';
import { runInHost } from './inHost';
import { runModels } from './models';
import { runPanel } from './panel';
import { ROOT } from './lib/codeServer';
import { exitCode, Report, rounded, runMain } from './lib/report';
import { runUi } from './ui';

runMain(async () => {
  const artifacts = path.join(ROOT, 'artifacts/e2e');
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  for (const f of ['dist/extension.js', 'dist/worker.js']) {
    if (!existsSync(path.join(ROOT, f))) throw new Error(`${f} is missing: run npm run build first`);
  }
  execFileSync(process.execPath, [path.join(ROOT, 'test/e2e/build.mjs')], { stdio: 'inherit' });

  const report = new Report();
  const t0 = performance.now();
  const vsix = process.env.GEMMA_TUNE_E2E_VSIX;
  console.log(`UI in code-server${vsix ? ` (extension from ${vsix})` : ''}`);
  const timings = await runUi(report, artifacts, vsix ? path.resolve(vsix) : undefined);
  const tUi = performance.now();
  console.log('mocha suite in code-server\'s extension host');
  await runInHost(report, artifacts);
  console.log('Restricted Mode suite in code-server\'s extension host (an untrusted folder)');
  await runInHost(report, artifacts, 'restricted');
  const tHost = performance.now();
  console.log('training panel in code-server');
  const panelTimings = await runPanel(report, artifacts);
  console.log(`panel timings: ${JSON.stringify(rounded(panelTimings))}`);
  console.log('code actions in code-server (tiny model, trained adapters)');
  const actionTimings = await runCodeActions(report, artifacts);
  console.log(`code action timings: ${JSON.stringify(rounded(actionTimings))}`);
  console.log('the whole flow in code-server (tiny model): label, train, classify, cancel, reload');
  const flowTimings = await runFlow(report, artifacts);
  console.log(`flow timings: ${JSON.stringify(rounded(flowTimings))}`);
  console.log('engine faults in code-server: the engine killed while it loads, trains and generates');
  const faultTimings = await runFaults(report, artifacts);
  console.log(`fault timings: ${JSON.stringify(rounded(faultTimings))}`);
  console.log('choosing the model in code-server (two tiny models, a task trained on one)');
  const modelTimings = await runModels(report, artifacts);
  console.log(`model picker timings: ${JSON.stringify(rounded(modelTimings))}`);

  const summary = {
    passed: report.passed,
    failed: report.failed,
    uiMs: Math.round(tUi - t0),
    inHostMs: Math.round(tHost - tUi),
    timings: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v * 10) / 10])),
    outcomes: report.outcomes,
  };
  writeFileSync(path.join(artifacts, 'summary.json'), JSON.stringify(summary, null, 2));
  const t = summary.timings;
  console.log(
    `timings: workbench ${t.workbenchMs} ms, activate() ${t.activationMs} ms, ` +
      `command → notification ${t.commandToNotificationMs} ms (of which command → activated ${t.commandToActivatedMs} ms, ` +
      `status request ${t.statusRequestMs} ms); ` +
      `UI part ${(summary.uiMs / 1000).toFixed(1)} s, in-host part ${(summary.inHostMs / 1000).toFixed(1)} s`,
  );
  console.log(`screenshots and logs: ${path.relative(ROOT, artifacts)}/`);
  console.log(`E2E: ${report.passed} passed, ${report.failed} failed`);
  return exitCode(report);
});
