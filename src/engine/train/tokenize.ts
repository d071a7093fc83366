// Turns examples into token ids and aligned labels (-100 where no loss), the one form the batcher
// takes. Text is rendered by the model's chat template, which also reports where the assistant's
// tokens are; the loss covers exactly those spans, never positions guessed from template markers.

import type { ChatMessage, TrainExample } from './examples';
import { DataError } from './examples';
import type { Tokenizer } from '../model/tokenizer';
import { encodeTrainingExample } from '../model/chatTemplate';
import { shownName } from '../../common/quote';

/** What training needs from the model's tokenizer and chat template (C's tokenizer provides it). */
export interface ExampleRenderer {
  /** The conversation with the chat template (BOS included, no generation prompt), and the
   *  [start, end) token ranges of the assistant's turns that the loss should cover. */
  renderChat(messages: ChatMessage[]): { ids: number[]; assistantSpans: Array<[number, number]> };
  /** Plain text to ids, no special tokens. */
  encode(text: string): number[];
  bosId: number;
  eosId: number;
  vocabSize: number;
}

/** One example as ids with labels aligned to them (-100 = ignored; HF shifts at the loss). */
export interface TokenizedExample {
  id: string;
  inputIds: number[];
  labels: number[];
}

export const IGNORE = -100;

/** Tokenises one example; a renderer is needed unless it is pre-tokenised. */
export function tokenizeExample(ex: TrainExample, renderer: ExampleRenderer | undefined, maxTokens: number): TokenizedExample {
  let inputIds: number[], labels: number[];
  if (ex.kind === 'tokens') {
    inputIds = ex.inputIds;
    labels = ex.labels;
  } else {
    if (!renderer) throw new DataError(`example ${shownName(ex.id)} (line ${ex.line}) is text: a model with a tokenizer is needed`);
    if (ex.kind === 'conversation') ({ inputIds, labels } = fromChat(ex.messages, renderer, 0));
    else if (typeof ex.prompt === 'string' && typeof ex.completion === 'string') {
      // TRL's plain-text prompt-completion: BOS + prompt + completion + EOS, loss on completion + EOS.
      const p = [renderer.bosId, ...renderer.encode(ex.prompt)];
      const c = [...renderer.encode(ex.completion), renderer.eosId];
      inputIds = [...p, ...c];
      labels = [...p.map(() => IGNORE), ...c];
    } else {
      // Conversational prompt-completion: the loss covers only the completion's assistant turns.
      const prompt = ex.prompt as ChatMessage[], completion = ex.completion as ChatMessage[];
      ({ inputIds, labels } = fromChat([...prompt, ...completion], renderer, prompt.length));
    }
  }
  const vocab = renderer?.vocabSize;
  if (vocab !== undefined) {
    const bad = inputIds.find((t) => t >= vocab);
    if (bad !== undefined) throw new DataError(`example ${shownName(ex.id)} (line ${ex.line}): token id ${bad} is outside the vocabulary (${vocab})`);
  }
  if (inputIds.length > maxTokens) {
    inputIds = inputIds.slice(0, maxTokens);
    labels = labels.slice(0, maxTokens);
  }
  if (!labels.slice(1).some((l) => l !== IGNORE)) throw new DataError(`example ${shownName(ex.id)} (line ${ex.line}): no assistant tokens to learn within ${maxTokens} tokens`);
  return { id: ex.id, inputIds, labels };
}

function fromChat(messages: ChatMessage[], r: ExampleRenderer, firstTrained: number): { inputIds: number[]; labels: number[] } {
  const { ids, assistantSpans } = r.renderChat(messages);
  // With a prompt part, only spans of assistant turns at index >= firstTrained count; the renderer
  // returns one span per assistant turn in order, so skip those that belong to the prompt.
  const promptAssistantTurns = messages.slice(0, firstTrained).filter((m) => m.role === 'assistant' || m.role === 'model').length;
  const labels = ids.map(() => IGNORE);
  for (const [s, e] of assistantSpans.slice(promptAssistantTurns)) {
    if (!(s >= 0 && e <= ids.length && s < e)) throw new DataError(`chat template gave a bad assistant span [${s}, ${e}) for ${ids.length} tokens`);
    for (let t = s; t < e; t++) labels[t] = ids[t];
  }
  return { inputIds: ids, labels };
}

/** The renderer for a model's tokenizer: Gemma's chat template with TRL's assistant-only spans. */
export function modelRenderer(tok: Tokenizer, cfg: { bosId: number; eosId: number; vocabSize: number }): ExampleRenderer {
  return {
    bosId: tok.specials.bos ?? cfg.bosId,
    eosId: tok.specials.eos ?? cfg.eosId,
    vocabSize: cfg.vocabSize,
    encode: (text) => tok.encode(text),
    renderChat(messages) {
      const msgs = messages.map((m) => ({ role: (m.role === 'model' ? 'assistant' : m.role) as 'system' | 'user' | 'assistant', content: m.content }));
      const r = encodeTrainingExample(tok, msgs);
      return { ids: r.ids, assistantSpans: r.trainSpans };
    },
  };
}
