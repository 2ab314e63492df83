// sipbridge.js as a real page uses it, in a headless browser (launch.mjs), against the gateway's `echo`:
// - `merge`: the page's own ICE servers and the login reply's are both used;
// - `codecs`: codec preferences ['PCMU'] make the browser offer PCMU only, and the tone still
//   comes back (frequency measured);
// - `bad_ice_server`: a TURN entry the browser refuses ends the call with `ended`, call() returns;
// - `hangup_in_flight`: hanging up before the call's reply still ends the call at the gateway,
//   and nothing (no candidate) is sent for it afterwards;
// - `keepalive`: a quiet connection sends a `ping` after `keepaliveMs` and reports the round trip.
// Prints one JSON line: {ok, merge, codecs, badIceServer, hangupInFlight, keepalive, errors}.
// Usage: node client.mjs BASE_URL TOKEN
import { launch } from './launch.mjs';

const [baseUrl, token] = process.argv.slice(2);
const browser = await launch({ media: true, toneHz: 1000 });
let result;
try {
  const page = await browser.newPage();
  await page.goto(`${baseUrl}/phone.html`);
  result = await page.evaluate(async ({ token }) => {
    const { SipBridge } = await import('/sipbridge.js');
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const within = (ms, what, promise) => Promise.race([promise, sleep(ms).then(() => { throw new Error(`no ${what} within ${ms} ms`); })]);
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, autoGainControl: false, noiseSuppression: false } });
    const url = location.origin.replace(/^http/, 'ws') + '/ws';
    const errors = [];
    const connect = async (options) => {
      const client = await SipBridge.connect(url, { token, reconnect: false, ...options });
      client.on('error', (e) => errors.push(e.code));
      return client;
    };

    // The page's STUN server first, then the gateway's TURN server with this login's credential.
    const pageServer = { urls: 'stun:127.0.0.1:9' };
    const merged = await connect({ iceServers: [pageServer], codecs: ['PCMU'] });
    const merge = merged.iceServers.map((s) => ({ urls: s.urls, username: s.username ?? null }));

    // PCMU only, both ways through the echo; the tone is measured on what comes back.
    const call = merged.call('echo', { stream });
    const remote = await within(10000, 'remote track', new Promise((resolve) => call.on('track', resolve)));
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
    await sleep(1000);
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      analyser.getFloatFrequencyData(bins);
      for (let b = 1; b < bins.length; b++) if (bins[b] > best.db) best = { hz: (b * context.sampleRate) / analyser.fftSize, db: bins[b] };
    }
    const offered = [...call.pc.localDescription.sdp.matchAll(/^a=rtpmap:\d+ ([^/]+)\//gm)].map((m) => m[1]);
    await call.hangup();
    const codecs = { offered, peakHz: best.hz };
    merged.close();

    // The browser refuses a TURN entry without credentials in the RTCPeerConnection constructor.
    const bad = await connect({ iceServers: [{ urls: 'turn:127.0.0.1:3478' }] });
    let threw = null;
    let failed;
    try {
      failed = bad.call('echo', { stream });
    } catch (e) {
      threw = String(e);
    }
    const ended = failed ? await within(2000, 'ended event', new Promise((resolve) => failed.on('ended', resolve))) : null;
    bad.close();
    const badIceServer = { threw, ended };

    // Hang up right after the call request leaves, before the gateway's reply (its call_id).
    const client = await connect({});
    let early;
    let hungUp;
    const send = client._send.bind(client);
    client._send = (message) => { send(message); if (message.type === 'call') hungUp = early.hangup(); };
    let endedEvents = 0;
    early = client.call('echo', { stream });
    early.on('ended', () => { endedEvents++; });
    for (let i = 0; i < 50 && !early.id; i++) await sleep(100);
    await hungUp;
    // Frames are handled in order: a probe after the library's hangup finds the call gone.
    const probe = await client._request({ type: 'hold', call_id: early.id }).then(() => 'call still up', (e) => e.code);
    await sleep(1000);
    client.close();
    const hangupInFlight = { callId: early.id, probe, state: early.state, endedEvents };

    // Nothing sent for 200 ms: the library pings, and the gateway's pong gives the round trip.
    const quiet = await connect({ keepaliveMs: 200 });
    const pongMs = await within(3000, 'keep-alive pong', new Promise((resolve) => quiet.on('pong', resolve)));
    const keepalive = { pongMs, roundTripMs: quiet.roundTripMs };
    quiet.close();
    return { ok: true, merge, codecs, badIceServer, hangupInFlight, keepalive, errors };
  }, { token });
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
