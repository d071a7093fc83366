// Runs only the whole-flow checks (test/e2e/flow.ts): `node --import tsx test/e2e/runFlow.ts` after
// `npm run build` and test/e2e/setup.sh. Screenshots go to artifacts/e2e/flow-*.png.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runFlow } from './flow';
import { ROOT } from './lib/codeServer';
import { Report } from './lib/report';

async function main(): Promise<number> {
  const artifacts = path.join(ROOT, 'artifacts/e2e');
  mkdirSync(artifacts, { recursive: true });
  const report = new Report();
  console.log('the whole flow in code-server (tiny model)');
  const timings = await runFlow(report, artifacts);
  writeFileSync(path.join(artifacts, 'flow-summary.json'), JSON.stringify({ passed: report.passed, failed: report.failed, timings, outcomes: report.outcomes }, null, 2));
  console.log(`timings: ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])))}`);
  console.log(`E2E flow: ${report.passed} passed, ${report.failed} failed`);
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
