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
//   MODE call-features: call TARGET, measure, then hold() (measuring what it hears while holding)
//                and unhold() (measuring the frequency again), send DTMF "123#" as RFC 2833 and
//                again as INFO, and hang up. Reports `holdLevel`, `resumedHz`, `sessionTimers`.
//   MODE answer-features: register, print READY, answer the next call, measure, then note what
//                the far end does until it hangs up (within 25 s): its hold (`holds`, the level
//                heard and the RTP packets sent while held, `resumedHz` after), its digits (`dtmf`,
//                from newDTMF; `infos` counts newInfo).
//   MODE call-refer: call TARGET, measure, then REFER the far end to SIP_WS_REFER_TO (env) and
//                wait for the gateway to end the call; reports the REFER's answer and NOTIFYs
//                (`refer`: 'accepted' for the 202, then trying/progress/accepted/failed with the
//                sipfrag status); when the transfer is refused, it hangs up itself a second later
//                (`stillUp` says whether the call was still up then).
//   MODE answer-refer: register, print READY, answer the next call, then as call-refer.
//   MODE call-cancel: call TARGET and cancel (terminate) as soon as it rings (JsSIP only).
//   MODE ring: register, print READY, let the next call ring until the far end gives up or
//                another device answers (reports `rang` and how the ringing ended; JsSIP only).
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
  result = await page.evaluate(async ({ library, url, aor, password, mode, target, referTo }) => {
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

    // What `pc` receives, measured on demand: the loudest frequency and the peak level over
    // `ms` (skipping the first `settle` ms), and the RTP packets sent meanwhile.
    const listen = async (pc) => {
      const track = pc.getReceivers().map((r) => r.track).find((t) => t && t.kind === 'audio');
      const remote = new MediaStream([track]);
      const audio = new Audio();
      audio.srcObject = remote;
      audio.muted = true;
      await audio.play().catch(() => {});
      const context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 8192;
      context.createMediaStreamSource(remote).connect(analyser);
      const bins = new Float32Array(analyser.frequencyBinCount);
      const samples = new Float32Array(analyser.fftSize);
      const sent = async () => {
        let found = 0;
        (await pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'audio') found = s.packetsSent; });
        return found;
      };
      return async (ms, settle = 400) => {
        await sleep(settle);
        const sentBefore = await sent();
        let best = { hz: 0, db: -Infinity };
        let level = 0;
        for (let t = 0; t < ms; t += 100) {
          await sleep(100);
          analyser.getFloatFrequencyData(bins);
          for (let b = 1; b < bins.length; b++) if (bins[b] > best.db) best = { hz: (b * context.sampleRate) / analyser.fftSize, db: bins[b] };
          analyser.getFloatTimeDomainData(samples);
          for (const x of samples) level = Math.max(level, Math.abs(x));
        }
        return { hz: best.hz, level, sent: (await sent()) - sentBefore };
      };
    };

    const ua = new JsSIP.UA({ sockets: [new JsSIP.WebSocketInterface(url)], uri: aor, password, register: true, register_expires: 600, user_agent: 'JsSIP-test' });
    const registered = new Promise((resolve, reject) => {
      ua.on('registered', resolve);
      ua.on('registrationFailed', (e) => reject(new Error(`registration failed: ${e.cause}`)));
    });
    const incoming = new Promise((resolve) => ua.on('newRTCSession', (e) => { if (e.originator === 'remote') resolve(e.session); }));
    ua.start();
    await within(10000, 'registration', registered);
    let session;
    const calling = mode.startsWith('call');
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
    if (mode === 'call-cancel' || mode === 'ring') {
      // The caller gives up once it rings: JsSIP cancels, or the far end does.
      if (mode === 'call-cancel') await within(10000, 'ringing', new Promise((resolve) => session.on('progress', resolve)));
      if (mode === 'call-cancel') session.terminate();
      const end = await within(20000, 'end of the ringing', ended);
      ua.stop();
      return { ok: true, rang: mode === 'ring', ended: end };
    }
    const events = { holds: [], dtmf: '', infos: 0 };
    session.on('hold', (e) => events.holds.push(`hold:${e.originator}`));
    session.on('unhold', (e) => events.holds.push(`unhold:${e.originator}`));
    session.on('newDTMF', (e) => { if (e.originator === 'remote') events.dtmf += e.dtmf.tone; });
    session.on('newInfo', (e) => { if (e.originator === 'remote') events.infos++; });
    // The far end's hold and resume, measured from the moment JsSIP reports them.
    let listening = null;
    const measured = {};
    // Held, the gateway stops sending once the answer reached it; audio sent before is still on
    // its way or in the jitter buffer: measure once packets stopped and the buffer ran dry, and
    // after the 800 ms the receiver's concealment takes to fade a steady tone out.
    const drained = async (pc) => {
      const audioIn = async () => {
        let found = {};
        (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') found = s; });
        return found;
      };
      let last = await audioIn();
      let concealedAtLastPacket = last.concealedSamples ?? 0;
      for (let i = 0, quiet = 0; i < 100; i++) {
        await sleep(50);
        const now = await audioIn();
        if (now.packetsReceived !== last.packetsReceived) [quiet, concealedAtLastPacket] = [0, now.concealedSamples ?? 0];
        else quiet++;
        last = now;
        if (quiet >= 6 && (now.concealedSamples ?? 0) > concealedAtLastPacket) return true;
      }
      return false;
    };
    session.on('hold', (e) => {
      if (e.originator === 'remote') measured.held = listening.then(async (over) => ({ drained: await drained(session.connection), ...(await over(1000, 800)) }));
    });
    session.on('unhold', (e) => { if (e.originator === 'remote') measured.resumed = listening.then((over) => over(1000)); });
    if (!calling) session.answer({ mediaStream: stream, pcConfig: { iceServers: [] } });
    await within(15000, 'confirmed call', Promise.race([
      new Promise((resolve) => { if (session.isEstablished()) resolve(); session.on('confirmed', resolve); }),
      ended.then((e) => { throw new Error(`call ${e.reason}: ${e.cause}`); }),
    ]));
    listening = listen(session.connection);
    const heard = await measure(session.connection);
    console.log('IN CALL');
    const timers = session._sessionTimers;
    const sessionTimers = { running: timers.running, expires: timers.currentExpires, refresher: timers.refresher };
    if (mode === 'call-features') {
      const over = await listening;
      await within(5000, 'hold', new Promise((resolve) => { if (!session.hold({}, resolve)) throw new Error('hold() refused'); }));
      const heldDrained = await drained(session.connection);
      const held = await over(1000, 800);
      await within(5000, 'unhold', new Promise((resolve) => { if (!session.unhold({}, resolve)) throw new Error('unhold() refused'); }));
      const resumed = await over(1000);
      session.sendDTMF('123#', { transportType: 'RFC2833', duration: 100, interToneGap: 150 });
      await sleep(1500);
      session.sendDTMF('123#', { transportType: 'INFO', duration: 100, interToneGap: 150 });
      await sleep(2500);
      session.terminate();
      const end = await within(5000, 'end', ended);
      ua.stop();
      return { ok: true, ...heard, ...events, heldDrained, holdLevel: held.level, resumedHz: resumed.hz, sessionTimers, ended: end };
    }
    if (mode === 'call-refer' || mode === 'answer-refer') {
      const refer = [];
      let refused;
      const failed = new Promise((resolve) => { refused = resolve; });
      const note = (what) => (e) => refer.push(e?.status_line ? `${what} ${e.status_line.status_code}` : what);
      session.refer(referTo, { eventHandlers: {
        requestSucceeded: note('202'), requestFailed: (e) => { refer.push(`refused ${e?.response?.status_code}`); refused(); },
        trying: note('trying'), progress: note('progress'), accepted: note('accepted'), failed: (e) => { note('failed')(e); refused(); },
      } });
      // A refused transfer leaves the call up: JsSIP checks that a second later and hangs up.
      let stillUp = null;
      failed.then(async () => {
        await sleep(1000);
        stillUp = session.isEstablished();
        session.terminate();
      });
      const end = await Promise.race([ended, sleep(15000).then(() => ({ reason: 'still up' }))]);
      ua.stop();
      return { ok: true, ...heard, refer, stillUp, ended: end };
    }
    if (mode === 'answer-features') {
      const end = await Promise.race([ended, sleep(25000).then(() => ({ reason: 'still up' }))]);
      const held = (await measured.held) ?? {};
      const resumed = (await measured.resumed) ?? {};
      ua.stop();
      return { ok: true, ...heard, ...events, heldDrained: held.drained, holdLevel: held.level, sentWhileHeld: held.sent, resumedHz: resumed.hz, sessionTimers, ended: end };
    }
    let end;
    if (mode === 'call' || mode === 'answer-wait') {
      end = await Promise.race([ended, sleep(15000).then(() => ({ reason: 'still up' }))]);
    } else {
      session.terminate();
      end = await within(5000, 'end', ended);
    }
    ua.stop();
    return { ok: true, ...heard, ended: end };
  }, { library, url, aor, password, mode, target, referTo: process.env.SIP_WS_REFER_TO ?? '' });
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(0);
