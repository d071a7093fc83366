// What the engine is asked when a task runs on a selection: the same user message the task's
// examples were trained on (store/prompt.ts renders both), the task's adapter, and the answer
// format (classify: the labels; extract: the fields, or free text). Shared by the code actions,
// "Gemma: Run task on selection" and the latency bench. Pure: no vscode.

import type { ParamsOf, ResultOf } from '../protocol/engine';
import { formatFieldsOutput, renderUserMessage } from '../store/prompt';
import type { TaskConfig } from '../store/task';
import { quote } from '../common/quote';

/** Tokens a free-text extract may generate (the answer to a 10–20 example task is short). */
export const FREE_TEXT_MAX_TOKENS = 256;
/** Tokens a fields extract may generate. */
export const FIELDS_MAX_TOKENS = 512;

/** The chat messages for `input`: one user turn, exactly as in examples.jsonl. */
export function taskMessages(task: TaskConfig, input: string): ParamsOf<'classify'>['messages'] {
  return [{ role: 'user', content: renderUserMessage(task, input) }];
}

/**
 * The engine's classify params for a classify task. The user message up to the input (instruction,
 * labels) is the same for every request of the task, so it goes as sharedPrefix: the worker keeps
 * the model's state after it and runs only the input and the labels.
 */
export function classifyParams(task: TaskConfig, input: string, adapter: string | undefined): ParamsOf<'classify'> {
  if (task.kind !== 'classify' || !task.labels?.length) throw new Error(`task ${quote(task.name)} is not a classify task with labels`);
  return { messages: taskMessages(task, input), labels: [...task.labels], sharedPrefix: renderUserMessage(task, ''), ...(adapter ? { adapter } : {}) };
}

/** How an extract task is run: a JSON object with the task's fields, or free text. */
export type ExtractRequest =
  | { method: 'extract'; params: ParamsOf<'extract'> }
  | { method: 'generate'; params: ParamsOf<'generate'> };

/** The prompt of a generating task request, greedy, with the task's fixed start as sharedPrefix (see classifyParams). */
function taskPrompt(task: TaskConfig, input: string, adapter: string | undefined) {
  return { messages: taskMessages(task, input), sharedPrefix: renderUserMessage(task, ''), temperature: 0, ...(adapter ? { adapter } : {}) };
}

/** The engine's generate params for a free-text answer (an extract task without fields, a rewrite task). */
export function freeTextParams(task: TaskConfig, input: string, adapter: string | undefined): ParamsOf<'generate'> {
  return { ...taskPrompt(task, input, adapter), maxTokens: FREE_TEXT_MAX_TOKENS };
}

/** The engine request for an extract task (greedy, so a selection always gives the same answer). */
export function extractRequest(task: TaskConfig, input: string, adapter: string | undefined): ExtractRequest {
  if (task.kind !== 'extract') throw new Error(`task ${quote(task.name)} is not an extract task`);
  if (task.fields?.length) {
    return { method: 'extract', params: { ...taskPrompt(task, input, adapter), fields: task.fields.map((name) => ({ name })), maxTokens: FIELDS_MAX_TOKENS } };
  }
  return { method: 'generate', params: freeTextParams(task, input, adapter) };
}

/** The text an extract result inserts: the fields as the task's one-line JSON, or the generated text. */
export function extractedText(task: TaskConfig, result: ResultOf<'extract'> | ResultOf<'generate'>): string {
  if ('values' in result && task.fields?.length) {
    return formatFieldsOutput(task.fields, Object.fromEntries(result.values.map((v) => [v.name, v.value])));
  }
  return result.text.trim();
}
