// Runs only the panel checks (test/e2e/panel.ts): `node --import tsx test/e2e/runPanel.ts` after
// `npm run build` and test/e2e/setup.sh. Screenshots go to artifacts/e2e/panel-*.png.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './lib/codeServer';
import { Report } from './lib/report';
import { runPanel } from './panel';

async function main(): Promise<number> {
  const artifacts = path.join(ROOT, 'artifacts/e2e');
  mkdirSync(artifacts, { recursive: true });
  const report = new Report();
  console.log('training panel in code-server');
  const timings = await runPanel(report, artifacts);
  writeFileSync(path.join(artifacts, 'panel-summary.json'), JSON.stringify({ passed: report.passed, failed: report.failed, timings, outcomes: report.outcomes }, null, 2));
  console.log(`timings: ${JSON.stringify(timings)}`);
  console.log(`E2E panel: ${report.passed} passed, ${report.failed} failed`);
  return report.failed === 0 && report.passed > 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exitCode = 1;
  },
);
