// What the e2e parts do in the workbench and read back from disk, written once: the extension's
// events file (the test oracle), waiting, the palette and quick inputs, editor selections, the light
// bulb menu, the colour theme, the training panel's frame and a task's examples.jsonl, screenshots.

import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FrameLocator, Locator, Page } from 'playwright-core';
import { ROOT, type Session } from './codeServer';

/** Generous: the machine is shared, and a loaded 2-core box slows the workbench down a lot. */
export const UI_TIMEOUT = 30_000;

export type ExtensionEvent = { event: string; [k: string]: unknown };

/** The JSON lines the extension appended to GEMMA_TUNE_EVENTS_FILE. */
export function readEvents(file: string): ExtensionEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ExtensionEvent);
}

/** Polls `fn` until it returns something other than undefined. */
export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = UI_TIMEOUT): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 120));
  }
}

/** Events that end a wait at once: the extension said something failed. */
const FAILURES = (e: ExtensionEvent) => e.event === 'modelLoadFailed' || e.event === 'taskFailed' || (e.event === 'trainingDone' && e.reason === 'failed');

/** The `count`-th event named `name` (1-based); fails fast when the extension reported a failure. */
export function waitForEvent(file: string, name: string, count = 1, timeoutMs = 60_000): Promise<ExtensionEvent> {
  return waitFor(`event "${name}" #${count}`, () => {
    const events = readEvents(file);
    const bad = events.find(FAILURES);
    if (bad) throw new Error(`the extension reported ${bad.event}: ${JSON.stringify(bad)}`);
    return events.filter((e) => e.event === name)[count - 1];
  }, timeoutMs);
}

export interface StoredExample {
  id: string;
  input: string;
  heldOut: boolean;
  messages: { role: string; content: string }[];
}

/** The examples.jsonl of the task folder `taskDir` (relative to the workspace). */
export function examplesOnDisk(workspace: string, taskDir: string): StoredExample[] {
  const file = path.join(workspace, taskDir, 'examples.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as StoredExample);
}

/** The training panel's page (the inner frame of the webview); with several panels open, the one shown. */
export function panelFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready >> visible=true').frameLocator('#active-frame');
}

/**
 * Does `act` until `target` shows, at most `tries` times, waiting `waitMs` after each; `undo` runs between
 * tries. For UI that can miss a first attempt on a fresh window or a loaded machine (a menu drawn before
 * its contributions, a list filtered before it is filled), which a user would simply repeat.
 */
export async function actUntilShown(target: Locator, act: () => Promise<void>, opts: { tries: number; waitMs: number; undo?: () => Promise<void> }): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await act();
    try {
      await target.waitFor({ timeout: opts.waitMs });
      return;
    } catch (e) {
      if (attempt >= opts.tries) throw e;
      await opts.undo?.();
    }
  }
}

/** Runs a command from the palette (F1). */
export async function palette(page: Page, command: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: UI_TIMEOUT });
  const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: command }).first();
  // The first palette of a fresh window can filter before it has gathered the commands and then show
  // "No matching commands" for good: type the filter again, as a user would.
  await actUntilShown(row, () => input.fill(`>${command}`), { tries: 6, waitMs: 5000, undo: () => input.fill('>') });
  await page.keyboard.press('Enter');
}

/** Types into the open quick input whose title matches `expectTitle` and accepts it. */
export async function answer(page: Page, text: string, expectTitle: RegExp): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  await widget.locator('.quick-input-title, .quick-input-header', { hasText: expectTitle }).first().waitFor({ timeout: UI_TIMEOUT });
  await widget.locator('input').fill(text);
  await page.waitForTimeout(150); // validation runs on input
  await page.keyboard.press('Enter');
}

/** Creates a task through "New task…"'s quick inputs (name, kind, labels, instruction). */
export async function newClassifyTask(page: Page, name: string, labels: string[], instruction: string): Promise<void> {
  await answer(page, name, /New Gemma task \(1\/4\)/);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Classify (pick a label)' }).click({ timeout: UI_TIMEOUT });
  await answer(page, labels.join(', '), /New Gemma task \(3\/4\)/);
  await answer(page, instruction, /New Gemma task \(4\/4\)/);
}

/** Selects line `line` (1-based) of the focused editor, from its start to its end, and waits for the status bar to confirm. */
export async function selectLine(page: Page, line: number, chars: number): Promise<void> {
  // Again, as a user would, when the status bar does not confirm it: a full E2E run saw the keys miss the
  // editor once (30 s without "(40 selected)"), where the same part alone passes.
  await actUntilShown(page.locator('.statusbar', { hasText: `(${chars} selected)` }), async () => {
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+Home');
    for (let i = 1; i < line; i++) await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Home');
    await page.keyboard.press('Shift+End');
  }, { tries: 3, waitMs: UI_TIMEOUT / 3 });
}

