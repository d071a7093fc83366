// Terminal rendering of training events for `gemma-tune train` without --json: a progress bar with the
// latest loss, learning rate and ETA redrawn in place, an evaluation line per evaluation, and at the end
// a small plot of the loss per step.

import type { TrainEvent } from '../engine/train/trainer';

const BARS = '▁▂▃▄▅▆▇█';

/** A one-line sparkline of values (min → ▁, max → █), resampled to at most `width` columns. */
export function sparkline(values: number[], width = 60): string {
  if (values.length === 0) return '';
  const cols = Math.min(width, values.length);
  const pts = Array.from({ length: cols }, (_, i) => {
    const lo = Math.floor((i * values.length) / cols), hi = Math.max(lo + 1, Math.floor(((i + 1) * values.length) / cols));
    const s = values.slice(lo, hi);
    return s.reduce((a, b) => a + b, 0) / s.length;
  });
  const min = Math.min(...pts), max = Math.max(...pts);
  return pts.map((v) => BARS[max > min ? Math.round(((v - min) / (max - min)) * (BARS.length - 1)) : 0]).join('');
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60).toString().padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

/** An event sink that draws progress on a stream (a TTY redraws in place; a pipe gets one line per step). */
export function progressPrinter(out: NodeJS.WriteStream): (e: TrainEvent) => void {
  const tty = out.isTTY === true;
  const losses: number[] = [];
  let total = 0;
  return (e) => {
    switch (e.type) {
      case 'start':
        total = e.totalSteps;
        out.write(`training ${e.trainableParams.toLocaleString('en-US')} LoRA parameters on ${e.trainExamples} examples (${e.valExamples} held out), ${e.totalSteps} steps${e.resumedFromStep ? `, resumed at step ${e.resumedFromStep}` : ''}\n`);
        break;
      case 'step': {
        losses.push(e.loss);
        const w = 24, done = Math.round((e.step / total) * w);
        const line = `[${'#'.repeat(done)}${'.'.repeat(w - done)}] ${e.step}/${total} epoch ${e.epoch.toFixed(2)} loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} |g| ${e.gradNorm.toFixed(3)} ${e.tokensPerSec.toFixed(0)} tok/s ETA ${fmtTime(e.etaS)}`;
        out.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
        break;
      }
      case 'eval':
        out.write(`${tty ? '\n' : ''}eval @ step ${e.step}: val loss ${e.valLoss.toFixed(4)}${e.metric ? ` ${e.metric.name} ${e.metric.value.toFixed(3)}` : ''}${e.improved ? ' (best)' : ` (best ${e.bestValLoss.toFixed(4)} @ ${e.bestStep})`}\n`);
        break;
      case 'done':
        if (tty) out.write('\n');
        if (losses.length > 1) out.write(`loss ${losses[0].toFixed(3)} ${sparkline(losses)} ${losses[losses.length - 1].toFixed(3)}\n`);
        out.write(`${e.reason}: adapter from step ${e.bestStep}${e.bestValLoss !== null ? ` (val loss ${e.bestValLoss.toFixed(4)})` : ''} saved to ${e.outDir} in ${fmtTime(e.elapsedS)}\n`);
        break;
    }
  };
}
