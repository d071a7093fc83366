// Debian's chromium driven by playwright-core (no browser download).

import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.GEMMA_TUNE_CHROMIUM ?? '/usr/bin/chromium';

/** A headless chromium with a fresh profile. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}
