// Training: the hyperparameter form (saved to task.json as it changes), Train / Cancel, progress
// with ETA, the live loss chart, and after a run the before/after table on held-out examples.
// Shown only when the engine reports it can train; otherwise one line says why it is absent.

import type { Capabilities, PanelState, TrainingView } from '../src/protocol/webview';
import { type Hyperparameters, hyperparametersSchema, LORA_TARGETS, SCHEDULES } from '../src/store/task';
import { CheckElement, h, ValueElement } from './dom';
import { formatEta, progressFraction, sameAnswer } from './format';
import { LossChart } from './lossChart';

export interface TrainingEvents {
  save(h: Hyperparameters): void;
  train(h: Hyperparameters): void;
  cancel(): void;
  advancedToggled(open: boolean): void;
}

type NumberKey = Exclude<keyof Hyperparameters, 'schedule' | 'targets'>;

const BASIC: [NumberKey, string, string][] = [
  ['epochs', 'Epochs', 'Passes over the training examples (early stopping keeps the best)'],
  ['learningRate', 'Learning rate', 'AdamW step size'],
  ['rank', 'LoRA rank', 'Rank r of the adapter matrices'],
  ['alpha', 'LoRA alpha', 'Scale: updates are multiplied by alpha / r'],
  ['batchSize', 'Batch size', 'Examples per step'],
  ['valSplit', 'Validation split', 'Fraction held out when no example is pinned (0 = none)'],
];
const ADVANCED: [NumberKey, string, string][] = [
  ['warmupSteps', 'Warmup steps', 'Steps of linear learning-rate warmup'],
  ['weightDecay', 'Weight decay', 'AdamW decoupled weight decay'],
  ['maxGradNorm', 'Max grad norm', 'Gradient clipping (0 = off)'],
  ['gradAccum', 'Gradient accumulation', 'Batches per optimizer step'],
  ['seed', 'Seed', 'Makes a run repeatable'],
];

export class TrainingSection {
  readonly element: HTMLElement;
  private readonly chart = new LossChart();
  private fields = new Map<NumberKey, ValueElement>();
  private schedule: ValueElement | undefined;
  private targets = new Map<string, CheckElement>();
  private current: Hyperparameters | undefined;

  constructor(private readonly events: TrainingEvents) {
    this.element = h('section', { class: 'training-section', 'aria-label': 'Training' });
  }

  /** Draws the section for `state` (hidden training when the engine cannot train). */
  render(state: PanelState, advancedOpen: boolean): void {
    const caps: Capabilities = state.capabilities;
    if (!caps.train) {
      this.element.replaceChildren(h('p', { class: 'muted', id: 'training-unavailable' }, caps.reason ?? 'Training is not available.'));
      return;
    }
    this.current = state.task.hyperparameters;
    const running = state.training?.status === 'running';
    const form = this.form(state.task.hyperparameters, running, advancedOpen);
    const train = h('vscode-button', { id: 'train', disabled: running || state.examples.every((e) => e.output.trim() === '') }, 'Train');
    train.addEventListener('click', () => {
      const hp = this.read();
      if (hp) this.events.train(hp);
    });
    const cancel = h('vscode-button', { id: 'cancel-training', secondary: true, disabled: !running }, 'Cancel');
    cancel.addEventListener('click', () => this.events.cancel());
    this.element.replaceChildren(h('h2', {}, 'Training'), form, h('div', { class: 'row-actions' }, train, cancel), this.progress(state.training));
    if (state.training) this.element.append(this.chart.element, ...this.comparison(state.training));
    this.chart.setData(state.training?.trainLoss ?? [], state.training?.valLoss ?? []);
  }

