// log softmax of logit rows at a few ids, in float64: what label scoring reads of the head's output where
// the native head (head_log_probs) does not compute it itself.

/** A row's max and log Σ exp(x − max): what log softmax subtracts. */
function rowNormalizer(logits: Float32Array, V: number, row: number): { max: number; logSum: number } {
  const base = row * V;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[base + i] > max) max = logits[base + i];
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[base + i] - max);
  return { max, logSum: Math.log(sum) };
}

/** log softmax of a [T, V] block at picks (row pickRow[j], id pickId[j]), each row's normaliser computed once. */
export function logProbsAt(logits: Float32Array, V: number, pickRow: Int32Array, pickId: Int32Array): Float64Array {
  const out = new Float64Array(pickRow.length);
  const norms = new Map<number, { max: number; logSum: number }>();
  for (let j = 0; j < pickRow.length; j++) {
    const row = pickRow[j];
    let n = norms.get(row);
    if (!n) norms.set(row, (n = rowNormalizer(logits, V, row)));
    out[j] = logits[row * V + pickId[j]] - n.max - n.logSum;
  }
  return out;
}
