/**
 * Headless Chromium for the console's browser tests: the distribution's package (/usr/bin/chromium, or
 * CHROMIUM_PATH) driven by playwright-core, each launch with a fresh profile. Without Chromium the
 * tests skip by the suites' one rule (`skipWithout('chromium')`): a line saying what to install, and a
 * failure under CI=true.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { chromiumPath } from './requirements.js';

/** Found as the suites' requirements find it (CHROMIUM_PATH, or chromium on PATH). */
export const CHROMIUM = chromiumPath() ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launch(viewport = { width: 1280, height: 900 }): Promise<Browser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'lfb-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
