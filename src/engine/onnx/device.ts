// Which device runs the ONNX Runtime sessions: the CPU, or a GPU through the WebGPU execution provider
// that onnxruntime-node bundles (Dawn over Vulkan, D3D12 or Metal). Whether WebGPU works is found once per
// process, and the reason when it does not is kept for status. 'webgpu' runs everything there; 'auto' runs
// training there where a GPU answers and inference on the CPU (deviceRoles says why); 'cpu' runs on the CPU.
//
// ORT's WebGPU EP does not fall back by itself: with no adapter, session creation throws. So the engine
// asks first, with a one-node session whose result it checks, and builds its graphs for the device found
// (onnx/lowering.ts rewrites the ops the WebGPU EP lacks).

import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { Graph } from './graph';

/** What the user asks for (`gemmaTune.engine.device`, the CLI's --device). */
export type DeviceChoice = 'auto' | 'cpu' | 'webgpu';
/** Where sessions run. */
export type Device = 'cpu' | 'webgpu';

export const DEVICE_CHOICES: readonly DeviceChoice[] = ['auto', 'cpu', 'webgpu'];

/** The outcome of asking for a device: the device, and why it is not WebGPU when 'auto' fell back. */
export interface DeviceResolution {
  requested: DeviceChoice;
  device: Device;
  /** Why WebGPU is not used ('auto' on a machine without a usable GPU); absent when it is, or for 'cpu'. */
  fallbackReason?: string;
  /** Whether WebGPU was tried (false: 'cpu', or 'auto' on Linux with no GPU device node). */
  tried: boolean;
}

/** WebGPU was asked for explicitly and there is none. */
export class WebGpuUnavailableError extends Error {}

/** Where a GPU shows itself on Linux: DRM render nodes (Mesa, AMD, Intel), NVIDIA's nodes, WSL's GPU. */
function linuxGpuNode(): string | null {
  try {
    const dri = fs.readdirSync('/dev/dri').find((f) => f.startsWith('renderD'));
    if (dri) return `/dev/dri/${dri}`;
  } catch {
    // no /dev/dri
  }
  for (const p of ['/dev/nvidia0', '/dev/dxg']) if (fs.existsSync(p)) return p;
  return null;
}

/** ORT's message without its source location: "…webgpu_context.cc:136 … was false. Failed to get a WebGPU adapter: No supported adapters". */
export function shortOrtError(message: string): string {
  const first = message.split('\n')[0].trim();
  const tail = / was false\. (.+)$/.exec(first);
  return (tail ? tail[1] : first.replace(/^\/\S+:\d+\s+/, '')).trim();
}

/** Session options that put a session on `device` (WebGPU first, the CPU for what WebGPU lacks). */
export function executionProviders(device: Device, webgpuOptions: Record<string, string> = {}): ort.InferenceSession.SessionOptions['executionProviders'] {
  return device === 'webgpu' ? [{ ...webgpuOptions, name: 'webgpu' }, 'cpu'] : ['cpu'];
}

/**
 * Runs y = a + b on WebGPU alone and checks y: null when it works, else the reason. Creating the session
 * initialises ORT's WebGPU context (adapter and device), which then lives as long as the process.
 */
async function probeWebGpu(): Promise<string | null> {
  const g = new Graph('webgpu_probe');
  const a = g.input('a', 'float32', [4]);
  const b = g.input('b', 'float32', [4]);
  g.output(g.node('Add', [a, b], [{ dtype: 'float32', shape: [4] }])[0], 'y');
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(g.build().model, { executionProviders: [{ name: 'webgpu' }], logSeverityLevel: 3 });
    const x = Float32Array.of(1, 2, 3, 4);
    const y = (await session.run({ a: new ort.Tensor('float32', x, [4]), b: new ort.Tensor('float32', x, [4]) })).y.data as Float32Array;
    if (!y.every((v, i) => v === 2 * x[i])) return `a test addition on the GPU returned ${Array.from(y).join(', ')} instead of 2, 4, 6, 8`;
    return null;
  } catch (e) {
    return shortOrtError(e instanceof Error ? e.message : String(e));
  } finally {
    await session?.release();
  }
}

let webgpu: Promise<string | null> | undefined;

