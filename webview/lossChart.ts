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
    font: `${cssVar('--vscode-font-size', '12px')} ${cssVar('--vscode-font-family', 'sans-serif')}`,
  };
}

export class LossChart {
  readonly element: HTMLElement;
  private plot: uPlot | undefined;
  private train: Points = [];
  private val: Points = [];
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

  /** Replaces both series (a full state from the host). */
  setData(train: Points, val: Points): void {
    this.train = train;
    this.val = val;
    if (!this.plot) this.rebuild();
    else this.plot.setData(alignSeries(train, val));
    this.element.dataset.points = String(train.length + val.length);
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
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        axes: [
          // Steps are whole numbers: no tick at 1.5.
          { ...axis, label: 'step', labelFont: t.font, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000] },
          { ...axis, label: 'loss', labelFont: t.font },
        ],
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

  /** Stops watching size and theme. */
  dispose(): void {
    this.resize.disconnect();
    this.themeWatch.disconnect();
    this.plot?.destroy();
  }
}
