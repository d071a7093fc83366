// A float64 JavaScript reference of one LoRA training step on Gemma 3: forward, completion-only
// cross-entropy and the backward to every LoRA A and B, written op by op with each backward beside
// its forward (llm.c style). It is the ground truth the ONNX step graph is checked against on small
// shapes; it is far too slow for the real model.
//
// Shapes (engine legend): B batch, T sequence, C hidden, H query heads, Hkv kv heads, D head_dim,
// F feed-forward, V vocabulary, R LoRA rank, N = B·T rows, P label positions.

import type { GemmaConfig } from '../model/config';
import { EMBED_NAME, FINAL_NORM_NAME, layerWeightNames, type ModelWeights } from '../model/weights';
import { layerInverseFrequencies, ropeTables } from '../gemma/rope';
import type { MicroBatch } from './batch';
import type { LoraModule, LoraParams, LoraTarget } from './lora';

type F64 = Float64Array;

// ---- linear with LoRA: y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ ------------------------------------------------------

interface LinCache { x: F64; xa: F64 | null }

function linearForward(x: F64, n: number, W: Float32Array, inF: number, outF: number, lora: LoraModule | undefined, R: number, s: number): { y: F64; cache: LinCache } {
  const y = new Float64Array(n * outF);
  for (let r = 0; r < n; r++) {
    const xo = r * inF, yo = r * outF;
    for (let o = 0; o < outF; o++) {
      let acc = 0;
      const wo = o * inF;
      for (let i = 0; i < inF; i++) acc += x[xo + i] * W[wo + i];
      y[yo + o] = acc;
    }
  }
  let xa: F64 | null = null;
  if (lora) {
    xa = new Float64Array(n * R);
    for (let r = 0; r < n; r++) for (let k = 0; k < R; k++) {
      let acc = 0;
      for (let i = 0; i < inF; i++) acc += x[r * inF + i] * lora.a[k * inF + i];
      xa[r * R + k] = acc;
    }
    for (let r = 0; r < n; r++) for (let o = 0; o < outF; o++) {
      let acc = 0;
      for (let k = 0; k < R; k++) acc += xa[r * R + k] * lora.b[o * R + k];
      y[r * outF + o] += s * acc;
    }
  }
  return { y, cache: { x, xa } };
}

// forward: y = x·Wᵀ + s·xa·Bᵀ, xa = x·Aᵀ  →  dx = dy·W + s·(dy·B)·A, dB = s·dyᵀ·xa, dA = s·(dy·B)ᵀ·x
function linearBackward(dy: F64, n: number, W: Float32Array, inF: number, outF: number, lora: LoraModule | undefined, R: number, s: number,
  c: LinCache, grads: Map<LoraModule, { a: F64; b: F64 }>): F64 {
  const dx = new Float64Array(n * inF);
  for (let r = 0; r < n; r++) for (let o = 0; o < outF; o++) {
    const g = dy[r * outF + o];
    if (g === 0) continue;
    const wo = o * inF, xo = r * inF;
    for (let i = 0; i < inF; i++) dx[xo + i] += g * W[wo + i];
  }
  if (lora && c.xa) {
    const gr = grads.get(lora)!;
    const dyB = new Float64Array(n * R);
    for (let r = 0; r < n; r++) for (let k = 0; k < R; k++) {
      let acc = 0;
      for (let o = 0; o < outF; o++) acc += dy[r * outF + o] * lora.b[o * R + k];
      dyB[r * R + k] = s * acc;
    }
    for (let r = 0; r < n; r++) for (let o = 0; o < outF; o++) {
      const g = s * dy[r * outF + o];
      for (let k = 0; k < R; k++) gr.b[o * R + k] += g * c.xa[r * R + k];
    }
    for (let r = 0; r < n; r++) for (let k = 0; k < R; k++) {
      const g = dyB[r * R + k];
      for (let i = 0; i < inF; i++) {
        gr.a[k * inF + i] += g * c.x[r * inF + i];
        dx[r * inF + i] += g * lora.a[k * inF + i];
      }
    }
  }
  return dx;
}

// ---- RMSNorm over rows of length m: y = x · rs · w, rs = 1/√(mean(x²)+eps) --------------------------

function rmsForward(x: F64, rows: number, m: number, w: Float32Array, eps: number): { y: F64; rs: F64 } {
  const y = new Float64Array(rows * m), rs = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < m; i++) ss += x[r * m + i] ** 2;
    const v = 1 / Math.sqrt(ss / m + eps);
    rs[r] = v;
    for (let i = 0; i < m; i++) y[r * m + i] = x[r * m + i] * v * w[i];
  }
  return { y, rs };
}

