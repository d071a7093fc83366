// `gemma-tune bench`: load time, prefill and decode speed, classify latency and peak RSS of one model,
// measured the way issue 3 states its targets (512-token prefill; 128 tokens decoded after a 64-token
// prompt; classify of a 100-token input with 4 labels). Speeds are the mean of 3 runs after a first one,
// as llama-bench reports its own (bench/compare-llamacpp.sh sets them side by side); the first prefill is
// also reported, as the time to first token. Prompts are random ids from a fixed seed, so a
// random-weight model of the real shape measures the same work as the real model.
//
// Each measurement is one entry of `sections`; a later section (training) adds its own entry and keys.

import type { CliCommand } from '../command';
import { choiceFlag, numberFlag, parseFlags, UsageError, type ParsedArgs } from '../args';
import type { GemmaRuntime, KvCache } from '../../engine/gemma/runtime';
import { Sampler } from '../../engine/generate/sampling';
import { Rng } from '../../engine/rng';
import { classify } from '../../engine/generate/labelScoring';
import type { OpenModel } from '../../engine/generate/openModel';
import { MODEL_FLAGS, openFromFlags } from './modelFlags';
import { describeRole } from '../../engine/onnx/device';
import { ramNeededMB, runTrainBench, TRAIN_BENCH_FLAGS } from './benchTrain';

/** What every section can read: the open model and the parsed flags. */
interface BenchContext {
  model: OpenModel;
  flags: ParsedArgs;
  rng: Rng;
}

/** One measurement: its result keys (JSON) and the lines it prints. */
interface BenchSection {
  name: string;
  run(ctx: BenchContext): Promise<{ values: Record<string, number>; lines: string[] }>;
}

/** Random ids that avoid the control tokens at the bottom of Gemma's vocabulary. */
function randomIds(rng: Rng, n: number, V: number): number[] {
  const lo = V > 2000 ? 1000 : Math.min(300, V - 1);
  return Array.from({ length: n }, () => lo + Math.floor(rng.next() * (V - lo)));
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await f();
  return [r, performance.now() - t0];
}

/** Runs, after a first one, whose tokens/s are averaged: as llama-bench's -r 3 after its warm-up run. */
const REPEATS = 3;

const prefill: BenchSection = {
  name: 'prefill',
  async run({ model, flags, rng }) {
    const n = numberFlag(flags, 'prompt-tokens', 512, 1, 32768, true);
    const rt = model.runtime;
    const ids = randomIds(rng, n, rt.config.vocabSize);
    // The first prompt after the load is the user's time to first token (it also grows the run's buffers);
    // the speed is the mean of the runs after it.
    const { firstMs: ttft, tokS } = await repeated(rt, n, async (cache) => (await timed(() => rt.step(cache, ids, { logits: 'last' })))[1]);
    return {
      values: { prefill_tok_s: tokS, ttft_ms: ttft },
      lines: [`prefill: ${n} tokens at ${tokS.toFixed(1)} tokens/s (mean of ${REPEATS} runs after the first); time to first token ${ttft.toFixed(0)} ms (the first)`],
    };
  },
};

const decode: BenchSection = {
  name: 'decode',
  async run({ model, flags, rng }) {
    const n = numberFlag(flags, 'gen-tokens', 128, 1, 32768, true);
    const rt = model.runtime;
    // Greedy, as `generate` decodes by default: only the largest logit is read, and the sampler looks only
    // at the ids the step computed exactly.
    const greedy = { logits: 'last', choice: { top: 1 } } as const;
    const sampler = new Sampler({ temperature: 0 });
    const { tokS } = await repeated(rt, n, async (cache) => {
      let logits = await rt.step(cache, randomIds(rng, 64, rt.config.vocabSize), greedy);
      return (await timed(async () => {
        for (let t = 0; t < n; t++) logits = await rt.step(cache, [sampler.sample(logits, cache.candidates)], greedy);
      }))[1];
    });
    return {
      values: { decode_tok_s: tokS },
      lines: [`decode: ${n} tokens after a 64-token prompt at ${tokS.toFixed(1)} tokens/s (mean of ${REPEATS} runs after the first)`],
    };
  },
};

/**
 * REPEATS + 1 runs of `measure` (the ms it timed), each on a fresh cache of rt disposed afterwards: the first
 * run's ms, and the mean tokens/s of the others for n tokens per run.
 */
async function repeated(rt: GemmaRuntime, n: number, measure: (cache: KvCache) => Promise<number>): Promise<{ firstMs: number; tokS: number }> {
  const ms: number[] = [];
  for (let i = 0; i <= REPEATS; i++) {
    const cache = rt.newCache();
    try {
      ms.push(await measure(cache));
    } finally {
      cache.dispose();
    }
  }
  const rates = ms.slice(1).map((m) => (n * 1000) / m);
  return { firstMs: ms[0], tokS: rates.reduce((a, b) => a + b, 0) / rates.length };
}

