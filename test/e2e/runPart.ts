// Runs one part of the e2e suite alone: `node --import tsx test/e2e/runPart.ts panel|actions|flow|models`
// after `npm run build` and test/e2e/setup.sh. Screenshots go to artifacts/e2e/<part>-*.png.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCodeActions } from './codeActions';
import { runFlow } from './flow';
import { runModels } from './models';
import { ROOT } from './lib/codeServer';
import { exitCode, Report, rounded, runMain } from './lib/report';
import { runPanel } from './panel';

const PARTS: Record<string, (report: Report, artifacts: string) => Promise<Record<string, number>>> = {
  panel: runPanel,
  actions: runCodeActions,
  flow: runFlow,
  models: runModels,
};

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
