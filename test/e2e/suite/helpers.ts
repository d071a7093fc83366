// Shared by the in-host test files: the extension's events, a tiny real model, and waiting for
// VS Code to take in a settings file written on disk.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';

export const ID = 'gemma-tune.gemma-tune';

/** The extension's events named `name` (GEMMA_TUNE_EVENTS_FILE, JSON lines), oldest first. */
export function events(name: string): Record<string, unknown>[] {
  const file = process.env.GEMMA_TUNE_EVENTS_FILE;
  if (!file || !existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.event === name);
}

/** Writes a tiny random Q4_0 GGUF at `file` with the extension's own `gemma-tune make-model`. */
export function makeTinyModel(file: string): void {
  const ext = vscode.extensions.getExtension(ID)!;
  execFileSync(process.execPath, [path.join(ext.extensionPath, 'dist/cli.js'), 'make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', file]);
}

/** Resolves on the next configuration change under `section`; rejects after `ms`. */
export function configurationChange(section: string, ms = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => (sub.dispose(), reject(new Error(`no change of ${section} within ${ms} ms`))), ms);
    const sub = vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration(section)) return;
      clearTimeout(timer);
      sub.dispose();
      resolve();
    });
  });
}
