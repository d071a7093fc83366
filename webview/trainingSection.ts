// Training: the hyperparameter form (checked field by field, saved to task.json as it changes),
// Train / Resume / Cancel, progress with ETA, the live loss chart with the kept checkpoint marked, and after a
// run the before/after table on held-out examples. Shown only when the engine reports it can train;
// otherwise one line says why it is absent. Steps redraw only the run's part, so the keyboard focus
// (on Cancel, say) survives a running training.

import type { Capabilities, ExampleView, PanelState, TrainingView } from '../src/protocol/webview';
import { DEFAULT_HYPERPARAMETERS, type Hyperparameters, LORA_TARGETS, SCHEDULES } from '../src/store/task';
import { CheckElement, h, keepDropdownInView, refocus, ValueElement } from './dom';
import { countExamples, trainBlocker } from '../src/panel/trainReadiness';
import { formatEta, progressFraction, sameAnswer } from './format';
import { ADVANCED_FIELDS, BASIC_FIELDS, checkForm, type FieldSpec, fieldText, type NumberKey, planText } from './hyperparameterForm';
import { LossChart } from './lossChart';

export interface TrainingEvents {
  save(h: Hyperparameters): void;
  train(h: Hyperparameters): void;
  /** Go on with the interrupted run (PanelState.resumable). */
  resume(): void;
  cancel(): void;
  advancedToggled(open: boolean): void;
}

type Field = ValueElement & { invalid?: boolean };

export class TrainingSection {
  readonly element: HTMLElement;
  private readonly chart = new LossChart();
  private readonly run = h('div', { class: 'run' });
  /** Train, Resume, Cancel and why Train cannot start. */
  private readonly actions = h('div', { class: 'row-actions', id: 'training-actions' });
  /** How long a run of the form's settings is on the examples as they are: epochs and steps. */
  private readonly plan = h('p', { class: 'muted', id: 'training-plan' });
  private examples: readonly ExampleView[] = [];
  private fields = new Map<NumberKey, Field>();
  private schedule: ValueElement | undefined;
  private targets = new Map<string, CheckElement>();
  private current: Hyperparameters | undefined;

  constructor(private readonly events: TrainingEvents) {
    this.element = h('section', { class: 'training-section', 'aria-label': 'Training' });
  }

  /** Draws the section for `state` (hidden training when the engine cannot train); `examples` as the user sees them. */
  render(state: PanelState, examples: readonly ExampleView[], advancedOpen: boolean): void {
    const caps: Capabilities = state.capabilities;
    if (!caps.train) {
      this.element.replaceChildren(h('p', { class: 'muted', id: 'training-unavailable' }, caps.reason ?? 'Training is not available.'));
      return;
    }
    const focused = (document.activeElement as HTMLElement | null)?.id;
    this.current = state.task.hyperparameters;
    const running = state.training?.status === 'running';
    const form = this.form(state.task.hyperparameters, running, advancedOpen);
    const train = h('vscode-button', { id: 'train' }, 'Train');
    train.addEventListener('click', () => {
      const hp = this.read();
      if (hp) this.events.train(hp);
      else this.focusFirstInvalid();
    });
    const cancel = h('vscode-button', { id: 'cancel-training', secondary: true, disabled: !running }, 'Cancel');
    cancel.addEventListener('click', () => this.events.cancel());
    this.actions.replaceChildren(train, cancel);
    this.element.replaceChildren(h('h2', {}, 'Training'), form, this.plan, this.actions, this.run);
    this.refreshReadiness(state, examples);
    this.renderRun(state);
    // A rebuilt control takes back the focus its predecessor had.
    if (focused) refocus(this.element.querySelector<HTMLElement>(`#${focused}`));
  }

  /**
   * Train and Resume as the examples allow now (at least one labeled example that is not held out),
   * with the reason in words beside them when they cannot start. Called after every edit.
   */
  refreshReadiness(state: PanelState, examples: readonly ExampleView[]): void {
    const train = this.actions.querySelector<HTMLElement & { disabled: boolean }>('#train');
    if (!train) return;
    this.examples = examples;
    this.showPlan(state.task.hyperparameters);
    const running = state.training?.status === 'running';
    const blocker = trainBlocker(countExamples(examples));
    const interrupted = running ? null : (state.resumable ?? null);
    train.disabled = running || blocker !== null;
    // Train starts over; with an interrupted run around, its tooltip says that run is dropped.
    train.title = interrupted
      ? `Start a new run from step 0 with these settings; the interrupted run (step ${interrupted.step} of ${interrupted.totalSteps}) is discarded`
      : 'Start a new run with these settings';
    let resume = this.actions.querySelector<HTMLElement & { disabled: boolean }>('#resume-training');
    if (interrupted && !resume) {
      resume = h('vscode-button', { id: 'resume-training', secondary: true, title: 'Go on from the interrupted run\'s last checkpoint, with the settings it started with' }) as HTMLElement & { disabled: boolean };
      resume.addEventListener('click', () => this.events.resume());
      train.after(resume);
    }
    if (interrupted && resume) {
      resume.textContent = `Resume training (step ${interrupted.step} of ${interrupted.totalSteps})`;
      resume.disabled = blocker !== null;
    } else resume?.remove();
    const hint = this.actions.querySelector('#train-hint');
    if (blocker && !running) {
      const text = h('span', { class: 'muted', id: 'train-hint' }, blocker);
      if (hint) hint.replaceWith(text);
      else this.actions.append(text);
    } else hint?.remove();
  }

