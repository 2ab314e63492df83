// Drives web/phone.html like a user: log in with a password, call `echo`, hold, resume, hang up.
// Prints one JSON line with what the page showed at each step. Usage: node phone.mjs BASE_URL USER PASSWORD SCREENSHOT
import { chromium } from 'playwright-core';

const [baseUrl, user, password, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const steps = {};
try {
  const page = await browser.newPage();
  await page.goto(`${baseUrl}/`);
  await page.fill('#user', user);
  await page.fill('#password', 'wrong-password');
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0, null, { timeout: 5000 });
  steps.badLogin = await page.textContent('#error');
  await page.fill('#password', password);
  await page.click('#connect');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'), null, { timeout: 5000 });
  steps.connected = await page.textContent('#status');
  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'in call', null, { timeout: 10000 });
  steps.inCall = await page.textContent('#status');
  await page.waitForTimeout(1500);
  steps.timer = await page.textContent('#timer');
  await page.click('#hold');
  await page.waitForFunction(() => document.getElementById('hold').textContent === 'Resume', null, { timeout: 5000 });
  steps.held = await page.textContent('#hold');
  await page.click('#hold');
  await page.click('#pad button:first-child');
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.click('#hangup');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('call ended'), null, { timeout: 5000 });
  steps.ended = await page.textContent('#status');
  steps.error = await page.textContent('#error');
  steps.ok = true;
} catch (e) {
  steps.ok = false;
  steps.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(steps));
