// Training examples from JSONL files in the three formats other tools write:
//   TRL conversational   {"messages":[{"role":"user","content":…},{"role":"assistant","content":…}]}
//   TRL prompt-completion {"prompt":…, "completion":…}   (each a string or a list of messages)
//   pre-tokenised        {"input_ids":[…], "labels":[…]}  (labels aligned with input_ids, -100 ignored;
//                         the loss shifts them, as Hugging Face does)
// An optional "id" (string or number) names an example, e.g. to pin it into the validation split.
// A malformed line is an error naming file:line and the problem; nothing is skipped silently.

import * as fs from 'node:fs';
import { describeValue, errorText, quote } from '../../common/quote';

export interface ChatMessage {
  role: string;
  content: string;
}

interface ExampleBase {
  /** The example's "id", or `#<line>` when it has none. */
  id: string;
  /** 1-based line in its file, for messages. */
  line: number;
}

export type TrainExample =
  | (ExampleBase & { kind: 'conversation'; messages: ChatMessage[] })
  | (ExampleBase & { kind: 'prompt-completion'; prompt: string | ChatMessage[]; completion: string | ChatMessage[] })
  | (ExampleBase & { kind: 'tokens'; inputIds: number[]; labels: number[] });

export class DataError extends Error {}

/** Parses JSONL text (named `file` in errors) into examples. */
export function parseExamples(text: string, file: string): TrainExample[] {
  const out: TrainExample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '') continue;
    const where = `${file}:${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      throw new DataError(`${where}: not valid JSON (${errorText(e)})`);
    }
    out.push(parseExample(json, where, i + 1));
  }
  if (out.length === 0) throw new DataError(`${file}: no examples`);
  const seen = new Map<string, number>();
  for (const ex of out) {
    const prev = seen.get(ex.id);
    if (prev !== undefined) throw new DataError(`${file}:${ex.line}: id ${quote(ex.id)} is used again (first at line ${prev})`);
    seen.set(ex.id, ex.line);
  }
  return out;
}

/** Reads a JSONL file of examples. */
export function readExamples(file: string): TrainExample[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseExamples(text, file);
}

function parseExample(json: unknown, where: string, line: number): TrainExample {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new DataError(`${where}: a line must be a JSON object`);
  const o = json as Record<string, unknown>;
  let id = `#${line}`;
  if (o.id !== undefined) {
    if (typeof o.id !== 'string' && typeof o.id !== 'number') throw new DataError(`${where}: "id" must be a string or a number`);
    id = String(o.id);
  }
  if ('messages' in o) {
    const messages = parseMessages(o.messages, `${where}: "messages"`);
    if (!messages.some((m) => m.role === 'assistant' || m.role === 'model')) throw new DataError(`${where}: "messages" has no assistant turn to learn from`);
    return { kind: 'conversation', id, line, messages };
  }
  if ('prompt' in o || 'completion' in o) {
    if (!('prompt' in o) || !('completion' in o)) throw new DataError(`${where}: prompt-completion needs both "prompt" and "completion"`);
    const prompt = typeof o.prompt === 'string' ? o.prompt : parseMessages(o.prompt, `${where}: "prompt"`);
    const completion = typeof o.completion === 'string' ? o.completion : parseMessages(o.completion, `${where}: "completion"`);
    if (typeof prompt !== typeof completion) throw new DataError(`${where}: "prompt" and "completion" must both be strings or both message lists`);
    return { kind: 'prompt-completion', id, line, prompt, completion };
  }
  if ('input_ids' in o) {
    const inputIds = intArray(o.input_ids, `${where}: "input_ids"`, 0);
    if (inputIds.length < 2) throw new DataError(`${where}: "input_ids" needs at least 2 tokens`);
    let labels: number[];
    if (o.labels === undefined) labels = inputIds.slice();
    else {
      labels = intArray(o.labels, `${where}: "labels"`, -100);
      if (labels.length !== inputIds.length) throw new DataError(`${where}: "labels" has ${labels.length} entries for ${inputIds.length} input_ids`);
      if (labels.some((l) => l < 0 && l !== -100)) throw new DataError(`${where}: "labels" may hold token ids or -100 only`);
    }
    if (!labels.slice(1).some((l) => l !== -100)) throw new DataError(`${where}: no label after the first position: nothing to learn`);
    return { kind: 'tokens', id, line, inputIds, labels };
  }
  throw new DataError(`${where}: unknown format: expected "messages", "prompt"/"completion" or "input_ids"`);
}

function parseMessages(v: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new DataError(`${where} must be a non-empty list of messages`);
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null) throw new DataError(`${where}[${i}] is not an object`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !['system', 'user', 'assistant', 'model'].includes(role)) {
      throw new DataError(`${where}[${i}].role must be system, user or assistant, got ${describeValue(role)}`);
    }
    return { role, content: contentText(content, `${where}[${i}].content`) };
  });
}

// TRL allows content as a string or as a list of parts [{"type":"text","text":…}].
function contentText(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v.map((p, i) => {
      const part = p as Record<string, unknown>;
      if (typeof part !== 'object' || part === null || part.type !== 'text' || typeof part.text !== 'string') {
        throw new DataError(`${where}[${i}] must be {"type":"text","text":…} (only text is supported)`);
      }
      return part.text;
    }).join('');
  }
  throw new DataError(`${where} must be a string or a list of text parts`);
}

function intArray(v: unknown, where: string, min: number): number[] {
  if (!Array.isArray(v)) throw new DataError(`${where} must be a list of integers`);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x >= 2 ** 31) throw new DataError(`${where}[${i}] = ${describeValue(x)} is not a valid token id`);
  }
  return v as number[];
}
