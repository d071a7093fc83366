// Sequences scored one at a time: the prefix as a step, then each sequence on its own fork of the cache, its
// log-probabilities taken from the logits the step returns. What GemmaRuntime.scoreSequences does in one run,
// for a runtime without it and for inputs too long for one run.

import { logProbsAt } from './logSoftmax';
import type { GemmaRuntime, KvCache, SequenceOptions } from './runtime';

/** scoreSequences' result by step and fork; `signal` is checked before each sequence. */
export async function scoreSequencesByForks(rt: GemmaRuntime, cache: KvCache, sequences: number[][], opts: SequenceOptions, signal?: AbortSignal): Promise<number[][]> {
  const V = rt.config.vocabSize;
  const last = await rt.step(cache, opts.prefix, { logits: 'last', adapter: opts.adapter });
  const first = logProbsAt(last, V, new Int32Array(sequences.length), Int32Array.from(sequences, (s) => s[0]));
  const out: number[][] = [];
  for (const [i, s] of sequences.entries()) {
    if (signal?.aborted) throw new Error('cancelled');
    if (s.length === 1) {
      out.push([first[i]]);
      continue;
    }
    const fork = cache.fork();
    try {
      // Row k holds the logits after s[0…k], where s[k + 1] is scored.
      const logits = await rt.step(fork, s.slice(0, -1), { logits: 'all', adapter: opts.adapter });
      out.push([first[i], ...logProbsAt(logits, V, Int32Array.from(s.slice(1), (_, k) => k), Int32Array.from(s.slice(1)))]);
    } finally {
      fork.dispose();
    }
  }
  return out;
}
