// What the e2e parts read from and do in the training panel, written once: the header's counts and
// Train's state, rows marked to prove an edit did not redraw the table, a label picked from a row's
// dropdown with the mouse or the keyboard (its open list checked against the viewport), whether an
// element lies inside the visible part of the page, the panel's width, and screenshots of the panel
// in each theme at each width.

import assert from 'node:assert/strict';
import path from 'node:path';
import type { FrameLocator, Locator, Page } from 'playwright-core';
import { panelFrame, pickTheme, UI_TIMEOUT, waitFor } from './workbench';

/** The header's summary line ("Kind · labels: … · 2 examples, 1 labeled, 0 held out"). */
export function summary(frame: FrameLocator): Promise<string> {
  return frame.locator('#task-summary').innerText();
}

/** Train's state: whether it can be pressed, and the reason shown beside it. */
export async function trainState(frame: FrameLocator): Promise<{ enabled: boolean; hint: string }> {
  return frame.locator('body').evaluate(() => {
    const train = document.getElementById('train') as (HTMLElement & { disabled?: boolean }) | null;
    return { enabled: !!train && !train.disabled, hint: document.getElementById('train-hint')?.textContent ?? '' };
  });
}

/**
 * Marks every drawn row (a property on the element), so that `rowsKept` can tell that what came
 * after was drawn in place: a full redraw of the table (as a new host state causes) drops the marks.
 */
export async function markRows(frame: FrameLocator): Promise<void> {
  await frame.locator('body').evaluate(() => {
    for (const row of Array.from(document.querySelectorAll('tr[data-id]'))) (row as HTMLElement & { gemmaMark?: boolean }).gemmaMark = true;
  });
}

/** Whether every row marked by `markRows` is still the same element. */
export function rowsKept(frame: FrameLocator): Promise<boolean> {
  return frame.locator('body').evaluate(() => Array.from(document.querySelectorAll('tr[data-id]')).every((row) => (row as HTMLElement & { gemmaMark?: boolean }).gemmaMark === true));
}

/** An element's box and the page's visible area, in the panel's own coordinates. */
export interface Fit {
  top: number;
  bottom: number;
  left: number;
  right: number;
  width: number;
  height: number;
}

/** Asserts that `box` lies inside the visible part of a page `view` px wide and high. */
export function assertInView(what: string, box: Fit, view: { width: number; height: number }): void {
  const ok = box.top >= -1 && box.left >= -1 && box.bottom <= view.height + 1 && box.right <= view.width + 1 && box.height > 0;
  assert.ok(ok, `${what} is inside the visible ${view.width}×${view.height} px (its box: top ${Math.round(box.top)}, bottom ${Math.round(box.bottom)}, left ${Math.round(box.left)}, right ${Math.round(box.right)})`);
}

/** The box of the first element matching `selector` in the panel, and the panel's visible size. */
export async function boxInPanel(frame: FrameLocator, selector: string): Promise<{ box: Fit; view: { width: number; height: number } }> {
  return frame.locator(selector).first().evaluate((el) => {
    const r = el.getBoundingClientRect();
    return { box: { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height }, view: { width: document.documentElement.clientWidth, height: document.documentElement.clientHeight } };
  });
}

/** The open list of a <vscode-single-select> (in its shadow root), or null when closed. */
function openList(select: Locator): Promise<{ box: Fit; view: { width: number; height: number } } | null> {
  return select.evaluate((el) => {
    const list = el.shadowRoot?.querySelector('.dropdown.open') as HTMLElement | null;
    if (!list) return null;
    const r = list.getBoundingClientRect();
    return { box: { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height }, view: { width: document.documentElement.clientWidth, height: document.documentElement.clientHeight } };
  });
}

/**
 * Picks `label` in the expected-output dropdown of the example `id` as a user does: with the mouse
 * (click the field, click the option) or the keyboard (focus, Space opens, arrows, Enter). The open
 * list must lie inside the visible part of the panel.
 */
