// Gemma 3's chat template, rendered exactly as Hugging Face's apply_chat_template renders the Jinja in
// Gemma 3's tokenizer_config.json, then tokenized as HF does (the rendered text encoded with no special
// tokens added, so the "<bos>" text becomes BOS):
//
//   <bos><start_of_turn>user\n{system}\n\n{user | trim}<end_of_turn>\n
//   <start_of_turn>model\n{assistant | trim}<end_of_turn>\n … <start_of_turn>model\n   (generation prompt)
//
// There is no system turn: a leading system message's text (untrimmed) plus "\n\n" goes in front of the
// first turn's content. "assistant" is written "model". Roles must alternate user/assistant from the
// first non-system message; the check is the template's own, so an odd-position role other than "user"
// passes and is written under its own name, exactly as the Jinja does.

import type { Tokenizer } from './tokenizer';
import { jsonForMessage } from '../../common/quote';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** A chat file or request that is not a list of {role, content} messages; names where it came from. */
export class ChatFormatError extends Error {}

const ROLES = new Set<string>(['system', 'user', 'assistant']);

/** Checks untrusted data (a JSON file, a webview message) is a list of chat messages. */
export function parseChatMessages(data: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(data)) throw new ChatFormatError(`${where}: expected a JSON array of {"role","content"} messages`);
  if (data.length === 0) throw new ChatFormatError(`${where}: the message list is empty`);
  return data.map((m: unknown, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new ChatFormatError(`${where}: message ${i} is not an object`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.has(role)) throw new ChatFormatError(`${where}: message ${i} has role ${jsonForMessage(role)}; expected "system", "user" or "assistant"`);
    if (typeof content !== 'string') throw new ChatFormatError(`${where}: message ${i} content must be a string`);
    return { role: role as ChatRole, content };
  });
}

// Python's str.strip() whitespace (Jinja's trim filter): str.isspace() characters. JS's trim() differs
// (it strips U+FEFF, keeps U+001C–U+001F and U+0085).
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

/** Jinja's `trim` filter (Python str.strip()). */
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

/** Character ranges in the rendered text, for masking the loss. */
export interface RenderedChat {
  text: string;
  /** Per assistant turn, [start, end) in `text`: its content through "<end_of_turn>\n". */
  assistantRanges: [number, number][];
}

export interface RenderOptions {
  addGenerationPrompt: boolean;
  /** The tokenizer's BOS text; "<bos>" for Gemma. */
  bosToken?: string;
}

/** Renders messages to the exact text of Gemma 3's Jinja template. */
export function renderChat(messages: ChatMessage[], opts: RenderOptions): RenderedChat {
  let text = opts.bosToken ?? '<bos>';
  let firstUserPrefix = '';
  let loop = messages;
  if (messages.length > 0 && messages[0].role === 'system') {
    firstUserPrefix = messages[0].content + '\n\n';
    loop = messages.slice(1);
  }
  const assistantRanges: [number, number][] = [];
  loop.forEach((m, i) => {
    if ((m.role === 'user') !== (i % 2 === 0)) throw new ChatFormatError('Conversation roles must alternate user/assistant/user/assistant/...');
    const role = m.role === 'assistant' ? 'model' : m.role;
    text += `<start_of_turn>${role}\n` + (i === 0 ? firstUserPrefix : '');
    const start = text.length;
    text += pyStrip(m.content) + '<end_of_turn>\n';
    if (m.role === 'assistant') assistantRanges.push([start, text.length]);
  });
  if (opts.addGenerationPrompt) text += '<start_of_turn>model\n';
  return { text, assistantRanges };
}

/** The prompt ids for generation: BOS, the turns, then "<start_of_turn>model\n", as apply_chat_template(add_generation_prompt=True). */
export function encodeChatPrompt(tok: Tokenizer, messages: ChatMessage[]): number[] {
  return tok.encode(renderChat(messages, { addGenerationPrompt: true, bosToken: bosText(tok) }).text);
}

/** A training sequence and the tokens the loss is computed on. */
export interface TrainingExample {
  ids: number[];
  /** [start, end) token index ranges to train on: each assistant turn's content, "<end_of_turn>" and "\n". */
  trainSpans: [number, number][];
}

/**
 * Renders a conversation including its assistant replies (no generation prompt) and marks the trained
 * tokens. The spans are TRL's assistant_only_loss spans for Gemma 3 (its gemma3_training.jinja wraps
 * `content | trim` + "<end_of_turn>\n" in {% generation %}): the reply, the turn end the model must learn
 * to emit to stop, and the newline after it.
 */
export function encodeTrainingExample(tok: Tokenizer, messages: ChatMessage[]): TrainingExample {
  const r = renderChat(messages, { addGenerationPrompt: false, bosToken: bosText(tok) });
  if (r.assistantRanges.length === 0) throw new ChatFormatError('a training example needs at least one assistant message');
  const { ids, starts } = tok.encodeWithOffsets(r.text);
  const trainSpans: [number, number][] = [];
  let k = 0;
  for (const [from, to] of r.assistantRanges) {
    while (k < ids.length && starts[k] < from) k++;
    const first = k;
    while (k < ids.length && starts[k] < to) k++;
    trainSpans.push([first, k]);
  }
  return { ids, trainSpans };
}

function bosText(tok: Tokenizer): string {
  const bos = tok.specials.bos;
  return (bos === null ? undefined : tok.idToPiece(bos)) ?? '<bos>';
}
