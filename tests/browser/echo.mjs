// A headless browser (launch.mjs) calls `echo` through the gateway with sipbridge.js and
// measures the audio that comes back with an AnalyserNode. Prints one JSON line: {ok, peakHz, codec, dtmfReceived (digits the far end sent), error?}.
// Usage: node echo.mjs BASE_URL LOGIN [CODEC] [TARGET] [MODE] [TONE_HZ (1000)]
// LOGIN is a JWT, or `password:USER:PASSWORD` for a local user. SIPBRIDGE_ICE_POLICY=relay makes
// the browser use only TURN relays (`selectedPair` in the result says which pair carried media).
// With `early`, it measures during early media (after `ringing` with SDP) and hangs up unanswered.
// With `transferred`, after measuring it listens until it hears its own tone back (the far end
// transferred it to an echoing trunk; `laterHz`), then hangs up.
// With `cancel`, it hangs up as soon as the far end rings and reports how the call ended.
// With `hold-dtmf`, after measuring it holds (and measures the silence, for SIPBRIDGE_HOLD_MS ms
// or 1500), resumes (and measures the
// tone again), then sends DTMF "123#" before hanging up. With `reclaim`, the WebSocket drops
// mid-call, the client reconnects and reclaims the call, and the tone is measured again; with
// `drop`, it drops and never comes back. With `dtmf`, it sends "123#" before hanging up. With
// `transfer`, it transfers the call to +15557654321 and waits for the call to end. With
// `remote-end`, it waits for the far end to hang up. With `await-end` (or `hold-await-end`, which
// holds first), it measures nothing once answered and waits up to 30 s for the call to end
// (e.g. a media timeout), reporting how. With `pause`, after measuring it prints `STEP call-up`,
// waits for a line on its standard input (the test does something to the gateway meanwhile), then
// measures the tone again (`peakHzAfterPause`) and reports whether the call and its WebSocket
// lived on. An https:// BASE_URL takes the gateway's certificate as it is (self-signed in tests).
import { launch } from './launch.mjs';

const [baseUrl, token, codec, target = 'echo', mode = '', toneArg = '1000'] = process.argv.slice(2);

