// Headless Chromium logged in as a browser user with sipbridge.js: prints READY once logged in,
// accepts the first incoming call, measures the audio it receives, and waits for the call to end.
// Prints one JSON line. Usage: node answer.mjs BASE_URL TOKEN
import { chromium } from 'playwright-core';

const [baseUrl, token] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
});
let result;
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.text() === 'READY') console.log('READY'); });
  await page.goto(`${baseUrl}/phone.html`);
  result = await page.evaluate(async ({ token }) => {
    const { SipBridge } = await import('/sipbridge.js');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const client = await SipBridge.connect(location.origin.replace(/^http/, 'ws') + '/ws', { token, reconnect: false });
    console.log('READY');
    const call = await new Promise((resolve, reject) => {
      client.on('incoming', resolve);
      setTimeout(() => reject(new Error('no incoming call within 30 s')), 30000);
    });
    const ended = new Promise((resolve) => call.on('ended', resolve));
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
    return { ok: true, caller: call.caller, peakLevel, codec, ended: end };
  }, { token });
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