// forward: y_i = x_i·rs·w_i  →  dx_i = rs·g_i − x_i·rs³·Σ_j(g_j·x_j)/m, with g = w ⊙ dy
function rmsBackward(dy: F64, x: F64, rs: F64, rows: number, m: number, w: Float32Array): F64 {
  const dx = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let i = 0; i < m; i++) dot += w[i] * dy[r * m + i] * x[r * m + i];
    const v = rs[r], c = (v * v * v * dot) / m;
    for (let i = 0; i < m; i++) dx[r * m + i] = v * w[i] * dy[r * m + i] - x[r * m + i] * c;
  }
  return dx;
}

// ---- RoPE (half split): y1 = x1·cos − x2·sin, y2 = x2·cos + x1·sin ----------------------------------

function ropeApply(x: F64, B: number, T: number, heads: number, D: number, cos: Float32Array, sin: Float32Array, inverse: boolean): F64 {
  const y = new Float64Array(x.length), h2 = D / 2, sg = inverse ? -1 : 1;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) {
    const o = ((b * T + t) * heads + h) * D;
    for (let i = 0; i < h2; i++) {
      const c = cos[t * h2 + i], s = sg * sin[t * h2 + i];
      const x1 = x[o + i], x2 = x[o + h2 + i];
      y[o + i] = x1 * c - x2 * s;
      y[o + h2 + i] = x2 * c + x1 * s;
    }
  }
  return y;
}
// The backward of a rotation is the rotation by −angle: ropeApply(dy, …, inverse = true).

// ---- GELU (tanh): y = 0.5·x·(1 + tanh(k·(x + 0.044715·x³))) --------------------------------------------

const GK = Math.sqrt(2 / Math.PI);
function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GK * (x + 0.044715 * x ** 3)));
}
function geluGrad(x: number): number {
  const t = Math.tanh(GK * (x + 0.044715 * x ** 3));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GK * (1 + 3 * 0.044715 * x * x);
}

// ---- the model ------------------------------------------------------------------------------------------

function f32Weight(w: ModelWeights, name: string): Float32Array {
  const t = w.weights.get(name);
  if (!t) throw new Error(`reference: model lacks ${name}`);
  if (t.value.type !== 'f32') throw new Error(`reference: ${name} must be f32 (load the model with precision f32)`);
  return t.value.data;
}

