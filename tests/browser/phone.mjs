// Drives the softphone (web/phone.html) like a person on a phone-sized screen (390x844), in the
// browser launch.mjs picks. Prints `STEP incoming`, `STEP decline` and `STEP missed` when it
// waits for a call to alice (the test then has a trunk call it: answered, declined, given up by
// the caller), and one JSON line at the end with what the page showed at each step.
// Screenshots (measured pixel by pixel, see png.mjs) go to OUT_DIR.
// Usage: node phone.mjs BASE_URL USER PASSWORD OUT_DIR [MODE]
// MODE `walk` (default): wrong then right login, devices, a call to echo (tone, meter, mute,
// quality, hold, DTMF, a microphone switch), incoming calls, the history, a redial from it,
// logout, and a new visit that remembers the devices and the history.
// MODE `echo`: in a browser without setSinkId (removed before the page loads), log in, call
// echo, hear the tone, hang up.
// MODE `relogin`: log in, print `STEP connected`, and watch the page while the test restarts
// the gateway with another password.
import { launch, browserName } from './launch.mjs';
import { readPng, shareOfColour } from './png.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [baseUrl, user, password, outDir, mode = 'walk'] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const VIEWPORT = { width: 390, height: 844 };
const COLOURS = { meterGreen: [46, 125, 50], ringAmber: [255, 179, 0], incomingGreen: [46, 125, 50], failedRed: [198, 40, 40] };

const browser = await launch({ media: true, toneHz: 1000 });
const report = { ok: false, browser: browserName, mode };
const pageErrors = [];
let page;

/** Waits (bounded) for `test(arg)` to hold in the page. */
const until = (test, arg, timeout = 5000) => page.waitForFunction(test, arg, { timeout, polling: 100 });
const state = () => page.evaluate(() => document.body.dataset.state);
const waitState = (wanted, timeout = 10000) => until((s) => document.body.dataset.state === s, wanted, timeout);

/** The loudest frequency the remote <audio> plays over `ms` (an FFT of 8192 points). */
const remotePeakHz = (ms = 1500) => page.evaluate(async (ms) => {
  const stream = document.getElementById('remote').srcObject;
  if (!stream) return 0;
  const context = new AudioContext();
  await context.resume();
  const analyser = context.createAnalyser();
  analyser.fftSize = 8192;
  context.createMediaStreamSource(stream).connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  let best = { hz: 0, db: -Infinity };
  for (let t = 0; t < ms; t += 100) {
    await new Promise((r) => setTimeout(r, 100));
    analyser.getFloatFrequencyData(bins);
    for (let b = 1; b < bins.length; b++) if (bins[b] > best.db) best = { hz: (b * context.sampleRate) / analyser.fftSize, db: bins[b] };
  }
  await context.close();
  return best.hz;
}, ms);

const level = () => page.evaluate(() => Number(document.getElementById('meter').dataset.level));
const box = async (selector) => (await page.locator(selector).first().boundingBox()) ?? { x: 0, y: 0, width: 0, height: 0 };

async function shoot(name, regions) {
  const path = join(outDir, `${name}.png`);
  const boxes = {};
  for (const [key, selector] of Object.entries(regions)) boxes[key] = await box(selector);
  await page.screenshot({ path });
  const image = readPng(path);
  return { path, width: image.width, height: image.height, boxes, image };
}

async function login() {
  await page.fill('#user', user);
  await page.fill('#password', 'not-the-password');
  await page.click('#connect');
  await until(() => document.getElementById('error').textContent.length > 0);
  report.badLogin = await page.textContent('#error');
  report.loginShownAfterBadLogin = await page.isVisible('#login');
  await page.fill('#password', password);
  await page.click('#connect');
  await until(() => document.getElementById('status').textContent.startsWith('connected'));
  report.connected = await page.textContent('#status');
  report.loginHiddenWhenConnected = !(await page.isVisible('#login'));
  // Nothing sticks out sideways on a phone.
  report.pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  report.errorAfterLogin = await page.textContent('#error');
}

async function callEcho() {
  await page.click('#call');
  await waitState('in_call');
  await until(() => document.getElementById('remote').srcObject !== null);
  report.peakHz = await remotePeakHz();
}

async function hangUp() {
  await page.click('#hangup');
  await waitState('idle');
}

async function devices() {
  report.microphones = await page.$$eval('#microphone option', (o) => o.map((x) => x.textContent));
  report.speakers = await page.$$eval('#speaker option', (o) => o.map((x) => x.textContent));
  report.speakerChoice = !(await page.isDisabled('#speaker'));
  report.notifyButtonShown = await page.isVisible('#notify');
  // The last microphone named in the list (Chromium: Fake Audio Input 2 is last; pick the one before).
  const named = report.microphones.slice(1);
  report.chosenMicrophone = named.length > 1 ? named[named.length - 2] : named[0];
  await page.selectOption('#microphone', { label: report.chosenMicrophone });
  if (report.speakerChoice) {
    report.chosenSpeaker = report.speakers.at(-1);
    await page.selectOption('#speaker', { label: report.chosenSpeaker });
  }
  report.storedDevices = await page.evaluate(() => JSON.parse(localStorage.getItem('sipbridge.phone.devices')));
}

