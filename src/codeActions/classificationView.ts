// A classification shown where it was asked: a hover opened at the cursor as the answer arrives (so it
// is where the user looks, at any editor width and horizontal scroll) with every label's probability
// and an "Insert as comment" link, then a line that stays above the selection (a CodeLens with
// "Insert as comment" beside it; hovering the selection shows the hover again), and the same insert as
// a code action. With CodeLens turned off (editor.codeLens) the short text goes after the selection. A result describes
// the text it was computed on, so any edit to the document drops its results rather than leave them
// beside text they no longer describe.

import * as vscode from 'vscode';
import { DisposableStore } from '../common/disposables';
import { decorationText, hoverMarkdown } from './resultFormat';

export const INSERT_CLASSIFICATION = 'gemmaTune.insertClassification';

/** One classification of a range of a document. */
export interface Classification {
  uri: vscode.Uri;
  range: vscode.Range;
  /** The document version it was computed on. */
  version: number;
  taskName: string;
  label: string;
  probability: number;
  scores: { label: string; probability: number }[];
  ms: number;
}

export class ClassificationView implements vscode.Disposable, vscode.CodeLensProvider, vscode.HoverProvider {
  private readonly decoration = vscode.window.createTextEditorDecorationType({
    after: { margin: '0 0 0 1.5em', color: new vscode.ThemeColor('editorCodeLens.foreground'), fontStyle: 'italic' },
    rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
  });
  private readonly byDocument = new Map<string, Classification[]>();
  private readonly lensesChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.lensesChanged.event;
  private readonly disposables = new DisposableStore();

  constructor() {
    this.disposables.addAll(
      this.decoration,
      this.lensesChanged,
      // Every language: "Run task on selection" classifies in any file.
      vscode.languages.registerCodeLensProvider('*', this),
      vscode.languages.registerHoverProvider('*', this),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('editor.codeLens')) for (const ed of vscode.window.visibleTextEditors) this.renderEditor(ed);
      }),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length > 0 && this.byDocument.delete(e.document.uri.toString())) this.render(e.document.uri);
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.byDocument.delete(d.uri.toString())),
      // Decorations belong to an editor: a document shown again in a new editor gets them back.
      vscode.window.onDidChangeVisibleTextEditors((editors) => {
        for (const e of editors) this.renderEditor(e);
      }),
    );
  }

  /** Shows a result (replacing one for the same range). */
  show(c: Classification): void {
    const key = c.uri.toString();
    const list = (this.byDocument.get(key) ?? []).filter((x) => !x.range.isEqual(c.range));
    list.push(c);
    this.byDocument.set(key, list);
    this.render(c.uri);
    // The answer opens at the cursor when the cursor is on the text it describes (a hover VS Code places in view).
    const editor = vscode.window.activeTextEditor;
    if (editor?.document.uri.toString() === key && c.range.contains(editor.selection.active)) void vscode.commands.executeCommand('editor.action.showHover');
  }

  /** Every label's probability, over the text a result describes (its range, both ends included). */
  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | undefined {
    const c = (this.byDocument.get(document.uri.toString()) ?? []).find((x) => x.version === document.version && x.range.contains(position));
    return c && new vscode.Hover(hover(c), c.range);
  }

  /** The current result for a range of a document (one that ends on the same line counts), if any. */
  at(document: vscode.TextDocument, range: vscode.Range): Classification | undefined {
    const list = this.byDocument.get(document.uri.toString()) ?? [];
    return list.find((c) => c.version === document.version && (c.range.isEqual(range) || c.range.contains(range) || range.contains(c.range)));
  }

  /** The result whose range starts on `line`, if any (for the hover's insert link). */
  onLine(uri: vscode.Uri, line: number): Classification | undefined {
    return (this.byDocument.get(uri.toString()) ?? []).find((c) => c.range.start.line === line);
  }

  /** The line above each shown result: the answer, and "Insert as comment". */
  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    const list = (this.byDocument.get(document.uri.toString()) ?? []).filter((c) => c.version === document.version);
    return list.flatMap((c) => {
      const at = new vscode.Range(c.range.start.line, 0, c.range.start.line, 0);
      return [
        // No command: the lens reads as text (hovering the selection lists every label).
        new vscode.CodeLens(at, { title: `Gemma · ${decorationText(c.taskName, c.label, c.probability)}`, command: '' }),
        new vscode.CodeLens(at, { title: 'Insert as comment', command: INSERT_CLASSIFICATION, arguments: [{ uri: c.uri.toString(), line: c.range.start.line }], tooltip: 'Insert the label above the selection' }),
      ];
    });
  }

  dispose(): void {
    this.disposables.dispose();
  }

  private render(uri: vscode.Uri): void {
    for (const e of vscode.window.visibleTextEditors) if (e.document.uri.toString() === uri.toString()) this.renderEditor(e);
    this.lensesChanged.fire();
  }

  private renderEditor(editor: vscode.TextEditor): void {
    // With CodeLens on, the answer is above the selection (after the line it may be out of sight in a
    // narrow editor); with it off, the text after the selection is all that stays in view.
    const lenses = vscode.workspace.getConfiguration('editor', editor.document).get<boolean>('codeLens', true);
    const list = lenses ? [] : (this.byDocument.get(editor.document.uri.toString()) ?? []);
    editor.setDecorations(this.decoration, list.map((c) => ({ range: c.range, renderOptions: { after: { contentText: `Gemma · ${decorationText(c.taskName, c.label, c.probability)}` } } })));
  }
}

function hover(c: Classification): vscode.MarkdownString {
  const args = encodeURIComponent(JSON.stringify([{ uri: c.uri.toString(), line: c.range.start.line }]));
  const md = new vscode.MarkdownString(`${hoverMarkdown(c.taskName, c.scores, c.ms)}\n\n[Insert as comment](command:${INSERT_CLASSIFICATION}?${args} "Insert the label above the selection")`);
  // Only our own insert command may run from this hover.
  md.isTrusted = { enabledCommands: [INSERT_CLASSIFICATION] };
  return md;
}