/** Why WebGPU cannot run here (null: it can), asked once per process. */
export function webGpuProblem(): Promise<string | null> {
  webgpu ??= probeWebGpu();
  return webgpu;
}

/**
 * The device for a choice. 'webgpu' without a working adapter throws WebGpuUnavailableError. 'auto' on
 * Linux without a GPU device node goes to the CPU without asking Dawn (which would print Vulkan loader
 * warnings, and could pick a software Vulkan driver such as lavapipe, slower than ORT's CPU kernels);
 * `platformCheck: false` asks Dawn anyway.
 */
export async function resolveDevice(requested: DeviceChoice, o: { platformCheck?: boolean } = {}): Promise<DeviceResolution> {
  if (requested === 'cpu') return { requested, device: 'cpu', tried: false };
  if (requested === 'auto' && (o.platformCheck ?? true) && process.platform === 'linux' && !linuxGpuNode()) {
    return { requested, device: 'cpu', fallbackReason: 'no GPU device: none of /dev/dri/renderD*, /dev/nvidia0, /dev/dxg exists', tried: false };
  }
  const problem = await webGpuProblem();
  if (problem === null) return { requested, device: 'webgpu', tried: true };
  if (requested === 'webgpu') throw new WebGpuUnavailableError(`WebGPU is not available: ${problem}`);
  return { requested, device: 'cpu', fallbackReason: `WebGPU is not available: ${problem}`, tried: true };
}

/** Which device runs inference (the runtime: prefill, decode, scoring) and which the train step. */
export interface DeviceRoles {
  inference: Device;
  training: Device;
}

/**
 * The devices for a resolution. 'auto' trains on WebGPU but infers on the CPU: on an H100 against its 16 CPU
 * cores (bench/webgpu-device.sh), WebGPU trained 1.2× (270M) and 2× (1B) as fast, but decoded at 12 and 8
 * tokens/s against 135 and 69, and classified in 160 ms against 75 ms (270M): a run of the inference graph
 * is dozens of small kernels and read-backs that each wait for the GPU, which no GPU makes up for at one
 * token a run. 'webgpu' puts both on the GPU.
 */
export function deviceRoles(r: Pick<DeviceResolution, 'requested' | 'device'>): DeviceRoles {
  if (r.device === 'cpu') return { inference: 'cpu', training: 'cpu' };
  return { inference: r.requested === 'webgpu' ? 'webgpu' : 'cpu', training: 'webgpu' };
}

/** Where one role runs, for a bench line: "WebGPU", "the CPU", or "the CPU (why WebGPU is not used)". */
export function describeRole(r: DeviceResolution, role: keyof DeviceRoles): string {
  if (deviceRoles(r)[role] === 'webgpu') return 'WebGPU';
  return r.fallbackReason ? `the CPU (${r.fallbackReason})` : r.device === 'webgpu' ? 'the CPU (auto: WebGPU trains, the CPU infers)' : 'the CPU';
}

/** One line for logs and status: "WebGPU", or "CPU (WebGPU is not available: …)". */
export function describeDevice(r: DeviceResolution): string {
  const name = r.device === 'webgpu' ? 'WebGPU' : 'CPU';
  return r.fallbackReason ? `${name} (${r.fallbackReason})` : name;
}

/**
 * Runs `open` (building a graph and its session) on `device` (one of r's roles). Under 'auto', a WebGPU
 * session that fails to build (an op or size the adapter cannot take) is built again on the CPU, and the
 * resolution returned says why (WebGPU is then off for this resolution); 'webgpu' passes the error on.
 */
export async function openOnDevice<T>(r: DeviceResolution, device: Device, open: (device: Device) => Promise<T>): Promise<{ value: T; resolution: DeviceResolution }> {
  if (device === 'cpu') return { value: await open('cpu'), resolution: r };
  try {
    return { value: await open('webgpu'), resolution: r };
  } catch (e) {
    if (r.requested !== 'auto') throw e;
    const why = shortOrtError(e instanceof Error ? e.message : String(e));
    return { value: await open('cpu'), resolution: { ...r, device: 'cpu', fallbackReason: `WebGPU failed: ${why}` } };
  }
}
