// The softphone page (phone.html) on sipbridge.js: login, dialling and answering, the ring, the
// microphone meter, devices, call quality and the call history. The decisions it takes live in
// phone_logic.mjs; the sound in phone_audio.js. No build step: the browser loads these as they are.
import { SipBridge } from '/sipbridge.js';
import {
  HISTORY_KEY, addToHistory, classifyQuality, controlsFor, describeEnd, describeQuality, formatDuration,
  nextState, parseDeviceChoice, parseHistory, peerLabel, pickDevice, summarizeStats,
} from '/phone_logic.mjs';
import { LevelMeter, Ringer, canChooseSpeaker, listDevices, openMicrophone } from '/phone_audio.js';

const DEVICES_KEY = 'sipbridge.phone.devices';
const $ = (id) => document.getElementById(id);

const phone = {
  /** @type {import('/sipbridge.js').Client|null} */ client: null,
  /** @type {import('/sipbridge.js').Call|null} */ call: null,
  /** @type {import('/phone_logic.mjs').PhoneState} */ state: 'idle',
  /** @type {MediaStream|null} */ microphone: null,
  /** What the history will say about the current call. */
  record: null,
  answeredAt: 0,
  muted: false,
  held: false,
  notified: false,
  /** @type {AudioContext|null} */ audio: null,
  /** @type {Ringer|null} */ ringer: null,
  /** @type {LevelMeter|null} */ meter: null,
  timers: { clock: null, quality: null },
};
// For people debugging the page, and for the tests: the live state, the ring, the call.
window.sipbridgePhone = phone;

const say = (text) => { $('status').textContent = text; };
function showError(error) {
  if (!error) { $('error').textContent = ''; return; }
  const friendly = { login_failed: 'Wrong user name or password.', connection_failed: 'Cannot reach the gateway.' }[error.code];
  $('error').textContent = friendly ? `${friendly} (${error.code})` : `${error.code ?? 'error'}: ${error.message ?? error}`;
}

/** One AudioContext for the ring and the meter, made on the user's first click (autoplay rules). */
function audioContext() {
  if (!phone.audio) {
    phone.audio = new AudioContext();
    phone.ringer = new Ringer(phone.audio);
    phone.meter = new LevelMeter(phone.audio, showLevel);
  }
  phone.audio.resume().catch(() => {});
  return phone.audio;
}

function showLevel(level) {
  $('meter').dataset.level = level.toFixed(3);
  $('meter').setAttribute('aria-valuenow', level.toFixed(2));
  $('meter-fill').style.width = `${Math.round(level * 100)}%`;
}

/* ---- state and controls ---- */

function move(event) {
  phone.state = nextState(phone.state, event);
  const controls = controlsFor(phone.state);
  $('call').disabled = !controls.dial;
  $('answer').disabled = !controls.answer;
  $('decline').disabled = !controls.decline;
  $('hangup').disabled = !controls.hangup;
  $('hold').disabled = !controls.hold;
  $('mute').disabled = !controls.mute;
  $('incoming').hidden = phone.state !== 'ringing';
  $('in-call').hidden = !['calling', 'in_call', 'held'].includes(phone.state);
  $('call-state').textContent = { calling: 'calling…', in_call: 'in call', held: 'on hold' }[phone.state] ?? '';
  document.body.dataset.state = phone.state;
}

function showConnected(connected) {
  $('login').hidden = connected;
  $('phone').hidden = !connected;
  $('logout').hidden = !connected;
  $('who').hidden = !connected;
}

/* ---- login ---- */

$('login').onsubmit = async (event) => {
  event.preventDefault();
  showError(null);
  audioContext();
  say('connecting');
  const token = $('token').value.trim();
  try {
    const url = location.origin.replace(/^http/, 'ws') + '/ws';
    const client = await SipBridge.connect(url, token ? { token } : { user: $('user').value.trim(), password: $('password').value });
    phone.client = client;
    client.on('state', (state) => clientState(client, state));
    client.on('error', (e) => {
      showError(e);
      // A reconnect the gateway refuses (password changed, token expired) never succeeds: stop
      // trying and show the login box again.
      if (['login_failed', 'token_expired', 'token_invalid'].includes(e.code)) client.close();
    });
    client.on('incoming', incoming);
    $('password').value = '';
    $('who').textContent = client.user;
    say(`connected as ${client.user}`);
    showConnected(true);
    move('none');
    await refreshDevices(true);
  } catch (e) {
    showError(e);
    say('disconnected');
  }
};

function clientState(client, state) {
  if (client !== phone.client) return;
  if (state === 'connected') { say(`connected as ${client.user}`); showConnected(true); return; }
  if (state === 'closed') { phone.client = null; phone.call?.hangup().catch(() => {}); say('disconnected'); showConnected(false); return; }
  say(state);
}

$('logout').onclick = () => { phone.call?.hangup().catch(() => {}); phone.client?.close(); };

/* ---- calls ---- */

