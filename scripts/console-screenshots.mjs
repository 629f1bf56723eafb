// Screenshots of the console for the README: runs `npm run demo`'s bridge (after `npm run build` and
// `npm run build:demo`), waits for some deliveries and dead letters, and saves PNGs under docs/ with headless Chromium
// (/usr/bin/chromium or CHROMIUM_PATH). Also prints the overview's weight: bytes transferred to load it.
//
//   node scripts/console-screenshots.mjs [seconds of demo traffic, default 40]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOCS = path.join(ROOT, 'docs');
const seconds = Number(process.argv[2] ?? 40);

const demo = spawn(process.execPath, [path.join(ROOT, 'dist-demo', 'main.js')], {
  env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', BRIDGE_HTTP_PORT: '0' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
const url = await new Promise((resolve, reject) => {
  demo.stdout.on('data', (d) => {
    out += d;
    const m = /console: (http:\/\/[^/\s]+)\//.exec(out);
    if (m) resolve(m[1]);
  });
  demo.on('exit', (code) => reject(new Error(`the demo exited (${code}) before serving the console`)));
});
demo.stdout.resume();
console.log(`demo console at ${url}; letting traffic flow for ${seconds} s`);
await new Promise((r) => setTimeout(r, seconds * 1000));

const profile = mkdtempSync(path.join(os.tmpdir(), 'lfb-shots-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
});
try {
  mkdirSync(DOCS, { recursive: true });
  const page = await context.newPage();
  // Weight: every byte received for the overview (document, stylesheet, script), headers included.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let bytes = 0;
  let requests = 0;
  cdp.on('Network.loadingFinished', (e) => {
    bytes += e.encodedDataLength;
    requests++;
  });
  await page.goto(`${url}/`, { waitUntil: 'load' });
  await page.waitForTimeout(500);
  console.log(`overview: ${requests} requests, ${bytes} bytes transferred`);
  await page.screenshot({ path: path.join(DOCS, 'console-overview.png'), fullPage: true });

  const dead = await (await fetch(`${url}/api/v1/deliveries?status=dead&limit=1`)).json();
  if (dead.items.length) {
    await page.goto(`${url}/events/${dead.items[0].eventId}`);
    await page.screenshot({ path: path.join(DOCS, 'console-dead-letter.png'), fullPage: true });
  } else console.log('no dead letter yet: run longer for the dead letter screenshot');

  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${url}/`);
  await page.screenshot({ path: path.join(DOCS, 'console-phone.png'), fullPage: false });
  console.log(`saved under ${DOCS}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  demo.kill('SIGTERM');
}
