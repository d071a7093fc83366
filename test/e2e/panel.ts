// The labeling panel through a real VS Code (code-server in headless chromium). Without a model:
// select a line, find "Fine-tune on selection" in the editor context menu's Gemma submenu, run it,
// create a classify task through the quick inputs, see the panel open with the example and no
// training offered, label it, hold it out, add a second one (the header's counts follow each edit at
// once, drawn in place), and see hostile page messages rejected. Then a tiny random model is set
// (gemmaTune.model.path) and the window reloaded: the panel comes back with the label and now offers
// the training form (the trainer's defaults and the run they make, each bad field named, patience
// saved to task.json) and the model's answers as suggestions; labels are picked with the mouse and
// the keyboard, after the answers arrived and before, and accepted with Ctrl+Enter or "Accept
// suggestions": after every kind of edit (label, held out, typed answer, delete, accept) the counts
// and Train are right at once, with no other redraw (the rows are the same elements, the host sent
// no new state), and each open label list lies inside the visible panel. All by keyboard too (every
// control reachable with Tab, focus visible). Then the panel at ~400 px beside the editor in dark,
// light and high-contrast themes; a selection of two lines added as one example per line (the task
// pick leads with the existing task, the choice asked once and kept in task.json); a free-text task
// whose typed answer counts at once; and a task past the page's limits, then a damaged one, shown as
// messages saying what to do. Screenshots: artifacts/e2e/panel-*.png.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FrameLocator, Page } from 'playwright-core';
import { launchBrowser } from './lib/browser';
import { endSession, newSession, ROOT, startServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';
import { markRows, pickLabel, rowsKept, summary, trainState } from './lib/panel';
import {
  type ExtensionEvent,
  actUntilShown, addUserSettings, answer, examplesOnDisk, linkExtension, logPageErrors, newClassifyTask, palette, panelFrame, pickTheme, readEvents, screenshotter, selectLine, UI_TIMEOUT, waitFor, waitForEvent,
} from './lib/workbench';

const GROUP = 'panel';
const FIRST = 'The app crashes when I click Save twice.';
const SECOND = 'Export to CSV would be great.';
const THIRD = 'How do I export my data?';
const SAMPLE = `${FIRST}\nPlease add a dark mode to the settings page.\n${THIRD}\n`;
const TASK_DIR = '.gemma/tasks/bug-or-feature';
const LABELS = ['bug', 'feature', 'question'];

type Hp = Record<string, unknown>;

function taskJson(workspace: string): { kind: string; labels: string[]; hyperparameters: Hp } {
  return JSON.parse(readFileSync(path.join(workspace, TASK_DIR, 'task.json'), 'utf8')) as { kind: string; labels: string[]; hyperparameters: Hp };
}

/**
 * The events of the window's own extension host: the one that activated last. After "Developer: Reload Window"
 * code-server can keep the old window's host running for its reconnection grace time (one fresh-clone run saw it
 * still alive, never told to shut down, 20 s after the reload), and that host's panel, whose page is gone, goes on
 * noticing the new host's writes; what it says reaches no page and is not this window's.
 */
function windowEvents(events: string): ExtensionEvent[] {
  const all = readEvents(events);
  const pid = windowPid(all);
  return all.filter((e) => e.pid === pid);
}

/** The pid of the extension host that activated last. */
function windowPid(all: ExtensionEvent[]): unknown {
  return all.filter((e) => e.event === 'activated').at(-1)?.pid;
}

/** How many states the window's host has sent the panel so far (each is a full redraw of the page). */
function stateCount(events: string): number {
  return windowEvents(events).filter((e) => e.event === 'panelState').length;
}

/** The check that no state came from the window's host since `states` were counted, naming every event since (with its process). */
function assertNoNewState(events: string, states: number): void {
  const all = readEvents(events);
  const pid = windowPid(all);
  let seen = 0;
  const from = states === 0 ? 0 : all.findIndex((e) => e.pid === pid && e.event === 'panelState' && ++seen === states) + 1;
  const since = all.slice(from);
  const named = since.map((e) => `${e.event === 'panelReloaded' ? `panelReloaded ${JSON.stringify({ file: e.file, known: e.known, now: e.now })}` : e.event} (pid ${String(e.pid)})`);
  assert.equal(stateCount(events), states, `no new state from the window's host, pid ${String(pid)}, in between (the events since: ${named.join(', ')})`);
}

/** The value of a <vscode-…> field. */
function valueOf(frame: FrameLocator, selector: string): Promise<string> {
  return frame.locator(selector).evaluate((el) => (el as HTMLElement & { value: string }).value);
}

/** What has the keyboard focus inside the panel: an id, or column@example for table cells. */
function focused(frame: FrameLocator): Promise<string> {
  return frame.locator('body').evaluate(() => {
    const a = document.activeElement as HTMLElement | null;
    if (!a || a === document.body) return '';
    const row = a.closest('tr[data-id]') as HTMLElement | null;
    const col = a.getAttribute('data-col') ?? (a.closest('.fields') ? 'output' : null);
    return a.id || (row && col ? `${col}@${row.dataset.id}` : a.tagName.toLowerCase());
  });
}

/** Whether the focused element shows its focus: an outline, or a border in the theme's focusBorder colour, on it or inside its shadow root. */
function focusShows(frame: FrameLocator): Promise<boolean> {
  return frame.locator('body').evaluate(() => {
    const probe = document.createElement('span');
    probe.style.color = getComputedStyle(document.body).getPropertyValue('--vscode-focusBorder').trim();
    document.body.append(probe);
    const ring = getComputedStyle(probe).color;
    probe.remove();
    const a = document.activeElement as HTMLElement | null;
    if (!a) return false;
    const all = [a, ...Array.from(a.shadowRoot?.querySelectorAll('*') ?? [])];
    return all.some((e) => {
      const cs = getComputedStyle(e);
      const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0;
      const border = [cs.borderTopColor, cs.borderBottomColor, cs.borderLeftColor].includes(ring) && parseFloat(cs.borderTopWidth || '0') + parseFloat(cs.borderBottomWidth || '0') > 0;
      return outline || border;
    });
  });
}

/** Runs the panel checks into `report`. */
export async function runPanel(report: Report, artifacts: string): Promise<Record<string, number>> {
  const timings: Record<string, number> = {};
  const session = await newSession('panel', { 'issues.txt': SAMPLE });
  const ws = session.workspace;
  const events = session.eventsFile;
  const model = path.join(session.dir, 'tiny-q4.gguf');
  execFileSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', model], { stdio: 'pipe' });
  linkExtension(session);
  addUserSettings(session, { 'workbench.colorTheme': 'Dark 2026', 'gemmaTune.engine.threads': 1 }); // theme ids of VS Code 1.139's theme-defaults
  const screenshot = screenshotter(artifacts, 'panel');
  const onDisk = () => examplesOnDisk(ws, TASK_DIR);

  try {
    await startServer(session, { env: { GEMMA_TUNE_EVENTS_FILE: events }, log: path.join(artifacts, 'code-server-panel.log') });
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
      logPageErrors(page);
      await checks(report, page, { ws, events, model, session, screenshot, onDisk, timings });
    } finally {
      await browser.close();
    }
  } finally {
    await endSession(session);
  }
  return timings;
}

