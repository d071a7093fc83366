// How a task turns an input into a chat turn, in one place for the dataset writer, the trainer
// and the runner: what the model is trained on is exactly what it is later asked. The user
// message is the instruction, the answer format (labels or fields) and the input; the assistant
// message is the expected output verbatim. The chat template itself (<start_of_turn>…) is the
// engine's job. Pure: no vscode, no file system.

import type { TaskKind } from './task';

/** The parts of a task that shape its prompt. */
export interface PromptTask {
  kind: TaskKind;
  instruction: string;
  labels?: readonly string[];
  fields?: readonly string[];
}

/** One chat message in the TRL conversational format. */
export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

/** The user message for `input`: instruction, answer format, then the input after a header. */
export function renderUserMessage(task: PromptTask, input: string): string {
  const head: string[] = [];
  if (task.instruction.trim() !== '') head.push(task.instruction.trim());
  if (task.kind === 'classify' && task.labels?.length) {
    head.push(`Labels: ${task.labels.join(', ')}`);
    head.push('Answer with one label only.');
  } else if (task.kind === 'extract' && task.fields?.length) {
    head.push(`Fields: ${task.fields.join(', ')}`);
    head.push('Answer with a JSON object that has exactly these keys.');
  }
  return `${head.length ? head.join('\n') + '\n\n' : ''}Input:\n${input}`;
}

/** The two messages of one example: rendered user turn, expected output as the assistant turn. */
export function renderMessages(task: PromptTask, input: string, output: string): ChatMessage[] {
  return [
    { role: 'user', content: renderUserMessage(task, input) },
    { role: 'assistant', content: output },
  ];
}

/** An extract task's expected output: a one-line JSON object with the fields in task order. */
export function formatFieldsOutput(fields: readonly string[], values: Readonly<Record<string, string>>): string {
  const ordered: Record<string, string> = {};
  for (const f of fields) ordered[f] = values[f] ?? '';
  return JSON.stringify(ordered);
}

/**
 * Reads a fields answer back (from the panel or the model): the value of each field as a string,
 * or undefined when the text is not a JSON object. Missing fields come back as ''.
 */
export function parseFieldsOutput(fields: readonly string[], text: string): Record<string, string> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const rec = parsed as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const f of fields) {
    const v = rec[f];
    out[f] = v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

/**
 * The label a model answer names: an exact match first, then case- and punctuation-insensitive;
 * undefined when it names none (or, loosely, more than one).
 */
export function matchLabel(labels: readonly string[], answer: string): string | undefined {
  const text = answer.trim();
  const exact = labels.find((l) => l === text);
  if (exact !== undefined) return exact;
  const norm = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
  const a = norm(text);
  const loose = labels.filter((l) => norm(l) === a);
  return loose.length === 1 ? loose[0] : undefined;
}
