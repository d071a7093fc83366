// Gemma Tune's entry point: wiring only. Builds the shared services once, registers every
// command, and puts each disposable on context.subscriptions. Activation is lazy (VS Code
// activates on the first Gemma command), and its cost is logged.

import * as vscode from 'vscode';
import { EngineClient } from './client/engineClient';
import { registerShowEngineStatus } from './commands/showEngineStatus';
import { registerTaskCommands } from './commands/taskCommands';
import { EventLog } from './eventLog';
import type { GemmaServices } from './services';

/** Called by VS Code on the first Gemma command. */
export function activate(context: vscode.ExtensionContext): void {
  const t0 = performance.now();
  const log = vscode.window.createOutputChannel('Gemma Tune', { log: true });
  const events = new EventLog();
  // The worker starts on the first request, so activation does not pay for it.
  const engine = new EngineClient({ workerPath: context.asAbsolutePath('dist/worker.js'), logger: log });
  const services: GemmaServices = { context, log, engine, events };
  context.subscriptions.push(log, { dispose: () => void engine.dispose() });

  context.subscriptions.push(registerShowEngineStatus(services));
  context.subscriptions.push(...registerTaskCommands(services));

  const activationMs = Math.round((performance.now() - t0) * 10) / 10;
  log.info(`Gemma Tune ${String(context.extension.packageJSON.version)} activated in ${activationMs} ms`);
  events.write('activated', { activationMs, version: vscode.version, appName: vscode.env.appName });
}

/** Everything is on context.subscriptions; VS Code disposes it. */
export function deactivate(): void {}
