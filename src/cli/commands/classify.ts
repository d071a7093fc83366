// `gemma-tune classify`: which of the given labels the model answers to a text, by scoring every
// label's full token sequence (label + <end_of_turn>) as the model's reply in the chat template.

import type { CliCommand } from '../command';
import { parseFlags, required, UsageError, type ParsedArgs } from '../args';
import { classify } from '../../engine/generate/labelScoring';
import { chatPromptIds, needTokenizer } from '../../engine/generate/openModel';
import { MODEL_FLAGS, openFromFlags } from './modelFlags';

/** --labels a,b,c, or a JSON array of strings for labels that contain commas. */
export function labelsFlag(p: ParsedArgs): string[] {
  const raw = required(p, 'labels');
  let labels: unknown;
  if (raw.startsWith('[')) {
    try {
      labels = JSON.parse(raw);
    } catch {
      throw new UsageError('--labels starting with "[" must be a JSON array of strings');
    }
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string')) throw new UsageError('--labels must be a JSON array of strings');
  } else {
    labels = raw.split(',');
  }
  const list = labels as string[];
  if (list.length === 0 || list.some((l) => l === '')) throw new UsageError('--labels has an empty label');
  if (new Set(list).size !== list.length) throw new UsageError('--labels lists a label twice');
  return list;
}

export const classifyCommand: CliCommand = {
  name: 'classify',
  usage: 'gemma-tune classify --model PATH [--adapter DIR] --labels a,b,c --text TEXT [--precision q4|f32] [--threads auto|N] [--device auto|cpu|webgpu]',
  summary: 'Print {"label","probability","probabilities":{label:p},"logprobs":{label:lp}}: the answer is always one of the labels.',
  async run(argv) {
    const p = parseFlags(argv, { values: [...MODEL_FLAGS, 'adapter', 'labels', 'text'] });
    const labels = labelsFlag(p);
    const text = required(p, 'text');
    const { model, adapter } = await openFromFlags(p, true);
    try {
      const tok = needTokenizer(model, 'classify');
      const promptIds = chatPromptIds(tok, [{ role: 'user', content: text }]);
      const r = await classify(model.runtime, model.gen, { promptIds, labels, adapter });
      const probabilities: Record<string, number> = {};
      const logprobs: Record<string, number> = {};
      for (const s of r.scores) {
        probabilities[s.label] = s.probability;
        logprobs[s.label] = s.logprob;
      }
      process.stdout.write(JSON.stringify({ label: r.label, probability: r.probability, probabilities, logprobs }) + '\n');
    } finally {
      await model.runtime.dispose();
    }
  },
};
