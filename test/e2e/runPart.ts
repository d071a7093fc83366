// Runs one part of the e2e suite alone: `node --import tsx test/e2e/runPart.ts panel|actions|flow|faults|models|host|restricted`
// after `npm run build` and test/e2e/setup.sh (host, restricted: the two in-host suites).
// Screenshots go to artifacts/e2e/<part>-*.png.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCodeActions } from './codeActions';
import { runFaults } from './faults';
import { runFlow } from './flow';
import { runInHost } from './inHost';
import { runModels } from './models';
import { ROOT } from './lib/codeServer';
import { exitCode, Report, rounded, runMain } from './lib/report';
import { runPanel } from './panel';

const PARTS: Record<string, (report: Report, artifacts: string) => Promise<Record<string, number>>> = {
  panel: runPanel,
  actions: runCodeActions,
  flow: runFlow,
  faults: runFaults,
  models: runModels,
  host: inHost('trusted'),
  restricted: inHost('restricted'),
};

/** An in-host suite as a part: builds the suite bundle first, as run.ts does. */
function inHost(mode: 'trusted' | 'restricted'): (report: Report, artifacts: string) => Promise<Record<string, number>> {
  return async (report, artifacts) => {
    execFileSync(process.execPath, [path.join(ROOT, 'test/e2e/build.mjs')], { stdio: 'inherit' });
    await runInHost(report, artifacts, mode);
    return {};
  };
}

runMain(async () => {
  const part = process.argv[2] ?? '';
  const run = PARTS[part];
  if (!run) {
    console.error(`usage: runPart.ts ${Object.keys(PARTS).join('|')}`);
    return 2;
  }
  const artifacts = path.join(ROOT, 'artifacts/e2e');
  mkdirSync(artifacts, { recursive: true });
  // This part's screenshots from an earlier run would mix with the new ones.
  for (const f of readdirSync(artifacts)) if (f.startsWith(`${part}-`) && f.endsWith('.png')) rmSync(path.join(artifacts, f));
  const report = new Report();
  const timings = rounded(await run(report, artifacts));
  writeFileSync(path.join(artifacts, `${part}-summary.json`), JSON.stringify({ passed: report.passed, failed: report.failed, timings, outcomes: report.outcomes }, null, 2));
  console.log(`timings: ${JSON.stringify(timings)}`);
  console.log(`E2E ${part}: ${report.passed} passed, ${report.failed} failed`);
  return exitCode(report);
}, `E2E ${process.argv[2] ?? ''}`);
