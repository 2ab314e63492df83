// A headless browser (launch.mjs) logged in as a browser user with sipbridge.js, one page per MODE: prints
// READY once every page is logged in. The fake microphone plays a 440 Hz tone.
// Modes: accept (answer, measure audio, note DTMF with the frequency heard after each digit, and
// remote hold, wait up to 15 s for the end),
// long (the same, waiting up to 150 s), await-end (answer, measure nothing, wait up to 30 s for the
// far end or the gateway to end it, e.g. a media timeout), transferred (answer, measure, then
// listen until the tone heard becomes TRANSFER_HZ (env SIPBRIDGE_TRANSFER_HZ, default 440: this
// page's own tone echoed by a trunk the far end transferred the call to), within 15 s, and hang
// up), hangup (answer, measure, then hang up), busy (reject as busy), watch (let it ring and report how
// the ringing ended). Prints one JSON line per page, in order.
// Usage: node answer.mjs BASE_URL TOKEN [MODE ...]
// SIPBRIDGE_ICE_POLICY=relay makes the pages use only TURN relays (see `selectedPair`).
import { launch } from './launch.mjs';

const [baseUrl, token, ...modeArgs] = process.argv.slice(2);
const modes = modeArgs.length ? modeArgs : ['accept'];
const browser = await launch({ media: true, toneHz: 440 });
let ready = 0;
async function runPage(mode) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.text() === 'READY' && ++ready === modes.length) console.log('READY'); });
  await page.goto(`${baseUrl}/phone.html`);
  return page.evaluate(async ({ token, mode, icePolicy, transferHz }) => {
    const { SipBridge } = await import('/sipbridge.js');
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, autoGainControl: false, noiseSuppression: false } });
    const client = await SipBridge.connect(location.origin.replace(/^http/, 'ws') + '/ws', { token, reconnect: false, iceTransportPolicy: icePolicy || undefined });
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
    let dtmf = '';
    const holds = [];
    // The loudest frequency after each digit (1 s, once 300 ms passed): a phone that renumbers
    // its payload types in a re-INVITE marks the new stream with a digit.
    const afterDigit = {};
    let measureAfterDigit = null;
    call.on('dtmf', ({ digit }) => {
      dtmf += digit;
      if (measureAfterDigit) measureAfterDigit(digit).then((hz) => { afterDigit[digit] = hz; });
    });
    const remote = new Promise((resolve) => call.on('track', resolve));
    await call.accept({ stream });
    if (mode === 'await-end') {
      const end = await Promise.race([ended, new Promise((r) => setTimeout(() => r({ reason: 'still up' }), 30000))]);
      client.close();
      return { ok: true, mode, caller: call.caller, ended: end };
    }
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
    // The loudest sample heard over `ms`, skipping the first `settle` ms (buffers still draining).
    const peakOver = async (ms, settle = 300) => {
      let peak = 0;
      for (let t = 0; t < ms; t += 100) {
        await new Promise((r) => setTimeout(r, 100));
        if (t < settle) continue;
        analyser.getFloatTimeDomainData(samples);
        for (const s of samples) peak = Math.max(peak, Math.abs(s));
      }
      return peak;
    };
    // The loudest sample heard over `ms` (after `settle` ms), or until `stop()` says so; and for
    // how long it listened.
    const peakUntil = async (ms, settle, stop) => {
      let peak = 0;
      let t = 0;
      for (; t < ms && !stop(); t += 100) {
        await new Promise((r) => setTimeout(r, 100));
        if (t < settle) continue;
        analyser.getFloatTimeDomainData(samples);
        for (const s of samples) peak = Math.max(peak, Math.abs(s));
      }
      return { peak, ms: Math.max(0, t - settle) };
    };
    const audioIn = async () => {
      let found = {};
      (await call.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') found = s; });
      return found;
    };
    // `remote_hold` comes over the WebSocket the moment the gateway stops sending to the trunk,
    // but audio the trunk echoed before then is still on its way or in this browser's jitter
    // buffer (deep under load). The hold has reached the page once packets stopped coming (200 ms
    // without one) and the jitter buffer ran dry (it conceals from then on): measure from there.
    const drained = async () => {
      let last = await audioIn();
      let concealedAtLastPacket = last.concealedSamples ?? 0;
      for (let i = 0, quiet = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const now = await audioIn();
        if (now.packetsReceived !== last.packetsReceived) {
          quiet = 0;
          concealedAtLastPacket = now.concealedSamples ?? 0;
        } else {
          quiet++;
        }
        last = now;
        if (quiet >= 4 && (now.concealedSamples ?? 0) > concealedAtLastPacket) return true;
      }
      return false;
    };
    measureAfterDigit = async () => {
      const found = new Float32Array(analyser.frequencyBinCount);
      let best = { hz: 0, db: -Infinity };
      await new Promise((r) => setTimeout(r, 300));
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 100));
        analyser.getFloatFrequencyData(found);
        for (let b = 1; b < found.length; b++) if (found[b] > best.db) best = { hz: (b * context.sampleRate) / analyser.fftSize, db: found[b] };
      }
      return best.hz;
    };
    const levels = {};
    let resumed = false;
    call.on('remote_hold', async () => {
      holds.push('hold');
      levels.holdDrained = await drained();
      const heard = await peakUntil(1200, 300, () => resumed);
      [levels.onHold, levels.onHoldMs] = [heard.peak, heard.ms];
    });
    call.on('remote_resume', async () => { resumed = true; holds.push('resume'); levels.afterResume = await peakOver(3000, 800); });
    const bins = new Float32Array(analyser.frequencyBinCount);
    let loudest = { hz: 0, db: -Infinity };
    // Media flows once ICE and DTLS are up, which takes seconds through a relay on a loaded
    // machine: measure from the first packet received, not from the answer (bounded: 15 s).
    for (let i = 0; i < 150 && !((await audioIn()).packetsReceived > 0); i++) await new Promise((r) => setTimeout(r, 100));
    // The codec, read while media flows: a caller that hangs up soon after the measurement below
    // (on a loaded machine) takes the connection's stats with it.
    const codecOf = (report) => {
      let found = null;
      report.forEach((s) => { if (s.type === 'codec' && s.mimeType?.startsWith('audio/')) found = found ?? s.mimeType; });
      return found;
    };
    const codecWhileFlowing = codecOf(await call.pc.getStats());
    const peakLevel = await peakOver(2300);
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      analyser.getFloatFrequencyData(bins);
      for (let b = 1; b < bins.length; b++) if (bins[b] > loudest.db) loudest = { hz: (b * context.sampleRate) / analyser.fftSize, db: bins[b] };
    }
    const stats = await call.pc.getStats();
    const codec = codecWhileFlowing ?? codecOf(stats);
    let pair = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    const ends = pair && { local: stats.get(pair.localCandidateId), remote: stats.get(pair.remoteCandidateId) };
    const selectedPair = ends && { local: ends.local?.candidateType, remote: ends.remote?.candidateType, relayProtocol: ends.local?.relayProtocol, localAddress: `${ends.local?.address}:${ends.local?.port}` };
    if (mode === 'transferred') {
      // The loudest frequency over 500 ms, until it is the transfer target's twice in a row.
      let laterHz = 0;
      for (let i = 0, hits = 0; i < 30 && hits < 2; i++) {
        let best = { hz: 0, db: -Infinity };
        for (let j = 0; j < 5; j++) {
          await new Promise((r) => setTimeout(r, 100));
          analyser.getFloatFrequencyData(bins);
          for (let b = 1; b < bins.length; b++) if (bins[b] > best.db) best = { hz: (b * context.sampleRate) / analyser.fftSize, db: bins[b] };
        }
        laterHz = best.hz;
        hits = Math.abs(best.hz - transferHz) <= 20 ? hits + 1 : 0;
      }
      const stateAfter = call.state;
      await call.hangup();
      client.close();
      return { ok: true, mode, caller: call.caller, peakHz: loudest.hz, codec, laterHz, stateAfter };
    }
    if (mode === 'hangup') {
      await call.hangup();
      client.close();
      return { ok: true, mode, caller: call.caller, peakLevel, peakHz: loudest.hz, codec, ended: { reason: 'local_hangup' } };
    }
    const wait = mode === 'long' ? 150000 : 15000;
    const end = await Promise.race([ended, new Promise((r) => setTimeout(() => r({ reason: 'still up' }), wait))]);
    client.close();
    return { ok: true, mode, caller: call.caller, peakLevel, peakHz: loudest.hz, codec, selectedPair, ended: end, dtmf, afterDigit, holds, levels };
  }, { token, mode, icePolicy: process.env.SIPBRIDGE_ICE_POLICY ?? '', transferHz: Number(process.env.SIPBRIDGE_TRANSFER_HZ || 440) });
}
const results = await Promise.all(modes.map((mode) => runPage(mode).catch((e) => ({ ok: false, mode, error: String(e) }))));
await browser.close();
for (const result of results) console.log(JSON.stringify(result));