  private showPlan(hp: Hyperparameters | undefined): void {
    this.plan.textContent = hp ? planText(this.examples, hp) : '';
  }

  /** Scrolls the run's progress and chart into view, as little as needed (the progress line first when both do not fit). */
  reveal(): void {
    if (this.chart.element.isConnected) this.chart.element.scrollIntoView({ block: 'nearest' });
    this.run.querySelector('.progress')?.scrollIntoView({ block: 'nearest' });
  }

  /** Redraws the run's progress, chart and results only (one training event). */
  renderRun(state: PanelState): void {
    const t = state.training;
    this.run.replaceChildren(this.progress(t));
    if (!t) return;
    // No axes before there is a point to draw (a run that failed before its first step has none).
    if (t.trainLoss.length + t.valLoss.length > 0) this.run.append(this.chart.element);
    this.run.append(...this.kept(t), ...this.comparison(t));
    if (this.chart.element.isConnected) this.chart.setData(t.trainLoss, t.valLoss, t.status === 'running' ? null : t.bestStep);
  }

  private form(hp: Hyperparameters, disabled: boolean, advancedOpen: boolean): HTMLElement {
    this.fields.clear();
    this.targets.clear();
    const field = (spec: FieldSpec) => {
      const tf = h('vscode-textfield', { id: `hp-${spec.key}`, inputmode: 'decimal', 'aria-label': spec.label, label: spec.label, title: spec.help, disabled }) as Field;
      tf.value = fieldText(hp, spec.key);
      tf.addEventListener('input', () => this.read());
      tf.addEventListener('change', () => this.changed());
      this.fields.set(spec.key, tf);
      return h('label', { class: 'hp' }, h('span', {}, spec.label), tf);
    };
    const schedule = h('vscode-single-select', { id: 'hp-schedule', 'aria-label': 'Learning-rate schedule', label: 'Learning-rate schedule', disabled }) as ValueElement;
    for (const s of SCHEDULES) schedule.append(h('vscode-option', { value: s, selected: s === hp.schedule }, s));
    keepDropdownInView(schedule);
    schedule.addEventListener('change', () => this.changed());
    this.schedule = schedule;
    const targets = LORA_TARGETS.map((t) => {
      const cb = h('vscode-checkbox', { id: `hp-target-${t}`, 'aria-label': `LoRA on ${t}_proj`, disabled }, `${t}`) as CheckElement;
      cb.checked = hp.targets.includes(t);
      cb.addEventListener('change', () => this.changed());
      this.targets.set(t, cb);
      return cb;
    });
    const defaults = h('vscode-button', { id: 'hp-defaults', secondary: true, disabled, title: 'Put every setting back to the trainer\'s defaults' }, 'Reset to defaults');
    defaults.addEventListener('click', () => this.reset());
    const advanced = h(
      'vscode-collapsible',
      { title: 'Advanced', open: advancedOpen },
      h('div', { class: 'hp-grid' }, ...ADVANCED_FIELDS.map(field), h('label', { class: 'hp' }, h('span', {}, 'Schedule'), schedule)),
      h('div', { class: 'targets', role: 'group', 'aria-label': 'LoRA targets' }, h('span', {}, 'LoRA targets'), ...targets),
      h('div', { class: 'row-actions' }, defaults),
    );
    advanced.addEventListener('vsc-collapsible-toggle', () => this.events.advancedToggled((advanced as unknown as { open: boolean }).open));
    return h('div', { class: 'hp-form' }, h('div', { class: 'hp-grid' }, ...BASIC_FIELDS.map(field)), advanced, h('div', { class: 'error', id: 'hp-error', role: 'alert' }));
  }

