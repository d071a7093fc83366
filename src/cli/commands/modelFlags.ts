// Flags shared by the commands that run a model (generate, classify, bench): --model, --precision,
// --threads, --adapter, and opening all of it in one place.

import { choiceFlag, numberFlag, required, type ParsedArgs } from '../args';
import type { Precision } from '../../engine/gemma/runtime';
import { loadAdapter, openModel, type OpenModel } from '../../engine/generate/openModel';

/** The value flags every model command accepts. */
export const MODEL_FLAGS = ['model', 'precision', 'threads'];

/** --precision q4|f32 (default q4). */
export function precisionFlag(p: ParsedArgs): Precision {
  return choiceFlag(p, 'precision', ['q4', 'f32'], 'q4');
}

/** The adapter name used for --adapter on the command line. */
export const CLI_ADAPTER = 'cli';

/** Opens --model with --precision and --threads, and registers --adapter when given. */
export async function openFromFlags(p: ParsedArgs, withAdapter: boolean): Promise<{ model: OpenModel; adapter: string | undefined }> {
  const modelPath = required(p, 'model');
  const precision = precisionFlag(p);
  const threads = numberFlag(p, 'threads', 2, 1, 256, true);
  const dir = withAdapter ? p.values.get('adapter') : undefined;
  const model = await openModel(modelPath, { precision, threads, lora: dir === undefined ? 'lazy' : 'always' });
  for (const note of model.notes) console.error(note);
  if (dir === undefined) return { model, adapter: undefined };
  try {
    loadAdapter(model.runtime, dir, CLI_ADAPTER);
  } catch (e) {
    await model.runtime.dispose();
    throw e;
  }
  return { model, adapter: CLI_ADAPTER };
}