const browser = await launch({ media: true, toneHz: toneArg });
// `pause` mode: the page waits here until the test writes a line.
const stdinLines = [];
let lineWaiter = null;
process.stdin.on('data', (chunk) => {
  for (const line of chunk.toString().split('\n').filter(Boolean)) { stdinLines.push(line); }
  if (lineWaiter && stdinLines.length) { lineWaiter(stdinLines.shift()); lineWaiter = null; }
});
if (mode !== 'pause') process.stdin.pause();
const nextLine = () => new Promise((resolve) => { if (stdinLines.length) resolve(stdinLines.shift()); else lineWaiter = resolve; });
let result;
try {
  const page = await browser.newPage({ ignoreHTTPSErrors: baseUrl.startsWith('https:') });
  await page.exposeFunction('sipbridgeTestStep', async (name) => { console.log(`STEP ${name}`); return nextLine(); });
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  await page.goto(`${baseUrl}/phone.html`);
  result = await page.evaluate(async ({ token, codec, target, mode, icePolicy, holdMs, ownHz, browserCodecs }) => {
    const { SipBridge } = await import('/sipbridge.js');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, autoGainControl: false, noiseSuppression: false } });
    const url = location.origin.replace(/^http/, 'ws') + '/ws';
    const [method, user, password] = token.split(':');
    const login = method === 'password' ? { user, password } : { token };
    const client = await SipBridge.connect(url, { ...login, reconnect: mode === 'reclaim', iceTransportPolicy: icePolicy || undefined });
    const call = client.call(target, { stream, codec: codec || undefined, codecs: browserCodecs.length ? browserCodecs : undefined });
    const callEnded = new Promise((resolve) => call.on('ended', resolve));
    // Digits the far end sends (RFC 4733 in its media, or INFO), as `dtmf` events.
    let dtmfReceived = '';
    call.on('dtmf', ({ digit }) => { dtmfReceived += digit; });
    let earlyMedia = false;
    call.on('ringing', (info) => { earlyMedia = earlyMedia || Boolean(info?.earlyMedia); });
    if (mode === 'cancel') {
      await new Promise((resolve, reject) => {
        call.on('ringing', resolve);
        setTimeout(() => reject(new Error('no ringing within 10 s')), 10000);
      });
      await call.hangup();
      const ended = await Promise.race([callEnded, new Promise((r) => setTimeout(() => r({ reason: 'still up' }), 5000))]);
      client.close();
      return { ok: true, ended };
    }
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
    if (mode === 'await-end' || mode === 'hold-await-end') {
      if (mode === 'hold-await-end') await call.hold();
      const ended = await Promise.race([callEnded, new Promise((r) => setTimeout(() => r({ reason: 'still up' }), 30000))]);
      client.close();
      return { ok: true, held: mode === 'hold-await-end', ended };
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
    let pair = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    const ends = pair && { local: stats.get(pair.localCandidateId), remote: stats.get(pair.remoteCandidateId) };
    const selectedPair = ends && { local: ends.local?.candidateType, remote: ends.remote?.candidateType, relayProtocol: ends.local?.relayProtocol, localAddress: `${ends.local?.address}:${ends.local?.port}`, remoteAddress: `${ends.remote?.address}:${ends.remote?.port}` };
    const stateAtMeasurement = call.state;
    const extra = {};
    if (mode === 'hold-dtmf') {
      const samples = new Float32Array(analyser.fftSize);
      const levelOver = async (ms) => {
        let peak = 0;
        for (let t = 0; t < ms; t += 100) {
          await new Promise((r) => setTimeout(r, 100));
          if (t < 400) continue;
          analyser.getFloatTimeDomainData(samples);
          for (const s of samples) peak = Math.max(peak, Math.abs(s));
        }
        return peak;
      };
      // Held, the far end stops sending; what it sent before is still on its way or in the
      // jitter buffer (deep under load). Measure once packets stopped (300 ms without one) and
      // the buffer ran dry (concealment grew since the last packet), bounded to 5 s.
      const audioIn = async () => {
        let found = {};
        (await call.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') found = s; });
        return found;
      };
      const drained = async () => {
        let last = await audioIn();
        let concealedAtLastPacket = last.concealedSamples ?? 0;
        for (let i = 0, quiet = 0; i < 100; i++) {
          await new Promise((r) => setTimeout(r, 50));
          const now = await audioIn();
          if (now.packetsReceived !== last.packetsReceived) [quiet, concealedAtLastPacket] = [0, now.concealedSamples ?? 0];
          else quiet++;
          last = now;
          if (quiet >= 6 && (now.concealedSamples ?? 0) > concealedAtLastPacket) return true;
        }
        return false;
      };
      extra.levelBeforeHold = await levelOver(1000);
      await call.hold();
      const heldAt = Date.now();
      extra.holdDrained = await drained();
      extra.levelOnHold = await levelOver(Math.max(1000, holdMs - (Date.now() - heldAt)));
      await call.unhold();
      extra.levelAfterResume = await levelOver(1500);
      await call.dtmf('123#');
      await new Promise((r) => setTimeout(r, 1500));
    }
    if (mode === 'transfer') {
      // The trunk accepts the REFER, reports the target answered, and the gateway hangs up.
      const ended = new Promise((resolve) => call.on('ended', resolve));
      await call.transfer('+15557654321');
      extra.transferAccepted = true;
      extra.ended = await Promise.race([ended, new Promise((r) => setTimeout(() => r({ reason: 'still up' }), 10000))]);
      client.close();
      return { ok: true, peakHz: best.hz, peakDb: best.db, codec: codecName, selectedPair, dtmfReceived, ...extra };
    }
    if (mode === 'transferred') {
      // The far end transfers the call (REFER) to a trunk that echoes: listen until the tone
      // heard is this page's own, twice in a row over 500 ms (bounded: 15 s), then hang up.
      const again = new Float32Array(analyser.frequencyBinCount);
      for (let i = 0, hits = 0; i < 30 && hits < 2; i++) {
        let heard = { hz: 0, db: -Infinity };
        for (let j = 0; j < 5; j++) {
          await new Promise((r) => setTimeout(r, 100));
          analyser.getFloatFrequencyData(again);
          for (let b = 1; b < again.length; b++) if (again[b] > heard.db) heard = { hz: (b * context.sampleRate) / analyser.fftSize, db: again[b] };
        }
        extra.laterHz = heard.hz;
        hits = Math.abs(heard.hz - ownHz) <= 20 ? hits + 1 : 0;
      }
      extra.stateAfter = call.state;
    }
    if (mode === 'remote-end') {
      // The far end hangs up: wait for it rather than hanging up ourselves. `callEnded` listened
      // from the start: the far end may hang up while this page was still measuring.
      extra.ended = await Promise.race([callEnded, new Promise((r) => setTimeout(() => r({ reason: 'still up' }), 15000))]);
      client.close();
      return { ok: true, peakHz: best.hz, peakDb: best.db, codec: codecName, dtmfReceived, ...extra };
    }
    if (mode === 'pause') {
      let ended = null;
      call.on('ended', (e) => { ended = e; });
      await window.sipbridgeTestStep('call-up');
      const again = new Float32Array(analyser.frequencyBinCount);
      let after = { hz: 0, db: -Infinity };
      for (let i = 0; i < 15; i++) {
        await new Promise((r) => setTimeout(r, 100));
        analyser.getFloatFrequencyData(again);
        for (let b = 1; b < again.length; b++) if (again[b] > after.db) after = { hz: (b * context.sampleRate) / analyser.fftSize, db: again[b] };
      }
      Object.assign(extra, { peakHzAfterPause: after.hz, stateAfterPause: call.state, endedDuringPause: ended, websocketOpenAfterPause: client.ws.readyState === WebSocket.OPEN });
    }
    if (mode === 'dtmf') {
      await call.dtmf('123#');
      await new Promise((r) => setTimeout(r, 2000));
    }
    if (mode === 'reclaim' || mode === 'drop') {
      // The WebSocket drops mid-call; the page and its peer connection live on.
      const reclaimed = new Promise((resolve) => call.on('reclaimed', () => resolve(true)));
      client.ws.close();
      if (mode === 'drop') return { ok: true, peakHz: best.hz, peakDb: best.db, codec: codecName, selectedPair, dropped: true };
      extra.reclaimed = await Promise.race([reclaimed, new Promise((r) => setTimeout(() => r(false), 10000))]);
      const again = new Float32Array(analyser.frequencyBinCount);
      let after = { hz: 0, db: -Infinity };
      for (let i = 0; i < 15; i++) {
        await new Promise((r) => setTimeout(r, 100));
        analyser.getFloatFrequencyData(again);
        for (let b = 1; b < again.length; b++) if (again[b] > after.db) after = { hz: (b * context.sampleRate) / analyser.fftSize, db: again[b] };
      }
      extra.peakHzAfterReclaim = after.hz;
    }
    await call.hangup();
    client.close();
    return { ok: true, peakHz: best.hz, peakDb: best.db, codec: codecName, selectedPair, errorsSeen: errors, earlyMedia, stateAtMeasurement, dtmfReceived, ...extra };
  // SIPBRIDGE_BROWSER_CODECS: the browser's own codec order (sipbridge.js `codecs`), e.g. `PCMU`.
  }, { token, codec, target, mode, icePolicy: process.env.SIPBRIDGE_ICE_POLICY ?? '', holdMs: Number(process.env.SIPBRIDGE_HOLD_MS || 1500), ownHz: Number(toneArg), browserCodecs: (process.env.SIPBRIDGE_BROWSER_CODECS ?? '').split(',').filter(Boolean) });
  result.logs = logs.slice(-20);
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.stdin.destroy();
