// Downloaded models in the extension's global storage:
//
//   <globalStorage>/models/<manifest id>/<file>          the verified model
//   <globalStorage>/models/<manifest id>/<file>.verified  {size, sha256} recorded after the check
//   <globalStorage>/converted/<key>/                       models converted for the runtime, kept between
//                                                         loads (engine/gemma/runtimeCache.ts), the 3 most recent
//
// A model counts as present when the file is there with the recorded size, so startup does not
// re-hash 241 MB. Pure Node: no vscode (the command that shows progress wraps this).

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../common/atomicWrite';
import { downloadFile, type DownloadOptions, type DownloadResult } from './modelDownload';
import { manifestUrl, ModelManifest } from '../engine/model/modelManifest';

/** The engine's cache of converted models under `storageDir`. */
export function weightCacheDir(storageDir: string): string {
  return path.join(storageDir, 'converted');
}

/** Where a manifest's file lives (or will) under `storageDir`. */
export function modelPath(storageDir: string, m: ModelManifest): string {
  return path.join(storageDir, 'models', m.id, path.basename(m.file));
}

/** The verified model's path, or undefined when it is missing, unverified or the wrong size. */
export async function findModel(storageDir: string, m: ModelManifest): Promise<string | undefined> {
  const file = modelPath(storageDir, m);
  try {
    const [stat, stamp] = await Promise.all([fs.stat(file), fs.readFile(`${file}.verified`, 'utf8')]);
    const rec = JSON.parse(stamp) as { size?: unknown; sha256?: unknown };
    if (rec.size !== stat.size) return undefined;
    if (m.size !== undefined && stat.size !== m.size) return undefined;
    if (m.sha256 !== undefined && rec.sha256 !== m.sha256) return undefined;
    return file;
  } catch {
    return undefined;
  }
}

export interface EnsureModelOptions extends Pick<DownloadOptions, 'token' | 'signal' | 'onProgress' | 'proxy' | 'timeouts' | 'connect'> {
  /** Hugging Face endpoint (a mirror, or a local server in tests); a mirror never receives the token. */
  endpoint?: string;
}

/** The model's path, downloading (resuming, verifying) it first when it is not present. */
export async function ensureModel(storageDir: string, m: ModelManifest, opts: EnsureModelOptions = {}): Promise<{ path: string; download?: DownloadResult }> {
  const found = await findModel(storageDir, m);
  if (found) return { path: found };
  const dest = modelPath(storageDir, m);
  await fs.mkdir(path.dirname(dest), { recursive: true });
  const result = await downloadFile({
    url: manifestUrl(m, opts.endpoint),
    dest,
    expectedSize: m.size,
    expectedSha256: m.sha256,
    token: opts.token,
    signal: opts.signal,
    onProgress: opts.onProgress,
    proxy: opts.proxy,
    timeouts: opts.timeouts,
    connect: opts.connect,
  });
  await writeJsonAtomic(`${dest}.verified`, { size: result.size, sha256: result.sha256, verifiedBy: result.verifiedBy });
  return { path: dest, download: result };
}