export async function pickLabel(frame: FrameLocator, id: string, label: string, by: 'mouse' | 'keyboard'): Promise<void> {
  const select = frame.locator(`tr[data-id="${id}"] vscode-single-select[data-col="output"]`);
  // At the bottom edge, where a list that opens downwards would be cut off.
  await select.evaluate((el) => el.scrollIntoView({ block: 'end' }));
  const option = select.locator('vscode-option', { hasText: label === '' ? '— choose a label —' : label }).first();
  if (by === 'mouse') await select.click();
  else {
    await select.focus();
    await select.press('Space');
  }
  const list = await waitFor('the open list', () => openList(select).then((l) => l ?? undefined), 5000);
  assertInView(`the open list of example ${id}'s labels`, list.box, list.view);
  if (by === 'mouse') {
    await select.getByRole('option', { name: label === '' ? '— choose a label —' : label, exact: true }).click();
  } else {
    const index = await option.evaluate((o) => Array.from(o.parentElement!.querySelectorAll('vscode-option')).indexOf(o as Element));
    const current = await select.evaluate((el) => (el as HTMLElement & { selectedIndex: number }).selectedIndex);
    const key = index > current ? 'ArrowDown' : 'ArrowUp';
    for (let i = 0; i < Math.abs(index - current); i++) await select.press(key);
    await select.press('Enter');
  }
  await waitFor(`"${label}" chosen`, async () => ((await select.evaluate((el) => (el as HTMLElement & { value: string }).value)) === label ? true : undefined), 5000);
}

/** The panel's width in CSS px. */
export function panelWidth(frame: FrameLocator): Promise<number> {
  return frame.locator('body').evaluate(() => document.documentElement.clientWidth);
}

/**
 * Resizes the browser until the panel (one of two editor columns, the side bar hidden) is about
 * `target` px wide; returns the width reached.
 */
export async function setPanelWidth(page: Page, frame: FrameLocator, target: number): Promise<number> {
  let width = await panelWidth(frame);
  for (let i = 0; i < 6 && Math.abs(width - target) > 12; i++) {
    const vp = page.viewportSize() ?? { width: 1280, height: 760 };
    // The two columns share what the window gains or loses.
    await page.setViewportSize({ width: Math.max(400, Math.round(vp.width + 2 * (target - width))), height: vp.height });
    width = await waitFor('the panel to settle', async () => {
      const a = await panelWidth(frame);
      await page.waitForTimeout(250);
      const b = await panelWidth(frame);
      return a === b ? b : undefined;
    }, 10_000);
  }
  return width;
}

const THEMES: [string, string][] = [['dark', 'Dark 2026'], ['light', 'Light 2026'], ['high-contrast', 'Dark High Contrast']];

/**
 * Screenshots of the panel alone (its frame) in the dark, light and high-contrast themes at each of
 * `widths`, scrolled to the top and to the training section: `<prefix>-panel-<theme>-<width>px-<top|training>.png`.
 * Leaves the dark theme on.
 */
export async function themeShots(page: Page, artifacts: string, prefix: string, widths: number[]): Promise<string[]> {
  const files: string[] = [];
  const frame = panelFrame(page);
  for (const [name, label] of THEMES) {
    await pickTheme(page, label);
    await page.waitForTimeout(600);
    for (const w of widths) {
      const got = await setPanelWidth(page, frame, w);
      for (const [part, selector] of [['top', 'body'], ['training', '.training-section']] as const) {
        await frame.locator(selector).evaluate((el, top) => (top ? window.scrollTo(0, 0) : el.scrollIntoView({ block: 'start' })), part === 'top');
        await page.waitForTimeout(300);
        const file = path.join(artifacts, `${prefix}-panel-${name}-${w}px-${part}.png`);
        await page.locator('iframe.webview.ready >> visible=true').screenshot({ path: file, timeout: UI_TIMEOUT });
        files.push(`${path.basename(file)} (${got} px)`);
      }
    }
  }
  await pickTheme(page, 'Dark 2026');
  return files;
}
