// `gemma-tune export-adapter`: a PEFT LoRA adapter folder to llama.cpp's GGUF LoRA format, so llama.cpp
// (--lora) and Ollama (ADAPTER) can use what was trained here.

import type { CliCommand } from '../command';
import { choiceFlag, parseFlags, required } from '../args';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { configFromHf, GEMMA3_270M, type GemmaConfig } from '../../engine/model/config';
import { readGguf } from '../../engine/model/gguf';
import { ggufConfig } from '../../engine/model/ggufGemma';
import { readPeftParams } from '../../engine/train/peftParams';
import { writeGgufLora } from '../../engine/train/ggufLora';

export const exportAdapterCommand: CliCommand = {
  name: 'export-adapter',
  usage: 'gemma-tune export-adapter --adapter DIR --format gguf --out FILE [--model PATH]',
  summary: 'Export a PEFT LoRA adapter to llama.cpp\'s GGUF LoRA format (shapes checked against --model, default the 270M shape).',
  async run(argv) {
    const p = parseFlags(argv, { values: ['adapter', 'format', 'out', 'model'] });
    const dir = required(p, 'adapter');
    choiceFlag(p, 'format', ['gguf']);
    const out = required(p, 'out');
    const modelPath = p.values.get('model');
    const cfg = modelPath ? modelConfig(modelPath) : GEMMA3_270M;
    writeGgufLora(out, readPeftParams(dir, cfg));
  },
};

/** A model's config without loading its weights: config.json of an HF folder, or a GGUF's metadata. */
function modelConfig(modelPath: string): GemmaConfig {
  if (fs.statSync(modelPath, { throwIfNoEntry: false })?.isDirectory()) {
    const file = path.join(modelPath, 'config.json');
    try {
      return configFromHf(JSON.parse(fs.readFileSync(file, 'utf8')));
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`, { cause: e });
    }
  }
  return ggufConfig(readGguf(modelPath));
}
