// The labeling path through a real VS Code (code-server in headless chromium): select a line,
// run "Gemma: Fine-tune on selection", create a classify task through the quick inputs, see the
// training panel open with the example, label it in the panel, reload the window and find the
// label intact on disk and in the restored panel. Screenshots per step (dark, then light and
// high-contrast themes) go to artifacts/e2e/panel-*.png.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FrameLocator, Page } from 'playwright-core';
import { launchBrowser } from './lib/browser';
import { newSession, ROOT, startServer, stopServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';

const GROUP = 'panel';
// Generous: the machine is shared, and a loaded 2-core box slows the workbench down a lot.
const UI_TIMEOUT = 30_000;
const FIRST = 'The app crashes when I click Save twice.';
const SAMPLE = `${FIRST}\nPlease add a dark mode to the settings page.\nHow do I export my data?\n`;
const TASK_DIR = '.gemma/tasks/bug-or-feature';

type Events = { event: string; [k: string]: unknown }[];

function readEvents(file: string): Events {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Events[number]);
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function examplesOnDisk(workspace: string): { id: string; input: string; heldOut: boolean; messages: { role: string; content: string }[] }[] {
  const file = path.join(workspace, TASK_DIR, 'examples.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** The training panel's page (the inner frame of the webview). */
function panelFrame(page: Page): FrameLocator {
  return page.frameLocator('iframe.webview.ready').frameLocator('#active-frame');
}

async function palette(page: Page, command: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: UI_TIMEOUT });
  await input.fill(`>${command}`);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: command }).first().waitFor({ timeout: UI_TIMEOUT });
  await page.keyboard.press('Enter');
}

/** Types into the open quick input and accepts it. */
async function answer(page: Page, text: string, expectTitle: RegExp): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  await widget.locator('.quick-input-title, .quick-input-header', { hasText: expectTitle }).first().waitFor({ timeout: UI_TIMEOUT });
  const input = widget.locator('input');
  await input.fill(text);
  await page.waitForTimeout(150); // validation runs on input
  await page.keyboard.press('Enter');
}

/** Switches the colour theme the way a user does: "Preferences: Color Theme", then its name. */
async function pickTheme(page: Page, label: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.fill('>Preferences: Color Theme');
  // Not "Browse Color Themes in Marketplace", which needs the network.
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Preferences: Color Theme' }).filter({ hasNotText: 'Marketplace' }).first().click({ timeout: UI_TIMEOUT });
  await page.locator('.quick-input-widget .monaco-list-row').first().waitFor({ timeout: UI_TIMEOUT });
  await input.fill(label);
  try {
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: label }).first().waitFor({ timeout: UI_TIMEOUT });
  } catch (e) {
    await page.screenshot({ path: path.join(ROOT, 'artifacts/e2e/panel-theme-picker-failed.png') });
    throw e;
  }
  await page.keyboard.press('Enter');
}

async function setTheme(userDataDir: string, theme: string): Promise<void> {
  const file = path.join(userDataDir, 'User/settings.json');
  const settings = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  settings['workbench.colorTheme'] = theme;
  writeFileSync(file, JSON.stringify(settings, null, 2));
}

