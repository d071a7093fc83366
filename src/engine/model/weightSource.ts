// Weights read a few rows at a time. A WeightSource lets the graph builder convert each weight straight
// from the model file into ONNX Runtime's external data, so the whole model is never held in JS: either
// over a file (load.ts's openWeights, read on demand) or over weights already in memory (ModelWeights).
//
// Rows are the last (contiguous) dimension, as in weights.ts: a linear weight [out, in] has `out` rows of
// `in` values; a 1-D weight is one row. `rows` returns the weights.ts storage form of those rows.

import type { GemmaConfig } from './config';
import type { ModelWeights, WeightData } from './weights';
import { rowBytes } from './ggufFormat';

export type WeightStorage = WeightData['type'];

export interface WeightSource {
  readonly config: GemmaConfig;
  /** Hugging Face shape of a weight; throws for a name the model does not have. */
  shape(name: string): number[];
  /** The form `rows` returns for this weight. */
  storage(name: string): WeightStorage;
  /** Rows [row0, row0 + count) of a weight in its storage form (may be a view: read, do not keep). */
  rows(name: string, row0: number, count: number): WeightData;
  /**
   * Where a quantised weight's rows lie in the model file, when `rows` returns them exactly as stored there
   * (so they can be mapped rather than read); null or absent otherwise.
   */
  stored?(name: string): { file: string; offset: number } | null;
}

/** Number of rows of a weight of this shape (1 for a 1-D weight). */
export function rowCount(shape: readonly number[]): number {
  return shape.length <= 1 ? 1 : shape.slice(0, -1).reduce((a, b) => a * b, 1);
}

/** Bytes of one row of `width` values in a storage form. */
export function storageRowBytes(storage: WeightStorage, width: number): number {
  return rowBytes(storage, width);
}

/** True for a WeightSource (as opposed to a ModelWeights). */
export function isWeightSource(w: ModelWeights | WeightSource): w is WeightSource {
  return typeof (w as WeightSource).rows === 'function';
}

/** A WeightSource over weights already in memory; rows are views, not copies. */
export function memoryWeightSource(mw: ModelWeights): WeightSource {
  const get = (name: string) => {
    const w = mw.weights.get(name);
    if (!w) throw new Error(`model has no weight ${name}`);
    return w;
  };
  return {
    config: mw.config,
    shape: (name) => get(name).shape,
    storage: (name) => get(name).value.type,
    rows(name, row0, count) {
      const w = get(name);
      const total = rowCount(w.shape);
      if (row0 < 0 || count < 0 || row0 + count > total) throw new Error(`weight ${name}: rows ${row0}+${count} outside 0…${total}`);
      const width = w.shape[w.shape.length - 1] ?? 1;
      const v = w.value;
      if (v.type === 'f32') return { type: 'f32', data: v.data.subarray(row0 * width, (row0 + count) * width) };
      const rb = storageRowBytes(v.type, width);
      return { type: v.type, data: v.data.subarray(row0 * rb, (row0 + count) * rb) } as WeightData;
    },
  };
}

/** Either form as a WeightSource. */
export function asWeightSource(w: ModelWeights | WeightSource): WeightSource {
  return isWeightSource(w) ? w : memoryWeightSource(w);
}
