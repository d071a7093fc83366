// Wiring for the task commands and the training panel: one call from activate().

import * as vscode from 'vscode';
import { confirmLongRun } from '../panel/longRunQuestion';
import { PanelEngine } from '../panel/panelEngine';
import { type PanelDeps, registerTrainingPanelSerializer, type TrainingPanels } from '../panel/trainingPanel';
import type { TrainingDeps } from '../panel/taskTraining';
import type { TrainingProgress } from '../panel/trainingProgress';
import type { GemmaServices } from '../services';
import { registerFineTuneOnSelection } from './fineTuneOnSelection';
import { registerManageTasks } from './manageTasks';
import { registerOpenTrainingPanel } from './openTrainingPanel';
import { registerTrainingJobCommands } from './trainingJob';

/** Registers "Fine-tune on selection", "Open training panel", rename/delete, export job / import adapter and the panel serializer; training progress goes to `progress`, the panels opened into `panels`. */
export function registerTaskCommands(s: GemmaServices, progress: vscode.EventEmitter<TrainingProgress | undefined>, panels: TrainingPanels): vscode.Disposable[] {
  const engine = new PanelEngine(s);
  const training: TrainingDeps = {
    engine: s.engine, models: s.models, log: s.log, events: s.events, panelEngine: engine, progress,
    confirmLongRun: (modelName, stepS, totalS, steps) => confirmLongRun(s, modelName, stepS, totalS, steps),
  };
  const deps: PanelDeps = { extensionUri: s.context.extensionUri, log: s.log, events: s.events, engine, training, panels };
  return [registerFineTuneOnSelection(deps), registerOpenTrainingPanel(deps), ...registerManageTasks(deps), ...registerTrainingJobCommands(s, deps), registerTrainingPanelSerializer(deps)];
}
