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
  /** Examples whose suggestion was asked for already. */
  private readonly asked = new Set<string>();
  private seq = 0;

  private readonly header = h('header', { class: 'task-header' });
  private readonly status = h('p', { id: 'save-status', class: 'muted', 'aria-live': 'polite' });
  private readonly problems = h('div', { class: 'problems' });
  private readonly table = new ExamplesTable({
    edit: (id, patch, now) => this.edit(id, patch, now),
    remove: (id) => this.remove(id),
    add: () => this.add(),
    focus: (id, col) => this.remember({ focus: { id, col } }),
  });
  private readonly training = new TrainingSection({
    save: (hp) => send({ type: 'setHyperparameters', seq: ++this.seq, hyperparameters: hp }),
    train: (hp) => send({ type: 'train', hyperparameters: hp }),
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
        this.training.render(this.state, this.saved.ui.advancedOpen ?? false);
        return;
      case 'suggestions':
        for (const s of msg.items) this.suggestions.set(s.id, s);
        return this.render();
      case 'notice':
        this.showStatus(msg.message, msg.level === 'error' ? 'error' : 'muted');
        return;
    }
  }

  /** Pre-fills the model's answer for unlabeled examples it has not answered yet (once each; never while training). */
  private askSuggestions(): void {
    const s = this.state;
    if (!s?.capabilities.suggest || s.training?.status === 'running') return;
    const ids = s.examples.filter((e) => e.output.trim() === '' && !this.suggestions.has(e.id) && !this.asked.has(e.id)).map((e) => e.id);
    if (ids.length === 0) return;
    ids.forEach((id) => this.asked.add(id));
    send({ type: 'suggest', ids });
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
    const hadFocus = document.activeElement && this.table.element.contains(document.activeElement);
    this.table.render(s, this.local, this.suggestions);
    this.training.render(s, this.saved.ui.advancedOpen ?? false);
    if (focus && (hadFocus || !this.rendered)) this.table.focusCell(focus.id, focus.col as Column);
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
    send({ type: 'removeExample', seq: ++this.seq, id });
    this.local.delete(id);
    this.state = { ...this.state, examples: this.state.examples.filter((e) => e.id !== id) };
    this.persist();
    this.render();
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

new App().start();
