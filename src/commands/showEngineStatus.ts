// "Gemma: Show Engine Status": asks the worker what it runs (runtime version, device, threads, model,
// queue) and shows it as a notification, with the details in the "Gemma Tune" log.

import * as vscode from 'vscode';
import { EngineError } from '../client/engineClient';
import type { EngineStatus } from '../protocol/engine';
import type { GemmaServices } from '../services';

export const SHOW_ENGINE_STATUS = 'gemmaTune.showEngineStatus';

/** Which device runs what: "inference and training on WebGPU", "… on the CPU (no GPU …)", or that none is chosen yet. */
export function deviceLine(s: EngineStatus): string {
  const d = s.device;
  if (!d) return 'device chosen at the first model load';
  const name = (x: 'cpu' | 'webgpu') => (x === 'webgpu' ? 'WebGPU' : 'the CPU');
  const where = d.inference === d.training ? `inference and training on ${name(d.inference)}` : `inference on ${name(d.inference)}, training on ${name(d.training)}`;
  return d.fallbackReason ? `${where} (${d.fallbackReason})` : where;
}

/** The one-line summary the notification shows. */
export function statusLine(s: EngineStatus): string {
  const model = s.model ? `model ${s.model.name} (${s.model.precision}, ${s.model.format})` : 'no model loaded';
  const busy = s.busy ? `, running ${s.busy.method}${s.queued ? ` (+${s.queued} queued)` : ''}` : '';
  return `Gemma engine: ${s.runtime.name} ${s.runtime.version}, ${deviceLine(s)}, ${s.threads} threads, ${model}${busy}`;
}

/** Asks the engine for its status and shows it; resolves with the status (undefined on failure). */
export async function showEngineStatus(s: GemmaServices): Promise<EngineStatus | undefined> {
  const t0 = performance.now();
  try {
    const status = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: 'Gemma: asking the engine' },
      () => s.engine.request('status', {}),
    );
    const ms = Math.round(performance.now() - t0);
    const line = statusLine(status);
    s.log.info(`${line} (answered in ${ms} ms)`);
    s.log.info(
      `engine: node ${status.node}, thread ${status.threadId}, up ${Math.round(status.uptimeMs)} ms, ` +
        `rss ${status.memory.rssMB} MB, heap ${status.memory.heapUsedMB} MB, external ${status.memory.externalMB} MB`,
    );
    s.events.write('engineStatus', { line, ms, runtime: status.runtime, threads: status.threads, device: status.device, model: status.model });
    // Not awaited: the promise settles only when the user dismisses the toast.
    void vscode.window.showInformationMessage(line, 'Show Log').then((pick) => pick && s.log.show(true));
    return status;
  } catch (e) {
    const why = e instanceof EngineError ? `${e.message} [${e.code}]` : e instanceof Error ? e.message : String(e);
    s.log.error(`engine status failed: ${why}`);
    s.events.write('engineStatusFailed', { error: why });
    void vscode.window.showErrorMessage(`Gemma engine is not available: ${why}`, 'Show Log').then((pick) => pick && s.log.show(true));
    return undefined;
  }
}

/** Registers the palette command. */
export function registerShowEngineStatus(s: GemmaServices): vscode.Disposable {
  return vscode.commands.registerCommand(SHOW_ENGINE_STATUS, () => showEngineStatus(s));
}
