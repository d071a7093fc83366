// `gemma-tune make-model`: writes a random-weight Gemma 3 model (GGUF file or HF folder) for tests and
// benchmarks, for a preset shape or any HF config.json, with a synthetic vocabulary or, with --tokenizer,
// a real Hugging Face tokenizer.json (so that benchmarks see real token counts).

import * as fs from 'node:fs';
import type { CliCommand } from '../command';
import { choiceFlag, numberFlag, parseFlags, required, UsageError } from '../args';
import { configFromHf, ConfigError, GEMMA3_TINY, PRESET_CONFIGS, type GemmaConfig } from '../../engine/model/config';
import { writeRandomGguf, writeRandomHf } from '../../engine/model/randomModel';
import { ggufBpeVocabFromTokenizerJson, ggufVocabFromTokenizerJson, type TokenizerJsonVocab } from '../../engine/model/tokenizerJsonToGguf';

function readConfig(spec: string): GemmaConfig {
  if (spec === 'tiny') return GEMMA3_TINY;
  const preset = PRESET_CONFIGS[spec];
  if (preset) return preset;
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(spec, 'utf8'));
  } catch (e) {
    throw new UsageError(`--config must be tiny, 270m, 1b, 4b or a readable config.json: ${spec}: ${(e as Error).message}`);
  }
  try {
    return configFromHf(json);
  } catch (e) {
    if (e instanceof ConfigError) throw new Error(`${spec}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** The tokenizer.json's vocabulary, refused unless its size and special ids are the config's. */
function readTokenizer(file: string, cfg: GemmaConfig, configSpec: string, model: 'llama' | 'gpt2' = 'llama'): TokenizerJsonVocab {
  const v = model === 'gpt2' ? ggufBpeVocabFromTokenizerJson(file) : ggufVocabFromTokenizerJson(file);
  if (v.tokens.length !== cfg.vocabSize) {
    throw new Error(`--tokenizer ${file} has ${v.tokens.length} tokens but --config ${configSpec} has vocab size ${cfg.vocabSize}; they must be equal`);
  }
  for (const [name, ours, theirs] of [['bos', cfg.bosId, v.bosId], ['eos', cfg.eosId, v.eosId], ['pad', cfg.padId, v.padId]] as const) {
    if (theirs !== null && theirs !== ours) throw new Error(`--tokenizer ${file} has <${name}> = ${theirs} but --config ${configSpec} has ${name} id ${ours}`);
  }
  return v;
}

export const makeModelCommand: CliCommand = {
  name: 'make-model',
  usage: 'gemma-tune make-model --config tiny|270m|1b|4b|FILE.json --format gguf|safetensors --dtype f32|f16|bf16|q4_0 --seed N --out PATH [--embedding q8_0|q4_0|f16] [--tokenizer tokenizer.json [--vocab llama|gpt2]]',
  summary: 'Write a random-weight Gemma 3 model (GGUF file or Hugging Face folder) for tests and benchmarks, at a preset shape (1b, 4b: the exact configs of ' +
    'google/gemma-3-1b-it and gemma-3-4b-it\'s text decoder) or any HF config.json; --embedding sets a q4_0 file\'s embedding type (f16: as Google\'s 1B QAT GGUF); ' +
    '--tokenizer embeds a real tokenizer.json (its vocabulary size must equal the config vocab size) instead of the synthetic vocabulary, as SentencePiece arrays or, with --vocab gpt2, BPE arrays.',
  async run(argv) {
    const p = parseFlags(argv, { values: ['config', 'format', 'dtype', 'seed', 'out', 'embedding', 'tokenizer', 'vocab'] });
    const configSpec = required(p, 'config');
    const cfg = readConfig(configSpec);
    const format = choiceFlag(p, 'format', ['gguf', 'safetensors']);
    const dtype = choiceFlag(p, 'dtype', ['f32', 'f16', 'bf16', 'q4_0']);
    const seed = numberFlag(p, 'seed', 0, 0, 2 ** 32 - 1, true);
    const out = required(p, 'out');
    const embedding = p.values.has('embedding') ? choiceFlag(p, 'embedding', ['q8_0', 'q4_0', 'f16']) : undefined;
    const tokenizerFile = p.values.get('tokenizer');
    const vocabModel = p.values.has('vocab') ? choiceFlag(p, 'vocab', ['llama', 'gpt2']) : 'llama';
    if (p.values.has('vocab') && (tokenizerFile === undefined || format !== 'gguf')) throw new UsageError('--vocab applies only to --tokenizer with --format gguf');
    if (format === 'gguf') {
      if (embedding !== undefined && dtype !== 'q4_0') throw new UsageError('--embedding applies only to --dtype q4_0');
      const vocab = tokenizerFile === undefined ? undefined : readTokenizer(tokenizerFile, cfg, configSpec, vocabModel);
      writeRandomGguf(out, cfg, { seed, dtype, embedding, vocab });
    } else {
      if (dtype === 'q4_0') throw new UsageError('--dtype q4_0 needs --format gguf (safetensors holds f32, f16 or bf16)');
      if (embedding !== undefined) throw new UsageError('--embedding applies only to --format gguf');
      if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new UsageError(`--out ${out} exists and is not a folder`);
      if (tokenizerFile !== undefined) readTokenizer(tokenizerFile, cfg, configSpec);
      writeRandomHf(out, cfg, { seed, dtype, tokenizerJson: tokenizerFile });
    }
    console.log(out);
  },
};
