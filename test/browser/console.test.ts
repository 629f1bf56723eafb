/**
 * The console in a real browser (headless Chromium) against the built CLI with a real database, a
 * simulated Langfuse and a real receiver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, killLiveChildren } from '../helpers/cli.js';
import { launch, type Browser } from '../helpers/browser.js';
import { skipWithout } from '../helpers/requirements.js';
import { REFUSAL, TRACE_MONITORS, startConsoleWorld, type ConsoleWorld } from '../helpers/console.js';
import { harness, type Harness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

const HOSTILE = '<img src=x onerror=alert(1)>';


interface Item {
  eventId: string;
  status: string;
  traceId: string | null;
}

describe.skipIf(skipWithout('chromium'))('console in a browser', () => {
  let h: Harness;
  let w: ConsoleWorld;
  let browser: Browser;
  const items = async (q = ''): Promise<Item[]> => ((await (await fetch(`${w.url}/api/v1/deliveries${q}`)).json()) as { items: Item[] }).items;
  const offBridge: string[] = [];
  const dialogs: string[] = [];

  beforeAll(async () => {
    assertBuilt();
    h = await harness();
    w = await startConsoleWorld(h, { good: 3, bad: 2, hostileName: HOSTILE });
    await waitFor(async () => {
      const all = await items();
      return all.length === 5 && all.filter((d) => d.status === 'dead').length === 2 && all.filter((d) => d.status === 'delivered').length === 3;
    }, 30_000, 'three delivered and two dead');
    browser = await launch();
    browser.context.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(`${w.url}/`) && !u.startsWith('data:') && u !== 'about:blank') offBridge.push(u);
    });
    browser.context.on('page', (p) => p.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    }));
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await killLiveChildren();
  });

  it('the overview shows each sink\'s counts, the charts and the dead letters', async () => {
    const page = await browser.context.newPage();
    const res = await page.goto(`${w.url}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
    const row = page.locator('table.sinks tbody tr', { hasText: 'webhook' });
    await expect.poll(async () => (await row.locator('td').allTextContents()).map((t) => t.trim()).slice(2)).toEqual(['0', '0', '0', '2', '3', 'Replay all 2']);
    const [name, state] = (await row.locator('td').allTextContents()).map((t) => t.trim());
    expect(name).toMatch(/^webhook\s*last success \d+ s ago · last error \d+ s ago: HTTP 500 from /);
    expect(state).toMatch(/^(ok|failing|open)$/);
    expect(await page.locator('section', { hasText: 'Daemon' }).first().textContent()).toMatch(/Daemon\s*running pid \d+/);
    expect(await page.locator('figure.chart svg').count()).toBe(3);
    // In the last hour: 5 events written, 3 attempts delivered, 4 failed (two dead letters, two attempts each).
    const captions = await page.locator('figure.chart figcaption').allTextContents();
    expect(captions.join(' | ')).toMatch(/Events per minute\s*5 in the hour/);
    expect(captions.join(' | ')).toMatch(/Deliveries per minute\s*3 in the hour/);
    expect(captions.join(' | ')).toMatch(/Failures per minute\s*4 in the hour/);
    expect(await page.locator('table.deliveries tbody tr[data-status="dead"]').count()).toBe(2);
    await page.close();
  });

  it("a dead letter's page shows the receiver's status and answer; Replay delivers it and the page shows it without a reload", async () => {
    const dead = (await items('?status=dead'))[0]!;
    const page = await browser.context.newPage();
    await page.goto(`${w.url}/`);
    await page.locator(`a[href="/events/${dead.eventId}"]`).first().click();
    await page.waitForURL(`${w.url}/events/${dead.eventId}`);
    const sink = page.locator('section.sink[data-sink="webhook"]');
    await expect.poll(() => sink.locator('h2 .badge').textContent()).toBe('dead');
    const attempts = sink.locator('table.attempts tbody tr');
    expect(await attempts.count()).toBe(2);
    for (const row of await attempts.all()) {
      expect(await row.textContent()).toContain('HTTP 500');
      expect(await row.locator('pre.answer').textContent()).toBe(REFUSAL);
    }

    h.rx.setResponder(null); // the receiver is fixed
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
    await sink.getByRole('button', { name: 'Replay' }).click();
    await expect.poll(() => page.locator('#flash').textContent(), { timeout: 10_000 }).toContain('Replayed: 1 delivery');
    await expect.poll(() => page.locator('section.sink[data-sink="webhook"] h2 .badge').textContent(), { timeout: 20_000 }).toBe('delivered');
    expect(await page.locator('section.sink[data-sink="webhook"] table.attempts tbody tr').count()).toBe(3);
    // Same document all along: no reload happened.
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
    expect(h.rx.requests.filter((r) => r.body.includes(dead.eventId) && r.status === 200)).toHaveLength(1);
    await page.close();
  });

  it('Replay selected on the dead letters page', async () => {
    // One dead letter is left from the test before.
    const page = await browser.context.newPage();
    await page.goto(`${w.url}/deliveries?status=dead`);
    expect(await page.locator('table.deliveries tbody tr[data-status="dead"]').count()).toBe(1);
    await page.locator('input.sel').first().check();
    await page.getByRole('button', { name: 'Replay selected' }).click();
    await expect.poll(() => page.locator('#flash').textContent(), { timeout: 10_000 }).toContain('Replayed: 1 delivery');
    await waitFor(async () => (await items('?status=delivered')).length === 5, 20_000, 'all five delivered');
    await expect.poll(() => page.locator('table.deliveries tbody tr[data-status="dead"]').count(), { timeout: 20_000 }).toBe(0);
    await page.close();
  });

  it("Replay all of a sink's dead letters on the overview", async () => {
    // Two delivered events sent again to a receiver that now refuses them: two new dead letters.
    h.rx.setResponder(() => ({ status: 500, body: REFUSAL }));
    const two = (await items('?status=delivered')).slice(0, 2).map((d) => ({ eventId: d.eventId, sink: 'webhook' }));
    await fetch(`${w.url}/api/v1/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resend: true, deliveries: two }) });
    await waitFor(async () => (await items('?status=dead')).length === 2, 20_000, 'two dead letters');
    h.rx.setResponder(null);
    const page = await browser.context.newPage();
    await page.goto(`${w.url}/`);
    await page.getByRole('button', { name: 'Replay all 2' }).click(); // confirm() is accepted
    await expect.poll(() => page.locator('#flash').textContent(), { timeout: 10_000 }).toContain('Replayed: 2 deliveries');
    await waitFor(async () => (await items('?status=delivered')).length === 5, 20_000, 'all five delivered');
    await expect.poll(() => page.locator('table.sinks tbody tr', { hasText: 'webhook' }).locator('td').nth(5).textContent(), { timeout: 20_000 }).toBe('0');
    expect(dialogs.splice(0)).toEqual(['Replay all 2 dead letters of webhook?']);
    await page.close();
  });

  it('a trace named like markup shows as text and runs nothing', async () => {
    const traceId = w.delivered[0]!;
    const ev = (await items(`?traceId=${traceId}`))[0]!;
    const page = await browser.context.newPage();
    await page.goto(`${w.url}/events/${ev.eventId}`);
    const facts = await page.locator('dl.facts').textContent();
    expect(facts).toContain(HOSTILE);
    expect(await page.locator('pre.body').textContent()).toContain(HOSTILE);
    expect(await page.locator('main img').count()).toBe(0);
    await page.goto(`${w.url}/deliveries?traceId=${encodeURIComponent(traceId)}`);
    await page.waitForTimeout(300);
    expect(dialogs).toEqual([]);
    await page.close();
  });

  it('no page requests anything but the bridge', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${w.url}/`);
    await page.goto(`${w.url}/deliveries`);
    await page.waitForTimeout(5_500); // one automatic refresh
    await page.close();
    expect(offBridge).toEqual([]);
  });
});

describe.skipIf(skipWithout('chromium'))('monitors on the console overview', () => {
  let h: Harness;
  let w: ConsoleWorld;
  let browser: Browser;

  beforeAll(async () => {
    assertBuilt();
    h = await harness();
    w = await startConsoleWorld(h, { good: 2, bad: 0, monitors: TRACE_MONITORS });
    browser = await launch();
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await killLiveChildren();
  });

  it('the Monitors section has a row per monitor with its severity badge, value, threshold, window and last evaluation', async () => {
    const page = await browser.context.newPage();
    expect((await page.goto(`${w.url}/`))?.status()).toBe(200);
    const section = page.locator('section', { has: page.locator('h2', { hasText: /^Monitors$/ }) });
    await expect.poll(() => section.locator('tr[data-monitor]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-monitor')))).toEqual(['traces-arrive', 'trace-flood']);
    // Until both are evaluated the rows show no value; the page refreshes itself every 5 s.
    await expect.poll(() => section.locator('tr[data-monitor] td:nth-child(3)').allInnerTexts(), { timeout: 30_000 }).toEqual(['2', '2']);
    const cells = async (name: string): Promise<string[]> => (await section.locator(`tr[data-monitor="${name}"] td`).allInnerTexts()).map((t) => t.trim().replace(/\s+/g, ' '));
    const healthy = await cells('traces-arrive');
    expect(healthy.slice(0, 5)).toEqual(['traces-arrive demo-project', 'ok', '2', '< 1', '1h']);
    const evaluated = await section.locator('tr[data-monitor="traces-arrive"] td').nth(5).locator('time').evaluateAll((els) => els.map((e) => Date.parse(e.getAttribute('datetime') ?? '')));
    expect(evaluated).toHaveLength(1);
    expect(Date.now() - evaluated[0]!).toBeLessThan(60_000);
    expect(await section.locator('tr[data-monitor="traces-arrive"] .badge').allTextContents()).toEqual(['ok']);
    await page.close();
  });

  it('a firing monitor shows its alert severity, set apart from a healthy one', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${w.url}/`);
    const section = page.locator('section', { has: page.locator('h2', { hasText: /^Monitors$/ }) });
    const firing = section.locator('tr[data-monitor="trace-flood"]');
    await expect.poll(() => firing.locator('.badge').allTextContents(), { timeout: 30_000 }).toEqual(['alert']);
    expect((await firing.locator('td').allTextContents()).map((t) => t.trim()).slice(2, 5)).toEqual(['2', '> 1 (warning 0)', '1h']);
    const colour = (row: string): Promise<string> => section.locator(`tr[data-monitor="${row}"] .badge`).evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(el).color);
    expect(await colour('trace-flood')).not.toBe(await colour('traces-arrive'));
    await page.close();
  });
});

describe.skipIf(skipWithout('chromium'))('console sign-in in a browser', () => {
  it('with BRIDGE_HTTP_TOKEN: the login form sets an HttpOnly SameSite=Strict cookie; a wrong token is refused', async () => {
    assertBuilt();
    const h = await harness();
    const browser = await launch();
    try {
      const token = 'browser-token-0123456789abcdef';
      const w = await startConsoleWorld(h, { good: 1, bad: 0, extra: { BRIDGE_HTTP_TOKEN: token } });
      const page = await browser.context.newPage();
      const first = await page.goto(`${w.url}/`);
      expect(first?.status()).toBe(401);
      await page.fill('input[name="token"]', 'not-the-token-at-all');
      await page.click('button:has-text("Sign in")');
      await expect.poll(() => page.locator('p.err').textContent()).toContain('not the token');
      await page.fill('input[name="token"]', token);
      await page.click('button:has-text("Sign in")');
      await page.waitForURL(`${w.url}/`);
      await expect.poll(() => page.locator('h1').textContent()).toBe('Overview');
      const cookies = await browser.context.cookies(w.url);
      expect(cookies).toHaveLength(1);
      expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
      expect(cookies[0]!.value).not.toContain(token);
      // The page's script cannot read it.
      expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe('');
      await page.getByRole('button', { name: 'sign out' }).click();
      await page.waitForURL(`${w.url}/login`);
      expect((await page.goto(`${w.url}/deliveries`))?.status()).toBe(401);
    } finally {
      await browser.close();
      await h.close();
    }
  }, 90_000);
});
