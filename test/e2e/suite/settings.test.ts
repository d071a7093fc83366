// Setting scopes as VS Code applies them to a workspace's .vscode/settings.json, in a trusted
// workspace (suite/restricted.test.ts is the untrusted one): the engine threads and device belong
// to the machine (`machine`), so a repository's 64 threads and webgpu are ignored; a trusted
// workspace may choose the model (`machine-overridable`), relative to its folder; presentation
// settings (`window`) apply. The extension reads them through VS Code, so the model it loads runs
// with the user's threads.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as vscode from 'vscode';
import { physicalCores } from '../../../src/common/cpuCores';
import { configurationChange, events, ID, makeTinyModel } from './helpers';

describe('Settings from a trusted workspace\'s .vscode/settings.json', () => {
  const ws = vscode.workspace.workspaceFolders![0].uri.fsPath;
  const settingsFile = path.join(ws, '.vscode', 'settings.json');
  const wsModel = path.join(ws, 'models', 'ws.gguf');
  const dir = mkdtempSync(path.join(tmpdir(), 'gemma-settings-'));
  const userModel = path.join(dir, 'user.gguf');

  before(async function () {
    this.timeout(120_000);
    await vscode.extensions.getExtension(ID)!.activate();
    mkdirSync(path.dirname(wsModel), { recursive: true });
    makeTinyModel(wsModel);
    makeTinyModel(userModel);
    // The user works with their own model (saved in user settings, loaded: the model is in use).
    assert.equal(await vscode.commands.executeCommand('gemmaTune.useLocalModel', userModel), userModel);
    mkdirSync(path.dirname(settingsFile), { recursive: true });
    const changed = configurationChange('gemmaTune');
    writeFileSync(settingsFile, JSON.stringify({ 'gemmaTune.model.path': 'models/ws.gguf', 'gemmaTune.engine.threads': 64, 'gemmaTune.engine.device': 'webgpu', 'gemmaTune.extract.placement': 'replace' }, null, 2));
    await changed;
  });

  after(async () => {
    const changed = configurationChange('gemmaTune', 5000).catch(() => undefined);
    rmSync(path.join(ws, '.vscode'), { recursive: true, force: true });
    rmSync(path.join(ws, 'models'), { recursive: true, force: true });
    await changed;
    await vscode.workspace.getConfiguration('gemmaTune').update('model.path', undefined, vscode.ConfigurationTarget.Global);
    rmSync(dir, { recursive: true, force: true });
  });

  it('VS Code ignores the workspace\'s engine.threads and engine.device (machine scope) and applies its model path and placement', () => {
    assert.equal(vscode.workspace.isTrusted, true);
    const config = vscode.workspace.getConfiguration('gemmaTune');
    assert.equal(config.get('engine.threads'), 'auto', 'the default, not the workspace\'s 64');
    assert.equal(config.inspect('engine.threads')?.workspaceValue, undefined, 'a machine setting has no workspace value');
    assert.equal(config.get('engine.device'), 'auto');
    assert.equal(config.get('model.path'), 'models/ws.gguf');
    assert.equal(config.inspect('model.path')?.workspaceValue, 'models/ws.gguf');
    assert.equal(config.get('extract.placement'), 'replace');
  });

  it('the extension loads the workspace\'s model, found from the folder, with a thread per physical core (not the workspace\'s 64)', async function () {
    this.timeout(60_000);
    // The change reloads the model in use; wait for that load.
    const deadline = Date.now() + 45_000;
    let loaded: Record<string, unknown> | undefined;
    while (!(loaded = events('modelLoaded').find((e) => e.path === wsModel)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.ok(loaded, `a modelLoaded event for ${wsModel}`);
    assert.equal(loaded.threads, physicalCores());
  });

  it('"Use local model…" saves into the trusted workspace that chose the model', async function () {
    this.timeout(60_000);
    const changed = configurationChange('gemmaTune');
    assert.equal(await vscode.commands.executeCommand('gemmaTune.useLocalModel', userModel), userModel);
    await changed;
    assert.equal(vscode.workspace.getConfiguration('gemmaTune').inspect('model.path')?.workspaceValue, userModel);
    assert.equal((JSON.parse(readFileSync(settingsFile, 'utf8')) as Record<string, unknown>)['gemmaTune.model.path'], userModel);
  });
});
