// Restricted Mode: the folder is untrusted (Workspace Trust on, no dialog; see inHost.ts) and its
// .vscode/settings.json tries to choose the model file, f32 precision, 64 threads and webgpu. The
// extension runs (untrustedWorkspaces: limited); VS Code withholds the workspace's model path and
// precision (restrictedConfigurations) and its threads and device (machine scope); a presentation
// setting still applies. A model the user picks loads with the user's settings and is saved in
// user settings.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as vscode from 'vscode';
import { physicalCores } from '../../../src/common/cpuCores';
import { events, ID, makeTinyModel } from './helpers';

describe('Restricted Mode: an untrusted folder whose settings try to choose the model', () => {
  const ws = vscode.workspace.workspaceFolders![0].uri.fsPath;
  const planted = () => JSON.parse(readFileSync(path.join(ws, '.vscode', 'settings.json'), 'utf8')) as Record<string, unknown>;
  const dir = mkdtempSync(path.join(tmpdir(), 'gemma-restricted-'));

  after(async () => {
    await vscode.workspace.getConfiguration('gemmaTune').update('model.path', undefined, vscode.ConfigurationTarget.Global);
    rmSync(dir, { recursive: true, force: true });
  });

  it('the folder is untrusted and the extension runs, every command registered', async () => {
    assert.equal(vscode.workspace.isTrusted, false);
    const ext = vscode.extensions.getExtension(ID)!;
    await ext.activate();
    assert.equal(ext.isActive, true);
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const c of ext.packageJSON.contributes.commands as { command: string }[]) assert.ok(registered.has(c.command), c.command);
  });

  it('VS Code withholds the workspace\'s model path, precision, threads and device; its extract placement applies', () => {
    assert.equal(planted()['gemmaTune.model.path'], 'models/planted.gguf', 'the planted file is there');
    const config = vscode.workspace.getConfiguration('gemmaTune');
    assert.equal(config.get('model.path'), '');
    assert.equal(config.inspect('model.path')?.workspaceValue, undefined);
    assert.equal(config.get('model.precision'), 'q4');
    assert.equal(config.get('engine.threads'), 'auto');
    assert.equal(config.get('engine.device'), 'auto');
    assert.equal(config.get('extract.placement'), 'replace', 'the same file\'s presentation setting is read');
  });

  it('a model picked with "Use local model…" loads with the user\'s q4 and a thread per physical core, and is saved in user settings', async function () {
    this.timeout(60_000);
    const model = path.join(dir, 'tiny.gguf');
    makeTinyModel(model);
    assert.equal(await vscode.commands.executeCommand('gemmaTune.useLocalModel', model), model);
    const loaded = events('modelLoaded').at(-1);
    assert.equal(loaded?.path, model);
    assert.equal(loaded?.precision, 'q4');
    assert.equal(loaded?.threads, physicalCores());
    assert.equal(vscode.workspace.getConfiguration('gemmaTune').inspect('model.path')?.globalValue, model);
    assert.equal(planted()['gemmaTune.model.path'], 'models/planted.gguf', 'the workspace file is left alone');
    const touched = ['modelLoaded', 'modelLoadFailed', 'modelRejected'].flatMap(events).filter((e) => String(e.path).includes('planted'));
    assert.deepEqual(touched, [], 'the planted model was never opened');
  });
});
