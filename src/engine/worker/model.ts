// `loadModel`, `loadAdapter`, `unloadAdapter`: the one base model of the worker and its named adapters.

import * as path from 'node:path';
import { loadAdapter as readAdapterInto, openModel } from '../generate/openModel';
import { PrefixCache } from '../generate/prefixCache';
import type { GemmaConfig } from '../model/config';
import { modelNeedMB } from '../memoryCap';
import { growCap } from './growCap';
import { CancelledError, NotLoadedError, throwIfCancelled, type Handler, type LoadedModel } from './context';
import { describeDevice, deviceRoles, openOnDevice, resolveDevice } from '../onnx/device';
import { quote } from '../../common/quote';

/** The loaded model, or an error that says to load one first. */
export function requireModel(model: LoadedModel | null): LoadedModel {
  if (!model) throw new NotLoadedError('no model is loaded (send loadModel first)');
  return model;
}

/** Loads a base model, replacing (and first freeing) the current one and its adapters. */
export const loadModel: Handler<'loadModel'> = async ({ path: modelPath, precision = 'q4', threads, device = 'auto' }, ctx) => {
  const old = ctx.state.model;
  // Free the old model before reading the new one: two 270M models at once would double peak memory.
  ctx.state.model = null;
  if (old) {
    old.prefixes.clear();
    await old.runtime.dispose();
  }
  throwIfCancelled(ctx.signal);
  const cancelled = (): CancelledError => new CancelledError(`loading ${path.basename(modelPath)} was cancelled`);
  // Whether the host cancelled: one turn of the event loop first lets in a cancel that waits in the channel
  // while the load reads or builds without yielding.
  const cancelSeen = async (): Promise<boolean> => {
    await new Promise((resolve) => setImmediate(resolve));
    return ctx.signal.aborted;
  };
  // The header is read: give the engine the room this model needs, or stop if the host gave up meanwhile.
  const beforeBuild = async (config: GemmaConfig): Promise<void> => {
    if (await cancelSeen()) throw cancelled();
    growCap(ctx, modelNeedMB(config, precision), `this model (${precision})`);
  };
  const resolved = await resolveDevice(device);
  const { value: m, resolution } = await openOnDevice(resolved, deviceRoles(resolved).inference,
    (d) => openModel(modelPath, { precision, threads: threads ?? ctx.state.threads, device: d, beforeBuild, weightCache: ctx.state.weightCache }));
  if (await cancelSeen()) {
    await m.runtime.dispose();
    throw cancelled();
  }
  // The reason for a CPU fallback is logged once, not at every load that meets it again.
  const before = ctx.state.device;
  if (resolution.fallbackReason && (before?.fallbackReason !== resolution.fallbackReason || before.device !== resolution.device)) {
    ctx.log(resolution.tried ? 'warn' : 'info', `engine device: ${describeDevice(resolution)}`);
  }
  ctx.state.device = resolution;
  const summary = {
    name: path.basename(modelPath), source: path.resolve(modelPath), format: m.format, precision, device: m.runtime.device, base: m.base,
  };
  ctx.state.model = { summary, runtime: m.runtime, tokenizer: m.tokenizer, gen: m.gen, adapters: new Map(), prefixes: new PrefixCache(m.runtime) };
  const roles = deviceRoles(resolution);
  ctx.log('info', `loaded ${summary.source} (${m.format}, ${precision}; inference on ${summary.device === 'webgpu' ? 'WebGPU' : 'the CPU'}, training on ${roles.training === 'webgpu' ? 'WebGPU' : 'the CPU'}) in ${m.loadSeconds.toFixed(2)} s (${m.runtime.weightsFrom === 'cache' ? 'opened from the converted-model cache' : 'converted now'}; decode steps: ${m.runtime.decodeBy.note}); fingerprint ${summary.base.fingerprint}`);
  for (const note of m.notes) ctx.log('info', note);
  return { model: summary, loadSeconds: m.loadSeconds, vocabSize: m.runtime.config.vocabSize, hasTokenizer: m.tokenizer !== null };
};

/** Reads a PEFT adapter folder and registers it under a name; the base model is not reloaded. */
export const loadAdapter: Handler<'loadAdapter'> = async ({ name, path: dir }, ctx) => {
  const model = requireModel(ctx.state.model);
  const size = readAdapterInto(model.runtime, dir, name);
  model.adapters.set(name, path.resolve(dir));
  // The name may be reused for new weights (a retrained task): prefixes computed with the old ones go.
  model.prefixes.invalidate(name);
  ctx.log('info', `adapter ${quote(name)} loaded from ${dir} (rank ${size.rank}, ${size.modules} modules)`);
  return { name, ...size };
};

/** Removes a registered adapter; `removed` is false when there was none of that name. */
export const unloadAdapter: Handler<'unloadAdapter'> = async ({ name }, ctx) => {
  const model = requireModel(ctx.state.model);
  if (!model.adapters.has(name)) return { removed: false };
  model.runtime.removeAdapter(name);
  model.adapters.delete(name);
  model.prefixes.invalidate(name);
  return { removed: true };
};
