// Runs only the code action checks (test/e2e/codeActions.ts): `node --import tsx test/e2e/runCodeActions.ts`
// after `npm run build` and test/e2e/setup.sh. Screenshots go to artifacts/e2e/actions-*.png.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCodeActions } from './codeActions';
import { ROOT } from './lib/codeServer';
import { Report } from './lib/report';

async function main(): Promise<number> {
  const artifacts = path.join(ROOT, 'artifacts/e2e');
  mkdirSync(artifacts, { recursive: true });
  const report = new Report();
  console.log('code actions in code-server');
  const timings = await runCodeActions(report, artifacts);
  const rounded = Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)]));
  writeFileSync(path.join(artifacts, 'actions-summary.json'), JSON.stringify({ passed: report.passed, failed: report.failed, timings: rounded, outcomes: report.outcomes }, null, 2));
  console.log(`timings: ${JSON.stringify(rounded)}`);
  console.log(`E2E code actions: ${report.passed} passed, ${report.failed} failed`);
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
