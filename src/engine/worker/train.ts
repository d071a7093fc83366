// `train`: LoRA fine-tuning on the worker's loaded base model. The examples arrive as chat messages;
// they are tokenised with the model's chat template (loss on the assistant's tokens), split, and
// trained by the same trainer as `gemma-tune train`. Memory: the train-step session holds its own
// 4-bit copy of the base, so the inference session is
// released for the run and rebuilt afterwards with its adapters: one base in memory, not two, for the
// price of a reload (about a second on the 270M). A cancel stops between steps; the best adapter so
// far stays in outDir and the result names its step. With `resume` the trainer goes on from the
// checkpoint in outDir (written every TRAIN_DEFAULTS.checkpointEverySeconds and at epoch ends); one made
// with other examples or settings is refused with the trainer's reason.

import * as fs from 'node:fs';
import { openModel, loadAdapter as readAdapterInto } from '../generate/openModel';
import { PrefixCache } from '../generate/prefixCache';
import { trainNeedMB } from '../memoryCap';
import { growCap } from './growCap';
import { modelIdentity } from '../model/identity';
import { openWeights } from '../model/load';
import { TRAIN_DEFAULTS, trainSettingsOf } from '../train/defaults';
import type { TrainExample } from '../train/examples';
import { initLora, type LoraTarget } from '../train/lora';
import { createStepEngine, type OwnedStepEngine } from '../train/stepEngine';
import { splitValidation } from '../train/split';
import { modelRenderer, tokenizeExample } from '../train/tokenize';
import { train as runTrainer, type TrainResult } from '../train/trainer';
import { throwIfCancelled, type Handler, type LoadedModel } from './context';
import { requireModel } from './model';
import { describeDevice, deviceRoles, openOnDevice, type DeviceResolution } from '../onnx/device';

const MB = 1024 * 1024;

/** Rebuilds the inference runtime of `model` and registers its adapters again (dropping any that no longer load). */
async function reopen(model: LoadedModel, threads: number, weightCache: string | undefined, log: (m: string) => void): Promise<void> {
  const m = await openModel(model.summary.source, { precision: model.summary.precision, threads, device: model.summary.device, weightCache });
  model.runtime = m.runtime;
  model.prefixes = new PrefixCache(m.runtime);
  for (const [name, dir] of [...model.adapters]) {
    try {
      readAdapterInto(model.runtime, dir, name);
    } catch (e) {
      model.adapters.delete(name);
      log(`adapter "${name}" could not be loaded again after training: ${(e as Error).message}`);
    }
  }
}

/** Fine-tunes a LoRA adapter on the loaded model; streams trainer events; returns where the adapter is. */
export const train: Handler<'train'> = async (params, ctx) => {
  const model = requireModel(ctx.state.model);
  const tok = model.tokenizer;
  if (!tok) throw new Error('training on text needs the model tokenizer, and this model has none');
  const cfg = model.runtime.config;
  const hp = params.hyperparameters;
  const threads = params.threads ?? ctx.state.threads;
  const maxTokens = params.maxTokens ?? TRAIN_DEFAULTS.maxTokens;

  // Everything that can be wrong with the data fails here, before the model is touched.
  const renderer = modelRenderer(tok, cfg);
  const examples: TrainExample[] = params.examples.map((e, i) => ({ kind: 'conversation', id: e.id, line: i + 1, messages: e.messages }));
  if (examples.length === 0) throw new Error('no labeled examples to train on');
  const tokenized = examples.map((e) => tokenizeExample(e, renderer, maxTokens));
  const pinned = params.valIds?.length ? new Set(params.valIds) : undefined;
  const split = splitValidation(tokenized, { fraction: hp.valSplit, seed: hp.seed, pinned });
  const lora = initLora(cfg, hp.rank, hp.alpha, hp.targets as LoraTarget[], hp.seed);
  fs.mkdirSync(params.outDir, { recursive: true });
  throwIfCancelled(ctx.signal);
  // Room for this run's batches (their activations) under the memory cap.
  const longest = Math.max(...tokenized.map((e) => e.inputIds.length));
  growCap(ctx, trainNeedMB(cfg, model.summary.precision, hp.batchSize, longest), `batches of ${hp.batchSize} × ${longest} tokens`);

  let peakRss = process.memoryUsage.rss();
  const sample = () => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  };
  const sampler = setInterval(sample, 200);
  const t0 = performance.now();
  const times = { setupS: 0, reloadS: 0 };
  let engine: OwnedStepEngine | undefined;
  let result: TrainResult;
  model.prefixes.clear(); // its KV caches belong to the runtime disposed here
  await model.runtime.dispose();
  try {
    // Streamed from the file into the session's data file: the weights are never whole in JS. On the training
    // device of the model's resolution; under 'auto' a step graph WebGPU cannot take is built for the CPU.
    const resolved: DeviceResolution = ctx.state.device ?? { requested: 'cpu', device: 'cpu', tried: false };
    const opened = await openOnDevice(resolved, deviceRoles(resolved).training, (device) => createStepEngine(openWeights(model.summary.source, { precision: model.summary.precision }).source,
      { precision: model.summary.precision, rank: lora.rank, alpha: lora.alpha, targets: lora.targets, threads, device }));
    engine = opened.value.engine;
    const kind = opened.value.kind === 'native' ? 'native code' : `ONNX Runtime${opened.value.why ? ` (${opened.value.why})` : ''}`;
    if (opened.resolution !== resolved) {
      ctx.state.device = opened.resolution;
      ctx.log('warn', `train: ${describeDevice(opened.resolution)}; training on the CPU`);
    }
    sample();
    times.setupS = (performance.now() - t0) / 1000;
    ctx.log('info', `train: ${split.train.length} training and ${split.val.length} held-out examples; steps on ${kind}, ready in ${times.setupS.toFixed(2)} s`);
    result = await runTrainer(cfg, engine, split, lora, {
      ...trainSettingsOf(hp), shuffle: true,
      evalEvery: TRAIN_DEFAULTS.evalEvery, checkpointEverySeconds: TRAIN_DEFAULTS.checkpointEverySeconds, padId: cfg.padId,
      outDir: params.outDir, baseModel: modelIdentity(model.summary.source), resume: params.resume === true, signal: ctx.signal,
      onEvent: (e) => {
        sample();
        ctx.emit(e);
      },
    });
  } finally {
    clearInterval(sampler);
    await engine?.dispose();
    const r0 = performance.now();
    try {
      await reopen(model, threads, ctx.state.weightCache, (m) => ctx.log('warn', m));
    } catch (e) {
      // Without a runtime the model is gone: the host's next request finds none and loads it again.
      if (ctx.state.model === model) ctx.state.model = null;
      ctx.log('error', `train: the model could not be reopened after training: ${(e as Error).message}`);
    }
    times.reloadS = (performance.now() - r0) / 1000;
  }
  return {
    reason: result.reason,
    step: result.step,
    savedStep: result.savedStep,
    bestValLoss: result.bestValLoss,
    outDir: params.outDir,
    trainIds: split.train.map((e) => e.id),
    valIds: split.val.map((e) => e.id),
    elapsedS: (performance.now() - t0) / 1000,
    setupS: times.setupS,
    reloadS: times.reloadS,
    peakRssMB: Math.round(peakRss / MB),
  };
};
