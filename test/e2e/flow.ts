// The whole path as a user walks it, in a real VS Code (code-server in headless chromium), with a
// tiny random Gemma 3 GGUF made by `gemma-tune make-model` and set through gemmaTune.model.path,
// the panel and the editor each about 300 px wide: select a line, "Gemma: Fine-tune on selection",
// create a classify task through the quick inputs, label ten examples in the panel (typing into the
// table, picking each label with the mouse from a list that opens inside the panel), Train, see the
// progress and the loss chart come into view and draw points while the status bar counts steps, see
// the before/after table, select new text, pick "Classify with <task>" from the light bulb (Ctrl+.)
// and see the answer at once in a hover at the cursor, inside the window, and then above the selection. Then start training again and
// cancel it (the panel says so and names the adapter kept), take screenshots of the panel in the
// dark, light and high-contrast themes at 300 and 900 px, reload the window and find the examples
// intact, then resume the cancelled run from the keyboard and see it go on from its step.
// Screenshots: artifacts/e2e/flow-*.png.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser } from './lib/browser';
import { endSession, newSession, ROOT, startServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';
import { assertInView, boxInPanel, pickLabel, setPanelWidth, summary, themeShots, trainState } from './lib/panel';
import {
  addUserSettings, examplesOnDisk, readEvents, linkExtension, logPageErrors, newClassifyTask, openCodeActions, palette, panelFrame, pickTheme, screenshotter,
  selectLine as selectLineIn, UI_TIMEOUT, waitFor, waitForEvent,
} from './lib/workbench';

const GROUP = 'flow';
const TASK = 'Bug or feature';
const TASK_DIR = '.gemma/tasks/bug-or-feature';
const LABELS = ['bug', 'feature'];
/** The ten examples: the first comes from the editor selection, the rest are typed in the panel. */
const EXAMPLES: [string, string][] = [
  ['The app crashes when I click Save twice.', 'bug'],
  ['Please add a dark mode.', 'feature'],
  ['Error 500 when uploading a file.', 'bug'],
  ['Export to CSV would be great.', 'feature'],
  ['It freezes when I scroll.', 'bug'],
  ['Add a keyboard shortcut for search.', 'feature'],
  ['Login fails with a blank page.', 'bug'],
  ['Allow renaming projects.', 'feature'],
  ['The counter shows negative numbers.', 'bug'],
  ['Support a French translation.', 'feature'],
];
const NEW_TEXT = 'The window goes blank after an update.';
const FILE = 'issues.txt';
const SAMPLE = `${EXAMPLES[0][0]}\n${NEW_TEXT}\n`;

/** Selects line `line` (1-based) of the editor in the first group. */
async function selectLine(page: Page, line: number, chars: number): Promise<void> {
  await page.keyboard.press('Control+1');
  await selectLineIn(page, line, chars);
}

/** The panel's width for the narrow checks: a panel beside the editor on a laptop screen. */
const NARROW = 300;

/** Runs the flow checks into `report`; returns timings in ms. */
export async function runFlow(report: Report, artifacts: string): Promise<Record<string, number>> {
  const timings: Record<string, number> = {};
  const session = await newSession('flow', { [FILE]: SAMPLE });
  mkdirSync(path.join(session.dir, 'models'));
  const model = path.join(session.dir, 'models', 'tiny-q4.gguf');
  execFileSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'make-model', '--config', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--seed', '1', '--out', model], { stdio: 'pipe' });
  addUserSettings(session, { 'gemmaTune.model.path': model, 'gemmaTune.engine.threads': 1, 'workbench.colorTheme': 'Dark 2026' });
  linkExtension(session);
  const events = session.eventsFile;
  const ws = session.workspace;
  const screenshot = screenshotter(artifacts, 'flow');
  const examples = () => examplesOnDisk(ws, TASK_DIR);

  await startServer(session, { env: { GEMMA_TUNE_EVENTS_FILE: events }, log: path.join(artifacts, 'code-server-flow.log') });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    logPageErrors(page);
    const frame = panelFrame(page);

    await report.check(GROUP, 'select a line of issues.txt', async () => {
      await page.goto(workbenchUrl(session));
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await page.getByRole('treeitem', { name: FILE }).click({ timeout: 60_000 });
      await page.locator('.monaco-editor .view-lines').first().waitFor({ timeout: UI_TIMEOUT });
      // The panel opens beside the editor: hide the side bar (Ctrl+B) so both have room.
      await page.keyboard.press('Control+b');
      await page.locator('.part.sidebar').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
      await selectLine(page, 1, EXAMPLES[0][0].length);
      await screenshot(page, 'selection');
    });

    await report.check(GROUP, '"Gemma: Fine-tune on selection" creates a classify task through the quick inputs', async () => {
      await palette(page, 'Gemma: Fine-tune on selection');
      await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'New task…' }).waitFor({ timeout: 60_000 });
      await page.keyboard.press('Enter');
      await newClassifyTask(page, TASK, LABELS, 'Is this issue a bug report or a feature request?');
      await waitFor('task.json', () => (existsSync(path.join(ws, TASK_DIR, 'task.json')) ? true : undefined));
      const config = JSON.parse(readFileSync(path.join(ws, TASK_DIR, 'task.json'), 'utf8')) as { kind: string; labels: string[]; hyperparameters: { learningRate: number; epochs: number } };
      assert.equal(config.kind, 'classify');
      assert.deepEqual(config.labels, LABELS);
      assert.deepEqual([config.hyperparameters.learningRate, config.hyperparameters.epochs], [2e-4, 3], 'the trainer\'s defaults');
    });

    await report.check(GROUP, 'the panel opens beside the editor with the example, offers training, and the model suggests an answer', async () => {
      await frame.locator('tr[data-id] vscode-textarea[data-col="input"]').first().waitFor({ timeout: 60_000 });
      await frame.locator('#train').waitFor({ timeout: UI_TIMEOUT });
      timings.narrowPanelPx = await setPanelWidth(page, frame, NARROW);
      assert.ok(Math.abs(timings.narrowPanelPx - NARROW) <= 12, `the panel is ${timings.narrowPanelPx} px wide`);
      // The suggestion loads the model in the worker and classifies with the base model.
      const cell = frame.locator('tr[data-id] .suggestion').first();
      await waitFor('a suggestion', async () => (/\b(bug|feature)\b/.test((await cell.textContent({ timeout: 1000 }).catch(() => '')) ?? '') ? true : undefined), 90_000);
      await screenshot(page, 'panel');
    });

    await report.check(GROUP, 'label ten examples in the panel with the mouse, typing nine of them into the table; Train follows the first label', async () => {
      const t0 = performance.now();
      const idAt = async (n: number) => (await frame.locator(`tr[data-id]:nth-child(${n})`).getAttribute('data-id'))!;
      assert.equal((await trainState(frame)).enabled, false, 'nothing labeled yet');
      await pickLabel(frame, await idAt(1), EXAMPLES[0][1], 'mouse');
      assert.match(await summary(frame), /1 example, 1 labeled, 0 held out/);
      assert.deepEqual(await trainState(frame), { enabled: true, hint: '' }, 'Train is enabled by the label, no reload needed');
      for (let i = 1; i < EXAMPLES.length; i++) {
        await frame.locator('#add-example').click();
        await frame.locator(`tr[data-id]:nth-child(${i + 1}) vscode-textarea[data-col="input"]:focus`).waitFor({ timeout: UI_TIMEOUT });
        await page.keyboard.type(EXAMPLES[i][0]);
        // The low rows' lists open above them, inside the panel (pickLabel checks), and a click picks.
        await pickLabel(frame, await idAt(i + 1), EXAMPLES[i][1], 'mouse');
      }
      assert.match(await summary(frame), /10 examples, 10 labeled, 0 held out/);
      const onDisk = await waitFor('ten labeled examples on disk', () => {
        const ex = examples();
        return ex.length === EXAMPLES.length && ex.every((e, i) => e.input === EXAMPLES[i][0] && e.messages[1].content === EXAMPLES[i][1]) ? ex : undefined;
      });
      assert.equal(onDisk.length, 10);
      timings.labelTenMs = performance.now() - t0;
      await screenshot(page, 'labeled');
    });

    await report.check(GROUP, 'Train: the chart draws points as steps arrive, the status bar counts steps, training completes', async () => {
      await frame.locator('#train').click();
      // Watched from the click on: on the tiny model the whole run takes seconds.
      const statusBar = page.locator('.statusbar-item', { hasText: /Gemma: training \d+\/\d+/ }).first().waitFor({ timeout: 120_000 });
      const chart = frame.locator('.loss-chart');
      await waitFor('two plotted points', async () => (Number((await chart.getAttribute('data-points', { timeout: 1000 }).catch(() => '0')) ?? 0) >= 2 ? true : undefined), 120_000);
      assert.equal(await chart.locator('canvas').count(), 1, 'uPlot drew on a canvas');
      // The panel brought the chart into view by itself (nothing here scrolls), at the narrow width.
      const seen = await boxInPanel(frame, '.loss-chart');
      assert.ok(seen.view.width <= NARROW + 12, `the panel is narrow (${seen.view.width} px)`);
      assertInView('the loss chart', seen.box, seen.view);
      await statusBar;
      await screenshot(page, 'training');
      const done = await waitForEvent(events, 'trainingDone', 1, 180_000);
      assert.ok(done.reason === 'completed' || done.reason === 'early-stop', `reason ${String(done.reason)}`);
      assert.equal(done.promoted, true, 'the adapter was saved');
      timings.trainWallMs = (done.wallSeconds as number) * 1000;
      timings.trainStepsMs = (done.trainSeconds as number) * 1000;
      timings.trainSetupMs = (done.setupSeconds as number) * 1000;
      timings.trainPeakRssMB = done.peakRssMB as number;
      await frame.locator('#training-status', { hasText: /Training done/ }).waitFor({ timeout: UI_TIMEOUT });
      const points = Number(await chart.getAttribute('data-points'));
      assert.ok(points >= (done.step as number), `${points} points plotted for ${String(done.step)} steps`);
      // The kept checkpoint is named in words and marked on the chart.
      await frame.locator('#kept-checkpoint', { hasText: `Kept: the adapter from step ${String(done.savedStep)} of ${String(done.step)}` }).waitFor({ timeout: UI_TIMEOUT });
      assert.equal(await chart.getAttribute('data-best-step'), String(done.savedStep));
      assert.match((await chart.getAttribute('aria-label')) ?? '', new RegExp(`kept checkpoint is step ${String(done.savedStep)}`));
      await frame.locator('#kept-checkpoint').scrollIntoViewIfNeeded();
      await screenshot(page, 'kept-checkpoint');
      // At the narrow width the chart fits: no sideways scrolling, the canvas inside the page.
      const fit = await frame.locator('body').evaluate(() => {
        const canvas = document.querySelector('.loss-chart canvas') as HTMLCanvasElement | null;
        return { width: window.innerWidth, right: canvas?.getBoundingClientRect().right ?? Infinity, scroll: document.documentElement.scrollWidth };
      });
      assert.ok(fit.right <= fit.width && fit.scroll <= fit.width + 1, `the chart fits the ${fit.width} px panel (right ${fit.right}, scroll width ${fit.scroll})`);
      // 10 examples, 20% held out: 2 rows in the before/after table.
      await frame.locator('#comparison tbody tr').nth(1).waitFor({ timeout: UI_TIMEOUT }).catch(async (e: Error) => {
        // Say what the panel says instead (a failed comparison names its error there).
        const said = await frame.locator('#training-message').textContent({ timeout: 1000 }).catch(() => null);
        throw new Error(`${e.message.split('\n')[0]}; the panel says: ${said ?? '(nothing)'}`, { cause: e });
      });
      assert.equal(await frame.locator('#comparison tbody tr').count(), 2);
      assert.ok(existsSync(path.join(ws, TASK_DIR, 'adapter/adapter_model.safetensors')));
      assert.ok(!existsSync(path.join(ws, TASK_DIR, 'adapter/trainer_state.safetensors')), 'the run state stays out of the task folder');
      const metrics = readFileSync(path.join(ws, TASK_DIR, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; comparison?: unknown[] });
      assert.ok(metrics.filter((m) => m.type === 'step').length >= 2);
      assert.equal(metrics.at(-1)?.type, 'done');
      assert.equal(metrics.at(-1)?.comparison?.length, 2);
      await frame.locator('#comparison').scrollIntoViewIfNeeded();
      await screenshot(page, 'trained');
    });

    await report.check(GROUP, 'new text in the narrow editor: "Classify with Bug or feature" from the light bulb shows the answer at the cursor, in view, and keeps it above the selection', async () => {
      await selectLine(page, 2, NEW_TEXT.length);
      await openCodeActions(page, `Classify with ${TASK}`);
      await screenshot(page, 'code-action');
      await page.locator('.action-widget .monaco-list-row', { hasText: `Classify with ${TASK}` }).first().click();
      const result = await waitForEvent(events, 'classifyResult');
      assert.ok(LABELS.includes(result.label as string));
      timings.classifyMs = result.ms as number;
      const expected = `Gemma · ${TASK}: ${String(result.label)} (`;
      // At once, a hover at the cursor: in view whatever the editor's width and horizontal scroll.
      const hover = page.locator('.monaco-hover', { hasText: 'probability' }).first();
      await hover.waitFor({ timeout: UI_TIMEOUT });
      assert.match(await hover.innerText(), new RegExp(`\\b${String(result.label)}\\b`));
      const box = (await hover.boundingBox())!;
      const vp = page.viewportSize()!;
      const editorWidth = await page.locator('.monaco-editor').first().evaluate((el) => el.getBoundingClientRect().width);
      assert.ok(editorWidth <= 480, `the editor is narrow (${Math.round(editorWidth)} px)`);
      assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= vp.width && box.y + box.height <= vp.height, `the answer's hover lies inside the ${vp.width}×${vp.height} window (${JSON.stringify(box)})`);
      await screenshot(page, 'classified-hover');
      // And it stays above the selection (a CodeLens), with "Insert as comment".
      await page.keyboard.press('Escape');
      await page.locator('.monaco-editor .codelens-decoration', { hasText: expected }).first().waitFor({ timeout: UI_TIMEOUT });
      await screenshot(page, 'classified');
    });

    await report.check(GROUP, 'a second run cancelled from the panel says so and names the adapter it kept', async () => {
      const epochs = frame.locator('#hp-epochs input');
      const saved = () => (JSON.parse(readFileSync(path.join(ws, TASK_DIR, 'task.json'), 'utf8')) as { hyperparameters: { epochs: number } }).hyperparameters.epochs === 50;
      for (let attempt = 0; attempt < 3 && !saved(); attempt++) {
        await epochs.fill('50');
        await epochs.press('Enter');
        await epochs.press('Tab');
        await waitFor('epochs saved', () => (saved() ? true : undefined), 5000).catch(() => undefined);
      }
      assert.ok(saved(), 'epochs = 50 saved to task.json');
      await frame.locator('#train').click();
      await frame.locator('#training-status', { hasText: /Step [1-9]/ }).waitFor({ timeout: 120_000 });
      // Cancel at once: a few steps later early stopping (patience 2) may end the run by itself.
      await frame.locator('#cancel-training').click();
      await screenshot(page, 'second-run');
      const done = await waitForEvent(events, 'trainingDone', 2, 60_000);
      assert.equal(done.reason, 'cancelled');
      assert.ok((done.step as number) < 100, `stopped at step ${String(done.step)} of 100`);
      await frame.locator('#training-status', { hasText: /Training cancelled/ }).waitFor({ timeout: UI_TIMEOUT });
      await frame.locator('.training-section', { hasText: /Cancelled at step \d+; (the best adapter so far, from step \d+|no adapter from this run)/ }).waitFor({ timeout: UI_TIMEOUT });
      assert.ok(existsSync(path.join(ws, TASK_DIR, 'adapter/adapter_model.safetensors')), 'an adapter is still there');
      await screenshot(page, 'cancelled');
    });

    await report.check(GROUP, 'screenshots of the panel in the dark, light and high-contrast themes at 300 and 900 px', async () => {
      await pickTheme(page, 'Light 2026');
      await page.locator('.monaco-workbench.vs').waitFor({ timeout: UI_TIMEOUT });
      await frame.locator('.loss-chart').scrollIntoViewIfNeeded();
      await screenshot(page, 'cancelled-light');
      const shots = await themeShots(page, artifacts, 'flow', [NARROW, 900]);
      assert.equal(shots.length, 12);
      console.log(`      ${shots.join(', ')}`);
      await page.locator('.monaco-workbench.vs-dark').waitFor({ timeout: UI_TIMEOUT });
      await setPanelWidth(page, frame, NARROW);
    });

    await report.check(GROUP, 'after "Developer: Reload Window" the panel comes back with all ten examples', async () => {
      const before = readFileSync(path.join(ws, TASK_DIR, 'examples.jsonl'), 'utf8');
      await palette(page, 'Developer: Reload Window');
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await waitForEvent(events, 'panelRestored', 1, 60_000);
      await panelFrame(page).locator('tr[data-id]').nth(9).waitFor({ timeout: 60_000 });
      assert.equal(await panelFrame(page).locator('tr[data-id]').count(), 10);
      const values = await panelFrame(page).locator('tr[data-id] vscode-single-select[data-col="output"]').evaluateAll((els) => els.map((el) => (el as HTMLElement & { value: string }).value));
      assert.deepEqual(values, EXAMPLES.map((e) => e[1]));
      assert.equal(readFileSync(path.join(ws, TASK_DIR, 'examples.jsonl'), 'utf8'), before, 'examples.jsonl unchanged by the reload');
      // The last run comes back from metrics.jsonl: its status and its chart.
      await panelFrame(page).locator('#training-status', { hasText: /Training cancelled/ }).waitFor({ timeout: UI_TIMEOUT });
      assert.ok(Number(await panelFrame(page).locator('.loss-chart').getAttribute('data-points')) > 0);
      await screenshot(page, 'reloaded');
    });

    await report.check(GROUP, 'the cancelled run is offered as "Resume training (step N of M)" and, from the keyboard, goes on from step N', async () => {
      const f = panelFrame(page);
      const cancelledAt = readEvents(events).filter((e) => e.event === 'trainingDone')[1].step as number;
      const resume = f.locator('#resume-training');
      await resume.waitFor({ timeout: UI_TIMEOUT });
      const offered = /Resume training \(step (\d+) of (\d+)\)/.exec((await resume.textContent()) ?? '');
      assert.ok(offered, 'the button names the step and the total');
      assert.equal(Number(offered[1]), cancelledAt);
      assert.match((await f.locator('#train').getAttribute('title')) ?? '', /interrupted run \(step \d+ of \d+\) is discarded/);
      await resume.scrollIntoViewIfNeeded();
      await screenshot(page, 'resume-offered');
      await resume.focus();
      await page.keyboard.press('Enter');
      const started = await waitForEvent(events, 'trainingStarted', 3, 60_000);
      assert.equal(started.resumeFromStep, cancelledAt);
      const done = await waitForEvent(events, 'trainingDone', 3, 300_000);
      assert.ok(['completed', 'early-stop'].includes(done.reason as string), `reason ${String(done.reason)}`);
      assert.ok((done.step as number) > cancelledAt, `went on past step ${cancelledAt} to ${String(done.step)}`);
      await f.locator('#training-status', { hasText: /Training done/ }).waitFor({ timeout: UI_TIMEOUT });
      assert.equal(await f.locator('#resume-training').count(), 0, 'nothing left to resume');
      assert.ok(!existsSync(path.join(ws, TASK_DIR, 'adapter.training')), 'the finished run\'s staging folder is gone');
      assert.ok(!existsSync(path.join(ws, TASK_DIR, 'adapter/trainer_state.safetensors')));
      await screenshot(page, 'resumed');
    });

  } finally {
    await browser.close();
    await endSession(session);
  }
  return timings;
}
