// `gemma-tune`: the command line on the same engine as the extension, for batch work and CI.
// Exit code 0 on success; on bad input, 1 with one line "gemma-tune: <reason>" on stderr; 2 on usage errors.

import * as v8 from 'node:v8';
import { version } from '../../package.json';
import type { CliCommand } from './command';
import { UsageError } from './args';
import { makeModelCommand } from './commands/makeModel';
import { logitsCommand } from './commands/logits';
import { tokenizeCommand } from './commands/tokenize';
import { generateCommand } from './commands/generate';
import { classifyCommand } from './commands/classify';
import { benchCommand } from './commands/bench';
import { trainCommand } from './commands/train';
import { trainTaskCommand } from './commands/trainTask';
import { exportAdapterCommand } from './commands/exportAdapter';
import { demoCommand } from './commands/demo';
import { downloadModelCommand } from './commands/downloadModel';
import { exportJobCommand } from './commands/exportJob';
import { importAdapterCommand } from './commands/importAdapter';
import { escapeControls, quote } from '../common/quote';
import { SUPPORTED_TYPES } from '../engine/model/ggufFormat';

/** What --model accepts, named once for every command. */
const MODEL_HELP = [
  'models (--model PATH): a Gemma 3 .gguf file or a Hugging Face folder (config.json, *.safetensors, tokenizer.json)',
  `  GGUF tensor types: ${SUPPORTED_TYPES.replace(/=\d+/g, '')}; each runs at its own precision (never requantised)`,
  '  --precision q4 (default): GGUF tensors as stored; a Hugging Face folder\'s bf16/f32 weights quantised to Q4_0. f32: everything float32',
  '  Gemma 3 270M, 1B, 4B and larger text decoders; multimodal checkpoints (Gemma3ForConditionalGeneration) run their text decoder',
  '  RoPE scaling: linear (as the 4B–27B configs); vocabularies: SentencePiece ("llama") or BPE ("gpt2") in GGUF, tokenizer.json in folders',
];

const commands: CliCommand[] = [
  makeModelCommand, logitsCommand, tokenizeCommand, generateCommand, classifyCommand, benchCommand, trainCommand, trainTaskCommand,
  exportAdapterCommand, exportJobCommand, importAdapterCommand, demoCommand, downloadModelCommand,
];

function help(): string {
  const lines = ['usage: gemma-tune <command> [options]', ''];
  for (const c of commands) lines.push(`  ${c.usage}`, `      ${c.summary}`);
  lines.push('  gemma-tune --version | -v', '      Print the version.');
  lines.push('', ...MODEL_HELP);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(help());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    console.log(version);
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`gemma-tune: unknown command ${quote(name)} (try gemma-tune help)`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`usage: ${cmd.usage}\n\n${cmd.summary}`);
    return 0;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`gemma-tune ${name}: ${escapeControls(e.message)}\nusage: ${cmd.usage}`);
      return 2;
    }
    const msg = e instanceof Error ? e.message : String(e);
    // One line, and nothing in it a terminal would act on (the message may quote a file).
    console.error(`gemma-tune ${name}: ${escapeControls(msg.split('\n')[0])}`);
    if (process.env.GEMMA_TUNE_DEBUG && e instanceof Error) console.error(e.stack);
    return 1;
  }
}

// V8 grows the young generation to 16 MB semi-spaces (48 MB resident) during a model load's burst of
// short-lived objects and keeps them; the engine the extension starts runs with 1 MB ones (engineMemory.ts).
// Their largest size is fixed when the process starts, but the growth factor is read when V8 would grow
// them: at 1 they stay at their first size. gemma-tune bench on the 270M's Q8_0 file, alternating: peak RSS
// 419–429 → 378–390 MB, prefill and decode unchanged.
v8.setFlagsFromString('--semi-space-growth-factor=1');

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