$('dial').onsubmit = (event) => { event.preventDefault(); dial($('target').value.trim()); };

async function dial(target) {
  if (!target || !phone.client || phone.state !== 'idle') return;
  showError(null);
  audioContext();
  move('dial');
  say('calling');
  phone.record = { direction: 'outgoing', peer: target, startedAt: Date.now() };
  $('peer').textContent = target;
  try {
    const stream = await useMicrophone();
    attach(phone.client.call(target, { stream }));
  } catch (e) {
    showError(e);
    finish({ reason: 'failed' });
  }
}

function incoming(call) {
  if (phone.state !== 'idle') { call.reject('busy').catch(() => {}); return; }
  const from = call.caller?.display_name ? `${call.caller.display_name} (${call.caller.uri})` : call.caller?.uri ?? 'unknown caller';
  phone.record = { direction: 'incoming', peer: call.caller?.uri ?? '', peerName: call.caller?.display_name, startedAt: Date.now() };
  $('incoming-from').textContent = `Incoming call from ${from}`;
  $('peer').textContent = from;
  attach(call);
  move('incoming');
  say('incoming call');
  phone.ringer?.start().catch(() => {});
  if (typeof Notification !== 'undefined' && Notification.permission === 'granted') {
    const notice = new Notification('Incoming call', { body: from, tag: 'sipbridge-call' });
    notice.onclick = () => window.focus();
    call.on('ended', () => notice.close()).on('answered', () => notice.close());
    phone.notified = true;
  }
}

$('answer').onclick = async () => {
  const call = phone.call;
  if (!call) return;
  phone.ringer?.stop();
  try {
    await call.accept({ stream: await useMicrophone() });
  } catch (e) { showError(e); }
};

$('decline').onclick = async () => {
  const call = phone.call;
  if (!call) return;
  // reject() ends the call without an `ended` event: finish it here.
  finish({ reason: 'declined' });
  await call.reject('declined').catch(showError);
};

$('hangup').onclick = () => phone.call?.hangup().catch(showError);

function attach(call) {
  phone.call = call;
  call.on('track', (stream) => { $('remote').srcObject = stream; applySpeaker(); });
  call.on('ringing', () => { $('call-state').textContent = 'ringing…'; });
  call.on('answered', () => answered(call));
  call.on('ended', (info) => { if (phone.call === call) finish(info); });
  call.on('remote_hold', () => { $('call-state').textContent = 'held by the other side'; });
  call.on('remote_resume', () => move('none'));
}

function answered(call) {
  if (phone.call !== call) return;
  phone.ringer?.stop();
  phone.answeredAt = Date.now();
  move('answered');
  say('in call');
  const tick = () => { $('timer').textContent = formatDuration((Date.now() - phone.answeredAt) / 1000); };
  tick();
  phone.timers.clock = setInterval(tick, 500);
  let totals = null;
  const poll = async () => {
    const report = await call.getStats().catch(() => null);
    if (!report || phone.call !== call) return;
    const figures = summarizeStats([...report.values()], totals);
    totals = figures.totals;
    const grade = classifyQuality(figures);
    $('quality').dataset.grade = grade;
    $('quality').textContent = grade === 'unknown' ? 'quality …' : `quality: ${grade}`;
    $('quality').title = describeQuality(figures);
  };
  phone.timers.quality = setInterval(poll, 1000);
  poll();
}

/** The call is over, however it ended: history, sounds, controls. */
function finish(info) {
  const record = phone.record;
  if (record) {
    const talked = phone.answeredAt ? (Date.now() - phone.answeredAt) / 1000 : 0;
    const missed = record.direction === 'incoming' && !phone.answeredAt && info.reason !== 'declined';
    saveHistory(addToHistory(loadHistory(), { ...record, durationSec: Math.round(talked), endReason: missed ? 'missed' : info.reason }));
  }
  if (!['local_hangup', 'normal', 'declined', 'cancelled', 'answered_elsewhere'].includes(info.reason) && info.cause) showError({ code: info.reason, message: info.cause });
  phone.ringer?.stop();
  clearInterval(phone.timers.clock);
  clearInterval(phone.timers.quality);
  phone.meter?.detach();
  phone.microphone?.getTracks().forEach((t) => t.stop());
  Object.assign(phone, { call: null, record: null, microphone: null, answeredAt: 0, muted: false, held: false });
  $('mute').textContent = 'Mute';
  $('mute').setAttribute('aria-pressed', 'false');
  $('hold').textContent = 'Hold';
  $('timer').textContent = '0:00';
  $('quality').dataset.grade = 'unknown';
  $('quality').textContent = 'quality …';
  $('dtmf-sent').textContent = '';
  move('ended');
  if (phone.client) say(`call ended (${info.reason})`);
}

$('hold').onclick = async () => {
  const call = phone.call;
  if (!call) return;
  try {
    if (phone.held) await call.unhold(); else await call.hold();
    phone.held = !phone.held;
    move(phone.held ? 'hold' : 'resume');
    $('hold').textContent = phone.held ? 'Resume' : 'Hold';
  } catch (e) { showError(e); }
};

