// Wiring for the task commands and the training panel: one call from activate().

import * as vscode from 'vscode';
import type { PanelEngine } from '../panel/panelEngine';
import { type PanelDeps, registerTrainingPanelSerializer, TrainingPanels } from '../panel/trainingPanel';
import type { GemmaServices } from '../services';
import { registerFineTuneOnSelection } from './fineTuneOnSelection';
import { registerManageTasks } from './manageTasks';
import { registerOpenTrainingPanel } from './openTrainingPanel';
import { registerTrainingJobCommands } from './trainingJob';

/** Registers "Fine-tune on selection", "Open training panel", rename/delete, export job / import adapter and the panel serializer. */
export function registerTaskCommands(s: GemmaServices, engine: PanelEngine): vscode.Disposable[] {
  const deps: PanelDeps = { extensionUri: s.context.extensionUri, log: s.log, events: s.events, engine, panels: new TrainingPanels() };
  return [registerFineTuneOnSelection(deps), registerOpenTrainingPanel(deps), ...registerManageTasks(deps), ...registerTrainingJobCommands(s, deps), registerTrainingPanelSerializer(deps)];
}