  private form(hp: Hyperparameters, disabled: boolean, advancedOpen: boolean): HTMLElement {
    this.fields.clear();
    this.targets.clear();
    const field = ([key, label, help]: [NumberKey, string, string]) => {
      const tf = h('vscode-textfield', { id: `hp-${key}`, inputmode: 'decimal', 'aria-label': label, title: help, disabled }) as ValueElement;
      tf.value = String(hp[key]);
      tf.addEventListener('change', () => this.changed());
      this.fields.set(key, tf);
      return h('label', { class: 'hp' }, h('span', {}, label), tf);
    };
    const schedule = h('vscode-single-select', { id: 'hp-schedule', 'aria-label': 'Learning-rate schedule', disabled }) as ValueElement;
    for (const s of SCHEDULES) schedule.append(h('vscode-option', { value: s, selected: s === hp.schedule }, s));
    schedule.addEventListener('change', () => this.changed());
    this.schedule = schedule;
    const targets = LORA_TARGETS.map((t) => {
      const cb = h('vscode-checkbox', { 'aria-label': `LoRA on ${t}_proj`, disabled }, `${t}`) as CheckElement;
      cb.checked = hp.targets.includes(t);
      cb.addEventListener('change', () => this.changed());
      this.targets.set(t, cb);
      return cb;
    });
    const advanced = h('vscode-collapsible', { title: 'Advanced', open: advancedOpen }, h('div', { class: 'hp-grid' }, ...ADVANCED.map(field), h('label', { class: 'hp' }, h('span', {}, 'Schedule'), schedule)), h('div', { class: 'targets' }, h('span', {}, 'LoRA targets'), ...targets));
    advanced.addEventListener('vsc-collapsible-toggle', () => this.events.advancedToggled((advanced as unknown as { open: boolean }).open));
    return h('div', { class: 'hp-form' }, h('div', { class: 'hp-grid' }, ...BASIC.map(field)), advanced, h('p', { class: 'error', id: 'hp-error', role: 'alert' }));
  }

  /** The form's values, validated; undefined (with the problem shown) when invalid. */
  private read(): Hyperparameters | undefined {
    if (!this.current) return undefined;
    const raw: Record<string, unknown> = { ...this.current };
    for (const [key, tf] of this.fields) raw[key] = tf.value.trim() === '' ? NaN : Number(tf.value);
    if (this.schedule) raw.schedule = this.schedule.value;
    raw.targets = LORA_TARGETS.filter((t) => this.targets.get(t)?.checked);
    const error = this.element.querySelector('#hp-error');
    try {
      const hp = hyperparametersSchema(raw, 'hyperparameters');
      if (hp.targets.length === 0) throw new Error('choose at least one LoRA target');
      if (error) error.textContent = '';
      return hp;
    } catch (err) {
      if (error) error.textContent = (err as Error).message;
      return undefined;
    }
  }

  private changed(): void {
    const hp = this.read();
    if (hp) {
      this.current = hp;
      this.events.save(hp);
    }
  }

  private progress(t: TrainingView | null): HTMLElement {
    if (!t) return h('div', { class: 'progress' });
    const bar = h('vscode-progress-bar', { 'aria-label': 'Training progress', max: 1 }) as HTMLElement & { value?: number };
    bar.value = progressFraction(t.step, t.totalSteps);
    const last = t.trainLoss.at(-1);
    const parts = [
      t.status === 'running' ? `Step ${t.step}${t.totalSteps ? ` of ${t.totalSteps}` : ''}` : `Training ${t.status} at step ${t.step}`,
      `epoch ${t.epoch.toFixed(1)}`,
      last ? `loss ${last[1].toFixed(4)}` : '',
      t.status === 'running' && t.etaSeconds !== null ? `about ${formatEta(t.etaSeconds)} left` : '',
      t.bestStep !== null ? `best checkpoint: step ${t.bestStep}` : '',
    ].filter((p) => p !== '');
    return h('div', { class: 'progress' }, t.status === 'running' ? bar : null, h('p', { id: 'training-status', 'aria-live': 'polite' }, parts.join(' · ')), t.message ? h('p', { class: t.status === 'failed' ? 'error' : 'muted' }, t.message) : null);
  }

  private comparison(t: TrainingView): HTMLElement[] {
    if (t.comparison.length === 0) return [];
    const right = (a: string, b: string) => (sameAnswer(a, b) ? '✓ ' : '✗ ');
    const before = t.comparison.filter((r) => sameAnswer(r.before, r.expected)).length;
    const after = t.comparison.filter((r) => sameAnswer(r.after, r.expected)).length;
    const rows = t.comparison.map((r) => h('tr', {}, h('td', {}, r.input), h('td', {}, r.expected), h('td', {}, right(r.before, r.expected) + r.before), h('td', {}, right(r.after, r.expected) + r.after)));
    return [
      h('h3', {}, `Held-out examples: ${before}/${t.comparison.length} right before, ${after}/${t.comparison.length} after`),
      h('table', { class: 'comparison', id: 'comparison' }, h('thead', {}, h('tr', {}, h('th', {}, 'Input'), h('th', {}, 'Expected'), h('th', {}, 'Before'), h('th', {}, 'After'))), h('tbody', {}, ...rows)),
    ];
  }
}
