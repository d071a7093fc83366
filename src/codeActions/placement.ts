// Where a task's answer goes in the text: an extraction on new lines below the selection (or in
// its place), a classification comment on a new line above it, both indented like the selection's
// first line. Positions are plain line/character pairs. Pure: no vscode.

export interface Pos {
  line: number;
  character: number;
}

/** The last line the selection really covers: a selection ending at column 0 stops on the line before. */
export function lastSelectedLine(start: Pos, end: Pos): number {
  return end.character === 0 && end.line > start.line ? end.line - 1 : end.line;
}

/** The leading whitespace of a line. */
export function indentOf(lineText: string): string {
  return /^[ \t]*/.exec(lineText)?.[0] ?? '';
}

/** `text` with every line after the first indented by `indent`, and `eol` line ends. */
export function indentLines(text: string, indent: string, eol: string): string {
  return text
    .split(/\r?\n/)
    .map((l, i) => (i === 0 || l === '' ? l : indent + l))
    .join(eol);
}

/** The insertion that puts `text` on new lines right below the selection. */
export function insertBelow(start: Pos, end: Pos, lineText: (line: number) => string, text: string, eol: string): { at: Pos; text: string } {
  const last = lastSelectedLine(start, end);
  const indent = indentOf(lineText(start.line));
  return { at: { line: last, character: lineText(last).length }, text: `${eol}${indent}${indentLines(text, indent, eol)}` };
}

/** The insertion that puts a one-line `comment` on a new line above the selection. */
export function insertAbove(start: Pos, lineText: (line: number) => string, comment: string, eol: string): { at: Pos; text: string } {
  return { at: { line: start.line, character: 0 }, text: `${indentOf(lineText(start.line))}${comment}${eol}` };
}
