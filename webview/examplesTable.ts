// The examples table: input, expected output (a label dropdown for classify, one field per key
// for extract with fields, free text otherwise), the model's suggestion when the engine can make
// one, the held-out toggle, and remove. Keyboard: Alt+↑/↓ moves to the same column of the
// previous/next example (plain ↑/↓ too in one-line fields), Ctrl+Enter accepts the suggestion.

import type { ExampleView, PanelState, Suggestion } from '../src/protocol/webview';
import { formatFieldsOutput, parseFieldsOutput } from '../src/store/prompt';
import { CheckElement, h, ValueElement } from './dom';

export type Column = 'input' | 'output' | 'accept' | 'held' | 'remove';

export interface TableEvents {
  /** A field changed; `now` when the edit is finished (change/blur), else while typing. */
  edit(id: string, patch: Partial<Pick<ExampleView, 'input' | 'output' | 'heldOut'>>, now: boolean): void;
  remove(id: string): void;
  add(): void;
  focus(id: string, col: Column): void;
}

export class ExamplesTable {
  readonly element: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private state: PanelState | undefined;

  constructor(private readonly events: TableEvents) {
    this.body = h('tbody');
    const table = h('table', { class: 'examples', 'aria-label': 'Examples' }, h('thead'), this.body);
    const add = h('vscode-button', { id: 'add-example', secondary: true }, 'Add example');
    add.addEventListener('click', () => this.events.add());
    this.element = h('section', { class: 'examples-section' }, table, h('div', { class: 'row-actions' }, add));
    table.addEventListener('keydown', (e) => this.onKey(e));
    table.addEventListener('focusin', (e) => {
      const at = locate(e.target);
      if (at) this.events.focus(at.id, at.col);
    });
  }

  /** Rebuilds the table from `state` with local unsaved values laid over it. */
  render(state: PanelState, local: ReadonlyMap<string, Partial<ExampleView>>, suggestions: ReadonlyMap<string, Suggestion>): void {
    this.state = state;
    const showSuggest = state.capabilities.suggest;
    const head = this.element.querySelector('thead')!;
    head.replaceChildren(
      h('tr', {}, h('th', { class: 'num' }, '#'), h('th', {}, 'Input'), h('th', { class: 'output' }, 'Expected output'), showSuggest && h('th', { class: 'suggest' }, 'Model suggests'), h('th', { class: 'narrow' }, 'Held out'), h('th', { class: 'narrow remove' }, h('span', { class: 'sr-only' }, 'Remove'))),
    );
    const rows = state.examples.map((ex, i) => this.row({ ...ex, ...local.get(ex.id) }, i, showSuggest ? suggestions.get(ex.id) : undefined, showSuggest));
    if (rows.length === 0) {
      rows.push(h('tr', {}, h('td', { colspan: showSuggest ? 6 : 5, class: 'empty' }, 'No examples yet. Select text in an editor and run "Gemma: Fine-tune on selection", or add one here.')));
    }
    this.body.replaceChildren(...rows);
  }

  /** Puts the keyboard focus on a cell (after a re-render or a move). */
  focusCell(id: string, col: Column): boolean {
    const target = this.body.querySelector<HTMLElement>(`tr[data-id="${cssEscape(id)}"] [data-col="${col}"]`);
    if (!target) return false;
    // A <vscode-…> element just created has no shadow content until lit's first update.
    const lit = target as HTMLElement & { updateComplete?: Promise<unknown> };
    if (lit.updateComplete) void lit.updateComplete.then(() => target.focus());
    else target.focus();
    return true;
  }

  private row(ex: ExampleView, index: number, suggestion: Suggestion | undefined, showSuggest: boolean): HTMLTableRowElement {
    const input = h('vscode-textarea', { 'data-col': 'input', rows: 3, resize: 'vertical', 'aria-label': `Input of example ${index + 1}` }) as ValueElement;
    input.value = ex.input;
    input.addEventListener('input', () => this.events.edit(ex.id, { input: input.value }, false));
    input.addEventListener('change', () => this.events.edit(ex.id, { input: input.value }, true));

    const held = h('vscode-checkbox', { 'data-col': 'held', 'aria-label': `Hold out example ${index + 1} for validation`, title: 'Held out: used for validation, not training' }) as CheckElement;
    held.checked = ex.heldOut;
    held.addEventListener('change', () => this.events.edit(ex.id, { heldOut: held.checked }, true));

    const remove = h('vscode-button', { 'data-col': 'remove', secondary: true, title: 'Remove this example', 'aria-label': `Remove example ${index + 1}` }, '✕');
    remove.addEventListener('click', () => this.events.remove(ex.id));

    const cells: HTMLElement[] = [h('td', { class: 'num' }, String(index + 1)), h('td', {}, input), h('td', {}, this.outputEditor(ex, index))];
    if (showSuggest) cells.push(h('td', { class: 'suggestion' }, ...this.suggestionCell(ex, suggestion)));
    cells.push(h('td', { class: 'narrow' }, held), h('td', { class: 'narrow' }, remove));
    const tr = h('tr', { 'data-id': ex.id, class: ex.output.trim() === '' ? 'unlabeled' : undefined }, ...cells);
    return tr;
  }