  /** The form's values, validated; undefined (each bad field marked and explained) when invalid. */
  private read(): Hyperparameters | undefined {
    if (!this.current) return undefined;
    const numbers = Object.fromEntries([...this.fields].map(([k, tf]) => [k, tf.value]));
    const targets = LORA_TARGETS.filter((t) => this.targets.get(t)?.checked);
    const { value, errors } = checkForm(this.current, { numbers, schedule: this.schedule?.value, targets });
    for (const [key, tf] of this.fields) {
      const bad = errors.has(key);
      tf.invalid = bad;
      if (bad) tf.setAttribute('aria-invalid', 'true');
      else tf.removeAttribute('aria-invalid');
    }
    const box = this.element.querySelector('#hp-error');
    box?.replaceChildren(...[...errors.values()].map((m) => h('p', {}, m)));
    if (value) this.showPlan(value);
    return value;
  }

  private focusFirstInvalid(): void {
    const bad = [...this.fields.values()].find((tf) => tf.invalid);
    bad?.focus();
  }

  private changed(): void {
    const hp = this.read();
    if (hp) {
      this.current = hp;
      this.events.save(hp);
    }
  }

  private reset(): void {
    for (const [key, tf] of this.fields) tf.value = fieldText(DEFAULT_HYPERPARAMETERS, key);
    if (this.schedule) this.schedule.value = DEFAULT_HYPERPARAMETERS.schedule;
    for (const [t, cb] of this.targets) cb.checked = (DEFAULT_HYPERPARAMETERS.targets as readonly string[]).includes(t);
    this.changed();
  }

  private progress(t: TrainingView | null): HTMLElement {
    if (!t) return h('div', { class: 'progress' });
    const bar = h('vscode-progress-bar', { 'aria-label': 'Training progress', max: 1 }) as HTMLElement & { value?: number };
    bar.value = progressFraction(t.step, t.totalSteps);
    const last = t.trainLoss.at(-1);
    const started = t.trainLoss.length > 0 || t.step > 0;
    const parts = [
      t.status === 'running' ? (started ? `Step ${t.step}${t.totalSteps ? ` of ${t.totalSteps}` : ''}` : 'Starting…') : started ? `Training ${t.status} at step ${t.step}` : `Training ${t.status} before its first step`,
      started ? `epoch ${t.epoch.toFixed(1)}` : '',
      last ? `loss ${last[1].toFixed(4)}` : '',
      t.status === 'running' && t.etaSeconds !== null ? `about ${formatEta(t.etaSeconds)} left` : '',
      t.bestStep !== null ? `best checkpoint: step ${t.bestStep}` : '',
    ].filter((p) => p !== '');
    return h('div', { class: 'progress' }, t.status === 'running' ? bar : null, h('p', { id: 'training-status', 'aria-live': 'polite' }, parts.join(' · ')), t.message ? h('p', { class: t.status === 'failed' ? 'error' : 'muted', id: 'training-message' }, t.message) : null);
  }

  /** Which checkpoint the task kept, said once the run is over (the chart marks it too). */
  private kept(t: TrainingView): HTMLElement[] {
    if (t.status === 'running' || t.bestStep === null) return [];
    const val = t.valLoss.find(([s]) => s === t.bestStep)?.[1];
    const why = val !== undefined ? `lowest validation loss, ${val.toFixed(4)}` : 'the last step (no validation)';
    return [h('p', { id: 'kept-checkpoint' }, h('span', { class: 'kept-mark', 'aria-hidden': 'true' }), `Kept: the adapter from step ${t.bestStep} of ${t.step} (${why}); the dashed line marks it.`)];
  }

  private comparison(t: TrainingView): HTMLElement[] {
    if (t.comparison.length === 0) return [];
    const mark = (a: string, b: string) => (sameAnswer(a, b) ? h('span', { class: 'right', title: 'matches the expected output' }, '✓ ') : h('span', { class: 'wrong', title: 'differs from the expected output' }, '✗ '));
    const before = t.comparison.filter((r) => sameAnswer(r.before, r.expected)).length;
    const after = t.comparison.filter((r) => sameAnswer(r.after, r.expected)).length;
    const n = t.comparison.length;
    const rows = t.comparison.map((r) => h('tr', {}, h('td', {}, r.input), h('td', {}, r.expected), h('td', {}, mark(r.before, r.expected), r.before), h('td', {}, mark(r.after, r.expected), r.after)));
    const title = `Held-out examples: ${before}/${n} right before training, ${after}/${n} after`;
    return [
      h('h3', { id: 'comparison-title' }, title),
      h('table', { class: 'comparison', id: 'comparison', 'aria-labelledby': 'comparison-title' }, h('thead', {}, h('tr', {}, h('th', {}, 'Input'), h('th', {}, 'Expected'), h('th', {}, 'Before'), h('th', {}, `After (step ${t.bestStep ?? t.step})`))), h('tbody', {}, ...rows)),
    ];
  }
}
