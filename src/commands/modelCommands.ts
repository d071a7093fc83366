// "Gemma: Use local model…" and "Gemma: Download default model": the two ways to give the engine a
// model. A local pick is checked by loading it in the engine before it is saved, so a bad file is
// refused with the engine's own reason and the setting never points at something unusable.

import * as vscode from 'vscode';
import { errorText } from '../common/quote';
import { DOWNLOAD_MODEL_COMMAND, isCancelled, type ModelService, USE_LOCAL_MODEL_COMMAND } from '../model/modelService';
import { checkModelCandidate, CONFIG_SECTION, MODEL_PATH_KEY } from '../model/modelSettings';
import type { GemmaServices } from '../services';
import { downloadModel } from './downloadModel';

interface SourceItem extends vscode.QuickPickItem {
  pick: 'file' | 'folder' | 'default';
}

/** Asks for a .gguf file or a Hugging Face folder; undefined when dismissed. `''` = back to the default model. */
async function askModelPath(current: string): Promise<string | undefined> {
  // Linux and Windows dialogs cannot offer files and folders at once, so the user says which first.
  const items: SourceItem[] = [
    { label: '$(file) A .gguf file…', description: 'e.g. gemma-3-270m-it-qat-Q4_0.gguf', pick: 'file' },
    { label: '$(folder) A Hugging Face model folder…', description: 'config.json, model.safetensors, tokenizer.json', pick: 'folder' },
  ];
  if (current !== '') items.push({ label: '$(discard) The default model', description: 'downloaded into the extension\'s storage', pick: 'default' });
  const choice = await vscode.window.showQuickPick(items, { title: 'Gemma: use a local model', placeHolder: current ? `Now: ${current}` : 'Now: the default model' });
  if (!choice) return undefined;
  if (choice.pick === 'default') return '';
  const uris = await vscode.window.showOpenDialog({
    title: choice.pick === 'file' ? 'A Gemma 3 .gguf file' : 'A Hugging Face Gemma 3 folder',
    openLabel: 'Use this model',
    canSelectFiles: choice.pick === 'file',
    canSelectFolders: choice.pick === 'folder',
    canSelectMany: false,
    filters: choice.pick === 'file' ? { 'GGUF model': ['gguf'] } : undefined,
  });
  return uris?.[0]?.fsPath;
}

/**
 * Saves the model path where it takes effect: the workspace when a trusted workspace already sets
 * it, else the user settings (in Restricted Mode VS Code ignores the workspace's value, and a pick
 * written there would never load).
 */
async function saveModelPath(value: string): Promise<void> {
  const config = vscode.workspace.getConfiguration(CONFIG_SECTION);
  const inspect = config.inspect<string>(MODEL_PATH_KEY);
  const target = vscode.workspace.isTrusted && inspect?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  await config.update(MODEL_PATH_KEY, value === '' ? undefined : value, target);
}

/** Runs "Use local model…": pick, load in the engine to check, save. Resolves with the saved path. */
export async function useLocalModel(s: GemmaServices, models: ModelService, given?: string): Promise<string | undefined> {
  const picked = given ?? (await askModelPath(models.settings().path));
  if (picked === undefined) return undefined;
  if (picked === '') {
    await saveModelPath('');
    s.events.write('modelPathSaved', { path: '' });
    void vscode.window.showInformationMessage('Gemma: using the default model.');
    return '';
  }
  const problem = await checkModelCandidate(picked);
  if (problem) {
    void vscode.window.showErrorMessage(`Gemma: ${problem}`);
    s.events.write('modelRejected', { path: picked, error: problem });
    return undefined;
  }
  try {
    const loaded = await models.tryLoad(picked);
    await saveModelPath(picked);
    s.events.write('modelPathSaved', { path: picked });
    void vscode.window.showInformationMessage(`Gemma: now using ${loaded.summary.name} (${loaded.summary.format}, loaded in ${loaded.loadSeconds.toFixed(1)} s).`);
    return picked;
  } catch (e) {
    if (isCancelled(e)) return undefined; // the user stopped the check: nothing to say, nothing saved
    const why = errorText(e);
    s.events.write('modelRejected', { path: picked, error: why });
    void vscode.window.showErrorMessage(`Gemma cannot use ${picked}: ${why}`, 'Show Log').then((pick) => pick && s.log.show(true));
    return undefined;
  }
}

/** Runs "Download default model" with the status bar following it; resolves with the file. */
export async function downloadDefaultModel(s: GemmaServices, models: ModelService): Promise<string | undefined> {
  try {
    const file = await models.download((onFraction) => downloadModel(s, undefined, onFraction));
    if (file && models.settings().path === '') void vscode.window.showInformationMessage('Gemma: the default model is ready; it loads when a task first runs.');
    return file;
  } catch (e) {
    const why = errorText(e);
    s.log.error(`download failed: ${why}`);
    s.events.write('modelDownloadFailed', { error: why });
    void vscode.window.showErrorMessage(`Gemma: the download failed: ${why}`, 'Retry').then((pick) => pick && void vscode.commands.executeCommand(DOWNLOAD_MODEL_COMMAND));
    return undefined;
  }
}

/** Registers both commands. `useLocalModel` takes an optional path argument (for scripts and tests). */
export function registerModelCommands(s: GemmaServices, models: ModelService): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand(USE_LOCAL_MODEL_COMMAND, (path?: unknown) => useLocalModel(s, models, typeof path === 'string' ? path : undefined)),
    vscode.commands.registerCommand(DOWNLOAD_MODEL_COMMAND, () => downloadDefaultModel(s, models)),
  ];
}
