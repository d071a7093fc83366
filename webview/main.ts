// The training panel's page. It draws what the host sends (every message validated first), sends
// each edit as soon as it is made (typing is batched for 300 ms, a finished edit goes at once),
// and keeps its UI state with setState so a hidden and re-shown panel comes back as it was.

import './elements.js';

import { applyTrainingEvent, type ExampleView, type HostToWebview, type PanelState, parseHostMessage, type Suggestion } from '../src/protocol/webview';
import { KIND_TITLES } from '../src/store/task';
import { loadSaved, save, type SavedState, send } from './api';
import { h } from './dom';
import { type Column, ExamplesTable } from './examplesTable';
import { TrainingSection } from './trainingSection';

const TYPING_DELAY_MS = 300;

class App {
  private saved: SavedState = loadSaved();
  private state: PanelState | undefined = this.saved.data;
  /** Values typed here that the host has not confirmed yet, laid over the host's data. */
  private readonly local = new Map<string, Partial<ExampleView>>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  /** The last seq sent per example, so an older ack does not clear a newer edit. */
  private readonly lastSeq = new Map<string, number>();
  private readonly pendingAdds = new Set<number>();
  private suggestions = new Map<string, Suggestion>();
  /** Examples whose suggestion was asked for already (each is asked once by itself; "Suggest answers" asks again). */
  private readonly asked = new Set<string>();
  /** Examples whose suggestion is on its way. */
  private readonly waiting = new Set<string>();
  private seq = 0;

  private readonly header = h('header', { class: 'task-header' });
  private readonly status = h('p', { id: 'save-status', class: 'muted', 'aria-live': 'polite' });
  private readonly problems = h('div', { class: 'problems' });
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

