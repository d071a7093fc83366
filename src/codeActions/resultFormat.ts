// How a classification reads in the editor: the short text after the selection, the hover with
// every label's probability, and the comment that "Insert" writes. Pure: no vscode.

/** A label's probability as a person reads it: 87%, 3.2%, <0.1%, >99.9%. */
export function formatProbability(p: number): string {
  if (!Number.isFinite(p)) return '?';
  const pct = p * 100;
  if (pct < 0.1) return '<0.1%';
  if (pct > 99.9 && pct < 100) return '>99.9%';
  // One decimal at both ends, so 99.7% never rounds up to a certain-looking 100%.
  return `${pct < 10 || (pct >= 99.5 && pct < 100) ? pct.toFixed(1) : Math.round(pct)}%`;
}

/** The inline text after the selection and the comment "Insert" writes, e.g. `Bug or feature: bug (87%)`. */
export function decorationText(taskName: string, label: string, probability: number): string {
  return `${oneLine(taskName)}: ${oneLine(label)} (${formatProbability(probability)})`;
}

/** Escapes text for a Markdown table cell. */
export function markdownCell(text: string): string {
  return oneLine(text).replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, (c) => `\\${c}`);
}

/** The hover: task, then every label by probability (highest first), in a Markdown table. */
export function hoverMarkdown(taskName: string, scores: readonly { label: string; probability: number }[], ms?: number): string {
  const rows = [...scores].sort((a, b) => b.probability - a.probability).map((s, i) => `| ${i === 0 ? '**' + markdownCell(s.label) + '**' : markdownCell(s.label)} | ${formatProbability(s.probability)} |`);
  const timing = ms === undefined ? '' : ` in ${Math.round(ms)} ms`;
  return [`**Gemma · ${markdownCell(taskName)}**${timing}`, '', '| label | probability |', '| --- | ---: |', ...rows].join('\n');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
