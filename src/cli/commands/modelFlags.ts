// Flags shared by the commands that run a model (generate, classify, bench, train, …): --model, --precision,
// --threads, --device, --adapter, and opening all of it in one place.

import { numberFlag, choiceFlag, required, type ParsedArgs } from '../args';
import { physicalCores } from '../../common/cpuCores';
import type { Precision } from '../../engine/gemma/runtime';
import { DEVICE_CHOICES, deviceRoles, resolveDevice, type DeviceRoles, type DeviceResolution } from '../../engine/onnx/device';
import { loadAdapter, openModel, type OpenModel } from '../../engine/generate/openModel';
import { cliWeightCache } from '../demo/modelLocation';

/** The value flags every model command accepts. */
export const MODEL_FLAGS = ['model', 'precision', 'threads', 'device'];

/** --precision q4|f32 (default q4). */
export function precisionFlag(p: ParsedArgs): Precision {
  return choiceFlag(p, 'precision', ['q4', 'f32'], 'q4');
}

/** --threads auto|N (default auto: one per physical core). */
export function threadsFlag(p: ParsedArgs): number {
  return p.values.get('threads') === 'auto' ? physicalCores() : numberFlag(p, 'threads', physicalCores(), 1, 256, true);
}

/** --device auto|cpu|webgpu (default auto), resolved to where the sessions run. */
export async function deviceFromFlags(p: ParsedArgs): Promise<DeviceResolution> {
  const r = await resolveDevice(choiceFlag(p, 'device', DEVICE_CHOICES, 'auto'));
  // A machine with no GPU runs on the CPU without a word; a GPU that WebGPU cannot use is worth one line.
  if (r.fallbackReason && r.tried) process.stderr.write(`gemma-tune: running on the CPU: ${r.fallbackReason}\n`);
  return r;
}

/** Where --device runs inference and training, for the commands that need only that. */
export async function deviceFlag(p: ParsedArgs): Promise<DeviceRoles> {
  return deviceRoles(await deviceFromFlags(p));
}

/** The adapter name used for --adapter on the command line. */
export const CLI_ADAPTER = 'cli';

/** Opens --model with --precision, --threads and --device (and `decode`), and registers --adapter when given. */
export async function openFromFlags(p: ParsedArgs, withAdapter: boolean, decode?: 'native' | 'onnx'): Promise<{ model: OpenModel; adapter: string | undefined; device: DeviceResolution }> {
  const modelPath = required(p, 'model');
  const precision = precisionFlag(p);
  const threads = threadsFlag(p);
  const dir = withAdapter ? p.values.get('adapter') : undefined;
  const device = await deviceFromFlags(p);
  const model = await openModel(modelPath, { precision, threads, lora: dir === undefined ? 'lazy' : 'always', device: deviceRoles(device).inference, weightCache: cliWeightCache(), decode });
  for (const note of model.notes) console.error(note);
  if (dir === undefined) return { model, adapter: undefined, device };
  try {
    loadAdapter(model.runtime, dir, CLI_ADAPTER);
  } catch (e) {
    await model.runtime.dispose();
    throw e;
  }
  return { model, adapter: CLI_ADAPTER, device };
}