$('mute').onclick = () => {
  phone.muted = !phone.muted;
  phone.microphone?.getAudioTracks().forEach((t) => { t.enabled = !phone.muted; });
  $('mute').textContent = phone.muted ? 'Unmute' : 'Mute';
  $('mute').setAttribute('aria-pressed', String(phone.muted));
};

for (const key of '123456789*0#') {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = key;
  button.onclick = () => {
    if (controlsFor(phone.state).keypadSendsDtmf) {
      phone.call.dtmf(key).then(() => { $('dtmf-sent').textContent += key; }).catch(showError);
    } else if (phone.state === 'idle') {
      $('target').value += key;
    }
  };
  $('pad').append(button);
}

/* ---- devices ---- */

const deviceChoice = () => parseDeviceChoice(localStorage.getItem(DEVICES_KEY));
const rememberDevices = (change) => localStorage.setItem(DEVICES_KEY, JSON.stringify({ ...deviceChoice(), ...change }));

/** Opens the chosen microphone for a call and meters it. */
async function useMicrophone() {
  const stream = await openMicrophone($('microphone').value);
  phone.microphone = stream;
  phone.meter?.attach(stream);
  return stream;
}

/** Fills the device lists; `probe` opens the microphone once so that devices have names. */
async function refreshDevices(probe = false) {
  let { microphones, speakers } = await listDevices();
  if (probe && microphones.every((d) => !d.label)) {
    const stream = await openMicrophone('').catch(() => null);
    stream?.getTracks().forEach((t) => t.stop());
    ({ microphones, speakers } = await listDevices());
  }
  const choice = deviceChoice();
  fill($('microphone'), microphones, pickDevice(choice.microphone, microphones), 'Default microphone');
  const speakerChoice = canChooseSpeaker();
  fill($('speaker'), speakerChoice ? speakers : [], pickDevice(choice.speaker, speakers), 'Default speaker');
  $('speaker').disabled = !speakerChoice;
  $('speaker-note').hidden = speakerChoice;
  $('notify').hidden = typeof Notification === 'undefined' || Notification.permission !== 'default';
}

function fill(select, devices, chosen, defaultLabel) {
  select.replaceChildren(new Option(defaultLabel, ''));
  for (const [i, d] of devices.entries()) {
    if (d.deviceId === 'default' || !d.deviceId) continue;
    select.append(new Option(d.label || `${defaultLabel} ${i + 1}`, d.deviceId));
  }
  select.value = chosen;
}

$('microphone').onchange = async () => {
  rememberDevices({ microphone: $('microphone').value });
  const call = phone.call;
  if (!call || !phone.microphone) return;
  // Mid-call: send the new device's track instead, without renegotiating.
  try {
    const old = phone.microphone;
    const stream = await useMicrophone();
    const track = stream.getAudioTracks()[0];
    track.enabled = !phone.muted;
    await call.replaceTrack(track);
    old.getTracks().forEach((t) => t.stop());
  } catch (e) { showError(e); }
};

$('speaker').onchange = () => { rememberDevices({ speaker: $('speaker').value }); applySpeaker(); };

function applySpeaker() {
  if (!canChooseSpeaker()) return;
  $('remote').setSinkId($('speaker').value).catch(showError);
  phone.audio?.setSinkId?.($('speaker').value).catch(() => {});
}

navigator.mediaDevices?.addEventListener?.('devicechange', () => { if (phone.client) refreshDevices().catch(() => {}); });
$('notify').onclick = () => Notification.requestPermission().then(() => refreshDevices());

/* ---- history ---- */

const loadHistory = () => parseHistory(localStorage.getItem(HISTORY_KEY));
function saveHistory(list) {
  localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
  showHistory(list);
}

function showHistory(list) {
  const items = list.map((entry) => {
    const item = document.createElement('li');
    item.className = entry.direction + (['failed', 'missed', 'declined', 'busy', 'no_answer', 'media_timeout'].includes(entry.endReason) ? ' failed' : '');
    const arrow = document.createElement('span');
    arrow.textContent = entry.direction === 'incoming' ? '↙' : '↗';
    arrow.title = entry.direction;
    const redial = document.createElement('button');
    redial.className = 'redial';
    redial.textContent = peerLabel(entry);
    redial.title = `call ${entry.peer}`;
    redial.onclick = () => { $('target').value = entry.peer; dial(entry.peer); };
    const duration = document.createElement('span');
    duration.textContent = formatDuration(entry.durationSec);
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = `${new Date(entry.startedAt).toLocaleString()} · ${describeEnd(entry.endReason)}`;
    item.append(arrow, redial, duration, when);
    return item;
  });
  $('history').replaceChildren(...items);
  $('history-empty').hidden = list.length > 0;
}

$('clear-history').onclick = () => saveHistory([]);

showHistory(loadHistory());
move('none');
