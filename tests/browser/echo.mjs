// Headless Chromium calls `echo` through the gateway with sipbridge.js and measures the audio that
// comes back with an AnalyserNode. Prints one JSON line: {ok, peakHz, codec, error?}.
// Usage: node echo.mjs BASE_URL TOKEN [CODEC] [TARGET] [early]
// With `early`, it measures during early media (after `ringing` with SDP) and hangs up unanswered.
import { chromium } from 'playwright-core';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [baseUrl, token, codec, target = 'echo', mode = ''] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'sipbridge-echo-'));
const wav = join(dir, 'tone-1000hz.wav');
writeFileSync(wav, sineWav(1000, 48000, 20));

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`, '--autoplay-policy=no-user-gesture-required',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
  ],
});
let result;
try {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  await page.goto(`${baseUrl}/phone.html`);
  result = await page.evaluate(async ({ token, codec, target, mode }) => {
    const { SipBridge } = await import('/sipbridge.js');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const url = location.origin.replace(/^http/, 'ws') + '/ws';
    const client = await SipBridge.connect(url, { token, reconnect: false });
    const call = client.call(target, { stream, codec: codec || undefined });
    let earlyMedia = false;
    call.on('ringing', (info) => { earlyMedia = earlyMedia || Boolean(info?.earlyMedia); });
    const remote = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no remote track within 10 s')), 10000);
      call.on('track', (s) => { clearTimeout(timer); resolve(s); });
      call.on('ended', (e) => reject(new Error(`call ended: ${e.reason} ${e.cause}`)));
    });
    if (mode === 'early') {
      // The track arrives while the early answer is applied, just before `ringing` is emitted.
      for (let i = 0; i < 20 && !earlyMedia; i++) await new Promise((r) => setTimeout(r, 100));
      if (!earlyMedia) throw new Error('a track came without early media');
    } else {
      await new Promise((resolve, reject) => {
        if (call.state === 'answered') return resolve();
        call.on('answered', resolve);
        setTimeout(() => reject(new Error('not answered within 10 s')), 10000);
      });
    }
    // Bad frames on the same connection get errors and never disturb the call (measured below).
    let errors = 0;
    client.on('error', () => { errors++; });
    client.ws.send('{not json');
    client.ws.send(JSON.stringify({ type: 'teleport', id: 'x1' }));
    client.ws.send(JSON.stringify({ type: 'dtmf', id: 'x2', call_id: call.id, digits: 'bad!' }));
    await new Promise((r) => setTimeout(r, 300));
    // WebAudio reads silence from a remote track unless it also plays in a (muted) element.
    const audio = new Audio();
    audio.srcObject = remote;
    audio.muted = true;
    await audio.play().catch(() => {});
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 8192;
    context.createMediaStreamSource(remote).connect(analyser);
    const bins = new Float32Array(analyser.frequencyBinCount);
    let best = { hz: 0, db: -Infinity };
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 100));
      analyser.getFloatFrequencyData(bins);
      for (let b = 1; b < bins.length; b++) if (bins[b] > best.db) best = { hz: (b * context.sampleRate) / analyser.fftSize, db: bins[b] };
    }
    const stats = await call.pc.getStats();
    let codecName = null;
    stats.forEach((s) => { if (s.type === 'codec' && s.mimeType?.startsWith('audio/')) codecName = codecName ?? s.mimeType; });
    const stateAtMeasurement = call.state;
    await call.hangup();
    client.close();
    return { ok: true, peakHz: best.hz, peakDb: best.db, codec: codecName, errorsSeen: errors, earlyMedia, stateAtMeasurement };
  }, { token, codec, target, mode });
  result.logs = logs.slice(-20);
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

function sineWav(hz, rate, seconds) {
  const samples = rate * seconds;
  const data = Buffer.alloc(44 + samples * 2);
  data.write('RIFF', 0); data.writeUInt32LE(36 + samples * 2, 4); data.write('WAVE', 8);
  data.write('fmt ', 12); data.writeUInt32LE(16, 16); data.writeUInt16LE(1, 20); data.writeUInt16LE(1, 22);
  data.writeUInt32LE(rate, 24); data.writeUInt32LE(rate * 2, 28); data.writeUInt16LE(2, 32); data.writeUInt16LE(16, 34);
  data.write('data', 36); data.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
  return data;
}