async function echoCall() {
  await callEcho();
  report.trackLabel = await page.evaluate(() => window.sipbridgePhone.call.pc.getSenders().find((s) => s.track)?.track.label);
  report.sinkId = await page.evaluate(() => document.getElementById('remote').sinkId ?? null);
  report.chosenSpeakerId = await page.inputValue('#speaker');
  await until(() => Number(document.getElementById('meter').dataset.level) > 0.1);
  report.levelBeforeShot = await level();
  const shot = await shoot('phone-in-call', { meter: '#meter' });
  report.levelAfterShot = await level();
  report.inCallShot = { width: shot.width, height: shot.height, meter: shot.boxes.meter,
    meterGreenShare: shareOfColour(shot.image, shot.boxes.meter, COLOURS.meterGreen) };
  // Graded, with loss, jitter and round trip all known (the first reading may lack the loss).
  await until(() => document.getElementById('quality').dataset.grade !== 'unknown' && !document.getElementById('quality').title.includes('?'));
  report.quality = await page.evaluate(() => ({ grade: document.getElementById('quality').dataset.grade, text: document.getElementById('quality').textContent, figures: document.getElementById('quality').title }));
  await page.click('#mute');
  await until(() => Number(document.getElementById('meter').dataset.level) === 0);
  report.levelMuted = await level();
  report.muteButton = await page.textContent('#mute');
  await page.click('#mute');
  await until(() => Number(document.getElementById('meter').dataset.level) > 0.1);
  report.levelUnmuted = await level();
  await page.click('#hold');
  await waitState('held');
  report.holdButton = await page.textContent('#hold');
  report.callStateHeld = await page.textContent('#call-state');
  await page.click('#hold');
  await waitState('in_call');
  report.resumeButton = await page.textContent('#hold');
  await page.click('#pad button:first-child');
  await until(() => document.getElementById('dtmf-sent').textContent === '1');
  report.dtmfSent = await page.textContent('#dtmf-sent');
  // Another microphone mid-call (the last other named one; Firefox has one, so its default
  // entry): the new track replaces the one being sent.
  const others = report.microphones.filter((m) => m !== report.chosenMicrophone);
  report.switchedTo = others.at(-1);
  const sentTrack = () => page.evaluate(() => window.sipbridgePhone.call.pc.getSenders().find((s) => s.track)?.track.id);
  report.trackReplaced = false;
  const before = await sentTrack();
  await page.selectOption('#microphone', { label: report.switchedTo });
  await until((old) => {
    const sent = window.sipbridgePhone.call.pc.getSenders().find((s) => s.track)?.track;
    return sent && sent.id !== old && sent.id === window.sipbridgePhone.microphone.getAudioTracks()[0].id && sent.readyState === 'live';
  }, before);
  report.trackReplaced = true;
  report.trackLabelAfterSwitch = await page.evaluate(() => window.sipbridgePhone.call.pc.getSenders().find((s) => s.track)?.track.label);
  report.peakHzAfterSwitch = await remotePeakHz(1000);
  report.timer = await page.textContent('#timer');
  await hangUp();
  report.ended = await page.textContent('#status');
}

async function incomingCall() {
  console.log('STEP incoming');
  await until(() => !document.getElementById('incoming').hidden, null, 20000);
  report.incomingFrom = await page.textContent('#incoming-from');
  report.statusRinging = await page.textContent('#status');
  await until(() => window.sipbridgePhone.ringer.playing && window.sipbridgePhone.ringer.peakHz() > 0, null, 3000);
  report.ring = await page.evaluate(() => ({ playing: window.sipbridgePhone.ringer.playing, peakHz: window.sipbridgePhone.ringer.peakHz(), notified: window.sipbridgePhone.notified }));
  const shot = await shoot('phone-ringing', { banner: '#incoming' });
  report.ringingShot = { width: shot.width, height: shot.height, banner: shot.boxes.banner,
    bannerAmberShare: shareOfColour(shot.image, shot.boxes.banner, COLOURS.ringAmber) };
  await page.click('#answer');
  await waitState('in_call');
  report.ringAfterAnswer = await page.evaluate(() => window.sipbridgePhone.ringer.playing);
  report.incomingVisibleAfterAnswer = await page.isVisible('#incoming');
  await until(() => document.getElementById('timer').textContent !== '0:00', null, 3000);
  await hangUp();
  // A second call, declined: the trunk hears 603, the ring stops, the history says so.
  console.log('STEP decline');
  await until(() => !document.getElementById('incoming').hidden, null, 20000);
  report.secondIncomingFrom = await page.textContent('#incoming-from');
  await page.click('#decline');
  await waitState('idle');
  report.ringAfterDecline = await page.evaluate(() => window.sipbridgePhone.ringer.playing);
  report.incomingVisibleAfterDecline = await page.isVisible('#incoming');
  // A third, which the caller gives up while it rings: a missed call.
  console.log('STEP missed');
  await until(() => !document.getElementById('incoming').hidden, null, 20000);
  report.thirdIncomingFrom = await page.textContent('#incoming-from');
  await waitState('idle');
  report.ringAfterCancel = await page.evaluate(() => window.sipbridgePhone.ringer.playing);
  report.incomingVisibleAfterCancel = await page.isVisible('#incoming');
}

