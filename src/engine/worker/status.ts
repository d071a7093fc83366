// `status`: what the engine is: runtime version, threads, device, model, queue, memory.

import { threadId } from 'node:worker_threads';
import { PROTOCOL_VERSION, type EngineStatus } from '../../protocol/engine';
import { deviceRoles, type Device, type DeviceResolution } from '../onnx/device';
import type { Handler } from './context';
import { loadOrt } from './ort';

const MB = 1024 * 1024;

/** Which device runs what, as the last model load (or training run) resolved the choice. */
function deviceStatus(r: DeviceResolution | null, modelDevice: Device | null): EngineStatus['device'] {
  if (!r) return null;
  const roles = deviceRoles(r);
  return { requested: r.requested, inference: modelDevice ?? roles.inference, training: roles.training, ...(r.fallbackReason ? { fallbackReason: r.fallbackReason } : {}) };
}

/** Reports the engine's runtime, threads, device, loaded model and queue. */
export const status: Handler<'status'> = async (_params, ctx) => {
  const ort = await loadOrt();
  const mem = process.memoryUsage();
  const { busy, queued } = ctx.queue();
  return {
    protocol: PROTOCOL_VERSION,
    runtime: { name: 'onnxruntime-node', version: ort.env.versions.node ?? ort.env.versions.common },
    threads: ctx.state.threads,
    model: ctx.state.model?.summary ?? null,
    device: deviceStatus(ctx.state.device ?? null, ctx.state.model?.summary.device ?? null),
    busy,
    queued,
    node: process.versions.node,
    threadId,
    uptimeMs: Math.round(performance.now() - ctx.state.startedAt),
    memory: {
      rssMB: Math.round(mem.rss / MB),
      heapUsedMB: Math.round(mem.heapUsed / MB),
      externalMB: Math.round((mem.external + mem.arrayBuffers) / MB),
    },
  };
};
