// JsSIP 3.13 or SIP.js 0.21 (from npm, bundled for the page with esbuild) in a headless browser
// (launch.mjs), registering to the gateway over SIP over WebSocket (RFC 7118). The page is about:blank with the
// bundle added, so nothing of the gateway's own web client is involved. The page is
// SIP_WS_PAGE (the gateway's /healthz in the tests): a loopback origin, so Chromium's local
// network access checks let it open WebSockets to loopback.
// Usage: node sip_ws_register.mjs jssip|sipjs WS_URL AOR PASSWORD MODE [TOKEN]
//   PASSWORD `-`: none. TOKEN: sent as `X-Sipbridge-Token` on REGISTER (JsSIP's extra headers).
//   MODE register: register, print {"registered":true,...}, then read stdin: `close` drops the
//                  browser (the socket closes without an un-REGISTER), `quit` un-registers first.
//   MODE fail:     expect the registration to fail; print {"registered":false,"cause":...}.
// Prints one JSON line per result. wss:// with a self-signed certificate works because
// the launcher accepts insecure certificates (a test certificate, loopback only).
import { launch } from './launch.mjs';
import { build } from 'esbuild';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const [library, url, aor, password, mode, token] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const entry = library === 'sipjs' ? 'node_modules/sip.js/lib/index.js' : 'node_modules/jssip/lib/JsSIP.js';
const bundled = await build({
  entryPoints: [join(here, entry)],
  bundle: true,
  format: 'iife',
  globalName: library === 'sipjs' ? 'SIP' : 'JsSIP',
  platform: 'browser',
  write: false,
  logLevel: 'error',
});
const browser = await launch({ insecureCerts: true });
// Playwright's own switch for certificate errors: it also covers WebSockets.
const context = await browser.newContext({ ignoreHTTPSErrors: true });
const page = await context.newPage();
// The page's favicon 404 is noise; everything else the page logs goes to stderr.
page.on('console', (m) => { if (!m.text().startsWith('Failed to load resource')) process.stderr.write(`page: ${m.text()}\n`); });
await page.goto(process.env.SIP_WS_PAGE || 'about:blank');
await page.setContent('<!doctype html><title>SIP over WebSocket</title>');
await page.addScriptTag({ content: bundled.outputFiles[0].text });

// SIP.js: the same steps with its UserAgent and Registerer.
async function registerSipJs({ url, aor, password, token }) {
  const { UserAgent, Registerer } = SIP;
  const options = { uri: UserAgent.makeURI(aor), transportOptions: { server: url }, userAgentString: 'SIPjs-test', logLevel: 'warn' };
  if (password !== '-') Object.assign(options, { authorizationUsername: UserAgent.makeURI(aor).user, authorizationPassword: password });
  const ua = new UserAgent(options);
  window.ua = ua;
  await ua.start();
  const registerer = new Registerer(ua, { expires: 600, extraHeaders: token ? [`X-Sipbridge-Token: ${token}`] : [] });
  window.registerer = registerer;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ registered: false, cause: 'no answer within 15 s' }), 15000);
    registerer.register({
      requestDelegate: {
        onAccept: (r) => { clearTimeout(timer); resolve({ registered: true, status: r.message.statusCode }); },
        onReject: (r) => { clearTimeout(timer); resolve({ registered: false, status: r.message.statusCode }); },
      },
    }).catch((e) => { clearTimeout(timer); resolve({ registered: false, cause: String(e) }); });
  });
}

const result = library === 'sipjs' ? await page.evaluate(registerSipJs, { url, aor, password, token }) : await page.evaluate(async ({ url, aor, password, token }) => {
  const socket = new JsSIP.WebSocketInterface(url);
  const settings = { sockets: [socket], uri: aor, register: true, register_expires: 600, user_agent: 'JsSIP-test' };
  if (password !== '-') settings.password = password;
  const ua = new JsSIP.UA(settings);
  if (token) ua.registrator().setExtraHeaders([`X-Sipbridge-Token: ${token}`]);
  window.ua = ua;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ registered: false, cause: 'no answer within 15 s' }), 15000);
    ua.on('registered', (e) => { clearTimeout(timer); resolve({ registered: true, status: e.response.status_code }); });
    ua.on('registrationFailed', (e) => {
      clearTimeout(timer);
      resolve({ registered: false, cause: e.cause, status: e.response ? e.response.status_code : null });
    });
    ua.on('disconnected', (e) => console.log(`disconnected: ${JSON.stringify(e.code ?? null)}`));
    ua.start();
  });
}, { url, aor, password, token });
console.log(JSON.stringify({ ...result, library, mode }));

if (mode === 'register' && result.registered) {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === 'quit') {
      await page.evaluate(() => new Promise((resolve) => {
        setTimeout(resolve, 5000);
        if (window.registerer) return window.registerer.unregister().then(resolve, resolve);
        window.ua.on('unregistered', () => resolve());
        window.ua.unregister();
      }));
      console.log(JSON.stringify({ unregistered: true }));
      break;
    }
    if (line.trim() === 'close') break;
  }
}
await browser.close();
// stdin stays open in the test: leave without waiting for it.
process.exit(0);