  private outputEditor(ex: ExampleView, index: number): HTMLElement {
    const task = this.state!.task;
    const label = `Expected output of example ${index + 1}`;
    if (task.kind === 'classify' && task.labels) {
      const select = h('vscode-single-select', { 'data-col': 'output', 'aria-label': label }) as ValueElement;
      const options = ['', ...task.labels];
      if (ex.output !== '' && !task.labels.includes(ex.output)) options.push(ex.output); // a label since removed
      for (const o of options) {
        const opt = h('vscode-option', { value: o, selected: o === ex.output }, o === '' ? '— choose a label —' : task.labels.includes(o) ? o : `${o} (not a label)`);
        select.append(opt);
      }
      select.addEventListener('change', () => this.events.edit(ex.id, { output: select.value }, true));
      return select;
    }
    if (task.kind === 'extract' && task.fields && task.fields.length > 0) {
      const fields = task.fields;
      const values = parseFieldsOutput(fields, ex.output) ?? Object.fromEntries(fields.map((f) => [f, '']));
      const inputs = fields.map((f, j) => {
        const tf = h('vscode-textfield', { 'data-col': j === 0 ? 'output' : undefined, 'data-field': f, placeholder: f, 'aria-label': `${f} of example ${index + 1}` }) as ValueElement;
        tf.value = values[f] ?? '';
        return tf;
      });
      const collect = () => formatFieldsOutput(fields, Object.fromEntries(inputs.map((tf, j) => [fields[j], tf.value])));
      for (const tf of inputs) {
        tf.addEventListener('input', () => this.events.edit(ex.id, { output: collect() }, false));
        tf.addEventListener('change', () => this.events.edit(ex.id, { output: collect() }, true));
      }
      return h('div', { class: 'fields' }, ...inputs.map((tf, j) => h('label', { class: 'field' }, h('span', {}, fields[j]), tf)));
    }
    const area = h('vscode-textarea', { 'data-col': 'output', rows: 2, resize: 'vertical', 'aria-label': label }) as ValueElement;
    area.value = ex.output;
    area.addEventListener('input', () => this.events.edit(ex.id, { output: area.value }, false));
    area.addEventListener('change', () => this.events.edit(ex.id, { output: area.value }, true));
    return area;
  }

  private suggestionCell(ex: ExampleView, s: Suggestion | undefined): HTMLElement[] {
    if (!s) return [h('span', { class: 'muted' }, '—')];
    const prob = s.probability !== undefined ? ` (${Math.round(s.probability * 100)}%)` : '';
    const text = h('span', { class: s.output.trim() === ex.output.trim() ? 'agrees' : undefined }, s.output + prob);
    const accept = h('vscode-button', { 'data-col': 'accept', secondary: true, title: 'Use the suggestion as the expected output (Ctrl+Enter)' }, 'Accept');
    accept.addEventListener('click', () => this.accept(ex.id, s));
    return [text, accept];
  }

  private accept(id: string, s: Suggestion): void {
    this.events.edit(id, { output: s.output }, true);
  }

  private onKey(e: KeyboardEvent): void {
    const at = locate(e.target);
    if (!at || !this.state) return;
    const oneLine = (e.target as HTMLElement).tagName === 'VSCODE-TEXTFIELD';
    if ((e.key === 'ArrowUp' || e.key === 'ArrowDown') && (e.altKey || oneLine) && !e.shiftKey && !e.ctrlKey) {
      const ids = this.state.examples.map((x) => x.id);
      const next = ids.indexOf(at.id) + (e.key === 'ArrowUp' ? -1 : 1);
      if (next >= 0 && next < ids.length && this.focusCell(ids[next], at.col === 'accept' ? 'output' : at.col)) e.preventDefault();
      return;
    }
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      const btn = this.body.querySelector<HTMLElement>(`tr[data-id="${cssEscape(at.id)}"] [data-col="accept"]`);
      if (btn) {
        btn.click();
        e.preventDefault();
      }
    }
  }
}

/** The example id and column of an event target inside the table. */
function locate(target: EventTarget | null): { id: string; col: Column } | undefined {
  const el = target as HTMLElement | null;
  const row = el?.closest?.('tr[data-id]') as HTMLElement | null;
  const cell = el?.closest?.('[data-col], .fields') as HTMLElement | null;
  if (!row || !cell) return undefined;
  const col = (cell.getAttribute('data-col') ?? 'output') as Column;
  return { id: row.getAttribute('data-id')!, col };
}

function cssEscape(s: string): string {
  return s.replace(/["\\]/g, '\\$&');
}
