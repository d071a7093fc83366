// What activate() builds once and hands to every command, code action and panel.

import type * as vscode from 'vscode';
import type { EngineClient } from './client/engineClient';
import type { EventLog } from './eventLog';
import type { ModelService } from './model/modelService';

export interface GemmaServices {
  context: vscode.ExtensionContext;
  /** The "Gemma Tune" output channel: engine logs and what the commands did. */
  log: vscode.LogOutputChannel;
  engine: EngineClient;
  events: EventLog;
  /** The engine's base model: ensureLoaded() before any request that needs one. */
  models: ModelService;
}
