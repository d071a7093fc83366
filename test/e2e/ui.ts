// The user's path through a real VS Code (code-server in headless chromium): open a workspace,
// select text in the editor, run "Gemma: Show Engine Status" from the command palette, read the
// notification, open the log from its button. Each step leaves a screenshot in artifacts/e2e/.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './lib/browser';
import { endSession, installVsix, newSession, ROOT, startServer, workbenchUrl } from './lib/codeServer';
import type { Report } from './lib/report';
import { linkExtension, readEvents, screenshotter, waitForEvent } from './lib/workbench';

const GROUP = 'ui';
const SAMPLE = 'Invoice 4471: 3 licenses, due 2026-12-01. Contact: ana@example.com\nSecond line of the sample.\n';

/** The onnxruntime-node version the status notification must name. */
function ortVersion(): string {
  return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
}

/** Runs the UI checks into `report`; `vsix` installs a packaged extension instead of linking the tree. */
export async function runUi(report: Report, artifacts: string, vsix?: string): Promise<Record<string, number>> {
  const m = { ortVersion: ortVersion() };
  const timings: Record<string, number> = {};
  const session = await newSession('ui', { 'sample.txt': SAMPLE });
  const screenshot = screenshotter(artifacts, 'ui');

  if (vsix) installVsix(session, vsix);
  else linkExtension(session);

  const t0 = performance.now();
  await startServer(session, { env: { GEMMA_TUNE_EVENTS_FILE: session.eventsFile }, log: path.join(artifacts, 'code-server-ui.log') });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    let notificationMs = 0;
    let enterEpoch = 0;

    await report.check(GROUP, 'workbench opens the workspace with sample.txt', async () => {
      await page.goto(workbenchUrl(session));
      await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
      await page.getByRole('treeitem', { name: 'sample.txt' }).waitFor({ timeout: 60_000 });
      timings.workbenchMs = performance.now() - t0;
      await screenshot(page, 'workbench');
    });

    await report.check(GROUP, 'open sample.txt and select its first line', async () => {
      await page.getByRole('treeitem', { name: 'sample.txt' }).click();
      const lines = page.locator('.monaco-editor .view-lines').first();
      await lines.waitFor({ timeout: 30_000 });
      await lines.click();
      await page.keyboard.press('Control+Home');
      await page.keyboard.press('Shift+End');
      const firstLine = SAMPLE.split('\n')[0];
      // The status bar confirms the selection the user sees: "Ln 1, Col 67 (66 selected)".
      await page.locator('.statusbar', { hasText: `(${firstLine.length} selected)` }).waitFor({ timeout: 10_000 });
      await screenshot(page, 'selection');
    });

    await report.check(GROUP, 'the command palette lists "Gemma: Show Engine Status"', async () => {
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ timeout: 10_000 });
      await input.fill('>Gemma: Show Engine Status');
      await page.locator('.quick-input-widget .monaco-list-row', { hasText: 'Gemma: Show Engine Status' }).first().waitFor({ timeout: 10_000 });
      await screenshot(page, 'palette');
    });

    // Seconds after startup, so an eager activation ("*", onStartupFinished) would have shown by now.
    await report.check(GROUP, 'the extension is not active before a Gemma command (lazy activation)', async () => {
      assert.deepEqual(readEvents(session.eventsFile), [], 'the extension activated before any Gemma command');
    });

    await report.check(GROUP, 'running it shows a notification with the onnxruntime-node version', async () => {
      const c0 = performance.now();
      enterEpoch = Date.now();
      await page.keyboard.press('Enter');
      const toast = page.locator('.notifications-toasts .notification-toast', { hasText: `onnxruntime-node ${m.ortVersion}` });
      try {
        await toast.waitFor({ timeout: 60_000 });
      } catch (e) {
        // Say what the user saw instead (an activation error, an engine error...).
        const seen = await page.locator('.notifications-toasts .notification-toast').allInnerTexts();
        throw new Error(`${(e as Error).message.split('\n')[0]}; notifications shown: ${JSON.stringify(seen)}`, { cause: e });
      }
      notificationMs = performance.now() - c0;
      timings.commandToNotificationMs = notificationMs;
      const text = (await toast.innerText()).replace(/\u00a0/g, ' ');
      assert.match(text, /Gemma engine: onnxruntime-node [\d.]+, device chosen at the first model load, \d+ threads, no model loaded/);
      await screenshot(page, 'notification');
    });

    await report.check(GROUP, 'the extension logged its activation and the same status', async () => {
      const activated = await waitForEvent(session.eventsFile, 'activated', 1, 5000);
      const status = await waitForEvent(session.eventsFile, 'engineStatus', 1, 5000);
      assert.equal((status.runtime as { version: string }).version, m.ortVersion);
      assert.equal(status.model, null);
      assert.equal(typeof activated.activationMs, 'number');
      timings.activationMs = activated.activationMs as number;
      // Same machine, same clock: how long VS Code took to load and activate the extension.
      timings.commandToActivatedMs = (activated.t as number) - enterEpoch;
      timings.statusRequestMs = status.ms as number;
      assert.ok(timings.activationMs < 1000, `activate() took ${timings.activationMs} ms`);
    });

    await report.check(GROUP, '"Show Log" opens the Gemma Tune output with the engine log', async () => {
      await page.locator('.notifications-toasts .notification-toast').getByRole('button', { name: 'Show Log' }).click();
      const output = page.locator('.part.panel .monaco-editor .view-lines');
      await output.filter({ hasText: 'engine: engine started' }).waitFor({ timeout: 10_000 });
      // Monaco renders spaces as no-break spaces.
      const text = (await output.first().innerText()).replace(/\u00a0/g, ' ');
      assert.match(text, /activated in [\d.]+ ms/);
      assert.match(text, new RegExp(`onnxruntime-node ${m.ortVersion.replace(/\./g, '\\.')}`));
      await screenshot(page, 'output');
    });
  } finally {
    await browser.close();
    await endSession(session);
  }
  return timings;
}
