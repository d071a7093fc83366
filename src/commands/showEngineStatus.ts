// "Gemma: Show Engine Status": asks the engine what it runs (runtime version, device, threads, model,
// queue) and shows it as a notification, with the details in the "Gemma Tune" log.

import * as vscode from 'vscode';
import { EngineError } from '../client/engineClient';
import type { EngineStatus } from '../protocol/engine';
import { errorText } from '../common/quote';
import type { GemmaServices } from '../services';

export const SHOW_ENGINE_STATUS = 'gemmaTune.showEngineStatus';
/** Status answers at once, even mid-training; an engine silent this long is stuck, and the user is told. */
const STATUS_TIMEOUT_MS = 15_000;

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
  return `Gemma engine: ${s.runtime.name} ${s.runtime.version}, ${deviceLine(s)}, ${s.threads} threads, ${model}${busy}, pid ${s.pid}`;
}

/** Asks the engine for its status and shows it; resolves with the status (undefined on failure). */
export async function showEngineStatus(s: GemmaServices): Promise<EngineStatus | undefined> {
  const t0 = performance.now();
  try {
    const status = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: 'Gemma: asking the engine' },
      () => s.engine.request('status', {}, { timeoutMs: STATUS_TIMEOUT_MS }),
    );
    const ms = Math.round(performance.now() - t0);
    const line = statusLine(status);
    s.log.info(`${line} (answered in ${ms} ms)`);
    const m = status.memory;
    s.log.info(
      `engine: pid ${status.pid}, node ${status.node}, up ${Math.round(status.uptimeMs)} ms, ` +
        `rss ${m.rssMB} MB (cap ${m.capMB === null ? 'none' : `${m.capMB} MB`}), heap ${m.heapUsedMB} of ${m.heapLimitMB} MB, external ${m.externalMB} MB`,
    );
    s.events.write('engineStatus', { line, ms, runtime: status.runtime, threads: status.threads, device: status.device, model: status.model, pid: status.pid });
    // Not awaited: the promise settles only when the user dismisses the toast.
    void vscode.window.showInformationMessage(line, 'Show Log').then((pick) => pick && s.log.show(true));
    return status;
  } catch (e) {
    const why = e instanceof EngineError ? `${errorText(e)} [${e.code}]` : errorText(e);
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
