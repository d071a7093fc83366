// The examples table: input, expected output (a label dropdown for classify, one field per key
// for extract with fields, free text otherwise) with the model's answer right under it as a
// suggestion to accept or correct, the held-out toggle, and remove. Keyboard: Alt+↑/↓ moves to the
// same column of the previous/next example (plain ↑/↓ too in one-line fields), Ctrl+Enter accepts
// the row's suggestion. Below ~480 px (a panel beside the editor) each row stacks into a card (CSS).

import type { ExampleView, PanelState, Suggestion } from '../src/protocol/webview';
import { formatFieldsOutput, parseFieldsOutput } from '../src/store/prompt';
import { CheckElement, h, keepDropdownInView, refocus, ValueElement } from './dom';
import { hasLabel } from '../src/panel/trainReadiness';
import { plural } from '../src/plural';
import { suggestionStatus } from './editBuffer';

export type Column = 'input' | 'output' | 'accept' | 'held' | 'remove';

export interface TableEvents {
  /** A field changed; `now` when the edit is finished (change/blur), else while typing. */
  edit(id: string, patch: Partial<Pick<ExampleView, 'input' | 'output' | 'heldOut'>>, now: boolean): void;
  /** The user took the model's answer as the expected output. */
  accept(id: string, output: string): void;
  /** Accept every suggestion of an example that has no expected output yet. */
  acceptAll(): void;
  /** Ask the model again for the unlabeled examples. */
  suggest(): void;
  remove(id: string): void;
  add(): void;
  focus(id: string, col: Column): void;
}

/** What the table shows besides the examples: suggestions and whether the model is busy. */
export interface TableView {
  suggestions: ReadonlyMap<string, Suggestion>;
  /** Examples whose suggestion was asked for and has not arrived. */
  waiting: ReadonlySet<string>;
  /** Training runs: the model cannot answer now. */
  training: boolean;
}

export class ExamplesTable {
  readonly element: HTMLElement;
  private readonly body: HTMLTableSectionElement;
  private readonly tools: HTMLElement;
  private state: PanelState | undefined;
  /** Each drawn example's row and the parts an edit redraws in place. */
  private readonly rows = new Map<string, { row: HTMLTableRowElement; n: number; output: HTMLElement; line: HTMLElement }>();

  constructor(private readonly events: TableEvents) {
    this.body = h('tbody');
    const table = h('table', { class: 'examples', 'aria-label': 'Examples' }, h('thead'), this.body);
    const add = h('vscode-button', { id: 'add-example', secondary: true }, 'Add example');
    add.addEventListener('click', () => this.events.add());
    this.tools = h('div', { class: 'row-actions table-tools' });
    this.element = h('section', { class: 'examples-section', 'aria-label': 'Examples' }, this.tools, table, h('div', { class: 'row-actions' }, add));
    table.addEventListener('keydown', (e) => this.onKey(e));
    table.addEventListener('focusin', (e) => {
      const at = locate(e.target);
      if (at) this.events.focus(at.id, at.col);
    });
  }

  /** Rebuilds the table from `state`; `examples` are its examples with the unconfirmed edits laid over. */
  render(state: PanelState, examples: readonly ExampleView[], view: TableView): void {
    this.state = state;
    const showSuggest = state.capabilities.suggest;
    this.refreshTools(state, examples, view);
    const head = this.element.querySelector('thead')!;
    head.replaceChildren(
      h('tr', {}, h('th', { class: 'num' }, '#'), h('th', { class: 'input' }, 'Input'), h('th', { class: 'output' }, showSuggest ? 'Expected output · model\'s answer' : 'Expected output'), h('th', { class: 'narrow held' }, 'Held out'), h('th', { class: 'narrow remove' }, h('span', { class: 'sr-only' }, 'Remove'))),
    );
    this.rows.clear();
    const rows = examples.map((ex, i) => this.row(ex, i, view));
    if (rows.length === 0) {
      rows.push(h('tr', { class: 'empty-row' }, h('td', { colspan: 5, class: 'empty' }, 'No examples yet. Select text in an editor and run "Gemma: Fine-tune on selection", or add one here.')));
    }
    this.body.replaceChildren(...rows);
  }

  /**
   * Redraws one example after an edit or a new answer of the model without rebuilding its row: the
   * unlabeled mark, the model's answer (the line under the field, greyed out in an empty field), and,
   * with `outputChanged` (Accept set it, not the field), the expected output.
   */
  refreshRow(ex: ExampleView, view: TableView, outputChanged = false): void {
    const r = this.rows.get(ex.id);
    if (!r) return;
    r.row.classList.toggle('unlabeled', !hasLabel(ex));
    if (outputChanged) {
      const editor = this.outputEditor(ex, r.n, this.suggestionFor(ex.id, view));
      r.output.replaceWith(editor);
      r.output = editor;
    }
    const suggestion = this.suggestionFor(ex.id, view);
    if (!outputChanged) showSuggestionIn(r.output, this.state!.task, suggestion);
    const line = this.suggestionLine(ex, r.n, suggestion, this.isWaiting(ex.id, view));
    r.line.replaceChildren(...(line ? [line] : []));
  }

