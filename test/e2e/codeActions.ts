// Running trained tasks in a real VS Code (code-server in headless chromium). Setup outside the
// editor, the way a user's repository would hold it: a tiny random Gemma 3 GGUF made by
// `gemma-tune make-model`, set through gemmaTune.model.path; a classify task and an extract task in
// .gemma/tasks/ whose adapters are trained by `gemma-tune train` on their examples.jsonl. Then, as
// a user: the status bar names the model; select a line, wait for the light bulb, Ctrl+., pick
// "Classify with Bug or feature", see the label above the selection (a CodeLens); hover it; insert it as a
// comment and undo; "Gemma: Run task on selection" from the palette; "Extract with Invoice
// fields" inserts the JSON below the selection as one undoable edit. Screenshots:
// artifacts/e2e/actions-*.png.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { TaskStore } from '../../src/store/taskStore';
import { launchBrowser } from './lib/browser';
import { endSession, newSession, ROOT, startServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';
import { addUserSettings, linkExtension, openCodeActions, readEvents, screenshotter, selectLine, UI_TIMEOUT, waitForEvent } from './lib/workbench';

const GROUP = 'code actions';
const CLASSIFY_TASK = 'Bug or feature';
const EXTRACT_TASK = 'Invoice fields';
const LABELS = ['bug', 'feature'];
const SAMPLE = [
  'issues = [',
  '    "The app crashes when I click Save twice.",',
  '    "Please add a dark mode to the settings page.",',
  '    "Export to CSV would be great.",',
  ']',
  'invoice = "Invoice 4471: 3 licenses, due 2026-12-01."',
  '',
].join('\n');
const FILE = 'triage.py';

function cli(args: string[]): string {
  return execFileSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Creates the two tasks with labeled examples and trains their adapters with the CLI. */
async function makeTrainedTasks(workspace: string, model: string): Promise<void> {
  const store = TaskStore.forWorkspace(workspace);
  const classify = await store.create({ name: CLASSIFY_TASK, kind: 'classify', instruction: 'Is this issue a bug report or a feature request?', labels: LABELS });
  await store.addExamples(classify.id, [
    { input: 'The app crashes when I click Save twice.', output: 'bug' },
    { input: 'Please add a dark mode to the settings page.', output: 'feature' },
    { input: 'Error 500 when uploading a file.', output: 'bug' },
    { input: 'It would be nice to export to CSV.', output: 'feature' },
  ]);
  const extract = await store.create({ name: EXTRACT_TASK, kind: 'extract', instruction: 'Extract the invoice number and the due date.', fields: ['number', 'due'] });
  await store.addExamples(extract.id, [
    { input: 'Invoice 1002, due 2026-01-31.', output: '{"number":"1002","due":"2026-01-31"}' },
    { input: 'Invoice 88: due 2025-07-01', output: '{"number":"88","due":"2025-07-01"}' },
  ]);
  for (const id of [classify.id, extract.id]) {
    cli(['train', '--model', model, '--data', path.join(store.taskDir(id), 'examples.jsonl'), '--out', store.adapterDir(id),
      '--epochs', '8', '--min-steps', '0', '--lr', '5e-3', '--rank', '4', '--val-split', '0', '--threads', '1', '--json']);
    assert.ok(existsSync(path.join(store.adapterDir(id), 'adapter_model.safetensors')), `training ${id} wrote no adapter`);
  }
}

/** The editor's text as the user sees it (Monaco renders spaces as no-break spaces). */
async function editorText(page: Page): Promise<string> {
  return (await page.locator('.monaco-editor .view-lines').first().innerText()).replace(/\u00a0/g, ' ');
}

/** The CodeLens lines the editor shows (a classification's answer sits above its selection). */
async function lensTexts(page: Page): Promise<string[]> {
  return page.locator('.monaco-editor .codelens-decoration').evaluateAll((els) => els.map((e) => (e.textContent ?? '').replace(/\u00a0/g, ' ')));
}

/** Opens the light bulb menu on the selection and picks `title`; `shot` runs with the menu open. */
async function pickCodeAction(page: Page, title: string, shot?: () => Promise<void>): Promise<void> {
  await openCodeActions(page, title, shot);
  await page.locator('.action-widget .monaco-list-row', { hasText: title }).first().click();
}

/** Runs the code action checks into `report`. */
export async function runCodeActions(report: Report, artifacts: string): Promise<Record<string, number>> {
  const timings: Record<string, number> = {};
  const session = await newSession('actions', { [FILE]: SAMPLE });
  const models = path.join(session.dir, 'models');
  mkdirSync(models);
  const model = path.join(models, 'tiny-q4.gguf');
  const s0 = performance.now();
  cli(['make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', model]);
  await makeTrainedTasks(session.workspace, model);
  timings.setupMs = performance.now() - s0;
  addUserSettings(session, { 'gemmaTune.model.path': model, 'gemmaTune.engine.threads': 1 });
  linkExtension(session);
  const screenshot = screenshotter(artifacts, 'actions');
  const events = session.eventsFile;

  await startServer(session, { env: { GEMMA_TUNE_EVENTS_FILE: events }, log: path.join(artifacts, 'code-server-actions.log') });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    let label = '';

    await report.check(GROUP, 'a workspace with trained tasks activates Gemma; the status bar names the model', async () => {
      await page.goto(workbenchUrl(session));
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await waitForEvent(events, 'activated');
      const item = page.locator('.statusbar-item', { hasText: 'Gemma: tiny-q4' });
      await item.waitFor({ timeout: UI_TIMEOUT });
      const aria = await item.first().evaluate((el) => el.getAttribute('aria-label') ?? el.querySelector('[aria-label]')?.getAttribute('aria-label'));
      assert.match(aria ?? '', /tiny-q4, not loaded yet/, 'the state is said in words, not only by an icon');
      await page.getByRole('treeitem', { name: FILE }).click({ timeout: UI_TIMEOUT });
      await page.locator('.monaco-editor .view-lines').first().waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'status-bar');
    });

    await report.check(GROUP, 'on a selection the light bulb offers "Classify with Bug or feature" and "Extract with Invoice fields"', async () => {
      await selectLine(page, 2, '"The app crashes when I click Save twice.",'.length);
      await pickCodeAction(page, `Classify with ${CLASSIFY_TASK}`, async () => {
        await page.locator('.action-widget .monaco-list-row', { hasText: `Extract with ${EXTRACT_TASK}` }).first().waitFor({ timeout: 5000 });
        await screenshot(page, 'menu');
      });
    });

    await report.check(GROUP, 'picking it loads the model and shows the label and its probability above the selection', async () => {
      const loaded = await waitForEvent(events, 'modelLoaded');
      const result = await waitForEvent(events, 'classifyResult');
      assert.equal(result.stale, false);
      label = result.label as string;
      assert.ok(LABELS.includes(label), `"${label}" is one of the task's labels`);
      timings.firstClassifyMs = result.ms as number;
      timings.modelLoadMs = loaded.ms as number;
      const expected = `Gemma · ${CLASSIFY_TASK}: ${label} (`;
      const deadline = Date.now() + UI_TIMEOUT;
      let texts: string[] = [];
      while (Date.now() < deadline && !(texts = await lensTexts(page)).some((t) => t.includes(expected))) await page.waitForTimeout(200);
      assert.ok(texts.some((t) => t.includes(expected) && t.includes('Insert as comment')), `the editor shows "${expected}… | Insert as comment" above the selection (found: ${JSON.stringify(texts)})`);
      await page.locator('.statusbar-item', { hasText: 'Gemma: tiny-q4' }).waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'classified');
    });

    await report.check(GROUP, 'the hover lists every label with its probability', async () => {
      await page.locator('.monaco-editor .view-line', { hasText: 'The app crashes' }).first().hover({ position: { x: 120, y: 8 } });
      const hover = page.locator('.monaco-hover', { hasText: 'probability' }).first();
      await hover.waitFor({ timeout: UI_TIMEOUT });
      const text = await hover.innerText();
      for (const l of LABELS) assert.match(text, new RegExp(`\\b${l}\\b`));
      assert.match(text, /Insert as comment/);
      await screenshot(page, 'hover');
      await page.keyboard.press('Escape');
    });

    await report.check(GROUP, '"Insert … as a comment" writes a Python comment above the line, and one Ctrl+Z removes it', async () => {
      await selectLine(page, 2, '"The app crashes when I click Save twice.",'.length);
      await pickCodeAction(page, `Insert “${label}” as a comment`);
      const inserted = await waitForEvent(events, 'classificationInserted');
      assert.equal(inserted.applied, true);
      assert.match(inserted.comment as string, new RegExp(`^# ${CLASSIFY_TASK}: ${label} \\(`), 'the comment token comes from the Python language configuration');
      await page.locator('.monaco-editor .view-line', { hasText: `# ${CLASSIFY_TASK}: ${label}` }).first().waitFor({ timeout: UI_TIMEOUT });
      const lines = (await editorText(page)).split('\n');
      assert.match(lines[1], new RegExp(`^ {4}# ${CLASSIFY_TASK}: ${label} \\(\\d`), 'indented like the selected line');
      await screenshot(page, 'inserted');
      await page.keyboard.press('Control+z');
      await page.waitForFunction(() => !document.querySelector('.monaco-editor .view-lines')?.textContent?.includes('# Bug or feature'), undefined, { timeout: UI_TIMEOUT });
      assert.equal((await editorText(page)).split('\n')[1].trim(), '"The app crashes when I click Save twice.",');
    });

    await report.check(GROUP, 'a second classification, with model and adapter already loaded, answers quickly', async () => {
      await selectLine(page, 3, '"Please add a dark mode to the settings page.",'.length);
      await pickCodeAction(page, `Classify with ${CLASSIFY_TASK}`);
      const result = await waitForEvent(events, 'classifyResult', 2);
      assert.ok(LABELS.includes(result.label as string));
      timings.warmClassifyMs = result.ms as number;
      assert.equal(readEvents(events).filter((e) => e.event === 'modelLoaded').length, 1, 'the model loaded once');
    });

    await report.check(GROUP, '"Gemma: Run task on selection" lists the trained tasks and classifies the selection', async () => {
      await selectLine(page, 4, '"Export to CSV would be great.",'.length);
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.fill('>Gemma: Run task on selection');
      await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Gemma: Run task on selection' }).first().waitFor({ timeout: UI_TIMEOUT });
      await page.keyboard.press('Enter');
      const row = page.locator('.quick-input-widget .monaco-list-row', { hasText: CLASSIFY_TASK }).first();
      await row.waitFor({ timeout: UI_TIMEOUT });
      await page.locator('.quick-input-widget .monaco-list-row', { hasText: EXTRACT_TASK }).first().waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'run-task-pick');
      await row.click();
      const result = await waitForEvent(events, 'classifyResult', 3);
      assert.ok(LABELS.includes(result.label as string));
      const run = await waitForEvent(events, 'runTaskOnSelection');
      assert.equal(run.answered, 1);
      await screenshot(page, 'run-task-result');
    });

    await report.check(GROUP, '"Extract with Invoice fields" inserts the JSON below the selection as one undoable edit', async () => {
      const line = 'invoice = "Invoice 4471: 3 licenses, due 2026-12-01."';
      await selectLine(page, 6, line.length);
      await pickCodeAction(page, `Extract with ${EXTRACT_TASK}`);
      const result = await waitForEvent(events, 'extractResult', 1, 120_000);
      assert.equal(result.applied, true);
      timings.extractMs = result.ms as number;
      const json = JSON.parse(result.text as string) as Record<string, unknown>;
      assert.deepEqual(Object.keys(json), ['number', 'due']);
      await page.waitForFunction((t) => document.querySelector('.monaco-editor .view-lines')?.textContent?.replace(/\u00a0/g, ' ').includes(t), result.text as string, { timeout: UI_TIMEOUT });
      const lines = (await editorText(page)).split('\n');
      assert.equal(lines[5], line);
      assert.equal(lines[6], result.text, 'on the line right below the selection');
      await screenshot(page, 'extracted');
      await page.keyboard.press('Control+z');
      await page.waitForFunction((t) => !document.querySelector('.monaco-editor .view-lines')?.textContent?.replace(/\u00a0/g, ' ').includes(t), result.text as string, { timeout: UI_TIMEOUT });
      assert.deepEqual((await editorText(page)).split('\n').slice(0, 6), SAMPLE.split('\n').slice(0, 6), 'one undo restores the text');
    });
  } finally {
    await browser.close();
    await endSession(session);
  }
  return timings;
}
