// The tokenizer of a model path without loading its weights: a .gguf file's embedded vocabulary (header
// only) or a Hugging Face folder's tokenizer.json. loadModel (load.ts) finds the same source while it
// loads the weights; this is for tools that need only the tokenizer.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { readGguf } from './gguf';
import { ggufTokenizerSource } from './ggufGemma';
import { createTokenizer, type Tokenizer } from './tokenizer';
import { TokenizerError } from './tokenizerJson';

/** The tokenizer of a .gguf file or a Hugging Face model folder. */
export function tokenizerForModel(modelPath: string): Tokenizer {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(modelPath);
  } catch {
    throw new TokenizerError(modelPath, 'no such file or folder');
  }
  if (stat.isDirectory()) {
    const file = path.join(modelPath, 'tokenizer.json');
    if (!fs.existsSync(file)) throw new TokenizerError(modelPath, 'the model folder has no tokenizer.json');
    return createTokenizer({ kind: 'tokenizer.json', path: path.resolve(file) });
  }
  const source = ggufTokenizerSource(readGguf(modelPath));
  if (!source) throw new TokenizerError(modelPath, 'the GGUF file has no embedded tokenizer (tokenizer.ggml.tokens)');
  return createTokenizer(source);
}
