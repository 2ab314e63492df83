// A headless browser (launch.mjs: Chromium or Firefox ESR) logs in to the console with the
// first-start admin's one-time password: the
// console shows only the password form (no navigation), refuses a short password, takes a good
// one, and then shows the dashboard. Screenshots go to OUT_DIR. Prints one JSON line.
// Usage: node first_login.mjs BASE_URL ONE_TIME_PASSWORD NEW_PASSWORD OUT_DIR
import { launch } from './launch.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [baseUrl, oneTime, newPassword, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const browser = await launch();
const result = { ok: false };
const errors = [];
let page;
try {
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
  await page.goto(`${baseUrl}/console`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', oneTime);
  await page.click('#login button');
  await page.waitForSelector('#password:not([hidden])', { timeout: 5000 });
  result.navHiddenWhileForced = await page.$eval('#nav', (n) => n.hidden);
  result.viewEmptyWhileForced = (await page.innerHTML('#view')).trim() === '';
  await page.screenshot({ path: join(outDir, 'console-first-login.png'), fullPage: true });
  // A reload does not get around it.
  await page.reload();
  await page.waitForSelector('#password:not([hidden])', { timeout: 5000 });
  result.forcedAfterReload = true;
  await page.fill('input[name=current_password]', oneTime);
  await page.fill('input[name=new_password]', 'short');
  // The browser's own minlength check would stop the form: post it as a script would.
  await page.$eval('input[name=new_password]', (i) => i.removeAttribute('minlength'));
  await page.click('#password button');
  await page.waitForFunction(() => document.getElementById('password-error').textContent.length > 0, null, { timeout: 5000 });
  result.shortPasswordMessage = await page.textContent('#password-error');
  await page.fill('input[name=new_password]', newPassword);
  await page.click('#password button');
  await page.waitForSelector('#active-count', { timeout: 5000 });
  result.passwordFormHidden = await page.$eval('#password', (f) => f.hidden);
  result.who = await page.textContent('#who');
  await page.screenshot({ path: join(outDir, 'console-after-password-change.png'), fullPage: true });
  result.pageErrors = errors;
  result.ok = true;
} catch (e) {
  result.error = String(e);
  result.pageErrors = errors;
  result.view = await page?.innerHTML('#main').catch(() => null);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
