// Where a model's tokenizer comes from, as the model loader finds it: a Hugging Face tokenizer.json next to
// the weights, or the SentencePiece vocabulary embedded in a GGUF file's `tokenizer.ggml.*` metadata.
// The tokenizer module builds its tokenizer from this; the loader only collects it.

/** llama.cpp's token types (`tokenizer.ggml.token_type`). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface GgufTokenizerSource {
  kind: 'gguf';
  /** GGUF file it came from, for error messages. */
  path: string;
  /** `tokenizer.ggml.model`: "llama" for SentencePiece (Gemma), "gpt2" for BPE. */
  model: string;
  /** `tokenizer.ggml.pre`, or null when absent. */
  pre: string | null;
  tokens: string[];
  /** One score per token (SentencePiece log-probabilities), or null when absent. */
  scores: Float32Array | null;
  /** One TokenType per token, or null when absent. */
  types: Int32Array | null;
  /** BPE merges ("a b"), or null when absent. */
  merges: string[] | null;
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  padId: number | null;
  addBosToken: boolean;
  addEosToken: boolean;
  addSpacePrefix: boolean;
  /** `tokenizer.chat_template`, or null when absent. */
  chatTemplate: string | null;
}

export interface JsonTokenizerSource {
  kind: 'tokenizer.json';
  /** Absolute path of the Hugging Face tokenizer.json. */
  path: string;
}

export type TokenizerSource = JsonTokenizerSource | GgufTokenizerSource;
