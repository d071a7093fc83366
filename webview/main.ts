// The training panel's page. It draws what the host sends (every message validated first), sends
// each edit as soon as it is made (typing is batched for 300 ms, a finished edit goes at once),
// and keeps its UI state with setState so a hidden and re-shown panel comes back as it was. Every
// edit redraws what depends on it at once (the header's counts, the row's line about the model's
// answer, the Accept button's count, Train), without waiting for the host. A task the page cannot
// show (a damaged file, a state past the page's limits) is shown as a message saying what to do.

import './elements.js';

import { applyTrainingEvent, type ExampleView, type HostToWebview, type PanelState, parseHostMessage, type Suggestion } from '../src/protocol/webview';
import { KIND_TITLES } from '../src/store/task';
import { loadSaved, save, type SavedState, send } from './api';
import { h, refocus } from './dom';
import { countExamples, hasLabel } from '../src/panel/trainReadiness';
import { plural } from '../src/plural';
import { countsText, EditBuffer, type ExamplePatch } from './editBuffer';
import { type Column, ExamplesTable } from './examplesTable';
import { TrainingSection } from './trainingSection';

const TYPING_DELAY_MS = 300;

class App {
  private saved: SavedState = loadSaved();
  /** The host's data, with every edit it confirmed. */
  private state: PanelState | undefined = this.saved.data;
  /** Edits the host has not confirmed yet, laid over `state` wherever the page draws examples. */
  private readonly edits = new EditBuffer(this.saved.pending);
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly pendingAdds = new Set<number>();
  private suggestions = new Map<string, Suggestion>();
  /** Examples whose suggestion was asked for already (each is asked once by itself; "Suggest answers" asks again). */
  private readonly asked = new Set<string>();
  /** Examples whose suggestion is on its way. */
  private readonly waiting = new Set<string>();
  private seq = 0;

  private readonly root = document.getElementById('app')!;
  private readonly header = h('header', { class: 'task-header' });
  private readonly status = h('p', { id: 'save-status', class: 'muted', 'aria-live': 'polite' });
  private readonly problems = h('div', { class: 'problems' });
  /** Shown instead of everything else when the task cannot be drawn. */
  private readonly unavailable = h('section', { id: 'panel-unavailable', class: 'unavailable', role: 'alert', hidden: true });
  private readonly table = new ExamplesTable({
    edit: (id, patch, now) => this.edit(id, patch, now),
    accept: (id, output) => this.accept(id, output),
    acceptAll: () => this.acceptAll(),
    suggest: () => this.askSuggestions(true),
    remove: (id) => this.remove(id),
    add: () => this.add(),
    focus: (id, col) => this.remember({ focus: { id, col } }),
  });
  private readonly training = new TrainingSection({
    save: (hp) => {
      this.keepHyperparameters(hp);
      send({ type: 'setHyperparameters', seq: ++this.seq, hyperparameters: hp });
    },
    train: (hp) => {
      this.keepHyperparameters(hp);
      send({ type: 'train', hyperparameters: hp });
    },
    resume: () => send({ type: 'resumeTraining' }),
    cancel: () => send({ type: 'cancelTraining' }),
    advancedToggled: (open) => this.remember({ advancedOpen: open }),
  });
  private readonly content = h('div', { class: 'panel-content' });

  start(): void {
    const hint = h('p', { class: 'muted hint' }, 'Alt+↑/↓ moves between examples · Ctrl+Enter accepts a suggestion · every edit is saved to .gemma/tasks at once');
    this.content.replaceChildren(this.header, this.problems, this.table.element, h('div', { class: 'status-row' }, this.status, hint), this.training.element);
    this.root.replaceChildren(this.unavailable, this.content);
    window.addEventListener('message', (e: MessageEvent) => this.onMessage(e.data));
    window.addEventListener('scroll', () => this.remember({ scrollY: window.scrollY }), { passive: true });
    // A user who scrolls or types during a run has gone elsewhere: the panel stops bringing the run into view.
    for (const type of ['wheel', 'touchmove', 'keydown'] as const) window.addEventListener(type, () => (this.followRun = false), { passive: true, capture: true });
    // Edits typed just before the panel was hidden (the page is torn down then) go out now.
    for (const id of this.edits.ids()) this.flush(id);
    // Draw the last known data at once; the host's fresh copy follows `ready`.
    if (this.state) this.render();
    // A hidden panel's page is destroyed without warning: send what is typed when focus leaves.
    window.addEventListener('blur', () => [...this.timers.keys()].forEach((id) => this.flush(id)));
    document.addEventListener('visibilitychange', () => [...this.timers.keys()].forEach((id) => this.flush(id)));
    send({ type: 'ready' });
  }

