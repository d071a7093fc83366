// The engine's faults in a real VS Code (code-server in headless chromium): the engine process is
// killed (SIGKILL to the pid the extension reports) while it loads the model, during a training step
// and while it generates. Each time the extension host stays up (it never re-activates, other
// commands answer), the user is told (a notification or the panel, and the status bar's "Gemma:
// engine crashed", read from the DOM), nothing on disk changes (examples.jsonl and the adapter, byte
// for byte), and the next action works. "Loading Gemma…" is cancelled from its notification first,
// and a training run stops in the engine when its panel is closed.
// Then three crashes within a minute: the status bar says
// "engine stopped", a notification offers "Restart engine", and its button brings the engine back.
// The model is a random Gemma 3 with 6 layers of the 270M's width and its 262144-token vocabulary:
// a load of a few seconds and a few tokens a second, so each kill lands inside what it targets.
// Screenshots: artifacts/e2e/faults-*.png.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { configToHf, GEMMA3_TINY, layerTypesFromPattern } from '../../src/engine/model/config';
import { TaskStore } from '../../src/store/taskStore';
import { launchBrowser } from './lib/browser';
import { endSession, newSession, ROOT, startServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';
import {
  addUserSettings, type ExtensionEvent, linkExtension, logPageErrors, openCodeActions, palette, panelFrame, readEvents, screenshotter, selectLine, UI_TIMEOUT, waitFor,
} from './lib/workbench';
import { processAlive } from '../../src/common/processAlive';

const GROUP = 'engine faults';
const CLASSIFY_TASK = 'Bug or feature';
const SUMMARY_TASK = 'Summary';
const FILE = 'issues.txt';
const LINES = ['The app crashes when I click Save twice.', 'Please add a dark mode to the settings page.', 'Error 500 when uploading a file.'];
const CRASHED = 'Gemma: engine crashed';
/** The 270M's width and vocabulary, 6 layers instead of 18. */
const MODEL_CONFIG = {
  ...GEMMA3_TINY, vocabSize: 262_144, hidden: 640, intermediate: 2048, layers: 6, heads: 4, kvHeads: 1, headDim: 256, queryPreAttnScalar: 256, slidingWindow: 512,
  layerTypes: layerTypesFromPattern(6, 6),
};

function cli(args: string[]): string {
  return execFileSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A classify task with ten labeled examples and a free-text extract task, both trained by the CLI. */
async function makeTasks(workspace: string, model: string): Promise<{ classifyId: string; summaryId: string; store: TaskStore }> {
  const store = TaskStore.forWorkspace(workspace);
  const classify = await store.create({ name: CLASSIFY_TASK, kind: 'classify', instruction: 'Is this issue a bug report or a feature request?', labels: ['bug', 'feature'] });
  await store.addExamples(classify.id, [
    ['The app crashes when I click Save twice.', 'bug'], ['Please add a dark mode.', 'feature'], ['Error 500 when uploading a file.', 'bug'],
    ['Export to CSV would be great.', 'feature'], ['It freezes when I scroll.', 'bug'], ['Add a keyboard shortcut for search.', 'feature'],
    ['Login fails with a blank page.', 'bug'], ['Allow renaming projects.', 'feature'], ['The counter shows negative numbers.', 'bug'], ['Support a French translation.', 'feature'],
  ].map(([input, output]) => ({ input, output })));
  // Long enough to be killed in the middle: 8 training examples, batch 4, 6 epochs (12 steps), no early stop.
  await store.saveConfig(classify.id, { ...classify.config, hyperparameters: { ...classify.config.hyperparameters, epochs: 6, minSteps: 0, patience: 0, learningRate: 1e-3 } });
  const summary = await store.create({ name: SUMMARY_TASK, kind: 'extract', instruction: 'Summarize the issue in a few words.' });
  await store.addExamples(summary.id, [{ input: 'The app crashes when I click Save twice.', output: 'crash on save' }, { input: 'Please add a dark mode.', output: 'dark mode' }]);
  for (const id of [classify.id, summary.id]) {
    cli(['train', '--min-steps', '0', '--model', model, '--data', path.join(store.taskDir(id), 'examples.jsonl'), '--out', store.adapterDir(id), '--epochs', '1', '--rank', '4', '--val-split', '0', '--threads', '1', '--json']);
    assert.ok(existsSync(path.join(store.adapterDir(id), 'adapter_model.safetensors')), `training ${id} wrote no adapter`);
  }
  return { classifyId: classify.id, summaryId: summary.id, store };
}

/** sha256 of every file that must survive a crash untouched. */
function fingerprint(files: string[]): Record<string, string> {
  return Object.fromEntries(files.map((f) => [f, createHash('sha256').update(readFileSync(f)).digest('hex')]));
}

/** The pid of the engine process the extension started last. */
function enginePid(events: ExtensionEvent[]): number {
  const started = events.filter((e) => e.event === 'engineStarted').at(-1);
  assert.ok(started, 'the extension reported no engine process');
  return started.pid as number;
}


/** SIGKILLs the engine process and waits until it is gone. */
async function killEngine(pid: number): Promise<void> {
  assert.ok(processAlive(pid), `engine ${pid} is running`);
  process.kill(pid, 'SIGKILL');
  await waitFor(`engine ${pid} to end`, () => (processAlive(pid) ? undefined : true), 10_000);
}

function count(file: string, name: string): number {
  return readEvents(file).filter((e) => e.event === name).length;
}

/** Waits for the `n`-th event `name` (1-based), ignoring failures (they are expected here). */
function nth(file: string, name: string, n: number, timeoutMs = 120_000): Promise<ExtensionEvent> {
  return waitFor(`event "${name}" #${n}`, () => readEvents(file).filter((e) => e.event === name)[n - 1], timeoutMs);
}

async function statusBarSays(page: Page, text: string | RegExp, timeout = UI_TIMEOUT): Promise<void> {
  await page.locator('.statusbar-item', { hasText: text }).first().waitFor({ timeout });
}

async function notification(page: Page, text: string | RegExp, timeout = UI_TIMEOUT): Promise<string> {
  const toast = page.locator('.notifications-toasts .notification-toast', { hasText: text }).first();
  await toast.waitFor({ timeout });
  return (await toast.innerText()).replace(/\s+/g, ' ');
}

async function closeNotifications(page: Page): Promise<void> {
  await palette(page, 'Notifications: Clear All Notifications');
}

/** The host is the one that started (one activation), and it answers a command that needs no engine. */
async function hostStillUp(page: Page, events: string): Promise<void> {
  assert.equal(count(events, 'activated'), 1, 'the extension host never restarted (one activation)');
  await palette(page, 'Gemma: Open training panel');
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: SUMMARY_TASK }).first().waitFor({ timeout: UI_TIMEOUT });
  await page.keyboard.press('Escape');
}