  start(): void {
    const root = document.getElementById('app')!;
    const hint = h('p', { class: 'muted hint' }, 'Alt+↑/↓ moves between examples · Ctrl+Enter accepts a suggestion · every edit is saved to .gemma/tasks at once');
    root.replaceChildren(this.header, this.problems, this.table.element, h('div', { class: 'status-row' }, this.status, hint), this.training.element);
    window.addEventListener('message', (e: MessageEvent) => this.onMessage(e.data));
    window.addEventListener('scroll', () => this.remember({ scrollY: window.scrollY }), { passive: true });
    // Edits typed just before the panel was hidden (the page is torn down then) go out now.
    for (const [id, patch] of Object.entries(this.saved.pending ?? {})) {
      this.local.set(id, patch);
      this.flush(id);
    }
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
      console.error(`Gemma panel: ignored a malformed message from the host: ${(err as Error).message}`);
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
        this.render();
        document.getElementById('app')?.setAttribute('aria-busy', 'false');
        this.askSuggestions();
        return;
      case 'ack':
        return this.onAck(msg.seq, msg.ok, msg.error, msg.example);
      case 'training':
        if (!this.state) return;
        this.state = { ...this.state, training: applyTrainingEvent(this.state.training, msg.event) };
        this.persist();
        // Start and end change what the table offers (no suggestions while training); steps redraw the chart only.
        if (msg.event.kind === 'step' || msg.event.kind === 'eval') this.training.renderRun(this.state);
        else this.render();
        return;
      case 'suggestions':
        for (const s of msg.items) this.suggestions.set(s.id, s);
        this.waiting.clear();
        this.showStatus(msg.items.length === 0 ? 'The model gave no answers.' : `The model answered ${msg.items.length} example${msg.items.length === 1 ? '' : 's'}: accept or correct each answer.`, 'muted');
        return this.render();
      case 'notice':
        if (msg.level === 'error' && this.waiting.size > 0) {
          this.waiting.clear();
          this.render();
        }
        this.showStatus(msg.message, msg.level === 'error' ? 'error' : 'muted');
        return;
    }
  }

  /**
   * Asks the model for its answer to unlabeled examples: by itself once per example it has not
   * answered yet, or, from the "Suggest answers" button (`again`), for every unlabeled one. Never
   * while training or while an answer is on its way.
   */
  private askSuggestions(again = false): void {
    const s = this.state;
    if (!s?.capabilities.suggest || s.training?.status === 'running' || this.waiting.size > 0) return;
    const unlabeled = s.examples.filter((e) => (this.local.get(e.id)?.output ?? e.output).trim() === '');
    const ids = (again ? unlabeled : unlabeled.filter((e) => !this.suggestions.has(e.id) && !this.asked.has(e.id))).map((e) => e.id);
    if (ids.length === 0) return;
    ids.forEach((id) => {
      this.asked.add(id);
      this.waiting.add(id);
    });
    send({ type: 'suggest', ids });
    this.showStatus(`Asking the model for ${ids.length} answer${ids.length === 1 ? '' : 's'}…`, 'muted');
    this.render();
  }

  /** The form's settings as the page's own state, so a later redraw shows them and not the ones the panel opened with. */
  private keepHyperparameters(hp: PanelState['task']['hyperparameters']): void {
    if (!this.state) return;
    this.state = { ...this.state, task: { ...this.state.task, hyperparameters: hp } };
    this.persist();
  }

  /** The model's answer becomes the expected output; the focus stays on that example. */
  private accept(id: string, output: string): void {
    this.edit(id, { output }, true);
    this.render();
    this.table.focusCell(id, 'output');
  }

  /** Accepts the suggestion of every example that has no expected output yet. */
  private acceptAll(): void {
    const s = this.state;
    if (!s) return;
    const open = s.examples.filter((e) => (this.local.get(e.id)?.output ?? e.output).trim() === '' && this.suggestions.has(e.id));
    for (const e of open) this.edit(e.id, { output: this.suggestions.get(e.id)!.output }, true);
    this.render();
    // The button is disabled now (nothing left to accept): the first accepted answer takes the focus, to check or correct.
    if (open.length > 0) this.table.focusCell(open[0].id, 'output');
    this.showStatus(`Accepted ${open.length} suggestion${open.length === 1 ? '' : 's'}; correct any that are wrong.`, 'muted');
  }

  private render(): void {
    const s = this.state;
    if (!s) return;
    const t = s.task;
    const labeled = s.examples.filter((e) => e.output.trim() !== '').length;
    const what = t.kind === 'classify' ? `labels: ${t.labels?.join(', ')}` : t.kind === 'extract' && t.fields?.length ? `fields: ${t.fields.join(', ')}` : '';
    this.header.replaceChildren(
      h('h1', {}, t.name),
      h('p', { class: 'muted' }, [KIND_TITLES[t.kind], what, `${s.examples.length} examples, ${labeled} labeled, ${s.examples.filter((e) => e.heldOut).length} held out`, t.hasAdapter ? 'adapter trained' : ''].filter(Boolean).join(' · ')),
      t.instruction ? h('p', { class: 'instruction' }, t.instruction) : '',
    );
    this.problems.replaceChildren(...s.problems.map((p) => h('p', { class: 'warning' }, `Unreadable line kept aside: ${p}`)));
    const focus = this.saved.ui.focus;
    const active = document.activeElement as HTMLElement | null;
    const hadFocus = !!active && !!this.table.element.querySelector('table')?.contains(active);
    // "Suggest answers" and "Accept suggestions" are drawn anew: the new one takes the focus back.
    const tool = active && (active.id === 'suggest' || active.id === 'accept-all') ? active.id : undefined;
    this.table.render(s, this.local, { suggestions: this.suggestions, waiting: this.waiting, training: s.training?.status === 'running' });
    this.training.render(s, this.saved.ui.advancedOpen ?? false);
    if (tool) refocus(document.getElementById(tool));
    else if (focus && (hadFocus || !this.rendered)) this.table.focusCell(focus.id, focus.col as Column);
    if (!this.rendered && this.saved.ui.scrollY) window.scrollTo(0, this.saved.ui.scrollY);
    this.rendered = true;
  }
  private rendered = false;

  private edit(id: string, patch: Partial<ExampleView>, now: boolean): void {
    this.local.set(id, { ...this.local.get(id), ...patch });
    this.persistPending();
    this.showStatus('Saving…', 'muted');
    clearTimeout(this.timers.get(id));
    if (now) this.flush(id);
    else this.timers.set(id, setTimeout(() => this.flush(id), TYPING_DELAY_MS));
    if (patch.output !== undefined || patch.heldOut !== undefined) this.updateLocalState(id, patch);
  }

  /** Sends the unsent changes of one example. */
  private flush(id: string): void {
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    const patch = this.local.get(id);
    if (!patch) return;
    const seq = ++this.seq;
    this.lastSeq.set(id, seq);
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
    } else if (example && this.lastSeq.get(example.id) === seq) {
      this.local.delete(example.id);
      this.persistPending();
      this.updateLocalState(example.id, example);
    }
    this.showStatus('Saved', 'muted');
  }

  /** Keeps this.state in step with confirmed or committed values (no re-render while typing). */
  private updateLocalState(id: string, patch: Partial<ExampleView>): void {
    if (!this.state) return;
    this.state = { ...this.state, examples: this.state.examples.map((e) => (e.id === id ? { ...e, ...patch } : e)) };
    this.persist();
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
    this.local.delete(id);
    this.state = { ...this.state, examples: this.state.examples.filter((e) => e.id !== id) };
    this.persist();
    this.render();
    if (!next || !this.table.focusCell(next, 'remove')) document.getElementById('add-example')?.focus();
  }

  private remember(ui: Partial<SavedState['ui']>): void {
    this.saved = { ...this.saved, ui: { ...this.saved.ui, ...ui } };
    save(this.saved);
  }

  private persistPending(): void {
    this.saved = { ...this.saved, pending: Object.fromEntries(this.local) };
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

/** Focuses a <vscode-…> element once it has drawn itself. */
function refocus(el: HTMLElement | null): void {
  const lit = el as (HTMLElement & { updateComplete?: Promise<unknown> }) | null;
  if (lit?.updateComplete) void lit.updateComplete.then(() => lit.focus());
  else lit?.focus();
}

new App().start();