  private onMessage(raw: unknown): void {
    let msg: HostToWebview;
    try {
      msg = parseHostMessage(raw);
    } catch (err) {
      const reason = (err as Error).message;
      console.error(`Gemma panel: ignored a malformed message from the host: ${reason}`);
      // The task itself did not arrive: say so in the panel rather than leave it empty or stale.
      if ((raw as { type?: unknown } | null)?.type === 'state') {
        this.showUnavailable(`The panel cannot show this task: ${reason}.`, 'Check the task\'s files in .gemma/tasks (the "Gemma Tune" output names any unreadable line), then press Try again.');
      }
      return;
    }
    switch (msg.type) {
      case 'state':
        this.state = msg.state;
        this.suggestions = new Map(msg.state.suggestions.map((s) => [s.id, s]));
        // The host drops its suggestions when a run changed the model: ask the new one.
        if (msg.state.suggestions.length === 0) this.asked.clear();
        this.saved = { ...this.saved, data: msg.state, restore: msg.restore };
        save(this.saved);
        this.hideUnavailable();
        this.render();
        this.root.setAttribute('aria-busy', 'false');
        this.askSuggestions();
        return;
      case 'unavailable':
        this.showUnavailable(msg.problem, msg.remedy);
        return;
      case 'ack':
        return this.onAck(msg.seq, msg.ok, msg.error, msg.example);
      case 'training':
        return this.onTraining(msg.event);
      case 'suggestions': {
        for (const s of msg.items) this.suggestions.set(s.id, s);
        const answered = [...this.waiting, ...msg.items.map((s) => s.id)];
        this.waiting.clear();
        this.showStatus(msg.items.length === 0 ? 'The model gave no answers.' : `The model answered ${plural(msg.items.length, 'example')}: accept or correct each answer.`, 'muted');
        return this.redrawRows(answered);
      }
      case 'notice':
        if (msg.level === 'error' && this.waiting.size > 0) {
          const asked = [...this.waiting];
          this.waiting.clear();
          this.redrawRows(asked);
        }
        this.showStatus(msg.message, msg.level === 'error' ? 'error' : 'muted');
        return;
    }
  }

  private onTraining(event: Extract<HostToWebview, { type: 'training' }>['event']): void {
    if (!this.state) return;
    this.state = { ...this.state, training: applyTrainingEvent(this.state.training, event) };
    this.persist();
    // Start and end change what the table offers (no suggestions while training); steps redraw the run's part only.
    if (event.kind === 'step' || event.kind === 'eval') this.training.renderRun(this.state);
    else this.render();
    // What the run shows appears below the form: it is brought into view as the run starts and kept
    // there as its lines and chart grow, until the user scrolls or types somewhere else.
    if (event.kind === 'start') this.followRun = true;
    if (this.followRun && !this.table.element.contains(document.activeElement)) this.training.reveal();
    if (event.kind !== 'start' && event.kind !== 'step' && event.kind !== 'eval') this.followRun = false;
  }
  /** Whether the panel keeps the running training's progress and chart in view. */
  private followRun = false;

  /**
   * Asks the model for its answer to unlabeled examples: by itself once per example it has not
   * answered yet, or, from the "Suggest answers" button (`again`), for every unlabeled one. Never
   * while training or while an answer is on its way.
   */
  private askSuggestions(again = false): void {
    const s = this.state;
    if (!s?.capabilities.suggest || s.training?.status === 'running' || this.waiting.size > 0) return;
    const unlabeled = this.examples().filter((e) => !hasLabel(e));
    const ids = (again ? unlabeled : unlabeled.filter((e) => !this.suggestions.has(e.id) && !this.asked.has(e.id))).map((e) => e.id);
    if (ids.length === 0) return;
    ids.forEach((id) => {
      this.asked.add(id);
      this.waiting.add(id);
    });
    send({ type: 'suggest', ids });
    this.showStatus(`Asking the model for ${plural(ids.length, 'answer')}…`, 'muted');
    this.redrawRows(ids);
  }

  /** The form's settings as the page's own state, so a later redraw shows them and not the ones the panel opened with. */
  private keepHyperparameters(hp: PanelState['task']['hyperparameters']): void {
    if (!this.state) return;
    this.state = { ...this.state, task: { ...this.state.task, hyperparameters: hp } };
    this.persist();
  }

