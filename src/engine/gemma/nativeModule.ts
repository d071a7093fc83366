// The native binary (native/, built by scripts/build-native.js) as a Node module: found beside the bundle
// or in the repository's build folder, loaded once, or the reason it is not there.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const BINARY = 'gemma_native.node';

export interface NativeModule {
  supported(): boolean;
  /** Weights are Uint8Arrays or byte offsets into `file`; the decoder copies them (repacked) before it returns. */
  createDecoder(config: object, layers: object[], threads: number, file?: string): object;
  /** layers[i]: { qkv, o, gateup, down }, each { a, b, rank } (the LoRA graph inputs' values). */
  createAdapter(decoder: object, layers: object[]): object;
  /** T = positions.length tokens through the layers (decoder.h's decoder_run), their keys and values into each cache's slots; branch null: one sequence. */
  run(decoder: object, x: Float32Array, positions: Int32Array, branch: Int32Array | null, caches: object[], adapter?: object): void;
  /** run's forward for training (every slot −1), keeping each layer's activations for trainBackward (train.h's trainer_forward). */
  trainForward(decoder: object, x: Float32Array, positions: Int32Array, branch: Int32Array | null, caches: object[], adapter?: object): void;
  /**
   * The backward of the last trainForward, with its arguments: dx [T·hidden] from d of the last layer's rows to d of
   * the first layer's input; grads[i] { qkv, o, gateup, down } of { a, b } shaped as the adapter's pairs (written).
   */
  trainBackward(decoder: object, dx: Float32Array, positions: Int32Array, branch: Int32Array | null, caches: object[], adapter: object, grads: object[]): void;
  /** The table is a Uint8Array or a byte offset into `file`, read in place (mapped) for the head's life. */
  createHead(config: object, table: Uint8Array | number, norm: Float32Array, threads: number, file?: string): object;
  /** Returns how many logits are NaN or ±Infinity. */
  logits(head: object, rows: Float32Array, n: number, out: Float32Array): number;
  /** log softmax of rows' logits at picks (row, id) into out (head.h's head_log_probs); returns how many of the rows' logits are NaN or ±Infinity. */
  logProbs(head: object, rows: Float32Array, n: number, pickRow: Int32Array, pickId: Int32Array, out: Float64Array): number;
  /**
   * head.h's head_choose: the top logits (among `among`) exact, the others estimates below them; how many rows
   * were exact, how many of those are NaN or ±Infinity, and how many of `ids` list them (−1: not listed).
   */
  choose(head: object, row: Float32Array, top: number, among: Int32Array | null, out: Float32Array, ids: Int32Array): { exact: number; nonFinite: number; listed: number };
  /**
   * head.h's head_loss on rows [n·hidden] (before the final norm): per row the cross-entropy against labels[i]
   * into loss and 1 or 0 (the label is the first argmax) into hit; with dRows [n·hidden], the gradient of their
   * sum with respect to the rows. logits [n·vocab] is scratch. Returns how many logits are NaN or ±Infinity
   * (0: every output written; else none is); throws for bad arguments or a head it cannot serve.
   */
  loss(head: object, rows: Float32Array, n: number, labels: Int32Array, logits: Float32Array, loss: Float32Array, hit: Float32Array, dRows: Float32Array | null): number;
  /** One AdamW step over param, grad, m, v of one length (param, m, v in place; optim.h's adamw_update): adamw.ts's loop, to the bit. */
  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, scalars: { decay: number; w1: number; b2: number; w2: number; negStep: number; bc2Sqrt: number; eps: number }): void;
  /** Σ grad[j]² in float64, summed in order: clipGradNorm's loop, to the bit. */
  sumSquares(grad: Float32Array): number;
  /** grad[j] = fround(grad[j]·coef) in place, coef a float32 value. */
  scale(grad: Float32Array, coef: number): void;
  /** Stops a decoder's or head's threads and lets its arrays go (the finalizer would, later). */
  destroy(handle: object): void;
}

/** Where the binary is: beside the bundle (dist/), or the repository's build/native/ (tests, benchmarks from source). */
function binaryCandidates(): string[] {
  const out = [path.join(__dirname, BINARY)];
  for (let dir = path.resolve(__dirname); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'native', 'decoder.c'))) {
      out.push(path.join(dir, 'build', 'native', BINARY));
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  return out;
}

let loaded: { module: NativeModule } | { reason: string } | null = null;

/** The native module, or why there is none. */
export function nativeModule(): { module: NativeModule } | { reason: string } {
  if (loaded) return loaded;
  const file = binaryCandidates().map((f) => path.resolve(f)).find((f) => fs.existsSync(f));
  if (!file) return (loaded = { reason: `no ${BINARY} (built by npm run build)` });
  try {
    // The path is known only at run time, so the bundler must not try to resolve it.
    const module = createRequire(__filename)(file) as NativeModule;
    loaded = module.supported() ? { module } : { reason: 'this CPU lacks AVX2, FMA or F16C' };
  } catch (e) {
    loaded = { reason: `${file} does not load: ${(e as Error).message}` };
  }
  return loaded;
}