  /** Puts the keyboard focus on a cell (after a re-render or a move). */
  focusCell(id: string, col: Column): boolean {
    const row = this.body.querySelector<HTMLElement>(`tr[data-id="${cssEscape(id)}"]`);
    // An accepted suggestion's button is gone after the re-render: its output editor takes the focus.
    const target = row?.querySelector<HTMLElement>(`[data-col="${col}"]`) ?? (col === 'accept' ? row?.querySelector<HTMLElement>('[data-col="output"]') : null);
    if (!target) return false;
    // A <vscode-…> element just created has no shadow content until lit's first update.
    refocus(target);
    return true;
  }

  /** Redraws "Suggest answers" and "Accept N suggestions" for the examples as they are now. */
  refreshTools(state: PanelState, examples: readonly ExampleView[], view: TableView): void {
    if (!state.capabilities.suggest) {
      this.tools.replaceChildren();
      return;
    }
    const focused = (document.activeElement as HTMLElement | null)?.id;
    const unlabeled = examples.filter((e) => !hasLabel(e));
    const acceptable = unlabeled.filter((e) => view.suggestions.has(e.id)).length;
    const busy = view.waiting.size > 0;
    // Not disabled while an answer is on its way (a disabled button drops the keyboard focus); a click then does nothing.
    const suggest = h('vscode-button', { id: 'suggest', secondary: true, disabled: view.training || unlabeled.length === 0, 'aria-busy': busy ? 'true' : undefined, title: 'Ask the model (with the task\'s adapter, if trained) for its answer to every unlabeled example' }, view.waiting.size > 0 ? 'Asking the model…' : 'Suggest answers');
    suggest.addEventListener('click', () => this.events.suggest());
    const acceptAll = h('vscode-button', { id: 'accept-all', secondary: true, disabled: acceptable === 0, title: 'Use the model\'s answer as the expected output of every unlabeled example that has one' }, acceptable > 0 ? `Accept ${plural(acceptable, 'suggestion')}` : 'Accept suggestions');
    acceptAll.addEventListener('click', () => this.events.acceptAll());
    this.tools.replaceChildren(suggest, acceptAll);
    // A redrawn button takes back the focus its predecessor had.
    if (focused === 'suggest' || focused === 'accept-all') refocus(document.getElementById(focused));
  }

  private suggestionFor(id: string, view: TableView): Suggestion | undefined {
    return this.state?.capabilities.suggest ? view.suggestions.get(id) : undefined;
  }

  private isWaiting(id: string, view: TableView): boolean {
    return !!this.state?.capabilities.suggest && view.waiting.has(id);
  }

  private row(ex: ExampleView, index: number, view: TableView): HTMLTableRowElement {
    const n = index + 1;
    const suggestion = this.suggestionFor(ex.id, view);
    const input = h('vscode-textarea', { 'data-col': 'input', rows: 3, resize: 'vertical', 'aria-label': `Input of example ${n}`, label: `Input of example ${n}` }) as ValueElement;
    input.value = ex.input;
    input.addEventListener('input', () => this.events.edit(ex.id, { input: input.value }, false));
    input.addEventListener('change', () => this.events.edit(ex.id, { input: input.value }, true));

    const held = h('vscode-checkbox', { 'data-col': 'held', 'aria-label': `Hold out example ${n} for validation`, title: 'Held out: used for validation, not training' }, h('span', { class: 'narrow-label' }, 'Held out')) as CheckElement;
    held.checked = ex.heldOut;
    held.addEventListener('change', () => this.events.edit(ex.id, { heldOut: held.checked }, true));

    const remove = h('vscode-button', { 'data-col': 'remove', secondary: true, title: 'Remove this example', 'aria-label': `Remove example ${n}` }, '✕');
    remove.addEventListener('click', () => this.events.remove(ex.id));

    const editor = this.outputEditor(ex, n, suggestion);
    const lineSlot = h('div', { class: 'suggestion-slot' });
    const line = this.suggestionLine(ex, n, suggestion, this.isWaiting(ex.id, view));
    if (line) lineSlot.append(line);
    const output = h('td', { class: 'output' }, editor, lineSlot);
    const cells: HTMLElement[] = [h('td', { class: 'num' }, String(n)), h('td', { class: 'input' }, input), output, h('td', { class: 'narrow held' }, held), h('td', { class: 'narrow remove' }, remove)];
    const row = h('tr', { 'data-id': ex.id, class: hasLabel(ex) ? undefined : 'unlabeled' }, ...cells);
    this.rows.set(ex.id, { row, n, output: editor, line: lineSlot });
    return row;
  }