/** Runs the engine fault checks into `report`; returns timings in ms. */
export async function runFaults(report: Report, artifacts: string): Promise<Record<string, number>> {
  const timings: Record<string, number> = {};
  const session = await newSession('faults', { [FILE]: `${LINES.join('\n')}\n` });
  const models = path.join(session.dir, 'models');
  mkdirSync(models);
  const model = path.join(models, 'gemma3-6layer-q4.gguf');
  const configFile = path.join(models, 'config.json');
  writeFileSync(configFile, JSON.stringify(configToHf(MODEL_CONFIG)));
  const s0 = performance.now();
  cli(['make-model', '--config', configFile, '--format', 'gguf', '--dtype', 'q4_0', '--embedding', 'q4_0', '--seed', '1', '--out', model]);
  const { classifyId, summaryId, store } = await makeTasks(session.workspace, model);
  timings.setupMs = performance.now() - s0;
  const kept = [
    path.join(store.taskDir(classifyId), 'examples.jsonl'), path.join(store.adapterDir(classifyId), 'adapter_model.safetensors'),
    path.join(store.taskDir(summaryId), 'examples.jsonl'), path.join(store.adapterDir(summaryId), 'adapter_model.safetensors'),
  ];
  // Background classification would start requests of its own; these checks drive every request.
  addUserSettings(session, { 'gemmaTune.model.path': model, 'gemmaTune.engine.threads': 1, 'gemmaTune.codeActions.precompute': false });
  linkExtension(session);
  const events = session.eventsFile;
  const screenshot = screenshotter(artifacts, 'faults');
  let firstCrashAt = 0;

  await startServer(session, { env: { GEMMA_TUNE_EVENTS_FILE: events }, log: path.join(artifacts, 'code-server-faults.log') });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    logPageErrors(page);

    await report.check(GROUP, 'a workspace with trained tasks activates Gemma', async () => {
      await page.goto(workbenchUrl(session));
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await nth(events, 'activated', 1, 60_000);
      await page.getByRole('treeitem', { name: FILE }).click({ timeout: UI_TIMEOUT });
      await page.locator('.monaco-editor .view-lines').first().waitFor({ timeout: UI_TIMEOUT });
      await statusBarSays(page, 'Gemma: gemma3-6layer-q4');
    });

    await report.check(GROUP, '"Loading Gemma…" can be cancelled: the load stops in the engine, nothing is reported as failed', async () => {
      await selectLine(page, 1, LINES[0].length);
      await openCodeActions(page, `Classify with ${CLASSIFY_TASK}`);
      await page.locator('.action-widget .monaco-list-row', { hasText: `Classify with ${CLASSIFY_TASK}` }).first().click();
      const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'Loading Gemma…' }).first();
      await toast.getByRole('button', { name: 'Cancel' }).click({ timeout: UI_TIMEOUT });
      await nth(events, 'modelLoadCancelled', 1);
      await toast.waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
      await statusBarSays(page, 'Gemma: gemma3-6layer-q4');
      await screenshot(page, 'load-cancelled');
      const seen = readEvents(events).map((e) => e.event);
      for (const bad of ['modelLoaded', 'modelLoadFailed', 'engineCrashed', 'classifyResult', 'taskFailed']) assert.ok(!seen.includes(bad), `no ${bad} event`);
      assert.equal(await page.locator('.notifications-toasts .notification-toast', { hasText: /could not load|failed/ }).count(), 0, 'no error is shown');
    });

    await report.check(GROUP, 'killed while loading the model: the load fails with the reason, the status bar says the engine crashed, nothing on disk changes', async () => {
      const before = fingerprint(kept);
      await selectLine(page, 1, LINES[0].length);
      await openCodeActions(page, `Classify with ${CLASSIFY_TASK}`);
      await page.locator('.action-widget .monaco-list-row', { hasText: `Classify with ${CLASSIFY_TASK}` }).first().click();
      await statusBarSays(page, 'Gemma: loading');
      await killEngine(enginePid(readEvents(events)));
      firstCrashAt = Date.now();
      const said = await notification(page, /Gemma could not load/);
      assert.match(said, /the engine was killed \(SIGKILL\)/);
      assert.doesNotMatch(said, /Use local model/, 'the model is not to blame');
      await statusBarSays(page, CRASHED);
      await page.locator('.notifications-toasts .notification-toast', { hasText: 'Loading Gemma…' }).waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
      assert.equal(count(events, 'modelLoaded'), 0, 'the load did not finish');
      await screenshot(page, 'killed-loading');
      assert.deepEqual(fingerprint(kept), before, 'examples and adapters unchanged');
      await hostStillUp(page, events);
      await closeNotifications(page);
    });

    await report.check(GROUP, 'after it, the same action loads a fresh engine and classifies', async () => {
      await selectLine(page, 1, LINES[0].length);
      await openCodeActions(page, `Classify with ${CLASSIFY_TASK}`);
      await page.locator('.action-widget .monaco-list-row', { hasText: `Classify with ${CLASSIFY_TASK}` }).first().click();
      const result = await nth(events, 'classifyResult', 1);
      assert.ok(['bug', 'feature'].includes(result.label as string));
      await statusBarSays(page, 'Gemma: gemma3-6layer-q4');
      await screenshot(page, 'classified-after-crash');
    });

    await report.check(GROUP, 'killed during a training step: the panel says training failed and why, the status bar says the engine crashed, nothing on disk changes', async () => {
      const before = fingerprint(kept);
      await palette(page, 'Gemma: Open training panel');
      await page.locator('.quick-input-widget .monaco-list-row', { hasText: CLASSIFY_TASK }).first().click({ timeout: UI_TIMEOUT });
      const frame = panelFrame(page);
      await frame.locator('#train').click({ timeout: 60_000 });
      await statusBarSays(page, /Gemma: training [1-9]\d*\/\d+/, 120_000);
      await killEngine(enginePid(readEvents(events)));
      await frame.locator('#training-message', { hasText: /Training failed: the engine was killed \(SIGKILL\)/ }).waitFor({ timeout: UI_TIMEOUT });
      await frame.locator('#training-status', { hasText: /Training failed at step \d+/ }).waitFor({ timeout: UI_TIMEOUT });
      await statusBarSays(page, CRASHED);
      await screenshot(page, 'killed-training');
      assert.deepEqual(fingerprint(kept), before, 'examples and the adapter it had unchanged');
      await hostStillUp(page, events);
    });

    await report.check(GROUP, 'after it, Train runs to the end on a fresh engine and saves the adapter', async () => {
      const frame = panelFrame(page);
      const done = count(events, 'trainingDone');
      await frame.locator('#train').click({ timeout: UI_TIMEOUT });
      const result = await nth(events, 'trainingDone', done + 1, 300_000);
      assert.equal(result.reason, 'completed');
      assert.equal(result.promoted, true);
      await frame.locator('#training-status', { hasText: /Training done/ }).waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'trained-after-crash');
    });

    await report.check(GROUP, 'closing the panel while it trains stops the run in the engine: the engine is idle afterwards', async () => {
      const frame = panelFrame(page);
      const done = count(events, 'trainingDone');
      await frame.locator('#train').click({ timeout: UI_TIMEOUT });
      await statusBarSays(page, /Gemma: training [1-9]\d*\/\d+/, 120_000);
      await palette(page, 'View: Close Editor');
      await frame.locator('#train').waitFor({ state: 'detached', timeout: UI_TIMEOUT });
      const result = await nth(events, 'trainingDone', done + 1, 60_000);
      assert.equal(result.reason, 'cancelled');
      const statuses = count(events, 'engineStatus');
      await palette(page, 'Gemma: Show Engine Status');
      const status = await nth(events, 'engineStatus', statuses + 1);
      assert.doesNotMatch(status.line as string, /running/, 'nothing runs on in the engine');
      await screenshot(page, 'panel-closed');
      await closeNotifications(page);
    });

    await report.check(GROUP, 'killed while extracting: the user is told why, the editor and the files are unchanged', async () => {
      // More than a minute after the first crash, so that this third one does not stop the engine.
      await waitFor('a minute since the first crash', () => (Date.now() - firstCrashAt > 61_000 ? true : undefined), 120_000);
      const before = fingerprint(kept);
      await page.getByRole('treeitem', { name: FILE }).click({ timeout: UI_TIMEOUT });
      await selectLine(page, 2, LINES[1].length);
      const text = await page.locator('.monaco-editor .view-lines').first().innerText();
      await openCodeActions(page, `Extract with ${SUMMARY_TASK}`);
      // The tiny model extracts in well under a second: the engine is paused (SIGSTOP) as the action is
      // chosen, so that the kill lands while the extraction is in flight, however fast it would have been.
      const pid = enginePid(readEvents(events));
      process.kill(pid, 'SIGSTOP');
      await page.locator('.action-widget .monaco-list-row', { hasText: `Extract with ${SUMMARY_TASK}` }).first().click();
      await statusBarSays(page, `extracting with “${SUMMARY_TASK}”`);
      await killEngine(pid);
      const said = await notification(page, `“${SUMMARY_TASK}” failed`);
      assert.match(said, /the engine was killed \(SIGKILL\)/);
      await statusBarSays(page, CRASHED);
      await screenshot(page, 'killed-extracting');
      assert.equal(await page.locator('.monaco-editor .view-lines').first().innerText(), text, 'nothing was inserted');
      assert.equal(count(events, 'extractResult'), 0);
      assert.deepEqual(fingerprint(kept), before, 'examples and adapters unchanged');
      await hostStillUp(page, events);
      await closeNotifications(page);
    });

    await report.check(GROUP, 'after it, the same extraction runs on a fresh engine and is inserted', async () => {
      await page.getByRole('treeitem', { name: FILE }).click({ timeout: UI_TIMEOUT });
      await selectLine(page, 2, LINES[1].length);
      await openCodeActions(page, `Extract with ${SUMMARY_TASK}`);
      await page.locator('.action-widget .monaco-list-row', { hasText: `Extract with ${SUMMARY_TASK}` }).first().click();
      const result = await nth(events, 'extractResult', 1, 180_000);
      assert.equal(result.applied, true);
      await screenshot(page, 'extracted-after-crash');
    });

    await report.check(GROUP, 'three crashes within a minute: "engine stopped", a notification offers "Restart engine", and it brings the engine back', async () => {
      await page.keyboard.press('Escape');
      for (let kills = 0; ; kills++) {
        assert.ok(kills < 3, 'three crashes within a minute stop the engine');
        // Counted before each action: its event may be written before the action returns.
        const statuses = count(events, 'engineStatus');
        await palette(page, 'Gemma: Show Engine Status');
        await nth(events, 'engineStatus', statuses + 1);
        const crashes = count(events, 'engineCrashed');
        await killEngine(enginePid(readEvents(events)));
        await nth(events, 'engineCrashed', crashes + 1);
        if (readEvents(events).filter((e) => e.event === 'engineCrashed').at(-1)?.stopped === true) break;
      }
      await statusBarSays(page, 'Gemma: engine stopped');
      const said = await notification(page, /crashed 3 times within 60 s/);
      assert.match(said, /Restart engine/);
      await screenshot(page, 'stopped');
      // While stopped, asking tells the user so instead of starting an engine.
      const failures = count(events, 'engineStatusFailed');
      await palette(page, 'Gemma: Show Engine Status');
      await nth(events, 'engineStatusFailed', failures + 1);
      await notification(page, /Gemma engine is not available: the engine crashed 3 times/);
      await page.locator('.notifications-toasts .notification-toast').filter({ has: page.getByRole('button', { name: 'Restart engine' }) }).first()
        .getByRole('button', { name: 'Restart engine' }).click();
      await nth(events, 'engineRestarted', 1);
      const statuses = count(events, 'engineStatus');
      await palette(page, 'Gemma: Show Engine Status');
      const status = await nth(events, 'engineStatus', statuses + 1);
      assert.match(status.line as string, /Gemma engine: onnxruntime-node .*, pid \d+/);
      await notification(page, /Gemma engine: onnxruntime-node/);
      await screenshot(page, 'restarted');
      await hostStillUp(page, events);
    });
  } finally {
    await browser.close();
    await endSession(session);
  }
  return timings;
}