  /** The examples as the user sees them: the host's data with unconfirmed edits laid over. */
  private examples(): ExampleView[] {
    return this.edits.merge(this.state?.examples ?? []);
  }

  /** The model's answer becomes the expected output; the focus stays on that example. */
  private accept(id: string, output: string): void {
    this.edit(id, { output }, true, true);
    this.table.focusCell(id, 'output');
  }

  /** Accepts the suggestion of every example that has no expected output yet. */
  private acceptAll(): void {
    const open = this.examples().filter((e) => !hasLabel(e) && this.suggestions.has(e.id));
    for (const e of open) this.edit(e.id, { output: this.suggestions.get(e.id)!.output }, true, true);
    // The button is disabled now (nothing left to accept): the first accepted answer takes the focus, to check or correct.
    if (open.length > 0) this.table.focusCell(open[0].id, 'output');
    this.showStatus(`Accepted ${plural(open.length, 'suggestion')}; correct any that are wrong.`, 'muted');
  }

  /** Draws the whole panel from the state. */
  private render(): void {
    const s = this.state;
    if (!s) return;
    const examples = this.examples();
    this.renderHeader(s, examples);
    this.renderProblems(s);
    const focus = this.saved.ui.focus;
    const active = document.activeElement as HTMLElement | null;
    const hadFocus = !!active && !!this.table.element.querySelector('table')?.contains(active);
    // "Suggest answers" and "Accept suggestions" are drawn anew: the new one takes the focus back.
    const tool = active && (active.id === 'suggest' || active.id === 'accept-all') ? active.id : undefined;
    this.table.render(s, examples, this.view());
    this.training.render(s, examples, this.saved.ui.advancedOpen ?? false);
    if (tool) refocus(document.getElementById(tool));
    else if (focus && (hadFocus || !this.rendered)) this.table.focusCell(focus.id, focus.col as Column);
    if (!this.rendered && this.saved.ui.scrollY) window.scrollTo(0, this.saved.ui.scrollY);
    this.rendered = true;
  }
  private rendered = false;

  /** What the page could not show: examples past its limit, and the unreadable lines of examples.jsonl (the list on demand). */
  private renderProblems(s: PanelState): void {
    const omitted = s.omitted ?? { examples: 0, problems: 0 };
    const unreadable = s.problems.length + omitted.problems;
    const parts: HTMLElement[] = [];
    if (omitted.examples > 0) {
      parts.push(h('p', { class: 'warning', id: 'examples-omitted' }, `This task has ${omitted.examples + s.examples.length} examples; the panel shows the first ${s.examples.length}. Training uses every labeled one. To label the others here, move them into a task of their own (examples.jsonl holds one per line).`));
    }
    if (unreadable > 0) {
      parts.push(h(
        'details',
        { id: 'problems' },
        h('summary', { class: 'warning' }, `${plural(unreadable, 'line')} of examples.jsonl could not be read and ${unreadable === 1 ? 'is' : 'are'} kept aside: fix or delete ${unreadable === 1 ? 'it' : 'them'} there (a copy of the file as it was is kept beside it on the next save).`),
        h('ul', {}, ...s.problems.map((p) => h('li', {}, p))),
        omitted.problems > 0 ? h('p', { id: 'problems-omitted' }, `… and ${plural(omitted.problems, 'more line')}, all listed in the "Gemma Tune" output.`) : null,
      ));
    }
    this.problems.replaceChildren(...parts);
  }

  private renderHeader(s: PanelState, examples: readonly ExampleView[]): void {
    const t = s.task;
    const what = t.kind === 'classify' ? `labels: ${t.labels?.join(', ')}` : t.kind === 'extract' && t.fields?.length ? `fields: ${t.fields.join(', ')}` : '';
    this.header.replaceChildren(
      h('h1', {}, t.name),
      h('p', { class: 'muted', id: 'task-summary' }, [KIND_TITLES[t.kind], what, countsText(countExamples(examples)), t.hasAdapter ? 'adapter trained' : ''].filter(Boolean).join(' · ')),
      t.instruction ? h('p', { class: 'instruction' }, t.instruction) : '',
    );
  }

  private view() {
    return { suggestions: this.suggestions, waiting: this.waiting, training: this.state?.training?.status === 'running' };
  }

