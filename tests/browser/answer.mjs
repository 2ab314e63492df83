// Headless Chromium logged in as a browser user with sipbridge.js, one page per MODE: prints
// READY once every page is logged in. Modes: accept (answer, measure audio, wait for the end),
// busy (reject as busy), watch (let it ring and report how the ringing ended).
// Prints one JSON line per page, in order. Usage: node answer.mjs BASE_URL TOKEN [MODE ...]
import { chromium } from 'playwright-core';

const [baseUrl, token, ...modeArgs] = process.argv.slice(2);
const modes = modeArgs.length ? modeArgs : ['accept'];
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
let ready = 0;
async function runPage(mode) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.text() === 'READY' && ++ready === modes.length) console.log('READY'); });
  await page.goto(`${baseUrl}/phone.html`);
  return page.evaluate(async ({ token, mode }) => {
    const { SipBridge } = await import('/sipbridge.js');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const client = await SipBridge.connect(location.origin.replace(/^http/, 'ws') + '/ws', { token, reconnect: false });
    console.log('READY');
    const call = await new Promise((resolve, reject) => {
      client.on('incoming', resolve);
      setTimeout(() => reject(new Error('no incoming call within 30 s')), 30000);
    });
    const ended = new Promise((resolve) => call.on('ended', resolve));
    if (mode === 'busy') {
      await call.reject('busy');
      client.close();
      return { ok: true, mode, caller: call.caller };
    }
    if (mode === 'watch') {
      const end = await Promise.race([ended, new Promise((r) => setTimeout(() => r({ reason: 'still ringing' }), 20000))]);
      client.close();
      return { ok: true, mode, caller: call.caller, ended: end };
    }
    const remote = new Promise((resolve) => call.on('track', resolve));
    await call.accept({ stream });
    const track = await Promise.race([remote, new Promise((_, reject) => setTimeout(() => reject(new Error('no remote track')), 10000))]);
    const audio = new Audio();
    audio.srcObject = track;
    audio.muted = true;
    await audio.play().catch(() => {});
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 4096;
    context.createMediaStreamSource(track).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    let peakLevel = 0;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      analyser.getFloatTimeDomainData(samples);
      for (const s of samples) peakLevel = Math.max(peakLevel, Math.abs(s));
    }
    const stats = await call.pc.getStats();
    let codec = null;
    stats.forEach((s) => { if (s.type === 'codec' && s.mimeType?.startsWith('audio/')) codec = codec ?? s.mimeType; });
    const end = await Promise.race([ended, new Promise((r) => setTimeout(() => r({ reason: 'still up' }), 15000))]);
    client.close();
    return { ok: true, mode, caller: call.caller, peakLevel, codec, ended: end };
  }, { token, mode });
}
const results = await Promise.all(modes.map((mode) => runPage(mode).catch((e) => ({ ok: false, mode, error: String(e) }))));
await browser.close();
for (const result of results) console.log(JSON.stringify(result));
