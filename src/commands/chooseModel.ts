// "Gemma: Choose model…": one quick pick of every model the engine can run here: the catalogue's downloads
// (the default 270M and Gemma 3 1B, with file size, RAM and speed: measured on this machine once the model
// has run here, else the build machine's reference figures), the local files used before, and a way to
// browse for another. Picking downloads what is missing (the token flow of a gated repository included),
// loads it to check it, saves it as the model, and measures its speed here.

import * as path from 'node:path';
import * as vscode from 'vscode';
import { type CatalogEntry, describeEntry, describeFigures, formatBytes, MODEL_CATALOG } from '../model/modelCatalog';
import { measurements, probeSpeed, recordMeasurement } from '../model/modelMeasurements';
import { CHOOSE_MODEL_COMMAND } from '../model/baseCheck';
import type { ModelService } from '../model/modelService';
import { errorText } from '../common/quote';
import { expandModelPath } from '../model/modelSettings';
import type { GemmaServices } from '../services';
import { findModel, modelPath } from '../store/modelCache';
import { downloadModel } from './downloadModel';
import { useLocalModel } from './modelCommands';

const RECENT_KEY = 'gemmaTune.recentModels';
const MAX_RECENT = 6;

type Action = { kind: 'catalog'; entry: CatalogEntry; present: string | undefined } | { kind: 'local'; path: string } | { kind: 'browse' };

interface ModelItem extends vscode.QuickPickItem {
  action?: Action;
}

/** Local model paths used before, most recent first. */
function recentModels(state: vscode.Memento): string[] {
  const v = state.get<unknown>(RECENT_KEY);
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

async function rememberModel(state: vscode.Memento, p: string): Promise<void> {
  await state.update(RECENT_KEY, [p, ...recentModels(state).filter((x) => x !== p)].slice(0, MAX_RECENT));
}

/** The items of the pick, the current model checked. */
async function items(s: GemmaServices, models: ModelService): Promise<ModelItem[]> {
  const storage = s.context.globalStorageUri.fsPath;
  const measured = measurements(s.context.globalState);
  const current = currentModel(models);
  const out: ModelItem[] = [{ label: 'Download', kind: vscode.QuickPickItemKind.Separator }];
  const catalogPaths = new Set<string>();
  for (const entry of MODEL_CATALOG) {
    const m = entry.manifest;
    const present = await findModel(storage, m);
    const isDefault = entry === MODEL_CATALOG[0];
    const file = present ?? modelPath(storage, m);
    catalogPaths.add(file);
    const chosen = isDefault ? current === '' : current === file;
    const figures = describeEntry(entry.reference, measured[file]);
    out.push({
      label: `${chosen ? '$(check) ' : ''}${m.title}`,
      description: `${formatBytes(m.size ?? 0)} · ${present ? 'downloaded' : 'download'}${!present && m.gated ? ' · needs a Hugging Face token' : ''} · ${entry.summary}`,
      detail: figures,
      action: { kind: 'catalog', entry, present },
    });
  }
  const locals = [...new Set([...(current !== '' && !catalogPaths.has(current) ? [current] : []), ...recentModels(s.context.globalState)])].filter((p) => !catalogPaths.has(p));
  out.push({ label: 'Local files', kind: vscode.QuickPickItemKind.Separator });
  for (const p of locals) {
    const here = measured[p];
    out.push({
      label: `${p === current ? '$(check) ' : ''}$(file) ${path.basename(p)}`,
      description: path.dirname(p),
      detail: here?.decodeTokS !== undefined && here.ramMB !== undefined ? `measured here: ${describeFigures({ ramMB: here.ramMB, decodeTokS: here.decodeTokS, loadS: here.loadS ?? 0 })}` : undefined,
      action: { kind: 'local', path: p },
    });
  }
  out.push({ label: '$(folder-opened) Browse for a .gguf file or a Hugging Face folder…', action: { kind: 'browse' } });
  return out;
}

/** The configured model as a path ('' = the default model). */
function currentModel(models: ModelService): string {
  const configured = models.settings().path;
  return configured === '' ? '' : expandModelPath(configured, { workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath });
}

/** Runs the command; resolves with the model path now in use ('' = the default model), or undefined. */
export async function chooseModel(s: GemmaServices, models: ModelService): Promise<string | undefined> {
  const previous = currentModel(models);
  const list = await items(s, models);
  s.events.write('modelPickerShown', { items: list.filter((i) => i.action).map((i) => i.label) });
  const pick = await vscode.window.showQuickPick(list, { title: 'Gemma: choose the model', placeHolder: 'Size · memory · speed; the checked one is in use', matchOnDescription: true, matchOnDetail: true });
  const action = pick?.action;
  if (!action) return undefined;
  let chosen: string | undefined;
  try {
    if (action.kind === 'browse' || action.kind === 'local') {
      chosen = await useLocalModel(s, models, action.kind === 'local' ? action.path : undefined);
      if (chosen) {
        // The model it replaces stays one pick away.
        const catalog = new Set(MODEL_CATALOG.map((e) => modelPath(s.context.globalStorageUri.fsPath, e.manifest)));
        if (previous !== '' && previous !== chosen && !catalog.has(previous)) await rememberModel(s.context.globalState, previous);
        await rememberModel(s.context.globalState, chosen);
      }
    } else {
      const file = action.present ?? (await models.download((onFraction) => downloadModel(s, action.entry.manifest, onFraction)));
      if (!file) return undefined;
      chosen = await useLocalModel(s, models, action.entry === MODEL_CATALOG[0] ? '' : file);
    }
  } catch (e) {
    void vscode.window.showErrorMessage(`Gemma: ${errorText(e)}`);
    return undefined;
  }
  if (chosen === undefined) return undefined;
  await measureChosen(s, models);
  return chosen;
}

/** Loads the chosen model (if it is not yet) and records its speed and memory here. */
async function measureChosen(s: GemmaServices, models: ModelService): Promise<void> {
  const loaded = await models.ensureLoaded({ interactive: true });
  if (!loaded) return;
  try {
    const figures = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Gemma: measuring ${loaded.summary.name} on this machine…` }, () => probeSpeed(s.engine, 2));
    await recordMeasurement(s.context.globalState, loaded.path, { ...figures, loadS: loaded.loadSeconds });
    s.events.write('modelMeasured', { path: loaded.path, ...figures, loadSeconds: loaded.loadSeconds });
    void vscode.window.showInformationMessage(`Gemma: using ${loaded.summary.name} — here ${describeFigures({ ...figures, loadS: loaded.loadSeconds })}, loaded in ${loaded.loadSeconds.toFixed(1)} s.`);
  } catch (e) {
    s.log.warn(`measuring ${loaded.path}: ${errorText(e)}`);
  }
}

/** Registers the command. */
export function registerChooseModel(s: GemmaServices, models: ModelService): vscode.Disposable {
  return vscode.commands.registerCommand(CHOOSE_MODEL_COMMAND, () => chooseModel(s, models));
}
