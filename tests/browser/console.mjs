// A headless browser (launch.mjs: Chromium or Firefox ESR) drives the web console: a wrong
// password, then login, the dashboard (its active calls), the call records, a filter, and one call's detail with its SIP ladder. Screenshots go to OUT_DIR.
// Prints one JSON line. Usage: node console.mjs BASE_URL USER PASSWORD OUT_DIR
import { launch } from './launch.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [baseUrl, user, password, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
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
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0, null, { timeout: 5000 });
  result.wrongPasswordMessage = await page.textContent('#login-error');
  await page.fill('input[name=password]', password);
  await page.click('#login button');
  await page.waitForSelector('#active-count', { timeout: 5000 });
  result.who = await page.textContent('#who');
  result.activeCount = await page.textContent('#active-count');
  result.activeCallers = await page.$$eval('#view tr.row td:nth-child(4)', (cells) => cells.map((c) => c.textContent));
  await page.screenshot({ path: join(outDir, 'console-dashboard.png'), fullPage: true });

  await page.click('a[href="#/calls"]');
  await page.waitForSelector('#records tr.row', { timeout: 5000 });
  result.rowsAll = await page.locator('#records tr.row').count();
  await page.screenshot({ path: join(outDir, 'console-records.png'), fullPage: true });

  await page.selectOption('select[name=status]', 'missed');
  await page.click('#filters button');
  await page.waitForFunction((all) => document.querySelectorAll('#records tr.row').length < all, result.rowsAll, { timeout: 5000 });
  result.rowsMissed = await page.locator('#records tr.row').count();
  result.statusesAfterFilter = await page.$$eval('#records tr.row td:nth-child(3)', (cells) => [...new Set(cells.map((c) => c.textContent))]);
  await page.screenshot({ path: join(outDir, 'console-filtered.png'), fullPage: true });

  await page.fill('input[name=q]', 'ladder-caller');
  await page.click('#filters button');
  await page.waitForFunction(() => document.querySelectorAll('#records tr.row').length === 1, null, { timeout: 5000 });
  await page.click('#records tr.row');
  await page.waitForSelector('svg.ladder', { timeout: 5000 });
  result.ladderArrows = await page.locator('svg.ladder [data-message]').count();
  result.ladderLabels = await page.$$eval('svg.ladder [data-message] text:last-child', (t) => t.map((x) => x.textContent));
  await page.click('svg.ladder [data-message]');
  result.firstMessage = (await page.textContent('#sip-text')).split('\r\n')[0];
  await page.screenshot({ path: join(outDir, 'console-detail.png'), fullPage: true });
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