/** Waits for the light bulb, opens the code action menu (Ctrl+., then the bulb's click in turn) until `title` shows; `shot` runs with the menu open. */
export async function openCodeActions(page: Page, title: string, shot?: () => Promise<void>): Promise<void> {
  // In the gutter, or in the line's indentation when the selected line is indented.
  const bulb = page.locator('.monaco-editor [class*="codicon-gutter-lightbulb"], .monaco-editor .lightBulbWidget[class*="codicon-light"]').first();
  await bulb.waitFor({ timeout: UI_TIMEOUT });
  const row = page.locator('.action-widget .monaco-list-row', { hasText: title }).first();
  // The menu can miss a selection whose actions were still being computed: ask again. On a busy shared
  // machine a fresh-clone run saw Ctrl+. open nothing for 48 s with the bulb shown, so every other try
  // clicks the bulb, as a mouse user does: it opens the menu whichever part of the window has the focus.
  let attempt = 0;
  const ask = async (): Promise<void> => {
    if (attempt++ % 2 === 0) await page.keyboard.press('Control+.');
    else await bulb.click({ timeout: 5000 }).catch(() => page.keyboard.press('Control+.'));
  };
  try {
    await actUntilShown(row, ask, { tries: 6, waitMs: 8000, undo: () => page.keyboard.press('Escape') });
  } catch (e) {
    // Say what the menu offered instead (nothing at all: it did not open).
    const offered = await page.locator('.action-widget .monaco-list-row').allInnerTexts().catch(() => []);
    throw new Error(`no "${title}" in the code action menu; it showed ${offered.length ? offered.map((t) => JSON.stringify(t.trim())).join(', ') : 'no rows'}`, { cause: e });
  }
  await shot?.();
}

/** Switches the colour theme the way a user does: "Preferences: Color Theme", then its name. */
export async function pickTheme(page: Page, label: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.fill('>Preferences: Color Theme');
  // Not "Browse Color Themes in Marketplace", which needs the network.
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Preferences: Color Theme' }).filter({ hasNotText: 'Marketplace' }).first().click({ timeout: UI_TIMEOUT });
  await page.locator('.quick-input-widget .monaco-list-row').first().waitFor({ timeout: UI_TIMEOUT });
  await input.fill(label);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: label }).first().waitFor({ timeout: UI_TIMEOUT });
  await page.keyboard.press('Enter');
}

/** Merges `extra` into the session's user settings.json. */
export function addUserSettings(s: Session, extra: Record<string, unknown>): void {
  const file = path.join(s.userDataDir, 'User/settings.json');
  const settings = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...settings, ...extra }, null, 2));
  // code-server's window is a remote window: VS Code takes `machine` and `machine-overridable` settings
  // (the model path and precision, the threads and the device) from the remote machine's settings, not
  // the user's, as a user of code-server or Remote-SSH sets them ("Remote" tab of the Settings editor).
  const machine = Object.fromEntries(Object.entries(extra).filter(([k]) => /^gemmaTune\.(model|engine)\./.test(k)));
  if (Object.keys(machine).length === 0) return;
  const machineFile = path.join(s.userDataDir, 'Machine/settings.json');
  mkdirSync(path.dirname(machineFile), { recursive: true });
  const before = existsSync(machineFile) ? (JSON.parse(readFileSync(machineFile, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(machineFile, JSON.stringify({ ...before, ...machine }, null, 2));
}

/** Installs the working tree as the extension (a symlink named <publisher>.<name>-<version>). */
export function linkExtension(s: Session): void {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
  symlinkSync(ROOT, path.join(s.extensionsDir, `${pkg.publisher}.${pkg.name}-${pkg.version}`), 'dir');
}

/** Numbered screenshots `<prefix>-NN-<name>.png` in `artifacts`, taken after toasts and menus settle. */
export function screenshotter(artifacts: string, prefix: string): (page: Page, name: string) => Promise<void> {
  let shot = 0;
  return async (page, name) => {
    await page.waitForTimeout(400);
    await page.screenshot({ path: path.join(artifacts, `${prefix}-${String(++shot).padStart(2, '0')}-${name}.png`) });
  };
}

/** Logs the page's CSP violations and the panel's own errors (they are bugs worth seeing in the output). */
export function logPageErrors(page: Page): void {
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Gemma panel/.test(m.text())) console.log(`    [page] ${m.text()}`);
  });
}
