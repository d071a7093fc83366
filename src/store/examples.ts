// One line of examples.jsonl. The line is TRL's conversational format, so TRL, Unsloth and
// MLX-LM train on the file as it is:
//
//   {"messages":[{"role":"user","content":"<instruction…>\n\nInput:\n<input>"},
//                {"role":"assistant","content":"<expected output>"}],
//    "id":"ex-3f9a1c2b","input":"<input>","heldOut":false}
//
// `messages` is derived (prompt.ts renders it from the task and `input`); `id`, `input` and
// `heldOut` are extra top-level keys those tools ignore (TRL drops unused columns, MLX-LM reads
// only "messages"). An empty assistant content means "not labeled yet": trainers skip it.
// Lines written by other tools are read too: conversational lines without `input` (the user
// message becomes the input) and TRL prompt-completion lines. Pure: no vscode.

import { randomBytes } from 'node:crypto';
import { CheckError } from '../common/check';
import { renderMessages, type ChatMessage, type PromptTask } from './prompt';

export const MAX_INPUT_LENGTH = 100_000;
export const MAX_OUTPUT_LENGTH = 20_000;

/** An example as the store and the panel see it. */
export interface Example {
  id: string;
  /** The text the task runs on (the selection it came from). */
  input: string;
  /** The expected answer; '' while unlabeled. */
  output: string;
  /** Pinned to the validation split. */
  heldOut: boolean;
}

/** The JSON object written for one example. */
export interface ExampleLine {
  messages: ChatMessage[];
  id: string;
  input: string;
  heldOut: boolean;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** A fresh example id, e.g. `ex-3f9a1c2b`. */
export function newExampleId(): string {
  return `ex-${randomBytes(4).toString('hex')}`;
}

/** Whether a string can be an example id. */
export function isExampleId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

/** The line written for `ex` under `task`. */
export function exampleToLine(task: PromptTask, ex: Example): ExampleLine {
  return { messages: renderMessages(task, ex.input, ex.output), id: ex.id, input: ex.input, heldOut: ex.heldOut };
}

function text(v: unknown, path: string, max: number): string {
  if (typeof v !== 'string') throw new CheckError(path, `expected a string, got ${v === null ? 'null' : typeof v}`);
  if (v.length > max) throw new CheckError(path, `longer than ${max} characters`);
  return v;
}

function contentOf(messages: unknown[], role: 'user' | 'assistant', path: string): string | undefined {
  for (const [i, m] of messages.entries()) {
    if (typeof m !== 'object' || m === null) throw new CheckError(`${path}[${i}]`, 'expected an object');
    const msg = m as Record<string, unknown>;
    if (msg.role === role) return text(msg.content, `${path}[${i}].content`, MAX_INPUT_LENGTH);
  }
  return undefined;
}

/**
 * Reads one parsed line into an Example (a line without an id gets a fresh one); throws
 * CheckError naming the field when the line is unusable.
 */
export function exampleFromLine(value: unknown): Example {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckError('', 'expected a JSON object');
  }
  const rec = value as Record<string, unknown>;
  let id = newExampleId();
  if (rec.id !== undefined) {
    if (!isExampleId(rec.id)) throw new CheckError('id', 'expected 1-64 letters, digits, "-" or "_"');
    id = rec.id;
  }
  let heldOut = false;
  if (rec.heldOut !== undefined) {
    if (typeof rec.heldOut !== 'boolean') throw new CheckError('heldOut', 'expected true or false');
    heldOut = rec.heldOut;
  }
  let input: string | undefined;
  let output: string | undefined;
  if (rec.messages !== undefined) {
    if (!Array.isArray(rec.messages)) throw new CheckError('messages', 'expected an array');
    output = contentOf(rec.messages, 'assistant', 'messages') ?? '';
    input = contentOf(rec.messages, 'user', 'messages');
  } else if (rec.prompt !== undefined || rec.completion !== undefined) {
    input = text(rec.prompt, 'prompt', MAX_INPUT_LENGTH);
    output = text(rec.completion ?? '', 'completion', MAX_OUTPUT_LENGTH);
  } else {
    throw new CheckError('', 'expected "messages" (TRL conversational) or "prompt"/"completion"');
  }
  // Our own lines keep the raw input beside the rendered user message.
  if (rec.input !== undefined) input = text(rec.input, 'input', MAX_INPUT_LENGTH);
  if (input === undefined) throw new CheckError('messages', 'has no user message');
  if (output.length > MAX_OUTPUT_LENGTH) throw new CheckError('messages', `assistant content longer than ${MAX_OUTPUT_LENGTH} characters`);
  return { id, input, output, heldOut };
}

/** Whether an example has an expected output (only those are trained on). */
export function isLabeled(ex: Example): boolean {
  return ex.output.trim() !== '';
}

/**
 * The train and validation sets: labeled examples only; the pinned ones validate. When none is
 * pinned, the trainer applies its own `valSplit`.
 */
export function splitExamples(examples: readonly Example[]): { train: Example[]; validation: Example[] } {
  const labeled = examples.filter(isLabeled);
  return { train: labeled.filter((e) => !e.heldOut), validation: labeled.filter((e) => e.heldOut) };
}
