// A headless browser (launch.mjs: Chromium or Firefox ESR) drives the web console: a wrong
// password, then login, the dashboard (its active calls), the call records, a filter, and one call's detail with its SIP ladder. Screenshots go to OUT_DIR.
// Prints one JSON line. Usage: node console.mjs BASE_URL USER PASSWORD OUT_DIR
import { launch } from './launch.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [baseUrl, user, password, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
// Every wait ends at its event; this only bounds a wait whose event never comes (a loaded CI
// machine has taken over 5 s to render a page).
const WAIT_MS = 15000;
const browser = await launch();
const result = { ok: false };
const errors = [];
let page;
try {
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => errors.push(String(e)));
  // Expected HTTP refusals (401 before login, the wrong password) show as resource errors: not counted.
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
  await page.goto(`${baseUrl}/console`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', 'not the password');
  await page.click('#login button');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0, null, { timeout: WAIT_MS });
  result.wrongPasswordMessage = await page.textContent('#login-error');
  await page.fill('input[name=password]', password);
  await page.click('#login button');
  await page.waitForSelector('#active-count', { timeout: WAIT_MS });
  result.who = await page.textContent('#who');
  result.activeCount = await page.textContent('#active-count');
  result.activeCallers = await page.$$eval('#view tr.row td:nth-child(4)', (cells) => cells.map((c) => c.textContent));
  await page.screenshot({ path: join(outDir, 'console-dashboard.png'), fullPage: true });

  // The records view, not the dashboard's active calls: its own table (and no stale render of
  // the dashboard drawn over it afterwards).
  await page.click('a[href="#/calls"]');
  await page.waitForSelector('#filters', { timeout: WAIT_MS });
  await page.waitForSelector('#records tr.row', { timeout: WAIT_MS });
  result.rowsAll = await page.locator('#records tr.row').count();
  await page.screenshot({ path: join(outDir, 'console-records.png'), fullPage: true });

  await page.selectOption('select[name=status]', 'missed');
  await page.click('#filters button');
  await page.waitForFunction((all) => document.querySelectorAll('#records tr.row').length < all, result.rowsAll, { timeout: WAIT_MS });
  result.rowsMissed = await page.locator('#records tr.row').count();
  result.statusesAfterFilter = await page.$$eval('#records tr.row td:nth-child(3)', (cells) => [...new Set(cells.map((c) => c.textContent))]);
  await page.screenshot({ path: join(outDir, 'console-filtered.png'), fullPage: true });

  await page.fill('input[name=q]', 'ladder-caller');
  await page.click('#filters button');
  await page.waitForFunction(() => document.querySelectorAll('#records tr.row').length === 1, null, { timeout: WAIT_MS });
  await page.click('#records tr.row');
  await page.waitForSelector('svg.ladder', { timeout: WAIT_MS });
  result.ladderArrows = await page.locator('svg.ladder [data-message]').count();
  result.ladderLabels = await page.$$eval('svg.ladder [data-message] text:last-child', (t) => t.map((x) => x.textContent));
  await page.click('svg.ladder [data-message]');
  result.firstMessage = (await page.textContent('#sip-text')).split('\r\n')[0];
  await page.screenshot({ path: join(outDir, 'console-detail.png'), fullPage: true });

  // To the dashboard and on to the records before the dashboard's two requests are answered:
  // the page must end on the records, not on the dashboard drawn late over them.
  // The dashboard's second request is held until the records are drawn, so the dashboard is
  // always the late one.
  await page.route('**/api/v1/sip/status', async (route) => {
    await page.waitForSelector('#filters', { timeout: WAIT_MS }).catch(() => {});
    await route.continue();
  });
  await page.evaluate(() => { location.hash = '#/dashboard'; setTimeout(() => { location.hash = '#/calls'; }, 0); });
  await page.waitForSelector('#filters', { timeout: WAIT_MS });
  await page.waitForLoadState('networkidle', { timeout: WAIT_MS });
  result.viewAfterQuickSwitch = await page.evaluate(() => (document.getElementById('filters') ? 'records' : document.getElementById('active-count') ? 'dashboard' : 'other'));
  result.pageErrors = errors;
  result.ok = true;
} catch (e) {
  result.error = String(e);
  result.pageErrors = errors;
  result.view = await page?.innerHTML('#main').catch(() => null);
  await page?.screenshot({ path: join(outDir, 'console-failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
