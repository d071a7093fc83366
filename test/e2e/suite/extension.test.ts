// Runs inside VS Code's extension host with Gemma Tune loaded as the development extension.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';

const ID = 'gemma-tune.gemma-tune';

interface EngineStatusShape {
  runtime: { name: string; version: string };
  threads: number;
  model: unknown;
  protocol: number;
  pid: number;
}

function extension(): vscode.Extension<unknown> {
  const ext = vscode.extensions.getExtension(ID);
  assert.ok(ext, `${ID} is not installed in this VS Code`);
  return ext;
}

describe('Gemma Tune in the extension host', () => {
  it('is lazy: not active until a Gemma command runs', () => {
    assert.equal(extension().isActive, false);
  });

  it('every command in package.json is registered after activation', async () => {
    const ext = extension();
    await ext.activate();
    assert.equal(ext.isActive, true);
    const contributed = (ext.packageJSON.contributes.commands as { command: string; category: string }[]).map((c) => c.command);
    assert.ok(contributed.includes('gemmaTune.showEngineStatus'));
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const c of contributed) assert.ok(registered.has(c), `${c} is in the palette but has no handler`);
    for (const c of ext.packageJSON.contributes.commands as { category: string }[]) assert.equal(c.category, 'Gemma');
  });

  it('Show Engine Status returns the engine\'s real status, from a process of its own', async () => {
    const status = await vscode.commands.executeCommand<EngineStatusShape | undefined>('gemmaTune.showEngineStatus');
    assert.ok(status, 'the command returned no status (the engine failed; see the Gemma Tune log)');
    const ort = JSON.parse(readFileSync(path.join(extension().extensionPath, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as {
      version: string;
    };
    assert.equal(status.runtime.name, 'onnxruntime-node');
    assert.equal(status.runtime.version, ort.version);
    assert.ok(status.threads >= 1);
    assert.equal(status.model, null);
    assert.equal(status.protocol, 2);
    assert.notEqual(status.pid, process.pid, 'the engine is not the extension host');
  });

  it('asking twice reuses the same engine process', async () => {
    const a = await vscode.commands.executeCommand<{ pid: number }>('gemmaTune.showEngineStatus');
    const b = await vscode.commands.executeCommand<{ pid: number }>('gemmaTune.showEngineStatus');
    assert.equal(a.pid, b.pid);
  });

  if (process.env.GEMMA_TUNE_E2E_FAIL === '1') {
    it('a deliberately failing test (GEMMA_TUNE_E2E_FAIL=1), to check that failures are reported', () => {
      assert.fail('deliberate failure');
    });
  }
});
