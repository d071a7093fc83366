// A greedy decode's time per token split three ways: the native head (NativeHead.choose), the native layers
// (NativeDecoder.run), and everything else (embedding rows, the sampler, the runtime's JS), 4 rounds of 128
// tokens after a 16-token prompt. Run it against an older build's binary to compare.
//   node --import tsx bench/decodeSplit.ts [MODEL] [--threads N] [--tokens 128]
// MODEL defaults to bench/out/270m-q4.gguf (see bench/trainStep.ts for how to make it).
import { openWeights } from '../src/engine/model/load';
import { createGemmaRuntime } from '../src/engine/gemma/ortRuntime';
import { NativeHead } from '../src/engine/gemma/nativeHead';
import { NativeDecoder } from '../src/engine/gemma/nativeDecoder';
import { Sampler } from '../src/engine/generate/sampling';
import { flag } from './flags';

const file = process.argv.slice(2).find((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--')) ?? 'bench/out/270m-q4.gguf';
const threads = Number(flag('threads', '2'));
const n = Number(flag('tokens', '128'));
const spent = { head: 0, layers: 0 };

/** Adds the time of every call of proto[name] to spent[key]. */
function timeCalls(proto: object, name: string, key: keyof typeof spent): void {
  const p = proto as Record<string, (...args: unknown[]) => unknown>;
  const f = p[name];
  p[name] = function (this: unknown, ...args: unknown[]) {
    const t = performance.now();
    try {
      return f.apply(this, args);
    } finally {
      spent[key] += performance.now() - t;
    }
  };
}

async function main(): Promise<void> {
  timeCalls(NativeHead.prototype, 'choose', 'head');
  timeCalls(NativeDecoder.prototype, 'run', 'layers');
  const rt = await createGemmaRuntime(openWeights(file, { precision: 'q4' }).source, { precision: 'q4', threads });
  if (!rt.decodeBy.note.includes('head native')) throw new Error(`${file}: ${rt.decodeBy.note}`);
  const V = rt.config.vocabSize;
  const greedy = { logits: 'last', choice: { top: 1 } } as const;
  for (let round = 0; round < 4; round++) {
    const cache = rt.newCache();
    let logits = await rt.step(cache, Array.from({ length: 16 }, (_, i) => (i * 7919 + 13 + round) % V), greedy);
    const sampler = new Sampler({ temperature: 0 });
    spent.head = spent.layers = 0;
    const t = performance.now();
    for (let i = 0; i < n; i++) logits = await rt.step(cache, [sampler.sample(logits, cache.candidates)], greedy);
    const wall = performance.now() - t;
    const per = (ms: number) => (ms / n).toFixed(2);
    console.log(`${file} round ${round}: ${per(wall)} ms a token: head ${per(spent.head)}, layers ${per(spent.layers)}, the rest ${per(wall - spent.head - spent.layers)}`);
    cache.dispose();
  }
  await rt.dispose();
}

void main();
