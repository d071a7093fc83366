// Runs one part of the e2e suite alone: `node --import tsx test/e2e/runPart.ts panel|actions|flow`
// after `npm run build` and test/e2e/setup.sh. Screenshots go to artifacts/e2e/<part>-*.png.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCodeActions } from './codeActions';
import { runFlow } from './flow';
import { ROOT } from './lib/codeServer';
import { Report } from './lib/report';
import { runPanel } from './panel';

const PARTS: Record<string, (report: Report, artifacts: string) => Promise<Record<string, number>>> = {
  panel: runPanel,
  actions: runCodeActions,
  flow: runFlow,
};

async function main(): Promise<number> {
  const part = process.argv[2] ?? '';
  const run = PARTS[part];
  if (!run) {
    console.error(`usage: runPart.ts ${Object.keys(PARTS).join('|')}`);
    return 2;
  }
  const artifacts = path.join(ROOT, 'artifacts/e2e');
  mkdirSync(artifacts, { recursive: true });
  const report = new Report();
  const timings = Object.fromEntries(Object.entries(await run(report, artifacts)).map(([k, v]) => [k, Math.round(v)]));
  writeFileSync(path.join(artifacts, `${part}-summary.json`), JSON.stringify({ passed: report.passed, failed: report.failed, timings, outcomes: report.outcomes }, null, 2));
  console.log(`timings: ${JSON.stringify(timings)}`);
  console.log(`E2E ${part}: ${report.passed} passed, ${report.failed} failed`);
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
