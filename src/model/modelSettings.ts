// Which model the engine runs, as the user configured it: `gemmaTune.model.path` (a .gguf file or
// a Hugging Face folder; empty = the default model downloaded into global storage),
// `gemmaTune.model.precision`, `gemmaTune.engine.threads` and `gemmaTune.engine.device`. Settings come from outside (a
// settings.json anyone can edit), so each value is checked and falls back to its default with a
// note instead of reaching the engine as garbage. Pure: no vscode.
//
// Who may set what (package.json's `scope`, README "Settings and Restricted Mode"): the threads and
// the device are the machine's (`machine`: user or remote settings only, a repository's
// .vscode/settings.json is ignored); the model path and precision may come from a trusted workspace (`machine-overridable`,
// and `restrictedConfigurations`, so VS Code withholds a workspace's value in Restricted Mode).
// A relative model path is taken from the workspace folder, so only the workspace itself may write
// one: from user settings it would let whatever folder is open decide which file loads.

import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { physicalCores } from '../common/cpuCores';
import { fileKind } from '../engine/model/regularFile';
import { findModel, modelPath } from '../store/modelCache';
import { DEFAULT_MODEL, type ModelManifest } from '../engine/model/modelManifest';

export const CONFIG_SECTION = 'gemmaTune';
/** Keys under `gemmaTune.` whose change means a different model load. */
export const MODEL_PATH_KEY = 'model.path';
export const PRECISION_KEY = 'model.precision';
export const THREADS_KEY = 'engine.threads';
export const DEVICE_KEY = 'engine.device';
export const MODEL_KEYS = [MODEL_PATH_KEY, PRECISION_KEY, THREADS_KEY, DEVICE_KEY] as const;

/** `auto`: one thread per physical core (common/cpuCores.ts); the engine runs below the editor's priority, so using them all keeps the editor responsive (bench/editorLag.ts). */
export const DEFAULT_THREADS = 'auto';
export const MAX_THREADS = 64;
export type Precision = 'q4' | 'f32';
/** Where the engine runs (the engine's onnx/device.ts DeviceChoice, restated: this file must not import the engine). */
export type DeviceChoice = 'auto' | 'cpu' | 'webgpu';

/** The model settings, checked. */
export interface ModelSettings {
  /** As written by the user ('' = the default model). */
  path: string;
  precision: Precision;
  /** Resolved: `auto` is already the physical core count. */
  threads: number;
  device: DeviceChoice;
}

