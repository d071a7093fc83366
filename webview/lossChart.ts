// Training and validation loss drawn with uPlot (about 50 KB minified, canvas, made for series
// that grow point by point; Chart.js would add ~200 KB for features this chart does not use).
// Colours come from VS Code's theme variables and are re-read when the theme changes, so light,
// dark and high-contrast themes all draw legibly.

import uPlot from 'uplot';
import { alignSeries } from './format';

type Points = readonly (readonly [number, number])[];

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function theme() {
  return {
    fg: cssVar('--vscode-foreground', '#888'),
    muted: cssVar('--vscode-descriptionForeground', '#888'),
    grid: cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', 'rgba(128,128,128,0.35)')),
    train: cssVar('--vscode-charts-blue', '#3794ff'),
    val: cssVar('--vscode-charts-orange', '#d18616'),
    best: cssVar('--vscode-charts-green', '#89d185'),
    font: `${cssVar('--vscode-font-size', '12px')} ${cssVar('--vscode-font-family', 'sans-serif')}`,
  };
}

export class LossChart {
  readonly element: HTMLElement;
  private plot: uPlot | undefined;
  private train: Points = [];
  private val: Points = [];
  private best: number | null = null;
  private readonly resize: ResizeObserver;
  private readonly themeWatch: MutationObserver;

  constructor() {
    this.element = document.createElement('div');
    this.element.className = 'loss-chart';
    this.element.setAttribute('role', 'img');
    this.element.setAttribute('aria-label', 'Training and validation loss by step');
    this.resize = new ResizeObserver(() => this.plot?.setSize(this.size()));
    this.resize.observe(this.element);
    // VS Code swaps body classes (vscode-light / vscode-dark / vscode-high-contrast) on a theme change.
    this.themeWatch = new MutationObserver(() => this.rebuild());
    this.themeWatch.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  }

  /** Replaces both series; `best` is the kept checkpoint's step, drawn as a dashed line. */
  setData(train: Points, val: Points, best: number | null = null): void {
    this.train = train;
    this.val = val;
    this.best = best;
    if (!this.plot) this.rebuild();
    else this.plot.setData(alignSeries(train, val));
    this.element.dataset.points = String(train.length + val.length);
    if (best !== null) this.element.dataset.bestStep = String(best);
    else delete this.element.dataset.bestStep;
    this.element.setAttribute('aria-label', describe(train, val, best));
  }

  private size() {
    return { width: Math.max(240, this.element.clientWidth), height: 220 };
  }

  private rebuild(): void {
    this.plot?.destroy();
    if (!this.element.isConnected) {
      this.plot = undefined;
      return;
    }
    const t = theme();
    const axis = { stroke: t.muted, grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.grid, width: 1 }, font: t.font };
    this.plot = new uPlot(
      {
        ...this.size(),
        scales: { x: { time: false } },
        // Not live: without a cursor over the chart a live legend shows "--" for every value.
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        axes: [
          // Steps are whole numbers: no tick at 1.5.
          { ...axis, label: 'step', labelFont: t.font, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000] },
          { ...axis, label: 'loss', labelFont: t.font },
        ],
        hooks: { draw: [(u: uPlot) => this.drawBest(u, t.best)] },
        series: [
          { label: 'step' },
          { label: 'training loss', stroke: t.train, width: 2, points: { show: false } },
          { label: 'validation loss', stroke: t.val, width: 2, spanGaps: true, points: { show: true, size: 6, fill: t.val } },
        ],
      },
      alignSeries(this.train, this.val),
      this.element,
    );
  }

  /** The kept checkpoint: a dashed vertical line at its step. */
  private drawBest(u: uPlot, colour: string): void {
    if (this.best === null) return;
    const x = u.valToPos(this.best, 'x', true);
    if (!Number.isFinite(x)) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  }

  /** Stops watching size and theme. */
  dispose(): void {
    this.resize.disconnect();
    this.themeWatch.disconnect();
    this.plot?.destroy();
  }
}

/** The chart in words, for screen readers (it is a canvas). */
function describe(train: Points, val: Points, best: number | null): string {
  const last = (p: Points) => (p.length > 0 ? p[p.length - 1][1].toFixed(3) : 'none yet');
  return `Loss by step: ${train.length} training points (latest ${last(train)}), ${val.length} validation points (latest ${last(val)})${best !== null ? `; the kept checkpoint is step ${best}` : ''}`;
}
