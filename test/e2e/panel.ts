// The labeling panel through a real VS Code (code-server in headless chromium). Without a model:
// select a line, run "Gemma: Fine-tune on selection", create a classify task through the quick
// inputs, see the panel open with the example and no training offered, label it, hold it out, add a
// second one, and see hostile page messages rejected. Then a tiny random model is set
// (gemmaTune.model.path) and the window reloaded: the panel comes back with the label and now offers
// the training form (the trainer's defaults, each bad field named, patience saved to task.json) and
// the model's answers as suggestions, accepted with Ctrl+Enter or "Accept suggestions", all by
// keyboard (every control reachable with Tab, focus visible). Last, the panel at ~400 px beside the
// editor (rows become cards, no horizontal scrolling) in dark, light and high-contrast themes.
// Screenshots: artifacts/e2e/panel-*.png.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FrameLocator, Page } from 'playwright-core';
import { launchBrowser } from './lib/browser';
import { endSession, newSession, ROOT, startServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';
import {
  addUserSettings, examplesOnDisk, linkExtension, logPageErrors, newClassifyTask, palette, panelFrame, pickTheme, readEvents, screenshotter, UI_TIMEOUT, waitFor, waitForEvent,
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

  await report.check(GROUP, 'choosing a label in the panel saves it to examples.jsonl', async () => {
    const select = frame.locator(`tr[data-id="${first}"] vscode-single-select[data-col="output"]`);
    await select.click();
    await select.getByRole('option', { name: 'bug', exact: true }).click();
    const t0 = Date.now();
    const saved = await waitFor('the label on disk', () => (onDisk()[0]?.messages[1].content === 'bug' ? onDisk()[0] : undefined), 15_000);
    timings.labelSavedMs = Date.now() - t0;
    assert.match(saved.messages[0].content, /Labels: bug, feature, question/);
    await frame.locator('#save-status', { hasText: 'Saved' }).waitFor({ timeout: 5000 });
    await screenshot(page, 'labeled');
  });

  await report.check(GROUP, 'holding the example out and adding a second one are saved too', async () => {
    await frame.locator(`tr[data-id="${first}"] vscode-checkbox[data-col="held"]`).click();
    await waitFor('heldOut on disk', () => (onDisk()[0]?.heldOut === true ? true : undefined));
    await frame.locator('#add-example').click();
    // The new example's input gets the keyboard focus, so typing goes straight into it.
    await frame.locator('tr[data-id]:nth-child(2) vscode-textarea[data-col="input"]:focus').waitFor({ timeout: UI_TIMEOUT });
    await page.keyboard.type(SECOND);
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
    assert.equal(taskJson(ws).hyperparameters.patience, 2, 'task.json untouched');
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
    await screenshot(page, 'after-reload-dark');
  });

  await report.check(GROUP, 'the training form shows the trainer\'s defaults, names a bad field, and saves patience', async () => {
    const defaults = { epochs: '3', learningRate: '0.0002', rank: '16', alpha: '32', batchSize: '4', valSplit: '0.2', patience: '2' };
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

  await report.check(GROUP, 'the model\'s answer is suggested for the unlabeled example; Ctrl+Enter accepts it', async () => {
    const line = frame.locator(`tr[data-id="${second}"] .suggestion.open`);
    await line.waitFor({ timeout: 90_000 }); // loads the model in the worker first
    const text = (await line.innerText()).replace(/\s+/g, ' ');
    const suggested = LABELS.find((l) => text.includes(`Model suggests: ${l}`));
    assert.ok(suggested, `a label in "${text}"`);
    await screenshot(page, 'suggestion');
    const output = frame.locator(`tr[data-id="${second}"] vscode-single-select[data-col="output"]`);
    await output.focus();
    await page.keyboard.press('Control+Enter');
    await waitFor('the accepted label on disk', () => (onDisk()[1]?.messages[1].content === suggested ? true : undefined));
    await frame.locator(`tr[data-id="${second}"] .suggestion.agrees`).waitFor({ timeout: 5000 });
    assert.equal(await valueOf(frame, `tr[data-id="${second}"] vscode-single-select[data-col="output"]`), suggested, 'the dropdown shows it');
    assert.equal(await focused(frame), `output@${second}`, 'the focus stays on the example');
    // That redraw shows the settings saved a moment ago, not the ones the panel opened with.
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
    await frame.locator('#suggest').focus();
    await page.keyboard.press('Enter');
    await frame.locator(`tr[data-id="${third}"] .suggestion.open`).waitFor({ timeout: 60_000 });
    await waitFor('the focus still on "Suggest answers"', async () => ((await focused(frame)) === 'suggest' ? true : undefined), 5000);
    await frame.locator('#accept-all', { hasText: 'Accept 1 suggestion' }).focus();
    await page.keyboard.press('Enter');
    const label = await waitFor('the third label on disk', () => (LABELS.includes(onDisk()[2]?.messages[1].content ?? '') ? onDisk()[2].messages[1].content : undefined));
    assert.equal(await valueOf(frame, `tr[data-id="${third}"] vscode-single-select[data-col="output"]`), label);
    await waitFor('the focus on the accepted answer', async () => ((await focused(frame)) === `output@${third}` ? true : undefined), 5000);
    await frame.locator(`tr[data-id="${third}"] vscode-button[data-col="remove"]`).focus();
    await page.keyboard.press('Enter');
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
}