  /** The expected-output editor of one example: a label dropdown, one field per key, or free text. */
  private outputEditor(ex: ExampleView, n: number, suggestion: Suggestion | undefined): HTMLElement {
    const task = this.state!.task;
    const label = `Expected output of example ${n}`;
    if (task.kind === 'classify' && task.labels) {
      const select = h('vscode-single-select', { 'data-col': 'output', 'aria-label': label, label }) as ValueElement;
      const options = ['', ...task.labels];
      if (ex.output !== '' && !task.labels.includes(ex.output)) options.push(ex.output); // a label since removed
      for (const o of options) {
        const opt = h('vscode-option', { value: o, selected: o === ex.output }, o === '' ? '— choose a label —' : task.labels.includes(o) ? o : `${o} (not a label)`);
        select.append(opt);
      }
      keepDropdownInView(select);
      select.addEventListener('change', () => this.events.edit(ex.id, { output: select.value }, true));
      return select;
    }
    if (task.kind === 'extract' && task.fields && task.fields.length > 0) {
      const fields = task.fields;
      const values = parseFieldsOutput(fields, ex.output) ?? Object.fromEntries(fields.map((f) => [f, '']));
      const inputs = fields.map((f, j) => {
        const tf = h('vscode-textfield', { 'data-col': j === 0 ? 'output' : undefined, 'data-field': f, 'aria-label': `${f} of example ${n}`, label: `${f} of example ${n}` }) as ValueElement;
        tf.value = values[f] ?? '';
        return tf;
      });
      const collect = () => formatFieldsOutput(fields, Object.fromEntries(inputs.map((tf, j) => [fields[j], tf.value])));
      for (const tf of inputs) {
        tf.addEventListener('input', () => this.events.edit(ex.id, { output: collect() }, false));
        tf.addEventListener('change', () => this.events.edit(ex.id, { output: collect() }, true));
      }
      const editor = h('div', { class: 'fields' }, ...inputs.map((tf, j) => h('label', { class: 'field' }, h('span', {}, fields[j]), tf)));
      showSuggestionIn(editor, task, suggestion);
      return editor;
    }
    const area = h('vscode-textarea', { 'data-col': 'output', rows: 2, resize: 'vertical', 'aria-label': label, label }) as ValueElement;
    area.value = ex.output;
    area.addEventListener('input', () => this.events.edit(ex.id, { output: area.value }, false));
    area.addEventListener('change', () => this.events.edit(ex.id, { output: area.value }, true));
    showSuggestionIn(area, task, suggestion);
    return area;
  }

  /**
   * The model's answer under the expected output: accept it while the example has no label, or see
   * whether it agrees with the label given (no Accept then: the user's choice stands).
   */
  private suggestionLine(ex: ExampleView, n: number, s: Suggestion | undefined, waiting: boolean): HTMLElement | null {
    const status = suggestionStatus(ex, s, waiting);
    if (status === 'none') return null;
    if (status === 'waiting' || !s) return h('div', { class: 'suggestion muted' }, 'Asking the model…');
    const prob = s.probability !== undefined ? ` · ${Math.round(s.probability * 100)}%` : '';
    if (status === 'agrees') return h('div', { class: 'suggestion agrees' }, h('span', { class: 'right', 'aria-hidden': 'true' }, '✓'), `the model answers the same${prob}`);
    // A long (or runaway) answer is cut to a few lines; the whole one is in the tooltip and on Accept.
    const shown = s.output.trim() === '' ? '(empty answer)' : clip(s.output, MAX_SHOWN_ANSWER);
    const answer = h('strong', { title: s.output.length > MAX_SHOWN_ANSWER ? s.output.slice(0, 2000) : undefined }, shown);
    if (status === 'differs') return h('div', { class: 'suggestion differs' }, h('span', { class: 'suggested' }, 'Model said: ', answer, prob));
    const accept = h(
      'vscode-button',
      { 'data-col': 'accept', secondary: true, title: 'Use the model\'s answer as the expected output (Ctrl+Enter)', 'aria-label': `Accept the model's answer for example ${n}: ${shown.slice(0, 80)}` },
      'Accept',
    );
    accept.addEventListener('click', () => this.events.accept(ex.id, s.output));
    return h('div', { class: 'suggestion open' }, h('span', { class: 'suggested' }, 'Model suggests: ', answer, prob), accept);
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

/** Characters of a model's answer shown under an example. */
const MAX_SHOWN_ANSWER = 200;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function cssEscape(s: string): string {
  return s.replace(/["\\]/g, '\\$&');
}

/**
 * Shows the model's answer greyed out in an empty expected-output editor (free text: the whole answer;
 * extract: each field's value, else the field's name), set on the drawn elements so that an answer
 * arriving while the user types leaves the field, its focus and its caret as they are.
 */
function showSuggestionIn(editor: HTMLElement, task: PanelState['task'], suggestion: Suggestion | undefined): void {
  if (task.kind === 'classify' && task.labels) return; // a dropdown: the line under it says the answer
  if (task.kind === 'extract' && task.fields && task.fields.length > 0) {
    const suggested = suggestion ? parseFieldsOutput(task.fields, suggestion.output) : null;
    for (const tf of Array.from(editor.querySelectorAll<HTMLElement>('[data-field]'))) {
      const f = tf.dataset.field!;
      tf.setAttribute('placeholder', suggested?.[f] || f);
    }
    return;
  }
  if (suggestion?.output) editor.setAttribute('placeholder', suggestion.output);
  else editor.removeAttribute('placeholder');
}