/** Runs the panel checks into `report`. */
export async function runPanel(report: Report, artifacts: string): Promise<Record<string, number>> {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
  const timings: Record<string, number> = {};
  const session = await newSession('panel', { 'issues.txt': SAMPLE });
  symlinkSync(ROOT, path.join(session.extensionsDir, `${pkg.publisher}.${pkg.name}-${pkg.version}`), 'dir');
  await setTheme(session.userDataDir, 'Dark 2026'); // theme ids of VS Code 1.139's theme-defaults
  let shot = 0;
  const screenshot = async (page: Page, name: string): Promise<void> => {
    await page.waitForTimeout(400);
    await page.screenshot({ path: path.join(artifacts, `panel-${String(++shot).padStart(2, '0')}-${name}.png`) });
  };

  await startServer(session, { env: { GEMMA_TUNE_EVENTS_FILE: session.eventsFile }, log: path.join(artifacts, 'code-server-panel.log') });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Gemma panel/.test(m.text())) console.log(`    [page] ${m.text()}`);
    });
    const frame = panelFrame(page);
    let exampleId = '';

    await report.check(GROUP, 'open issues.txt and select its first line', async () => {
      await page.goto(workbenchUrl(session));
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await page.getByRole('treeitem', { name: 'issues.txt' }).click({ timeout: 60_000 });
      const lines = page.locator('.monaco-editor .view-lines').first();
      await lines.waitFor({ timeout: 30_000 });
      await lines.click();
      await page.keyboard.press('Control+Home');
      await page.keyboard.press('Shift+End');
      await page.locator('.statusbar', { hasText: `(${FIRST.length} selected)` }).waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'selection');
    });

    await report.check(GROUP, '"Gemma: Fine-tune on selection" offers "New task…"', async () => {
      await palette(page, 'Gemma: Fine-tune on selection');
      await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'New task…' }).waitFor({ timeout: 60_000 });
      await screenshot(page, 'task-pick');
      await page.keyboard.press('Enter');
    });

    await report.check(GROUP, 'the quick inputs create a classify task with three labels', async () => {
      await answer(page, 'Bug or feature', /New Gemma task \(1\/4\)/);
      const kind = page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Classify (pick a label)' });
      await kind.waitFor({ timeout: UI_TIMEOUT });
      await kind.click();
      await answer(page, 'bug, feature, question', /New Gemma task \(3\/4\)/);
      await screenshot(page, 'instruction');
      await answer(page, 'Is this issue a bug report, a feature request or a question?', /New Gemma task \(4\/4\)/);
      const task = await waitFor('task.json', () => (existsSync(path.join(session.workspace, TASK_DIR, 'task.json')) ? true : undefined));
      assert.ok(task);
      const config = JSON.parse(readFileSync(path.join(session.workspace, TASK_DIR, 'task.json'), 'utf8')) as { kind: string; labels: string[] };
      assert.equal(config.kind, 'classify');
      assert.deepEqual(config.labels, ['bug', 'feature', 'question']);
    });

    await report.check(GROUP, 'the panel opens with the selection as an unlabeled example', async () => {
      const t0 = performance.now();
      const input = frame.locator('tr[data-id] vscode-textarea[data-col="input"]').first();
      await input.waitFor({ timeout: 30_000 });
      timings.panelOpenMs = performance.now() - t0;
      assert.equal(await input.evaluate((el) => (el as HTMLElement & { value: string }).value), FIRST);
      const onDisk = examplesOnDisk(session.workspace);
      assert.equal(onDisk.length, 1);
      assert.equal(onDisk[0].input, FIRST);
      assert.equal(onDisk[0].messages[1].content, '', 'not labeled yet');
      exampleId = onDisk[0].id;
      assert.equal(await frame.locator('#training-unavailable').count(), 1, 'training is hidden while the engine cannot train');
      await screenshot(page, 'panel-opened');
    });

    await report.check(GROUP, 'choosing a label in the panel saves it to examples.jsonl', async () => {
      const select = frame.locator(`tr[data-id="${exampleId}"] vscode-single-select[data-col="output"]`);
      await select.click();
      await select.getByRole('option', { name: 'bug', exact: true }).click();
      const t0 = Date.now();
      const saved = await waitFor('the label on disk', () => {
        const ex = examplesOnDisk(session.workspace)[0];
        return ex?.messages[1].content === 'bug' ? ex : undefined;
      });
      timings.labelSavedMs = Date.now() - t0;
      assert.match(saved.messages[0].content, /Labels: bug, feature, question/);
      await frame.locator('#save-status', { hasText: 'Saved' }).waitFor({ timeout: 5000 });
      await screenshot(page, 'labeled');
    });

    await report.check(GROUP, 'holding the example out and adding a second one are saved too', async () => {
      await frame.locator(`tr[data-id="${exampleId}"] vscode-checkbox[data-col="held"]`).click();
      await waitFor('heldOut on disk', () => (examplesOnDisk(session.workspace)[0]?.heldOut === true ? true : undefined));
      await frame.locator('#add-example').click();
      // The new example's input gets the keyboard focus, so typing goes straight into it.
      await frame.locator('tr[data-id]:nth-child(2) vscode-textarea[data-col="input"]:focus').waitFor({ timeout: UI_TIMEOUT });
      await page.keyboard.type('Export to CSV would be great.');
      await waitFor('the typed input on disk', () => (examplesOnDisk(session.workspace)[1]?.input === 'Export to CSV would be great.' ? true : undefined));
      await screenshot(page, 'two-examples');
    });

    await report.check(GROUP, 'a hostile message from the page is rejected and not acted on', async () => {
      // Sent through the same channel the page's acquireVsCodeApi().postMessage uses (the
      // webview frame's __vscode_post_message__), as a compromised page would.
      await page.frameLocator('iframe.webview.ready').locator('body').evaluate(() => {
        const post = (window as unknown as { __vscode_post_message__(channel: string, data: unknown): void }).__vscode_post_message__;
        post('onmessage', { message: { type: 'removeExample', seq: 1, id: '../../etc' }, transfer: [] });
        post('onmessage', { message: { type: 'deleteEverything' }, transfer: [] });
        post('onmessage', { message: { type: 'updateExample', seq: 2, id: 'ex-1', output: { toString: 1 } }, transfer: [] });
      });
      await waitFor('a rejection event', () => (readEvents(session.eventsFile).filter((e) => e.event === 'webviewMessageRejected').length >= 3 ? true : undefined));
      assert.equal(examplesOnDisk(session.workspace).length, 2);
    });

    await report.check(GROUP, 'after "Developer: Reload Window" the panel comes back with the label', async () => {
      const before = readFileSync(path.join(session.workspace, TASK_DIR, 'examples.jsonl'), 'utf8');
      await palette(page, 'Developer: Reload Window');
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await waitFor('panelRestored', () => readEvents(session.eventsFile).find((e) => e.event === 'panelRestored'), 60_000);
      const select = panelFrame(page).locator(`tr[data-id="${exampleId}"] vscode-single-select[data-col="output"]`);
      await select.waitFor({ timeout: 30_000 });
      assert.equal(await select.evaluate((el) => (el as HTMLElement & { value: string }).value), 'bug');
      assert.equal(readFileSync(path.join(session.workspace, TASK_DIR, 'examples.jsonl'), 'utf8'), before, 'examples.jsonl unchanged by the reload');
      await screenshot(page, 'after-reload-dark');
    });

    await report.check(GROUP, 'the panel follows light and high-contrast themes', async () => {
      assert.equal(await page.locator('.monaco-workbench.vs-dark').count(), 1, 'the session started dark');
      await pickTheme(page, 'Light 2026');
      await page.locator('.monaco-workbench.vs').waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'light');
      await pickTheme(page, 'Dark High Contrast');
      await page.locator('.monaco-workbench.hc-black').waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'high-contrast');
    });
  } finally {
    await browser.close();
    await stopServer(session);
  }
  return timings;
}
