// `gemma-tune generate`: text or token ids in, a continuation out, streamed to stdout or as one JSON
// object. Ctrl-C stops generation between tokens and still prints what was generated.
//
// Stop ids: with --prompt, generation stops at <eos> or <end_of_turn> (not printed, not in tokens).
// With --tokens the ids go in raw and, by default, nothing stops generation but --max-tokens: it is
// the exact-model mode (it reproduces transformers' greedy continuation without an EOS stop, which is
// what the conformance fixtures hold). --stop-ids overrides either default.

import type { CliCommand } from '../command';
import { numberFlag, parseFlags, parseIds, UsageError, type ParsedArgs } from '../args';
import { DEFAULT_STOP_IDS, generate } from '../../engine/generate/generator';
import { chatPromptIds, needTokenizer, textPromptIds } from '../../engine/generate/openModel';
import type { SamplingOptions } from '../../engine/generate/sampling';
import { MODEL_FLAGS, openFromFlags } from './modelFlags';

/** Gemma 3's generation_config.json: sampling at temperature 1 with top-k 64 and top-p 0.95. */
const GEMMA_TOP_K = 64;
const GEMMA_TOP_P = 0.95;

/** --temperature, --top-k, --top-p, --seed as sampling options (a random seed unless given). */
export function samplingFlags(p: ParsedArgs): SamplingOptions {
  const temperature = numberFlag(p, 'temperature', 1, 0, 100);
  const topK = numberFlag(p, 'top-k', GEMMA_TOP_K, 0, Number.MAX_SAFE_INTEGER, true);
  const topP = numberFlag(p, 'top-p', GEMMA_TOP_P, 0, 1);
  if (topP === 0) throw new UsageError('--top-p must be above 0');
  const seed = numberFlag(p, 'seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1, true);
  return { temperature, topK, topP, seed };
}

/** --stop: one string, or a JSON array of strings for several. */
function stopFlag(p: ParsedArgs): string[] {
  const raw = p.values.get('stop');
  if (raw === undefined) return [];
  if (raw.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      throw new UsageError('--stop starting with "[" must be a JSON array of strings');
    }
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) throw new UsageError('--stop must be a JSON array of non-empty strings');
    return v as string[];
  }
  if (raw === '') throw new UsageError('--stop is empty');
  return [raw];
}

export const generateCommand: CliCommand = {
  name: 'generate',
  usage:
    'gemma-tune generate --model PATH [--adapter DIR] (--prompt TEXT | --tokens IDS) [--chat] [--max-tokens N] [--temperature T] ' +
    '[--top-k K] [--top-p P] [--seed N] [--stop TEXT] [--stop-ids IDS|none] [--json] [--precision q4|f32] [--threads auto|N] [--device auto|cpu|webgpu]',
  summary: 'Continue a prompt (streamed text, or {"tokens","text","finish_reason"} with --json); --temperature 0 is greedy.',
  async run(argv) {
    const p = parseFlags(argv, {
      values: [...MODEL_FLAGS, 'adapter', 'prompt', 'tokens', 'max-tokens', 'temperature', 'top-k', 'top-p', 'seed', 'stop', 'stop-ids'],
      booleans: ['chat', 'json'],
    });
    const prompt = p.values.get('prompt');
    const tokensRaw = p.values.get('tokens');
    if ((prompt === undefined) === (tokensRaw === undefined)) throw new UsageError('give exactly one of --prompt and --tokens');
    if (p.booleans.has('chat') && prompt === undefined) throw new UsageError('--chat wraps --prompt; --tokens are fed as they are');
    const rawIds = tokensRaw !== undefined ? parseIds(tokensRaw, 'tokens') : null;
    const maxTokens = numberFlag(p, 'max-tokens', 256, 0, 1 << 20, true);
    const sampling = samplingFlags(p);
    const stop = stopFlag(p);
    const stopIdsRaw = p.values.get('stop-ids');
    const stopIds = stopIdsRaw === 'none' ? [] : stopIdsRaw !== undefined ? parseIds(stopIdsRaw, 'stop-ids') : rawIds ? [] : [...DEFAULT_STOP_IDS];
    const json = p.booleans.has('json');

    const { model, adapter } = await openFromFlags(p, true);
    const controller = new AbortController();
    const onSigint = (): void => controller.abort();
    process.once('SIGINT', onSigint);
    try {
      let promptIds: number[];
      if (rawIds) promptIds = rawIds;
      else {
        const tok = needTokenizer(model, '--prompt');
        promptIds = p.booleans.has('chat') ? chatPromptIds(tok, [{ role: 'user', content: prompt! }]) : textPromptIds(tok, prompt!, model.runtime.config.bosId);
      }
      const r = await generate(model.runtime, model.gen, {
        promptIds,
        maxTokens,
        sampling,
        stop,
        stopIds,
        adapter,
        signal: controller.signal,
        onToken: json || !model.gen ? undefined : (_id, text) => void process.stdout.write(text),
      });
      if (json) process.stdout.write(JSON.stringify({ tokens: r.tokens, text: r.text, finish_reason: r.finishReason }) + '\n');
      else if (!model.gen) process.stdout.write(r.tokens.join(',') + '\n');
      else process.stdout.write('\n');
    } finally {
      process.off('SIGINT', onSigint);
      await model.runtime.dispose();
    }
  },
};