/** The layers of one setting, as VS Code's WorkspaceConfiguration.inspect() gives them. */
export interface SettingLayers {
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** Where the value in effect comes from: the workspace (or one of its folders), the user (or remote) settings, or the default. */
export function settingOrigin(layers: SettingLayers | undefined): 'workspace' | 'user' | 'default' {
  if (layers?.workspaceFolderValue !== undefined || layers?.workspaceValue !== undefined) return 'workspace';
  return layers?.globalValue !== undefined ? 'user' : 'default';
}

/** Whether a configured model path is relative (to the workspace folder): neither absolute nor `~`. */
export function isRelativeModelPath(p: string): boolean {
  return p !== '' && p !== '~' && !p.startsWith('~/') && !p.startsWith('~\\') && !path.isAbsolute(p);
}

/**
 * Reads the settings through `get` and `inspect` (a WorkspaceConfiguration's, so VS Code's scopes
 * and Restricted Mode have already been applied); `problems` lists ignored values.
 */
export function readModelSettings(get: (key: string) => unknown, inspect: (key: string) => SettingLayers | undefined): { settings: ModelSettings; problems: string[] } {
  const problems: string[] = [];
  const rawPath = get(MODEL_PATH_KEY) ?? '';
  let p = '';
  if (typeof rawPath === 'string') p = rawPath.trim();
  else problems.push(`${CONFIG_SECTION}.${MODEL_PATH_KEY} must be a string; using the default model`);
  if (isRelativeModelPath(p) && settingOrigin(inspect(MODEL_PATH_KEY)) !== 'workspace') {
    problems.push(`${CONFIG_SECTION}.${MODEL_PATH_KEY} "${p}" is relative, which only a workspace's settings may be (it is taken from the workspace folder); write an absolute path or one starting with ~/. Using the default model`);
    p = '';
  }

  const rawPrecision = get(PRECISION_KEY) ?? 'q4';
  let precision: Precision = 'q4';
  if (rawPrecision === 'q4' || rawPrecision === 'f32') precision = rawPrecision;
  else problems.push(`${CONFIG_SECTION}.${PRECISION_KEY} must be "q4" or "f32", got ${JSON.stringify(rawPrecision)}; using "q4"`);

  const rawThreads = get(THREADS_KEY) ?? DEFAULT_THREADS;
  let threads = physicalCores();
  if (typeof rawThreads === 'number' && Number.isInteger(rawThreads) && rawThreads >= 1 && rawThreads <= MAX_THREADS) threads = rawThreads;
  else if (rawThreads !== 'auto') problems.push(`${CONFIG_SECTION}.${THREADS_KEY} must be "auto" or an integer from 1 to ${MAX_THREADS}, got ${JSON.stringify(rawThreads)}; using "auto" (${threads})`);

  const rawDevice = get(DEVICE_KEY) ?? 'auto';
  let device: DeviceChoice = 'auto';
  if (rawDevice === 'auto' || rawDevice === 'cpu' || rawDevice === 'webgpu') device = rawDevice;
  else problems.push(`${CONFIG_SECTION}.${DEVICE_KEY} must be "auto", "cpu" or "webgpu", got ${JSON.stringify(rawDevice)}; using "auto"`);

  return { settings: { path: p, precision, threads, device }, problems };
}

/**
 * The absolute path a configured model path names: `~` is the home folder, a relative path is
 * taken from the first workspace folder (so a team can commit `.vscode/settings.json`; see
 * readModelSettings for who may write one).
 */
export function expandModelPath(raw: string, opts: { home?: string; workspaceFolder?: string } = {}): string {
  const home = opts.home ?? os.homedir();
  let p = raw;
  if (p === '~') p = home;
  else if (p.startsWith('~/') || p.startsWith('~\\')) p = path.join(home, p.slice(2));
  if (!path.isAbsolute(p)) p = path.resolve(opts.workspaceFolder ?? process.cwd(), p);
  return path.normalize(p);
}

/** Where the engine's model comes from, resolved against the disk. */
export type ModelSource =
  /** A configured file or folder that exists. */
  | { kind: 'configured'; path: string }
  /** The configured path does not exist, or (`problem`) is something no model can be, such as a FIFO. */
  | { kind: 'configured-missing'; path: string; problem?: string }
  /** The default model, downloaded and verified. */
  | { kind: 'default'; path: string; manifest: ModelManifest }
  /** No path configured and the default model is not downloaded yet. */
  | { kind: 'not-downloaded'; path: string; manifest: ModelManifest };

/** Resolves the settings to a model on disk (nothing is loaded or downloaded). */
export async function resolveModelSource(
  settings: ModelSettings,
  storageDir: string,
  opts: { home?: string; workspaceFolder?: string; manifest?: ModelManifest } = {},
): Promise<ModelSource> {
  const manifest = opts.manifest ?? DEFAULT_MODEL;
  if (settings.path === '') {
    const found = await findModel(storageDir, manifest);
    return found ? { kind: 'default', path: found, manifest } : { kind: 'not-downloaded', path: modelPath(storageDir, manifest), manifest };
  }
  const p = expandModelPath(settings.path, opts);
  let st;
  try {
    st = await fs.stat(p);
  } catch {
    return { kind: 'configured-missing', path: p };
  }
  // Only a file or a folder is handed to the engine: opening a FIFO would wait for a writer forever.
  if (st.isFile() || st.isDirectory()) return { kind: 'configured', path: p };
  return { kind: 'configured-missing', path: p, problem: `is ${fileKind(st)}, not a model file or folder` };
}

/** One string per distinct engine load, so a settings change that does not alter it reloads nothing. */
export function loadKey(modelFile: string, settings: Pick<ModelSettings, 'precision' | 'threads' | 'device'>): string {
  return JSON.stringify([path.resolve(modelFile), settings.precision, settings.threads, settings.device]);
}

/** A short display name for a model path: the file, or the folder of a Hugging Face model. */
export function modelDisplayName(p: string): string {
  const base = path.basename(p.replace(/[\\/]+$/, ''));
  return base.replace(/\.gguf$/i, '') || p;
}

/** Whether a path looks like something the engine can load: a .gguf file or a folder with config.json. */
export async function checkModelCandidate(p: string): Promise<string | undefined> {
  let stat;
  try {
    stat = await fs.stat(p);
  } catch {
    return `${p} does not exist`;
  }
  if (!stat.isFile() && !stat.isDirectory()) return `${p} is ${fileKind(stat)}: pick a .gguf file or a Hugging Face model folder`;
  if (stat.isDirectory()) {
    try {
      await fs.access(path.join(p, 'config.json'));
      return undefined;
    } catch {
      return `${p} is a folder without config.json: pick a Hugging Face model folder or a .gguf file`;
    }
  }
  if (!/\.gguf$/i.test(p)) return `${p} is not a .gguf file: pick a .gguf file or a Hugging Face model folder`;
  return undefined;
}
