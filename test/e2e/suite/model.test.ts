// "Gemma: Use local model…" inside VS Code's extension host: a pick is loaded by the real engine
// before it is saved, so a file that is not a model is refused with the engine's reason and the
// setting is left alone, and a real model (a tiny random GGUF from `gemma-tune make-model`) is
// saved to gemmaTune.model.path and loaded.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as vscode from 'vscode';

const ID = 'gemma-tune.gemma-tune';

function events(name: string): Record<string, unknown>[] {
  const file = process.env.GEMMA_TUNE_EVENTS_FILE;
  if (!file || !existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.event === name);
}

describe('Gemma: Use local model… (in the extension host)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gemma-local-model-'));

  before(async () => {
    await vscode.extensions.getExtension(ID)!.activate();
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a file that is not a model, with the engine\'s reason, and keeps the setting', async () => {
    const bad = path.join(dir, 'broken.gguf');
    writeFileSync(bad, 'this is not a GGUF file at all');
    const before = vscode.workspace.getConfiguration('gemmaTune').get<string>('model.path');
    const saved = await vscode.commands.executeCommand<string | undefined>('gemmaTune.useLocalModel', bad);
    assert.equal(saved, undefined);
    assert.equal(vscode.workspace.getConfiguration('gemmaTune').get<string>('model.path'), before);
    const rejected = events('modelRejected').at(-1);
    assert.ok(rejected, 'a modelRejected event');
    assert.equal(rejected.path, bad);
    assert.match(String(rejected.error), /broken\.gguf|GGUF|magic/i, `the engine's message names the problem: ${String(rejected.error)}`);
  });

  it('refuses a folder without config.json before asking the engine', async () => {
    const saved = await vscode.commands.executeCommand<string | undefined>('gemmaTune.useLocalModel', dir);
    assert.equal(saved, undefined);
    assert.match(String(events('modelRejected').at(-1)?.error), /without config\.json/);
  });

  it('loads a real model, then saves it as gemmaTune.model.path', async () => {
    const ext = vscode.extensions.getExtension(ID)!;
    const model = path.join(dir, 'tiny-q4.gguf');
    execFileSync(process.execPath, [path.join(ext.extensionPath, 'dist/cli.js'), 'make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', model]);
    const saved = await vscode.commands.executeCommand<string | undefined>('gemmaTune.useLocalModel', model);
    assert.equal(saved, model);
    assert.equal(vscode.workspace.getConfiguration('gemmaTune').get<string>('model.path'), model);
    const loaded = events('modelLoaded').at(-1);
    assert.equal(loaded?.path, model);
    type Status = { model: { name: string; device: string } | null; device: { requested: string; inference: string; training: string; fallbackReason?: string } | null };
    const status = await vscode.commands.executeCommand<Status>('gemmaTune.showEngineStatus');
    assert.equal(status.model?.name, 'tiny-q4.gguf');
    // gemmaTune.engine.device is 'auto': training on WebGPU where a GPU answers, inference on the CPU; with no
    // GPU both on the CPU with the reason, which the status line (the notification) repeats.
    const d = status.device;
    assert.equal(d?.requested, 'auto');
    assert.equal(d.inference, 'cpu');
    assert.equal(d.inference, status.model?.device);
    const line = String(events('engineStatus').at(-1)?.line);
    if (d.training === 'cpu') {
      assert.ok(d.fallbackReason, 'a CPU fallback says why');
      assert.ok(line.includes(`inference and training on the CPU (${d.fallbackReason})`), line);
    } else {
      assert.ok(line.includes('inference on the CPU, training on WebGPU'), line);
    }
    await vscode.workspace.getConfiguration('gemmaTune').update('model.path', undefined, vscode.ConfigurationTarget.Global);
  });
});
