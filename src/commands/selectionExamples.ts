// Which examples a selection makes: each selection (several with multi-cursor) is one example, or,
// for a selection spanning several lines with the task's choice "lines", each non-blank line is one
// (data with one item per line: log lines, tickets, CSV rows). Pure: no vscode.

import type { SelectionMode } from '../store/task';

/** The non-blank lines of a selected text, trimmed. */
export function selectionLines(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
}

/** Whether any selected text holds more than one non-blank line (then "one example per line" is a choice). */
export function spansLines(texts: readonly string[]): boolean {
  return texts.some((t) => selectionLines(t).length > 1);
}

/** The example inputs the selected texts make in `mode`. */
export function selectionExamples(texts: readonly string[], mode: SelectionMode): string[] {
  return mode === 'lines' ? texts.flatMap(selectionLines) : [...texts];
}
