// "Gemma: Restart engine", and the notification that offers it when the engine has crashed too often
// to be restarted on its own (EngineClient stops after CRASH_LIMIT crashes within a minute, so a model
// or input that kills the engine every time does not keep the machine busy restarting it).

import * as vscode from 'vscode';
import type { EngineState } from '../client/engineClient';
import type { GemmaServices } from '../services';

export const RESTART_ENGINE_COMMAND = 'gemmaTune.restartEngine';
const RESTART = 'Restart engine';

/** Ends the engine (whatever runs is cancelled) and forgets its crashes; the next request starts a new one. */
export async function restartEngine(s: Pick<GemmaServices, 'engine' | 'log' | 'events'>): Promise<void> {
  s.log.info('engine: restart asked for');
  await s.engine.restart();
  s.events.write('engineRestarted');
  vscode.window.setStatusBarMessage('Gemma: the engine starts again on the next request', 5000);
}

/** Registers the command and the offer to restart a stopped engine. */
export function registerRestartEngine(s: Pick<GemmaServices, 'engine' | 'log' | 'events'>): vscode.Disposable {
  const offer = (st: EngineState): void => {
    if (st.kind !== 'stopped') return;
    void vscode.window.showErrorMessage(`Gemma: ${st.reason}.`, RESTART, 'Show Log').then((pick) => {
      if (pick === RESTART) void restartEngine(s);
      else if (pick === 'Show Log') s.log.show(true);
    });
  };
  const sub = s.engine.onDidChangeState(offer);
  return vscode.Disposable.from(vscode.commands.registerCommand(RESTART_ENGINE_COMMAND, () => restartEngine(s)), { dispose: () => sub.dispose() });
}