/** Σ CE over the batch's label positions and d(scale·Σ CE)/d(every LoRA tensor), in float64. */
export function referenceStep(weights: ModelWeights, params: LoraParams, batch: MicroBatch, scale: number, wantGrads = true): { lossSum: number; grads: Float32Array[]; logits: F64 } {
  const cfg: GemmaConfig = weights.config;
  const { B, T } = batch;
  const { hidden: C, heads: H, kvHeads: Hkv, headDim: D, intermediate: F, vocabSize: V } = cfg;
  const N = B * T, R = params.rank, s = params.alpha / params.rank, eps = cfg.rmsNormEps;
  const lora = new Map<string, LoraModule>(params.modules.map((m) => [`${m.layer}.${m.target}`, m]));
  const grads = new Map<LoraModule, { a: F64; b: F64 }>(params.modules.map((m) => [m, { a: new Float64Array(m.a.length), b: new Float64Array(m.b.length) }]));
  const E = f32Weight(weights, EMBED_NAME);
  const attnScale = cfg.queryPreAttnScalar ** -0.5;
  const ropeFor = (type: 'sliding' | 'full') => ropeTables(layerInverseFrequencies(cfg, type), Array.from({ length: T }, (_, i) => i));
  const ropes = { sliding: ropeFor('sliding'), full: ropeFor('full') };

  // embedding · √C (the scale rounded to float32 as HF casts it to the weight dtype)
  const embScale = Math.fround(Math.sqrt(C));
  let h: F64 = new Float64Array(N * C);
  for (let r = 0; r < N; r++) for (let i = 0; i < C; i++) h[r * C + i] = E[batch.inputIds[r] * C + i] * embScale;

  const lin = (x: F64, n: number, layer: number, t: LoraTarget, inF: number, outF: number) =>
    linearForward(x, n, f32Weight(weights, layerWeightNames(layer)[t]), inF, outF, lora.get(`${layer}.${t}`), R, s);

  type LayerCache = ReturnType<typeof layerForward>;
  const layerForward = (l: number, hIn: F64) => {
    const n = layerWeightNames(l);
    const type = cfg.layerTypes[l];
    const { cos, sin } = ropes[type];
    const ln1 = rmsForward(hIn, N, C, f32Weight(weights, n.inputNorm), eps);
    const q = lin(ln1.y, N, l, 'q', C, H * D), k = lin(ln1.y, N, l, 'k', C, Hkv * D), v = lin(ln1.y, N, l, 'v', C, Hkv * D);
    const qn = rmsForward(q.y, N * H, D, f32Weight(weights, n.qNorm), eps);
    const kn = rmsForward(k.y, N * Hkv, D, f32Weight(weights, n.kNorm), eps);
    const qr = ropeApply(qn.y, B, T, H, D, cos, sin, false), kr = ropeApply(kn.y, B, T, Hkv, D, cos, sin, false);
    // attention: P[b,h,i,j] = softmax_j(qr·kr·scale) over j ≤ i (and j > i−W on sliding layers)
    const P = new Float64Array(B * H * T * T), att = new Float64Array(N * H * D), g = H / Hkv;
    for (let b = 0; b < B; b++) for (let hh = 0; hh < H; hh++) {
      const kh = Math.floor(hh / g);
      for (let i = 0; i < T; i++) {
        const lo = type === 'sliding' ? Math.max(0, i - cfg.slidingWindow + 1) : 0;
        const po = ((b * H + hh) * T + i) * T, qo = ((b * T + i) * H + hh) * D;
        let mx = -Infinity;
        for (let j = lo; j <= i; j++) {
          let dot = 0;
          const ko = ((b * T + j) * Hkv + kh) * D;
          for (let d = 0; d < D; d++) dot += qr[qo + d] * kr[ko + d];
          P[po + j] = dot * attnScale;
          mx = Math.max(mx, P[po + j]);
        }
        let z = 0;
        for (let j = lo; j <= i; j++) z += (P[po + j] = Math.exp(P[po + j] - mx));
        for (let j = lo; j <= i; j++) {
          P[po + j] /= z;
          const vo = ((b * T + j) * Hkv + kh) * D;
          for (let d = 0; d < D; d++) att[qo + d] += P[po + j] * v.y[vo + d];
        }
      }
    }
    const o = lin(att, N, l, 'o', H * D, C);
    const pa = rmsForward(o.y, N, C, f32Weight(weights, n.postAttnNorm), eps);
    const h1 = new Float64Array(N * C);
    for (let i = 0; i < h1.length; i++) h1[i] = hIn[i] + pa.y[i];
    const ln2 = rmsForward(h1, N, C, f32Weight(weights, n.preFfnNorm), eps);
    const gt = lin(ln2.y, N, l, 'gate', C, F), up = lin(ln2.y, N, l, 'up', C, F);
    const act = new Float64Array(N * F);
    for (let i = 0; i < act.length; i++) act[i] = gelu(gt.y[i]) * up.y[i];
    const dn = lin(act, N, l, 'down', F, C);
    const pf = rmsForward(dn.y, N, C, f32Weight(weights, n.postFfnNorm), eps);
    const h2 = new Float64Array(N * C);
    for (let i = 0; i < h2.length; i++) h2[i] = h1[i] + pf.y[i];
    return { hIn, ln1, q, k, v, qn, kn, qr, kr, P, att, o, pa, h1, ln2, gt, up, act, dn, pf, h2, type };
  };

  const caches: LayerCache[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const c = layerForward(l, h);
    caches.push(c);
    h = c.h2;
  }
  const fin = rmsForward(h, N, C, f32Weight(weights, FINAL_NORM_NAME), eps);

  // LM head only at label positions: logits[p] = fin[pos_p]·Eᵀ, CE against the target
  const P_ = batch.labelPositions.length;
  const logits = new Float64Array(P_ * V);
  const dFin = new Float64Array(N * C);
  let lossSum = 0;
  const cap = cfg.finalLogitSoftcap;
  for (let p = 0; p < P_; p++) {
    const r = batch.labelPositions[p], lo = p * V;
    for (let vv = 0; vv < V; vv++) {
      let acc = 0;
      for (let i = 0; i < C; i++) acc += fin.y[r * C + i] * E[vv * C + i];
      logits[lo + vv] = cap ? Math.tanh(acc / cap) * cap : acc;
    }
    let mx = -Infinity;
    for (let vv = 0; vv < V; vv++) mx = Math.max(mx, logits[lo + vv]);
    let z = 0;
    for (let vv = 0; vv < V; vv++) z += Math.exp(logits[lo + vv] - mx);
    const lse = mx + Math.log(z);
    lossSum += lse - logits[lo + batch.labelTargets[p]];
    if (!wantGrads) continue;
    // dlogit = scale·(softmax − onehot), through the softcap's tanh when set, then into fin via E
    for (let vv = 0; vv < V; vv++) {
      let g = scale * (Math.exp(logits[lo + vv] - lse) - (vv === batch.labelTargets[p] ? 1 : 0));
      if (cap) g *= 1 - (logits[lo + vv] / cap) ** 2;
      if (g === 0) continue;
      for (let i = 0; i < C; i++) dFin[r * C + i] += g * E[vv * C + i];
    }
  }
  if (!wantGrads) return { lossSum, grads: [], logits };

  let dh = rmsBackward(dFin, h, fin.rs, N, C, f32Weight(weights, FINAL_NORM_NAME));
  const linB = (dy: F64, n: number, layer: number, t: LoraTarget, inF: number, outF: number, c: LinCache) =>
    linearBackward(dy, n, f32Weight(weights, layerWeightNames(layer)[t]), inF, outF, lora.get(`${layer}.${t}`), R, s, c, grads);
  for (let l = cfg.layers - 1; l >= 0; l--) {
    const c = caches[l], n = layerWeightNames(l), { cos, sin } = ropes[c.type];
    // h2 = h1 + pf(dn(act)), act = gelu(gate)·up
    const dh1 = dh.slice();
    const ddn = rmsBackward(dh, c.dn.y, c.pf.rs, N, C, f32Weight(weights, n.postFfnNorm));
    const dact = linB(ddn, N, l, 'down', F, C, c.dn.cache);
    const dgt = new Float64Array(N * F), dup = new Float64Array(N * F);
    for (let i = 0; i < dact.length; i++) {
      dgt[i] = dact[i] * c.up.y[i] * geluGrad(c.gt.y[i]);
      dup[i] = dact[i] * gelu(c.gt.y[i]);
    }
    const dln2 = linB(dgt, N, l, 'gate', C, F, c.gt.cache);
    const dln2u = linB(dup, N, l, 'up', C, F, c.up.cache);
    for (let i = 0; i < dln2.length; i++) dln2[i] += dln2u[i];
    const dh1n = rmsBackward(dln2, c.h1, c.ln2.rs, N, C, f32Weight(weights, n.preFfnNorm));
    for (let i = 0; i < dh1.length; i++) dh1[i] += dh1n[i];
    // h1 = hIn + pa(o(att))
    const dhIn = dh1.slice();
    const dOut = rmsBackward(dh1, c.o.y, c.pa.rs, N, C, f32Weight(weights, n.postAttnNorm));
    const datt = linB(dOut, N, l, 'o', H * D, C, c.o.cache);
    // att = P·v, P = softmax(qr·krᵀ·scale)
    const dqr = new Float64Array(N * H * D), dkr = new Float64Array(N * Hkv * D), dv = new Float64Array(N * Hkv * D);
    const g = H / Hkv;
    for (let b = 0; b < B; b++) for (let hh = 0; hh < H; hh++) {
      const kh = Math.floor(hh / g);
      for (let i = 0; i < T; i++) {
        const lo = c.type === 'sliding' ? Math.max(0, i - cfg.slidingWindow + 1) : 0;
        const po = ((b * H + hh) * T + i) * T, qo = ((b * T + i) * H + hh) * D;
        const dP = new Float64Array(T);
        let dot = 0;
        for (let j = lo; j <= i; j++) {
          const vo = ((b * T + j) * Hkv + kh) * D;
          let acc = 0;
          for (let d = 0; d < D; d++) {
            acc += datt[qo + d] * c.v.y[vo + d];
            dv[vo + d] += c.P[po + j] * datt[qo + d];
          }
          dP[j] = acc;
          dot += acc * c.P[po + j];
        }
        for (let j = lo; j <= i; j++) {
          const dS = c.P[po + j] * (dP[j] - dot) * attnScale;
          const ko = ((b * T + j) * Hkv + kh) * D;
          for (let d = 0; d < D; d++) {
            dqr[qo + d] += dS * c.kr[ko + d];
            dkr[ko + d] += dS * c.qr[qo + d];
          }
        }
      }
    }
    const dqn = ropeApply(dqr, B, T, H, D, cos, sin, true), dkn = ropeApply(dkr, B, T, Hkv, D, cos, sin, true);
    const dq = rmsBackward(dqn, c.q.y, c.qn.rs, N * H, D, f32Weight(weights, n.qNorm));
    const dk = rmsBackward(dkn, c.k.y, c.kn.rs, N * Hkv, D, f32Weight(weights, n.kNorm));
    const dln1 = linB(dq, N, l, 'q', C, H * D, c.q.cache);
    const dln1k = linB(dk, N, l, 'k', C, Hkv * D, c.k.cache);
    const dln1v = linB(dv, N, l, 'v', C, Hkv * D, c.v.cache);
    for (let i = 0; i < dln1.length; i++) dln1[i] += dln1k[i] + dln1v[i];
    const dx = rmsBackward(dln1, c.hIn, c.ln1.rs, N, C, f32Weight(weights, n.inputNorm));
    for (let i = 0; i < dhIn.length; i++) dhIn[i] += dx[i];
    dh = dhIn;
  }
  const out: Float32Array[] = [];
  for (const m of params.modules) {
    const gr = grads.get(m)!;
    out.push(Float32Array.from(gr.a), Float32Array.from(gr.b));
  }
  return { lossSum, grads: out, logits };
}
