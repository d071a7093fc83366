// The demo's printed report: per task a before/after table of the held-out test cases, then accuracy,
// training time and losses.

import { describeBase } from '../../store/baseModel';
import type { DemoResult } from './runDemo';
import { isCorrect } from './runDemo';
import type { TaskConfig } from '../../store/task';

function cut(s: string, width: number): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length <= width ? one.padEnd(width) : one.slice(0, width - 1) + '…';
}

const pct = (x: number) => `${Math.round(100 * x)}%`;
const num = (x: number | null) => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(3));

/** The report of one task's run, as lines of text. */
export function formatDemoResult(task: TaskConfig, r: DemoResult): string[] {
  const extract = r.kind === 'extract';
  const wIn = extract ? 44 : 52, wOut = extract ? 40 : 10;
  const mark = (exp: string, got: string) => (isCorrect(task, exp, got) ? '✓' : '✗');
  const lines = [
    `  ${cut('held-out input', wIn)}  ${cut('expected', wOut)}  ${cut('before', wOut + 2)}  ${cut('after', wOut + 2)}`,
    `  ${'-'.repeat(wIn)}  ${'-'.repeat(wOut)}  ${'-'.repeat(wOut + 2)}  ${'-'.repeat(wOut + 2)}`,
  ];
  for (const row of r.rows) {
    lines.push(`  ${cut(row.input, wIn)}  ${cut(row.expected, wOut)}  ${mark(row.expected, row.before)} ${cut(row.before, wOut)}  ${mark(row.expected, row.after)} ${cut(row.after, wOut)}`);
  }
  const right = (k: 'before' | 'after') => r.rows.filter((x) => isCorrect(task, x.expected, x[k])).length;
  lines.push('');
  lines.push(`  ${extract ? 'exact match (every field)' : 'accuracy'} on ${r.rows.length} held-out inputs: before ${pct(r.accuracyBefore)} (${right('before')}/${r.rows.length}), after ${pct(r.accuracyAfter)} (${right('after')}/${r.rows.length})`);
  lines.push(`  training: ${r.trainSeconds.toFixed(1)} s, ${r.steps} steps on ${r.trainExamples} examples (${r.valExamples} held out for validation); stopped: ${r.stopReason}; adapter from step ${r.savedStep}`);
  lines.push(`  train loss (epoch mean): first epoch ${num(r.firstEpochLoss)} → last epoch ${num(r.lastEpochLoss)}` +
    (r.bestValLoss !== null ? `;  validation loss: epoch 1 ${num(r.firstValLoss)}, best ${num(r.bestValLoss)}` : ''));
  lines.push(`  adapter (PEFT): ${r.adapterDir}`);
  lines.push(`  trained on: ${describeBase(r.base)}, fingerprint ${r.base.fingerprint} (the extension applies this adapter to that base only)`);
  return lines;
}