const classifyLatency: BenchSection = {
  name: 'classify',
  async run({ model, rng }) {
    const rt: GemmaRuntime = model.runtime;
    const V = rt.config.vocabSize;
    const promptIds = randomIds(rng, 100, V);
    const labels = ['positive', 'negative', 'neutral', 'mixed'];
    // Fixed label lengths (1, 1, 2, 2 tokens, + <end_of_turn>) as the real Gemma tokenizer gives such
    // words: a random model's synthetic tokenizer would spell them letter by letter.
    const labelIds = labels.map((_, i) => randomIds(rng, 1 + (i >> 1), V));
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) runs.push((await timed(() => classify(rt, undefined, { promptIds, labels, labelIds })))[1]);
    runs.sort((a, b) => a - b);
    const ms = runs[1];
    return { values: { classify_ms: ms }, lines: [`classify: 100-token input, 4 labels: ${ms.toFixed(0)} ms (median of 3)`] };
  },
};

const sections: BenchSection[] = [prefill, decode, classifyLatency];

export const benchCommand: CliCommand = {
  name: 'bench',
  usage: 'gemma-tune bench --model PATH [--prompt-tokens N] [--gen-tokens N] [--threads auto|N] [--precision q4|f32] [--device auto|cpu|webgpu] [--decode native|onnx] [--json]\n' +
    '       gemma-tune bench --model PATH --train [--examples N] [--tokens N] [--completion N] [--epochs N] [--batch B] [--micro-batch M] [--rank R] [--warmup-steps N] [--engine auto|native|onnx] [--threads auto|N] [--precision q4|f32] [--device auto|cpu|webgpu] [--json]',
  summary: 'Print load time, prefill and decode tokens/s, classify latency and peak RSS (--json: one object). With --train: training tokens/s, ' +
    'the wall time of a fine-tune (default 20 synthetic examples of 120 tokens, 40 completion, 3 epochs, batch 4 as 2 micro-batches of 2, r16) and peak RSS; ' +
    '--warmup-steps N leaves the first N steps out of tokens/s. --engine onnx runs the training steps on the ONNX Runtime step graph instead of native code (auto: native where it runs), for comparison. --decode onnx runs the layers and head on ONNX Runtime instead of the native kernels, for comparison.',
  async run(argv) {
    const flags = parseFlags(argv, { values: [...MODEL_FLAGS, 'prompt-tokens', 'gen-tokens', 'decode', ...TRAIN_BENCH_FLAGS], booleans: ['json', 'train'] });
    const json = flags.booleans.has('json');
    const train = flags.booleans.has('train');
    // Each mode's flags mean nothing to the other: say so rather than ignore them.
    for (const f of train ? ['prompt-tokens', 'gen-tokens', 'decode'] : TRAIN_BENCH_FLAGS) if (flags.values.has(f)) throw new UsageError(`--${f} ${train ? 'is not used with' : 'needs'} --train`);
    if (train) return runTrainBench(flags, json);
    const { model, device } = await openFromFlags(flags, false, choiceFlag(flags, 'decode', ['native', 'onnx'] as const, 'native'));
    const values: Record<string, number> = { load_s: model.loadSeconds };
    const cfg = model.runtime.config;
    const lines = [
      `model: ${cfg.layers} layers, hidden ${cfg.hidden}, ${cfg.heads} heads / ${cfg.kvHeads} kv, vocabulary ${cfg.vocabSize}`,
      `device: inference on ${describeRole(device, 'inference')}`,
      `load: ${model.loadSeconds.toFixed(2)} s (${model.format}, ${model.runtime.precision}; ${model.runtime.weightsFrom === 'cache' ? 'opened from the converted-model cache' : 'converted now'})`,
      `decode steps: ${model.runtime.decodeBy.note}`,
    ];
    try {
      // One short step first: ONNX Runtime's first run pays one-time costs a user pays once per load.
      const warm = model.runtime.newCache();
      await model.runtime.step(warm, [model.runtime.config.bosId], { logits: 'last' });
      warm.dispose();
      const ctx: BenchContext = { model, flags, rng: new Rng(1234) };
      for (const s of sections) {
        const r = await s.run(ctx);
        Object.assign(values, r.values);
        lines.push(...r.lines);
      }
    } finally {
      await model.runtime.dispose();
    }
    values.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
    values.ram_needed_mb = ramNeededMB(values.peak_rss_mb);
    lines.push(`peak RSS: ${values.peak_rss_mb.toFixed(0)} MB; RAM needed to run this model: ${values.ram_needed_mb} MB (the editor's own on top; bench --train gives training's)`);
    const round = (v: number): number => Math.round(v * 1000) / 1000;
    if (json) {
      const out: Record<string, number> = {};
      for (const k of ['load_s', 'prefill_tok_s', 'decode_tok_s', 'classify_ms', 'peak_rss_mb', 'ram_needed_mb']) out[k] = round(values[k]);
      for (const [k, v] of Object.entries(values)) if (!(k in out)) out[k] = round(v);
      process.stdout.write(JSON.stringify({ ...out, device: model.runtime.device, weights_from: model.runtime.weightsFrom, decode_by: model.runtime.decodeBy.note }) + '\n');
    } else {
      process.stdout.write(lines.join('\n') + '\n');
    }
  },
};