  /**
   * Redraws what changed for the rows of `ids` in place (an edit, or the model's answers arriving or
   * failing): the header's counts, each row's line about the model's answer, the table's tools and Train.
   * The fields stay, with the focus and caret of one the user is typing in; `outputChanged` (Accept set it,
   * not the field) redraws the expected output too.
   */
  private redrawRows(ids: readonly string[], outputChanged = false): void {
    const s = this.state;
    if (!s) return;
    const examples = this.examples();
    const view = this.view();
    this.renderHeader(s, examples);
    const wanted = new Set(ids);
    for (const ex of examples) if (wanted.has(ex.id)) this.table.refreshRow(ex, view, outputChanged);
    this.table.refreshTools(s, examples, view);
    this.training.refreshReadiness(s, examples);
  }

  /** Records an edit, sends it (at once when `now`, else after a pause in typing) and redraws what depends on it; `fromOutside`: not typed into the field itself (Accept). */
  private edit(id: string, patch: ExamplePatch, now: boolean, fromOutside = false): void {
    this.edits.edit(id, patch);
    this.persistPending();
    this.showStatus('Saving…', 'muted');
    clearTimeout(this.timers.get(id));
    if (now) this.flush(id);
    else this.timers.set(id, setTimeout(() => this.flush(id), TYPING_DELAY_MS));
    this.redrawRows([id], fromOutside && patch.output !== undefined);
  }

  /** Sends the unsent changes of one example. */
  private flush(id: string): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    const patch = this.edits.pending(id);
    if (!patch) return;
    const seq = ++this.seq;
    this.edits.sent(id, seq);
    send({ type: 'updateExample', seq, id, ...patch });
  }

  private onAck(seq: number, ok: boolean, error: string | undefined, example: ExampleView | undefined): void {
    if (!ok) {
      this.showStatus(`Not saved: ${error ?? 'unknown error'}`, 'error');
      return;
    }
    if (this.pendingAdds.delete(seq) && example && this.state) {
      this.state = { ...this.state, examples: [...this.state.examples, example] };
      this.persist();
      this.render();
      this.table.focusCell(example.id, 'input');
    } else if (example && this.state) {
      // The saved values become the page's data; edits made since stay laid over them.
      this.state = { ...this.state, examples: this.state.examples.map((e) => (e.id === example.id ? example : e)) };
      this.persist();
      if (this.edits.confirmed(seq, example.id)) this.persistPending();
    }
    this.showStatus('Saved', 'muted');
  }

  private add(): void {
    const seq = ++this.seq;
    this.pendingAdds.add(seq);
    send({ type: 'addExample', seq, input: '', output: '' });
  }

  private remove(id: string): void {
    if (!this.state) return;
    const ids = this.state.examples.map((e) => e.id);
    const at = ids.indexOf(id);
    // The keyboard focus goes to the next example's remove button (or the previous one, or "Add example").
    const next = ids[at + 1] ?? ids[at - 1];
    send({ type: 'removeExample', seq: ++this.seq, id });
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.edits.drop(id);
    this.persistPending();
    this.state = { ...this.state, examples: this.state.examples.filter((e) => e.id !== id) };
    this.persist();
    this.render();
    if (!next || !this.table.focusCell(next, 'remove')) document.getElementById('add-example')?.focus();
  }

  /** Shows, instead of the panel, why the task cannot be shown and what to do; "Try again" asks the host anew. */
  private showUnavailable(problem: string, remedy: string): void {
    const again = h('vscode-button', { id: 'try-again' }, 'Try again');
    again.addEventListener('click', () => send({ type: 'ready' }));
    this.unavailable.replaceChildren(h('h1', {}, 'Gemma training'), h('p', { class: 'error', id: 'unavailable-problem' }, problem), h('p', { id: 'unavailable-remedy' }, remedy), h('div', { class: 'row-actions' }, again));
    this.unavailable.hidden = false;
    this.content.hidden = true;
    this.root.setAttribute('aria-busy', 'false');
  }

  private hideUnavailable(): void {
    this.unavailable.hidden = true;
    this.content.hidden = false;
  }

  private remember(ui: Partial<SavedState['ui']>): void {
    this.saved = { ...this.saved, ui: { ...this.saved.ui, ...ui } };
    save(this.saved);
  }

  private persistPending(): void {
    this.saved = { ...this.saved, pending: this.edits.snapshot() };
    save(this.saved);
  }

  private persist(): void {
    if (this.state) this.saved = { ...this.saved, data: this.state };
    save(this.saved);
  }

  private showStatus(text: string, cls: 'muted' | 'error'): void {
    this.status.textContent = text;
    this.status.className = cls;
  }
}

new App().start();