async function history() {
  await page.locator('#history-card').scrollIntoViewIfNeeded();
  report.history = await page.$$eval('#history li', (items) => items.map((li) => ({ className: li.className, text: li.textContent })));
  report.storedHistory = await page.evaluate(() => JSON.parse(localStorage.getItem('sipbridge.phone.history')));
  const rows = await page.locator('#history li').all();
  const borders = [];
  const shot = await shoot('phone-history', { card: '#history-card' });
  // The left border of a row says how the call went: red missed or declined, green answered.
  for (const [row, colour] of [[rows[0], COLOURS.failedRed], [rows[2], COLOURS.incomingGreen]]) {
    const b = await row?.boundingBox();
    borders.push(b ? shareOfColour(shot.image, { x: b.x, y: b.y + 2, width: 5, height: b.height - 4 }, colour) : 0);
  }
  report.historyShot = { width: shot.width, height: shot.height, card: shot.boxes.card, missedRowRedBorder: borders[0], answeredRowGreenBorder: borders[1] };
  // Click-to-redial: the outgoing call to echo, from its history entry.
  await page.locator('#history li.outgoing .redial').first().click();
  await waitState('in_call');
  report.redialTarget = await page.inputValue('#target');
  report.redialPeakHz = await remotePeakHz(1000);
  await hangUp();
  report.historyAfterRedial = await page.locator('#history li').count();
}

try {
  const context = await browser.newContext({ viewport: VIEWPORT, ignoreHTTPSErrors: baseUrl.startsWith('https:') });
  if (browserName === 'chromium') await context.grantPermissions(['notifications'], { origin: baseUrl });
  if (mode === 'echo') await context.addInitScript(() => { delete HTMLMediaElement.prototype.setSinkId; });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${baseUrl}/`);
  await login();
  if (mode === 'echo') {
    report.speakerChoice = !(await page.isDisabled('#speaker'));
    report.speakerNoteShown = await page.isVisible('#speaker-note');
    await callEcho();
    await hangUp();
    report.ended = await page.textContent('#status');
  } else if (mode === 'relogin') {
    // The test restarts the gateway with another password for this user: the page reconnects,
    // is refused, and asks for the login again.
    console.log('STEP connected');
    await until(() => document.getElementById('status').textContent === 'reconnecting', null, 10000);
    report.phoneShownWhileReconnecting = await page.isVisible('#phone');
    report.loginShownWhileReconnecting = await page.isVisible('#login');
    await until(() => !document.getElementById('login').hidden, null, 20000);
    report.loginShownAfterRefusal = true;
    report.phoneHiddenAfterRefusal = !(await page.isVisible('#phone'));
    report.statusAfterRefusal = await page.textContent('#status');
  } else {
    await devices();
    await echoCall();
    await incomingCall();
    await history();
    await page.click('#logout');
    await until(() => !document.getElementById('login').hidden);
    report.loginShownAfterLogout = await page.isVisible('#login');
    report.phoneHiddenAfterLogout = !(await page.isVisible('#phone'));
    // A new visit remembers the devices and the history.
    await page.reload();
    await page.fill('#user', user);
    await page.fill('#password', password);
    await page.click('#connect');
    await until(() => document.getElementById('status').textContent.startsWith('connected'));
    report.afterReload = await page.evaluate(() => {
      const chosen = (id) => { const select = document.getElementById(id); return select.selectedOptions[0]?.textContent; };
      return { microphone: chosen('microphone'), speaker: chosen('speaker'), history: document.querySelectorAll('#history li').length };
    });
  }
  report.error = await page.textContent('#error');
  report.ok = true;
} catch (e) {
  report.failure = String(e);
  report.stateAtFailure = await state().catch(() => null);
  report.errorShown = await page?.textContent('#error').catch(() => null);
  await page?.screenshot({ path: join(outDir, 'phone-failure.png'), fullPage: true }).catch(() => {});
} finally {
  report.pageErrors = pageErrors;
  await browser.close();
}
console.log(JSON.stringify(report));
