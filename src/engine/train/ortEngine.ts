// The ONNX Runtime StepEngine: the train-step graph (gemma/trainGraph.ts) in one onnxruntime-node
// session, for float weights, WebGPU and CPUs without the native kernels (stepEngine.ts picks; nativeEngine.ts
// runs 4-bit weights on the CPU). Per micro-batch it feeds the ids, the RoPE tables and masks for T, the label positions and
// the LoRA tensors (views of the trainer's buffers, no copy) and returns Σ CE and the gradients.

import type * as ortTypes from 'onnxruntime-node';
import type { GemmaConfig, LayerType } from '../model/config';
import type { ModelWeights } from '../model/weights';
import type { WeightSource } from '../model/weightSource';
import { ExternalDataFile, f32Tensor, ort, type OptLevel } from '../onnx/session';
import type { Device } from '../onnx/device';
import { trainGraph, trainLoraNames, type TrainGraphOptions } from '../gemma/trainGraph';
import { layerInverseFrequencies, ropeTables } from '../gemma/rope';
import { defaultAccuracyLevel, type Precision } from '../gemma/runtime';
import type { MicroBatch } from './batch';
import { ALL_TARGETS, type LoraParams, type LoraTarget } from './lora';
import type { StepEngine } from './trainer';

export interface OrtEngineOptions {
  precision: Precision;
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
  threads?: number;
  /** Where the step session runs (onnx/device.ts); default the CPU. */
  device?: Device;
  /** MatMulNBits accuracy level for q4 (4: int8 activations, faster on the CPU; 0: float); default by device (defaultAccuracyLevel). */
  accuracyLevel?: 0 | 4;
  /**
   * Default 'disabled': the hand-built step graph gains nothing per step from 'basic' (fine-tune 179.6 s
   * vs 178.4 s on the 270M shape), and its session is created faster (setup 33.8 s vs 38.4 s at load 5;
   * 47 s vs 84 s at load 9) with ~65 MB less peak RSS.
   */
  optimization?: OptLevel;
  /**
   * q4 with an 8-bit (Q8_0) embedding: the LM head's bits (ParamsOptions.headBits). Default 8, the head
   * exactly as stored. 4 trains against the requantised head the runtime runs by default; on the 270M
   * shape it was no faster per step (noise-level either way), took ~4 s more to set up and ~110 MB more
   * peak RSS (the lookups then read their own 8-bit view and the head's 4-bit bytes are mapped besides).
   */
  headBits?: 4 | 8;
  /** q4 only: dy·W through the 4-bit weights held another way than the default (TrainGraphOptions.nbitsBackward; comparisons). */
  nbitsBackward?: TrainGraphOptions['nbitsBackward'];
  /** Recompute layer activations in the backward (less memory, one more forward); default on. */
  recompute?: boolean;
  /**
   * q4 with recompute: projections whose base outputs the backward reuses from the forward
   * (TrainGraphOptions.keepProjections); default all seven (LoRA targets or not). On the 270M shape, runs of 2 × 120
   * tokens: a step's wall time 3.66 → ~2.9 s for +~120 MB of activations (peak RSS 1.07 → 1.19 GB), with
   * ORT's memory patterns off (below); recompute off entirely was about as fast but holds 2.5× the
   * activations per token.
   */
  keepProjections?: TrainGraphOptions['keepProjections'];
  /** Profile the step session's kernels into files starting with this path (bench/trainStep.ts). */
  profilePrefix?: string;
  /**
   * Session threading experiments (bench/trainStep.ts --spin, --inter-op; bench/train.ts --spin): SessionConfig's
   * spinning and interOpThreads. Both off by default, measured on the 270M shape, 2 cores: inter-op 2 kept ~1.95
   * cores busy but a step took 1.13–1.35 s against 0.96–1.08 s sequential (and ~45% more CPU); spinning, while
   * another process held one core, made the fine-tune 65–67 s against 44–45 s.
   */
  spinning?: boolean;
  interOpThreads?: number;
}

/** Additive causal mask [T, T], with the window on sliding layers (query i sees keys i−W+1 … i). */
export function trainMask(T: number, window: number): Float32Array {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) if (j > i || j <= i - window) m[i * T + j] = -Infinity;
  return m;
}

/**
 * A session over the train-step graph (`forwardOnly`: the forward and the loss alone, bench/evalSession.ts).
 * A WeightSource (model/load.ts openWeights) streams the weights from the model file into the session's data
 * file, so they are never held in JS.
 */
export async function openStepSession(mw: ModelWeights | WeightSource, opts: OrtEngineOptions, forwardOnly = false): Promise<ortTypes.InferenceSession> {
  const device = opts.device ?? 'cpu';
  const graphOpts: TrainGraphOptions = {
    target: device, precision: opts.precision, accuracyLevel: opts.accuracyLevel ?? defaultAccuracyLevel(device), headBits: opts.headBits ?? 8,
    rank: opts.rank, alpha: opts.alpha, targets: opts.targets, nbitsBackward: opts.nbitsBackward, recompute: opts.recompute ?? true,
    keepProjections: opts.precision === 'q4' ? opts.keepProjections ?? ALL_TARGETS : undefined, forwardOnly,
  };
  // Weights stream to a temporary file as they are converted; ORT maps it, so no second copy is held.
  const file = new ExternalDataFile();
  let graph;
  try {
    graph = trainGraph(mw, graphOpts, file);
  } catch (e) {
    file.remove();
    throw e;
  }
  // A forward-only session runs a few times per epoch: without an arena its activations go back to the
  // allocator between runs instead of being held beside the step session's.
  // No memory patterns: from the second run ORT would allocate the whole recorded pattern as one more block
  // beside the arena's chunks from the first (+400 MB peak with kept projections, for ~3% of speed).
  return file.open(graph, { device, threads: opts.threads ?? 2, optimization: opts.optimization ?? 'disabled', memArena: !forwardOnly, memPattern: false, profilePrefix: forwardOnly ? undefined : opts.profilePrefix, spinning: opts.spinning, interOpThreads: opts.interOpThreads });
}

