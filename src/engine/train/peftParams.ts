// Loads a PEFT LoRA adapter folder (ours or one made with PEFT for Gemma 3) as trainable parameters:
// the starting point of `train --init-adapter`, or a run to continue. Every shape is checked against
// the model's config; anything PEFT can hold that we cannot train (DoRA, rslora, biases, embedding
// or LM-head adapters, per-module ranks) is refused by name, and so are a NaN or infinity in any tensor
// and a base of another shape recorded by a training job (gemma_tune.json).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GemmaConfig } from '../model/config';
import { FileTooLargeError, NotRegularFileError, readRegularFile } from '../model/regularFile';
import { MAX_CONFIG_JSON_BYTES } from '../model/bounds';
import { requireFiniteF32 } from '../model/finite';
import { readSafetensorsHeader, readSafetensorsF32 } from '../model/safetensors';
import { describeValue, errorText, shownName } from '../../common/quote';
import { emptyLora, peftTensorNames, targetFromModuleName, type LoraParams, type LoraTarget } from './lora';
import { ADAPTER_CONFIG_FILE, ADAPTER_INFO_FILE, ADAPTER_WEIGHTS_FILE } from '../../common/files';

export class AdapterError extends Error {}

/** Reads adapter_config.json + adapter_model.safetensors from dir into LoraParams for cfg. */
export function readPeftParams(dir: string, cfg: GemmaConfig): LoraParams {
  const cfgFile = path.join(dir, ADAPTER_CONFIG_FILE);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readRegularFile(cfgFile, MAX_CONFIG_JSON_BYTES).toString('utf8'));
  } catch (e) {
    if (e instanceof NotRegularFileError || e instanceof FileTooLargeError) throw new AdapterError(e.message);
    throw new AdapterError(`${cfgFile}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : errorText(e)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new AdapterError(`${cfgFile}: not a JSON object`);
  if (json.peft_type !== undefined && json.peft_type !== 'LORA') throw new AdapterError(`${cfgFile}: peft_type ${describeValue(json.peft_type)} is not LORA`);
  const r = json.r, alpha = json.lora_alpha;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > 1024) throw new AdapterError(`${cfgFile}: "r" must be an integer in 1…1024, found ${describeValue(r)}`);
  if (typeof alpha !== 'number' || !(alpha > 0) || !Number.isFinite(alpha)) throw new AdapterError(`${cfgFile}: "lora_alpha" must be a positive finite number, found ${describeValue(alpha)}`);
  for (const k of ['use_dora', 'use_rslora'] as const) if (json[k] === true) throw new AdapterError(`${cfgFile}: ${k} is not supported`);
  if (json.bias !== undefined && json.bias !== 'none') throw new AdapterError(`${cfgFile}: bias ${describeValue(json.bias)} is not supported`);
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = json[k];
    if (v && typeof v === 'object' && Object.keys(v).length) throw new AdapterError(`${cfgFile}: ${k} is not supported`);
  }
  const dropout = typeof json.lora_dropout === 'number' ? json.lora_dropout : 0;
  if (!(dropout >= 0 && dropout < 1)) throw new AdapterError(`${cfgFile}: "lora_dropout" must be in [0, 1), found ${dropout}`);

  checkRecordedBase(dir, cfg);
  const stFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(stFile)) throw new AdapterError(`${stFile}: not found`);
  const st = readSafetensorsHeader(stFile);
  // Which targets are present comes from the tensors themselves (target_modules may be a regex).
  const targets = new Set<LoraTarget>();
  for (const name of st.entries.keys()) {
    const m = /^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_[AB]\.weight$/.exec(name);
    const t = m ? targetFromModuleName(m[2]) : undefined;
    if (!m || !t) {
      const why = name.includes('.language_model.') ? ' (a multimodal checkpoint\'s adapter: the engine runs text-only Gemma 3 models)' : '';
      throw new AdapterError(`${stFile}: tensor ${shownName(name)} is not a LoRA A/B of a Gemma 3 projection${why}`);
    }
    if (Number(m[1]) >= cfg.layers) throw new AdapterError(`${stFile}: tensor ${name} names layer ${m[1]} but the model has ${cfg.layers}`);
    targets.add(t);
  }
  const p = emptyLora(cfg, r, alpha, [...targets], dropout);
  for (const mod of p.modules) {
    const n = peftTensorNames(mod);
    for (const [key, want, buf] of [[n.a, [r, mod.inFeatures], mod.a], [n.b, [mod.outFeatures, r], mod.b]] as const) {
      const e = st.entries.get(key);
      if (!e) throw new AdapterError(`${stFile}: missing ${key}`);
      if (e.shape.length !== 2 || e.shape[0] !== want[0] || e.shape[1] !== want[1]) {
        throw new AdapterError(`${stFile}: ${key} has shape [${e.shape}], expected [${want}]`);
      }
      const values = readSafetensorsF32(st, key);
      requireFiniteF32(stFile, key, values);
      buf.set(values);
    }
  }
  return p;
}

/** The base-model facts a training job records beside its adapter (train.py's gemma_tune.json). */
const SHAPE_KEYS = ['vocabSize', 'hidden', 'intermediate', 'layers', 'heads', 'kvHeads', 'headDim'] as const;

/**
 * Refuses an adapter whose gemma_tune.json names a base of another shape than cfg (another vocabulary,
 * say, where the LoRA shapes alone would fit); a folder without that file passes.
 */
function checkRecordedBase(dir: string, cfg: GemmaConfig): void {
  const file = path.join(dir, ADAPTER_INFO_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return;
  }
  let info: { base?: unknown; baseShape?: Record<string, unknown> };
  try {
    info = JSON.parse(text);
  } catch (e) {
    throw new AdapterError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const shape = info?.baseShape;
  if (typeof shape !== 'object' || shape === null) return;
  const differ = SHAPE_KEYS.filter((k) => shape[k] !== undefined && shape[k] !== cfg[k]);
  if (differ.length === 0) return;
  const show = (get: (k: (typeof SHAPE_KEYS)[number]) => unknown) => differ.map((k) => `${k} ${String(get(k))}`).join(', ');
  throw new AdapterError(`${dir}: trained on ${typeof info.base === 'string' ? info.base : 'another base'} (${show((k) => shape[k])}), but this model has ${show((k) => cfg[k])}`);
}
