// JsSIP 3.13 or SIP.js 0.21 (from npm, bundled for the page with esbuild) in a headless browser
// (launch.mjs), registered to the gateway over SIP over WebSocket, placing or answering a call with WebRTC media.
// The fake microphone plays a TONE_HZ sine; the page measures the loudest frequency it hears
// (an FFT over 3 s from the first packet received).
// Usage: node sip_ws_call.mjs jssip|sipjs WS_URL AOR PASSWORD MODE TARGET TONE_HZ
//   MODE call:        register, call TARGET (a SIP URI), measure once answered, then wait up to
//                     15 s for the far end to hang up.
//   MODE call-hangup: the same, hanging up itself once it measured (JsSIP only).
//   MODE answer:      register, print READY, answer the next call (within 30 s), measure, then
//                     hang up.
//   MODE answer-wait: the same, then wait up to 15 s for the far end to hang up.
//   MODE ring:        register, print READY, let the next call ring and report how the ringing
//                     ended (e.g. cancelled when another device answered; JsSIP only).
// Once a call has been measured (media flowed both ways), IN CALL is printed: a test may kill the
// browser there to make the client vanish mid-call.
// Prints one JSON line: {ok, peakHz, peakDb, codec, ended, error?}. The page is SIP_WS_PAGE (the
// gateway's /healthz in the tests): a loopback origin, a secure context for getUserMedia.
import { launch } from './launch.mjs';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const [library, url, aor, password, mode, target, toneArg = '660'] = process.argv.slice(2);
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
const browser = await launch({ media: true, toneHz: toneArg, insecureCerts: true });
let result;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.text() === 'READY' || m.text() === 'IN CALL') console.log(m.text());
    else if (!m.text().startsWith('Failed to load resource')) process.stderr.write(`page: ${m.text()}\n`);
  });
  await page.goto(process.env.SIP_WS_PAGE || 'about:blank');
  await page.setContent('<!doctype html><title>SIP over WebSocket call</title>');
  await page.addScriptTag({ content: bundled.outputFiles[0].text });
  result = await page.evaluate(async ({ library, url, aor, password, mode, target }) => {
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const within = (ms, what, promise) => Promise.race([promise, sleep(ms).then(() => { throw new Error(`no ${what} within ${ms} ms`); })]);
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, autoGainControl: false, noiseSuppression: false } });

    // The loudest frequency in what `pc` receives, over 3 s from its first packet.
    const measure = async (pc) => {
      const inbound = async () => {
        let found = {};
        (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') found = s; });
        return found;
      };
      for (let i = 0; i < 100 && !((await inbound()).packetsReceived > 0); i++) await sleep(100);
      const track = pc.getReceivers().map((r) => r.track).find((t) => t && t.kind === 'audio');
      const remote = new MediaStream([track]);
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
        await sleep(100);
        if (i < 5) continue;
        analyser.getFloatFrequencyData(bins);
        for (let b = 1; b < bins.length; b++) if (bins[b] > best.db) best = { hz: (b * context.sampleRate) / analyser.fftSize, db: bins[b] };
      }
      const stats = await pc.getStats();
      let codec = null;
      stats.forEach((s) => { if (s.type === 'codec' && s.mimeType?.startsWith('audio/')) codec = codec ?? s.mimeType; });
      return { peakHz: best.hz, peakDb: best.db, codec, packetsReceived: (await inbound()).packetsReceived ?? 0 };
    };

    if (library === 'sipjs') {
      const { UserAgent, Registerer, Inviter, SessionState } = SIP;
      const invited = [];
      const ua = new UserAgent({
        uri: UserAgent.makeURI(aor), transportOptions: { server: url }, userAgentString: 'SIPjs-test', logLevel: 'warn',
        authorizationUsername: UserAgent.makeURI(aor).user, authorizationPassword: password,
        sessionDescriptionHandlerFactoryOptions: { iceGatheringTimeout: 2000 },
        delegate: { onInvite: (invitation) => invited.push(invitation) },
      });
      await ua.start();
      const registerer = new Registerer(ua, { expires: 600 });
      await within(10000, 'registration', new Promise((resolve, reject) => {
        registerer.register({ requestDelegate: { onAccept: resolve, onReject: (r) => reject(new Error(`REGISTER ${r.message.statusCode}`)) } }).catch(reject);
      }));
      const media = { sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } };
      let session;
      if (mode === 'call') {
        session = new Inviter(ua, UserAgent.makeURI(target), media);
      } else if (mode === 'answer' || mode === 'answer-wait') {
        console.log('READY');
        for (let i = 0; i < 300 && !invited.length; i++) await sleep(100);
        session = invited[0];
        if (!session) throw new Error('no incoming call within 30 s');
      } else {
        throw new Error(`SIP.js pages do not ${mode}`);
      }
      const established = new Promise((resolve, reject) => session.stateChange.addListener((state) => {
        if (state === SessionState.Established) resolve();
        if (state === SessionState.Terminated) reject(new Error('the call ended before it was answered'));
      }));
      const ended = new Promise((resolve) => session.stateChange.addListener((state) => { if (state === SessionState.Terminated) resolve({ reason: 'terminated' }); }));
      if (mode === 'call') await session.invite();
      else await session.accept(media);
      await within(15000, 'answer', established);
      const heard = await measure(session.sessionDescriptionHandler.peerConnection);
      let end;
      if (mode === 'answer') {
        await session.bye();
        end = await within(5000, 'end', ended);
      } else {
        end = await Promise.race([ended, sleep(15000).then(() => ({ reason: 'still up' }))]);
      }
      await registerer.unregister().catch(() => {});
      await ua.stop();
      return { ok: true, ...heard, ended: end };
    }

    const ua = new JsSIP.UA({ sockets: [new JsSIP.WebSocketInterface(url)], uri: aor, password, register: true, register_expires: 600, user_agent: 'JsSIP-test' });
    const registered = new Promise((resolve, reject) => {
      ua.on('registered', resolve);
      ua.on('registrationFailed', (e) => reject(new Error(`registration failed: ${e.cause}`)));
    });
    const incoming = new Promise((resolve) => ua.on('newRTCSession', (e) => { if (e.originator === 'remote') resolve(e.session); }));
    ua.start();
    await within(10000, 'registration', registered);
    let session;
    const calling = mode === 'call' || mode === 'call-hangup';
    if (calling) {
      session = ua.call(target, { mediaStream: stream, pcConfig: { iceServers: [] } });
    } else {
      console.log('READY');
      session = await within(30000, 'incoming call', incoming);
    }
    const ended = new Promise((resolve) => {
      session.on('ended', (e) => resolve({ reason: 'ended', originator: e.originator, cause: e.cause }));
      session.on('failed', (e) => resolve({ reason: 'failed', originator: e.originator, cause: e.cause }));
    });
    if (mode === 'ring') {
      const end = await Promise.race([ended, sleep(20000).then(() => ({ reason: 'still ringing' }))]);
      ua.stop();
      return { ok: true, rang: true, ended: end };
    }
    if (!calling) session.answer({ mediaStream: stream, pcConfig: { iceServers: [] } });
    await within(15000, 'confirmed call', Promise.race([
      new Promise((resolve) => { if (session.isEstablished()) resolve(); session.on('confirmed', resolve); }),
      ended.then((e) => { throw new Error(`call ${e.reason}: ${e.cause}`); }),
    ]));
    const heard = await measure(session.connection);
    console.log('IN CALL');
    let end;
    if (mode === 'call' || mode === 'answer-wait') {
      end = await Promise.race([ended, sleep(15000).then(() => ({ reason: 'still up' }))]);
    } else {
      session.terminate();
      end = await within(5000, 'end', ended);
    }
    ua.stop();
    return { ok: true, ...heard, ended: end };
  }, { library, url, aor, password, mode, target });
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(0);
