// Which task adapters the engine holds. Loading an adapter reads its safetensors and rebuilds the
// LoRA inputs, so a code action pays it once per task: the adapter stays registered under a name
// derived from its folder until its file changes (retrained: new mtime or size) or the base model
// is reloaded (which drops every adapter, hence the model generation in the key). Pure Node.

import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { EngineClient } from './engineClient';
import { checkAdapterFiles } from '../store/adapterStage';
import { UnsafeFileError } from '../store/safeFile';
import { ADAPTER_WEIGHTS_FILE } from '../common/files';


/** The engine-side name of a task's adapter: stable per folder, short, and safe in logs. */
export function adapterName(adapterDir: string, taskId: string): string {
  const hash = createHash('sha256').update(path.resolve(adapterDir)).digest('hex').slice(0, 12);
  return `task:${taskId.slice(0, 80)}:${hash}`;
}

/** What identifies one version of an adapter's weights. */
export function adapterStamp(stat: { mtimeMs: number; size: number }): string {
  return `${stat.mtimeMs}:${stat.size}`;
}

interface Entry {
  name: string;
  stamp: string;
  generation: number;
}

export class AdapterCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(private readonly engine: Pick<EngineClient, 'request'>) {}

  /**
   * The name under which the adapter in `adapterDir` is loaded for model `generation`, loading it
   * first when it is new, changed on disk, or the model was reloaded since.
   */
  async ensure(adapterDir: string, taskId: string, generation: number): Promise<string> {
    const file = path.join(adapterDir, ADAPTER_WEIGHTS_FILE);
    let stat;
    try {
      stat = await checkAdapterFiles(adapterDir);
    } catch (e) {
      if (e instanceof UnsafeFileError) throw e;
      throw new Error(`${file} does not exist: train the task first`, { cause: e });
    }
    const stamp = adapterStamp(stat);
    const key = path.resolve(adapterDir);
    const hit = this.entries.get(key);
    if (hit && hit.stamp === stamp && hit.generation === generation) return hit.name;
    const flightKey = `${key}\n${stamp}\n${generation}`;
    let flight = this.inFlight.get(flightKey);
    if (!flight) {
      const name = adapterName(adapterDir, taskId);
      flight = this.engine.request('loadAdapter', { name, path: adapterDir }).then(() => {
        this.entries.set(key, { name, stamp, generation });
        return name;
      });
      this.inFlight.set(flightKey, flight);
      void flight.then(
        () => this.inFlight.delete(flightKey),
        () => this.inFlight.delete(flightKey),
      );
    }
    return flight;
  }

  /** Forgets every adapter (the engine lost them: worker restart). */
  clear(): void {
    this.entries.clear();
  }
}