/** Builds the step graph and its session; validation runs the same session with its backward off. */
export async function createOrtEngine(mw: ModelWeights | WeightSource, opts: OrtEngineOptions): Promise<OrtStepEngine> {
  return new OrtStepEngine(mw.config, await openStepSession(mw, opts), opts.rank, opts.targets);
}

export class OrtStepEngine implements StepEngine {
  private readonly tables = new Map<number, Record<string, ortTypes.Tensor>>();

  /** `evalSession`: a forward-only session for `evaluate` (bench/evalSession.ts); without it the step graph serves with its backward off. */
  constructor(readonly config: GemmaConfig, private readonly session: ortTypes.InferenceSession, readonly rank: number, readonly targets: readonly LoraTarget[],
    private readonly evalSession: ortTypes.InferenceSession | null = null) {}

  // RoPE tables and masks depend only on T: made once per length.
  private perLength(T: number): Record<string, ortTypes.Tensor> {
    let f = this.tables.get(T);
    if (!f) {
      const cfg = this.config;
      f = {};
      const positions = Array.from({ length: T }, (_, i) => i);
      for (const type of new Set<LayerType>(cfg.layerTypes)) {
        const { cos, sin } = ropeTables(layerInverseFrequencies(cfg, type), positions);
        f[`cos_${type}`] = f32Tensor(cos, [T, cfg.headDim / 2]);
        f[`sin_${type}`] = f32Tensor(sin, [T, cfg.headDim / 2]);
        f[`mask_${type}`] = f32Tensor(trainMask(T, type === 'sliding' ? cfg.slidingWindow : Infinity), [1, 1, T, T]);
      }
      if (this.tables.size > 64) this.tables.clear();
      this.tables.set(T, f);
    }
    return f;
  }

  private feeds(batch: MicroBatch, params: LoraParams, scale: number, backward: boolean): Record<string, ortTypes.Tensor> {
    if (params.rank !== this.rank || params.targets.join() !== this.targets.join()) throw new Error('step engine: LoRA rank/targets differ from the graph');
    const { B, T } = batch;
    const i64 = (a: Int32Array, dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(a, (v) => BigInt(v)), dims);
    const feeds: Record<string, ortTypes.Tensor> = {
      ...this.perLength(T),
      input_ids: i64(batch.inputIds, [B, T]),
      label_pos: i64(batch.labelPositions, [batch.labelPositions.length]),
      label_ids: i64(batch.labelTargets, [batch.labelTargets.length]),
      grad_scale: f32Tensor(Float32Array.of(scale), []),
      backward: new ort.Tensor('bool', Uint8Array.of(backward ? 1 : 0), []),
    };
    for (const m of params.modules) {
      const n = trainLoraNames(m.layer, m.target);
      feeds[n.a] = f32Tensor(m.a, [params.rank, m.inFeatures]);
      feeds[n.b] = f32Tensor(m.b, [m.outFeatures, params.rank]);
    }
    return feeds;
  }

  /** Σ CE and d(scale·Σ CE)/dθ in flatTensors order. */
  async lossAndGrads(batch: MicroBatch, params: LoraParams, scale: number): Promise<{ lossSum: number; grads: Float32Array[] }> {
    const out = await this.session.run(this.feeds(batch, params, scale, true));
    const grads: Float32Array[] = [];
    for (const m of params.modules) {
      const n = trainLoraNames(m.layer, m.target);
      grads.push(out[n.gradA].data as Float32Array, out[n.gradB].data as Float32Array);
    }
    return { lossSum: (out.loss_sum.data as Float32Array)[0], grads };
  }

  /** Σ CE and argmax hits, from the forward-only session when there is one. */
  async evaluate(batch: MicroBatch, params: LoraParams): Promise<{ lossSum: number; hits: Float32Array }> {
    const session = this.evalSession ?? this.session;
    const all = this.feeds(batch, params, 0, false);
    // Only the inputs the session declares (a forward-only graph may have dropped the unused grad_scale).
    const feeds = Object.fromEntries(session.inputNames.filter((n) => n in all).map((n) => [n, all[n]]));
    const out = await session.run(feeds, ['loss_sum', 'label_hit']);
    return { lossSum: (out.loss_sum.data as Float32Array)[0], hits: out.label_hit.data as Float32Array };
  }

  /** Ends a profiled session's profile, so its file is complete. */
  async endProfiling(): Promise<void> {
    await this.session.endProfiling();
  }

  async dispose(): Promise<void> {
    await this.session.release();
    await this.evalSession?.release();
  }
}