interface Ctx {
  ws: string;
  events: string;
  model: string;
  session: Awaited<ReturnType<typeof newSession>>;
  screenshot: (page: Page, name: string) => Promise<void>;
  onDisk: () => ReturnType<typeof examplesOnDisk>;
  timings: Record<string, number>;
}

async function checks(report: Report, page: Page, c: Ctx): Promise<void> {
  const { ws, events, screenshot, onDisk, timings } = c;
  let frame = panelFrame(page);
  let first = '';
  let second = '';

  await report.check(GROUP, 'open issues.txt and select its first line', async () => {
    await page.goto(workbenchUrl(c.session));
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

  await report.check(GROUP, 'the editor context menu names the commands as Gemma\'s: a "Gemma" submenu with both', async () => {
    const gemma = page.locator('.context-view .monaco-menu .action-label', { hasText: /^Gemma$/ });
    // Right after the window opens (and on a loaded machine) the menu can be drawn before the extension's
    // contributions are registered: close it and open it again, as a user would.
    await actUntilShown(gemma, () => page.locator('.monaco-editor .view-line').first().click({ button: 'right', position: { x: 30, y: 8 } }), {
      tries: 3, waitMs: 10_000, undo: () => page.keyboard.press('Escape'),
    });
    await gemma.hover();
    for (const item of ['Fine-tune on selection', 'Run task on selection']) {
      await page.locator('.context-view .monaco-menu .action-label', { hasText: item }).first().waitFor({ timeout: UI_TIMEOUT });
    }
    await screenshot(page, 'context-menu');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Escape');
    await page.locator('.statusbar', { hasText: `(${FIRST.length} selected)` }).waitFor({ timeout: UI_TIMEOUT });
  });

  await report.check(GROUP, '"Gemma: Fine-tune on selection" offers "New task…"', async () => {
    await palette(page, 'Gemma: Fine-tune on selection');
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'New task…' }).waitFor({ timeout: 60_000 });
    await screenshot(page, 'task-pick');
    await page.keyboard.press('Enter');
  });

  await report.check(GROUP, 'the quick inputs create a classify task with three labels', async () => {
    await newClassifyTask(page, 'Bug or feature', LABELS, 'Is this issue a bug report, a feature request or a question?');
    await waitFor('task.json', () => (readEvents(events).some((e) => e.event === 'panelOpened') ? true : undefined));
    const config = taskJson(ws);
    assert.equal(config.kind, 'classify');
    assert.deepEqual(config.labels, LABELS);
  });

  await report.check(GROUP, 'the panel opens with the selection as an unlabeled example; no training without a model', async () => {
    const t0 = performance.now();
    const input = frame.locator('tr[data-id] vscode-textarea[data-col="input"]').first();
    await input.waitFor({ timeout: 30_000 });
    timings.panelOpenMs = performance.now() - t0;
    assert.equal(await input.evaluate((el) => (el as HTMLElement & { value: string }).value), FIRST);
    const ex = onDisk();
    assert.equal(ex.length, 1);
    assert.equal(ex[0].input, FIRST);
    assert.equal(ex[0].messages[1].content, '', 'not labeled yet');
    first = ex[0].id;
    assert.equal(await frame.locator('#training-unavailable').count(), 1, 'training is hidden while the engine cannot train');
    assert.equal(await frame.locator('#suggest').count(), 0, 'no suggestions without a model');
    await screenshot(page, 'panel-opened');
  });

  await report.check(GROUP, 'choosing a label with the mouse: the header counts it at once, drawn in place; it is saved to examples.jsonl', async () => {
    await markRows(frame);
    const states = stateCount(events);
    await pickLabel(frame, first, 'bug', 'mouse');
    assert.match(await summary(frame), /1 example, 1 labeled, 0 held out/, 'the header follows the label at once');
    assert.ok(await rowsKept(frame), 'the row was updated in place, not redrawn');
    const t0 = Date.now();
    const saved = await waitFor('the label on disk', () => (onDisk()[0]?.messages[1].content === 'bug' ? onDisk()[0] : undefined), 15_000);
    timings.labelSavedMs = Date.now() - t0;
    assert.match(saved.messages[0].content, /Labels: bug, feature, question/);
    await frame.locator('#save-status', { hasText: 'Saved' }).waitFor({ timeout: 5000 });
    assertNoNewState(events, states);
    await screenshot(page, 'labeled');
  });

  await report.check(GROUP, 'holding the example out and adding a second one are saved too', async () => {
    await frame.locator(`tr[data-id="${first}"] vscode-checkbox[data-col="held"]`).click();
    assert.match(await summary(frame), /1 example, 1 labeled, 1 held out/, 'the header follows "Held out" at once');
    await waitFor('heldOut on disk', () => (onDisk()[0]?.heldOut === true ? true : undefined));
    await frame.locator('#add-example').click();
    // The new example's input gets the keyboard focus, so typing goes straight into it.
    await frame.locator('tr[data-id]:nth-child(2) vscode-textarea[data-col="input"]:focus').waitFor({ timeout: UI_TIMEOUT });
    await page.keyboard.type(SECOND);
    assert.match(await summary(frame), /2 examples, 1 labeled, 1 held out/);
    await waitFor('the typed input on disk', () => (onDisk()[1]?.input === SECOND ? true : undefined));
    second = onDisk()[1].id;
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
      post('onmessage', { message: { type: 'setHyperparameters', seq: 3, hyperparameters: { epochs: 3, patience: -5 } }, transfer: [] });
    });
    await waitFor('four rejection events', () => (readEvents(events).filter((e) => e.event === 'webviewMessageRejected').length >= 4 ? true : undefined));
    assert.equal(onDisk().length, 2);
    assert.equal(taskJson(ws).hyperparameters.patience, 5, 'task.json untouched');
  });

  await report.check(GROUP, 'a hand edit of examples.jsonl shows in the open panel, and the next panel edit keeps it', async () => {
    const file = path.join(ws, TASK_DIR, 'examples.jsonl');
    const byHand = { messages: [{ role: 'user', content: 'Where is the manual?' }, { role: 'assistant', content: 'question' }], id: 'ex-byhand1', input: 'Where is the manual?', heldOut: false };
    const reloads = readEvents(events).filter((e) => e.event === 'panelReloaded').length;
    appendFileSync(file, JSON.stringify(byHand) + '\n'); // as an editor saves: in place
    await frame.locator('tr[data-id="ex-byhand1"]').waitFor({ timeout: 15_000 });
    await waitForEvent(events, 'panelReloaded', reloads + 1);
    // A panel edit now writes on top of the hand edit, not over it.
    await frame.locator(`tr[data-id="${first}"] vscode-checkbox[data-col="held"]`).click();
    await waitFor('heldOut off on disk', () => (onDisk()[0]?.heldOut === false ? true : undefined));
    assert.deepEqual(onDisk().map((e) => e.id), [first, second, 'ex-byhand1']);
    await screenshot(page, 'hand-edit-shown');
    // Taken out by hand again: the row goes.
    writeFileSync(file, readFileSync(file, 'utf8').split('\n').filter((l) => !l.includes('"ex-byhand1"')).join('\n'));
    await frame.locator('tr[data-id="ex-byhand1"]').waitFor({ state: 'detached', timeout: 15_000 });
    await frame.locator(`tr[data-id="${first}"] vscode-checkbox[data-col="held"]`).click();
    await waitFor('heldOut on again on disk', () => (onDisk()[0]?.heldOut === true ? true : undefined));
    assert.deepEqual(onDisk().map((e) => e.id), [first, second]);
  });

  await report.check(GROUP, 'with a model set, "Developer: Reload Window" brings the panel back with the label and training offered', async () => {
    const before = readFileSync(path.join(ws, TASK_DIR, 'examples.jsonl'), 'utf8');
    addUserSettings(c.session, { 'gemmaTune.model.path': c.model });
    await palette(page, 'Developer: Reload Window');
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await waitForEvent(events, 'panelRestored', 1, 60_000);
    frame = panelFrame(page);
    const select = frame.locator(`tr[data-id="${first}"] vscode-single-select[data-col="output"]`);
    await select.waitFor({ timeout: 30_000 });
    assert.equal(await select.evaluate((el) => (el as HTMLElement & { value: string }).value), 'bug');
    assert.equal(readFileSync(path.join(ws, TASK_DIR, 'examples.jsonl'), 'utf8'), before, 'examples.jsonl unchanged by the reload');
    await frame.locator('#train').waitFor({ timeout: UI_TIMEOUT });
    // The only label is held out: nothing to train on, and the panel says so beside Train.
    const t = await trainState(frame);
    assert.equal(t.enabled, false);
    assert.match(t.hint, /Every labeled example is held out/);
    await screenshot(page, 'after-reload-dark');
  });

  await report.check(GROUP, 'the training form shows the trainer\'s defaults, names a bad field, and saves patience', async () => {
    const defaults = { epochs: '3', minSteps: '100', learningRate: '0.0002', rank: '16', alpha: '32', batchSize: '4', valSplit: '0.2', patience: '5' };
    for (const [k, v] of Object.entries(defaults)) assert.equal(await valueOf(frame, `#hp-${k}`), v, `#hp-${k}`);
    const lr = frame.locator('#hp-learningRate input');
    await lr.fill('fast');
    await frame.locator('#hp-error', { hasText: 'Learning rate: "fast" is not a number' }).waitFor({ timeout: 5000 });
    assert.equal(await frame.locator('#hp-learningRate').getAttribute('aria-invalid'), 'true');
    await frame.locator('#hp-error').scrollIntoViewIfNeeded();
    await screenshot(page, 'form-invalid');
    // Train with a bad field trains nothing and takes the user to the field.
    await frame.locator('#train').focus();
    await page.keyboard.press('Enter');
    await waitFor('focus on the bad field', async () => ((await focused(frame)) === 'hp-learningRate' ? true : undefined), 5000);
    assert.equal(readEvents(events).filter((e) => e.event === 'trainingStarted').length, 0, 'no run started');
    assert.equal(taskJson(ws).hyperparameters.learningRate, 2e-4, 'the bad value was not saved');
    await lr.fill('0.001');
    await lr.press('Tab');
    const patience = frame.locator('#hp-patience input');
    await patience.fill('1');
    await patience.press('Tab');
    await waitFor('lr and patience in task.json', () => {
      const hp = taskJson(ws).hyperparameters;
      return hp.learningRate === 0.001 && hp.patience === 1 ? true : undefined;
    }, 10_000);
    assert.equal(await frame.locator('#hp-error p').count(), 0, 'the error is gone');
    assert.equal(await frame.locator('#hp-learningRate').getAttribute('aria-invalid'), null);
  });

  await report.check(GROUP, 'after the answers arrived: a label picked with the mouse, cleared, and accepted with Ctrl+Enter; counts, Train and the model line follow each at once, in place', async () => {
    const line = frame.locator(`tr[data-id="${second}"] .suggestion.open`);
    await line.waitFor({ timeout: 90_000 }); // loads the model in the worker first
    const text = (await line.innerText()).replace(/\s+/g, ' ');
    const suggested = LABELS.find((l) => text.includes(`Model suggests: ${l}`));
    assert.ok(suggested, `a label in "${text}"`);
    await screenshot(page, 'suggestion');
    await markRows(frame);
    const states = stateCount(events);
    const row = frame.locator(`tr[data-id="${second}"]`);

    // A label other than the model's, with the mouse: no "Model suggests … Accept" left under it.
    const other = LABELS.find((l) => l !== suggested)!;
    await pickLabel(frame, second, other, 'mouse');
    assert.match(await summary(frame), /2 examples, 2 labeled, 1 held out/);
    assert.deepEqual(await trainState(frame), { enabled: true, hint: '' }, 'Train is enabled by the label alone');
    await row.locator('.suggestion.differs', { hasText: `Model said: ${suggested}` }).waitFor({ timeout: 2000 });
    assert.equal(await row.locator('[data-col="accept"]').count(), 0, 'no Accept over the user\'s label');
    await screenshot(page, 'labeled-by-mouse');

    // Cleared again: unlabeled, Train back to disabled with the reason, the model's answer offered.
    await pickLabel(frame, second, '', 'mouse');
    assert.match(await summary(frame), /2 examples, 1 labeled, 1 held out/);
    assert.equal((await trainState(frame)).enabled, false);
    await row.locator('.suggestion.open [data-col="accept"]').waitFor({ timeout: 2000 });

    // Ctrl+Enter accepts the model's answer.
    const output = frame.locator(`tr[data-id="${second}"] vscode-single-select[data-col="output"]`);
    await output.focus();
    await page.keyboard.press('Control+Enter');
    await row.locator('.suggestion.agrees').waitFor({ timeout: 2000 });
    assert.match(await summary(frame), /2 examples, 2 labeled, 1 held out/);
    assert.deepEqual(await trainState(frame), { enabled: true, hint: '' });
    assert.match(await frame.locator('#training-plan').innerText(), /^1 training example, 1 held out: 100 epochs of 1 step, 100 steps; early stopping may end it sooner$/);
    assert.ok(await rowsKept(frame), 'every edit was drawn in place');
    await waitFor('the accepted label on disk', () => (onDisk()[1]?.messages[1].content === suggested ? true : undefined));
    assertNoNewState(events, states);
    assert.equal(await valueOf(frame, `tr[data-id="${second}"] vscode-single-select[data-col="output"]`), suggested, 'the dropdown shows it');
    assert.equal(await focused(frame), `output@${second}`, 'the focus stays on the example');

    // Held out with the mouse: nothing left to train on, and Train says so; back again.
    const held = frame.locator(`tr[data-id="${second}"] vscode-checkbox[data-col="held"]`);
    await held.click();
    assert.match(await summary(frame), /2 examples, 2 labeled, 2 held out/);
    const blocked = await trainState(frame);
    assert.equal(blocked.enabled, false);
    assert.match(blocked.hint, /Every labeled example is held out/);
    await held.click();
    assert.deepEqual(await trainState(frame), { enabled: true, hint: '' });
    assert.ok(await rowsKept(frame));
    await waitFor('held out cleared on disk', () => (onDisk()[1]?.heldOut === false ? true : undefined));
    assertNoNewState(events, states);
    // The settings saved a moment ago are what the form shows, not the ones the panel opened with.
    assert.equal(await valueOf(frame, '#hp-learningRate'), '0.001');
    assert.equal(await valueOf(frame, '#hp-patience'), '1');
  });

  await report.check(GROUP, 'keyboard: Alt+↑ moves between examples; Tab reaches every control with its focus visible', async () => {
    await frame.locator(`tr[data-id="${second}"] vscode-textarea[data-col="input"]`).focus();
    await page.keyboard.press('Alt+ArrowUp');
    await waitFor('focus on the first input', async () => ((await focused(frame)) === `input@${first}` ? true : undefined), 5000);
    const seen: string[] = [];
    const hidden: string[] = [];
    for (let i = 0; i < 40 && !seen.includes('train'); i++) {
      await page.keyboard.press('Tab');
      const f = await focused(frame);
      seen.push(f);
      if (f && !(await focusShows(frame))) hidden.push(f);
    }
    for (const want of [`output@${first}`, `held@${first}`, `remove@${first}`, `input@${second}`, `output@${second}`, `held@${second}`, `remove@${second}`, 'add-example', 'hp-epochs', 'hp-learningRate', 'hp-patience', 'train']) {
      assert.ok(seen.includes(want), `Tab reaches ${want} (reached: ${seen.join(', ')})`);
    }
    assert.deepEqual(hidden, [], 'every focused control shows its focus');
    await screenshot(page, 'keyboard-focus');
  });

  await report.check(GROUP, 'keyboard: add an example, "Suggest answers", "Accept suggestions", remove it again', async () => {
    await frame.locator('#add-example').focus();
    await page.keyboard.press('Enter');
    await frame.locator('tr[data-id]:nth-child(3) vscode-textarea[data-col="input"]:focus').waitFor({ timeout: UI_TIMEOUT });
    await page.keyboard.type(THIRD);
    const third = await waitFor('the third example on disk', () => (onDisk()[2]?.input === THIRD ? onDisk()[2].id : undefined));
    // Before the model was asked about it: a label with the keyboard, then cleared again.
    await markRows(frame);
    const states = stateCount(events);
    await pickLabel(frame, third, 'question', 'keyboard');
    assert.match(await summary(frame), /3 examples, 3 labeled, 1 held out/);
    await pickLabel(frame, third, '', 'keyboard');
    assert.match(await summary(frame), /3 examples, 2 labeled, 1 held out/);
    assert.ok(await rowsKept(frame));
    assert.equal(stateCount(events), states);
    await frame.locator('#suggest').focus();
    await page.keyboard.press('Enter');
    await frame.locator(`tr[data-id="${third}"] .suggestion.open`).waitFor({ timeout: 60_000 });
    await waitFor('the focus still on "Suggest answers"', async () => ((await focused(frame)) === 'suggest' ? true : undefined), 5000);
    await markRows(frame);
    await frame.locator('#accept-all', { hasText: 'Accept 1 suggestion' }).focus();
    await page.keyboard.press('Enter');
    assert.match(await summary(frame), /3 examples, 3 labeled, 1 held out/, 'the header follows "Accept suggestions" at once');
    assert.ok(await rowsKept(frame));
    const label = await waitFor('the third label on disk', () => (LABELS.includes(onDisk()[2]?.messages[1].content ?? '') ? onDisk()[2].messages[1].content : undefined));
    assert.equal(await valueOf(frame, `tr[data-id="${third}"] vscode-single-select[data-col="output"]`), label);
    await waitFor('the focus on the accepted answer', async () => ((await focused(frame)) === `output@${third}` ? true : undefined), 5000);
    await frame.locator(`tr[data-id="${third}"] vscode-button[data-col="remove"]`).focus();
    await page.keyboard.press('Enter');
    assert.match(await summary(frame), /2 examples, 2 labeled, 1 held out/, 'the header follows the removal at once');
    assert.deepEqual(await trainState(frame), { enabled: true, hint: '' });
    await waitFor('two examples on disk', () => (onDisk().length === 2 ? true : undefined));
    assert.equal(await focused(frame), `remove@${second}`, 'the focus lands on the previous example\'s remove button, not nowhere');
  });

  await report.check(GROUP, 'at ~400 px beside the editor the examples become cards and nothing scrolls sideways', async () => {
    await page.setViewportSize({ width: 1100, height: 760 });
    const layout = async () => frame.locator('body').evaluate(() => {
      const row = document.querySelector('tr[data-id]') as HTMLElement;
      const input = row.querySelector('vscode-textarea[data-col="input"]') as HTMLElement;
      const train = document.getElementById('train') as HTMLElement;
      return {
        width: window.innerWidth,
        scroll: document.documentElement.scrollWidth,
        display: getComputedStyle(row).display,
        input: input.getBoundingClientRect().width,
        trainRight: train.getBoundingClientRect().right,
      };
    });
    const l = await waitFor('the narrow layout', async () => {
      const v = await layout();
      return v.display === 'grid' ? v : undefined;
    }, 10_000).catch(async () => layout());
    assert.ok(l.width >= 300 && l.width <= 480, `panel width ${l.width} px`);
    assert.equal(l.display, 'grid', 'each example is a card');
    assert.ok(l.scroll <= l.width + 1, `no horizontal scrolling (${l.scroll} > ${l.width})`);
    assert.ok(l.input >= 0.75 * l.width, `the input gets the card's width (${Math.round(l.input)} of ${l.width} px)`);
    assert.ok(l.trainRight <= l.width, 'Train is on screen');
    timings.narrowPanelPx = l.width;
    await screenshot(page, 'narrow-dark');
  });

  await report.check(GROUP, 'the panel follows light and high-contrast themes, colours from the theme only', async () => {
    const colours = () => frame.locator('body').evaluate(() => {
      const cs = getComputedStyle(document.body);
      const probe = document.createElement('span');
      probe.style.color = cs.getPropertyValue('--vscode-editor-background').trim();
      document.body.append(probe);
      const bg = getComputedStyle(probe).color;
      probe.remove();
      return { background: cs.backgroundColor, themeBackground: bg, foreground: cs.color };
    });
    const dark = await colours();
    assert.equal(await page.locator('.monaco-workbench.vs-dark').count(), 1, 'the session started dark');
    await pickTheme(page, 'Light 2026');
    await page.locator('.monaco-workbench.vs').waitFor({ timeout: UI_TIMEOUT });
    await screenshot(page, 'narrow-light');
    const light = await colours();
    await pickTheme(page, 'Dark High Contrast');
    await page.locator('.monaco-workbench.hc-black').waitFor({ timeout: UI_TIMEOUT });
    await screenshot(page, 'narrow-high-contrast');
    const hc = await colours();
    for (const [name, c] of Object.entries({ dark, light, hc })) assert.equal(c.background, c.themeBackground, `${name}: the page background is the theme's editor background`);
    assert.notEqual(dark.background, light.background);
    assert.notEqual(dark.foreground, light.foreground);
  });

  await report.check(GROUP, 'a selection of two lines: the task pick leads with the existing task, "One example per line" adds two examples and is kept in task.json', async () => {
    await page.setViewportSize({ width: 1280, height: 760 });
    await page.keyboard.press('Control+1');
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Home');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Shift+End');
    await page.waitForTimeout(300);
    await palette(page, 'Gemma: Fine-tune on selection');
    const widget = page.locator('.quick-input-widget');
    await widget.locator('.quick-input-title', { hasText: 'Add the selection to… (2 examples one per line, or 1 example as selected)' }).waitFor({ timeout: UI_TIMEOUT });
    // Enter takes the existing task: it is the first row, "New task…" the last.
    await widget.locator('.monaco-list-row.focused', { hasText: 'Bug or feature' }).waitFor({ timeout: UI_TIMEOUT });
    await screenshot(page, 'task-pick-existing');
    await page.keyboard.press('Enter');
    await widget.locator('.quick-input-title', { hasText: 'The selection spans 2 lines' }).waitFor({ timeout: UI_TIMEOUT });
    await screenshot(page, 'one-per-line');
    await widget.locator('.monaco-list-row', { hasText: 'One example per line' }).click();
    await waitFor('four examples on disk', () => (onDisk().length === 4 ? true : undefined));
    assert.deepEqual(onDisk().slice(2).map((e) => e.input), ['Please add a dark mode to the settings page.', THIRD]);
    assert.equal((taskJson(ws) as { selection?: string }).selection, 'lines', 'the choice is kept for the task');
    await waitFor('the panel shows them', async () => (/4 examples, 2 labeled, 1 held out/.test(await summary(frame).catch(() => '')) ? true : undefined));
  });

  let tone: FrameLocator | undefined;
  await report.check(GROUP, 'a free-text task: a typed answer counts as a label at once and enables Train', async () => {
    await page.keyboard.press('Control+1');
    await selectLine(page, 1, FIRST.length);
    await palette(page, 'Gemma: Fine-tune on selection');
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'New task…' }).click({ timeout: UI_TIMEOUT });
    await answer(page, 'Calm reply', /New Gemma task \(1\/4\)/);
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Rewrite / generate' }).click({ timeout: UI_TIMEOUT });
    await answer(page, 'Rewrite the ticket as a calm one-line reply.', /New Gemma task \(3\/3\)/);
    tone = panelFrame(page);
    await tone.locator('h1', { hasText: 'Calm reply' }).waitFor({ timeout: 30_000 });
    const area = tone.locator('tr[data-id] vscode-textarea[data-col="output"]').first();
    await area.waitFor({ timeout: UI_TIMEOUT });
    assert.match(await summary(tone), /1 example, 0 labeled, 0 held out/);
    await markRows(tone);
    await area.click();
    await page.keyboard.type('Thanks, we are on it.');
    // Before the typing pause sends it: the header and Train follow the typed answer.
    assert.match(await summary(tone), /1 example, 1 labeled, 0 held out/);
    assert.deepEqual(await trainState(tone), { enabled: true, hint: '' });
    assert.ok(await rowsKept(tone), 'typing redraws nothing but the counts');
    await waitFor('the typed answer on disk', () => (examplesOnDisk(ws, '.gemma/tasks/calm-reply')[0]?.messages[1].content === 'Thanks, we are on it.' ? true : undefined));
    await screenshot(page, 'typed-answer');
  });

  await report.check(GROUP, 'a task past the page\'s limits (1005 examples, 25 unreadable lines) shows the first 1000 and says what was left out', async () => {
    const f = tone!;
    const dir = path.join(ws, '.gemma/tasks/calm-reply');
    const good = Array.from({ length: 1005 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `Ticket ${i}` }, { role: 'assistant', content: '' }], id: `ex-big${i}`, input: `Ticket ${i}`, heldOut: false }));
    const bad = Array.from({ length: 25 }, (_, i) => `{"broken": ${i}`);
    writeFileSync(path.join(dir, 'examples.jsonl'), [...good, ...bad].join('\n') + '\n');
    // The open panel shows the change by itself; the pick below opens after that redraw. (A redraw of this
    // panel while the pick was open closed the pick in a fresh-clone run; the cause is not found yet.)
    await f.locator('#examples-omitted').waitFor({ timeout: 60_000 });
    await palette(page, 'Gemma: Open training panel');
    // Typed into the pick's filter and taken with Enter: a click on a list still being laid out can miss.
    await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Calm reply' }).first().waitFor({ timeout: UI_TIMEOUT });
    await page.locator('.quick-input-widget input').fill('Calm reply');
    await page.locator('.quick-input-widget .monaco-list-row.focused', { hasText: 'Calm reply' }).waitFor({ timeout: UI_TIMEOUT });
    await page.keyboard.press('Enter');
    await f.locator('#examples-omitted').waitFor({ timeout: 60_000 });
    assert.match(await f.locator('#examples-omitted').innerText(), /This task has 1005 examples; the panel shows the first 1000\. Training uses every labeled one/);
    assert.match(await f.locator('#problems summary').innerText(), /^25 lines of examples\.jsonl could not be read and are kept aside/);
    await f.locator('#problems summary').click();
    assert.match(await f.locator('#problems li').first().innerText(), /^examples\.jsonl:1006: not valid JSON/);
    assert.match(await f.locator('#problems-omitted').innerText(), /and 5 more lines, all listed in the "Gemma Tune" output/);
    assert.equal(await f.locator('tr[data-id]').count(), 1000);
    await screenshot(page, 'past-limits');
  });

  await report.check(GROUP, 'a damaged task.json: after a reload the panel says what is wrong and what to do; "Try again" reads it again; fixed, the task shows by itself', async () => {
    const file = path.join(ws, '.gemma/tasks/calm-reply/task.json');
    const good = readFileSync(file, 'utf8');
    writeFileSync(path.join(ws, '.gemma/tasks/calm-reply/examples.jsonl'), '');
    writeFileSync(file, good.slice(0, 40));
    await palette(page, 'Developer: Reload Window');
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    const f = panelFrame(page);
    const problem = f.locator('#unavailable-problem');
    await problem.waitFor({ timeout: 60_000 });
    assert.match(await problem.innerText(), /^The task "calm-reply" cannot be read: \.gemma\/tasks\/calm-reply\/task\.json: not valid JSON/);
    assert.match(await f.locator('#unavailable-remedy').innerText(), /Fix the file the message names/);
    await screenshot(page, 'damaged-task');
    // "Try again" reads the files again: still damaged, the panel says so again.
    const said = readEvents(events).filter((e) => e.event === 'panelUnavailable').length;
    await f.locator('#try-again').click();
    await waitFor('the files read again', () => (readEvents(events).filter((e) => e.event === 'panelUnavailable').length > said ? true : undefined), 10_000);
    assert.match(await problem.innerText(), /not valid JSON/);
    // Fixed on disk: the panel notices by itself (its watcher, or its own check every few seconds).
    writeFileSync(file, good);
    await f.locator('h1', { hasText: 'Calm reply' }).waitFor({ timeout: 30_000 });
    assert.equal(await f.locator('#panel-unavailable').isHidden(), true);
  });
}
