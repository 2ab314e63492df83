// The softphone's pure logic, with no DOM and no WebRTC: the call state and which controls it
// shows, the call history kept in localStorage, and the grading of call quality from getStats.
// Node runs its tests (tests/browser/phone_logic.test.mjs), so it imports nothing.

/** @typedef {'idle'|'calling'|'ringing'|'in_call'|'held'} PhoneState */

/** Which event moves the phone from which state, and where to. Anything else keeps the state. */
const TRANSITIONS = {
  idle: { dial: 'calling', incoming: 'ringing' },
  calling: { answered: 'in_call', ended: 'idle' },
  ringing: { answered: 'in_call', ended: 'idle' },
  in_call: { hold: 'held', ended: 'idle' },
  held: { resume: 'in_call', ended: 'idle' },
};

/** @param {PhoneState} state @param {string} event @returns {PhoneState} */
export function nextState(state, event) {
  return TRANSITIONS[state]?.[event] ?? state;
}

/** The controls the page enables in `state`. @param {PhoneState} state */
export function controlsFor(state) {
  const talking = state === 'in_call' || state === 'held';
  return {
    dial: state === 'idle',
    answer: state === 'ringing',
    decline: state === 'ringing',
    hangup: state === 'calling' || talking,
    hold: talking,
    mute: talking,
    keypadSendsDtmf: state === 'in_call',
  };
}

export const HISTORY_KEY = 'sipbridge.phone.history';
export const HISTORY_LIMIT = 50;

/**
 * @typedef {object} HistoryEntry
 * @property {'outgoing'|'incoming'} direction
 * @property {string} peer what to dial to call back (the target, or the caller's URI)
 * @property {string} [peerName] a caller's display name
 * @property {number} startedAt milliseconds since the epoch
 * @property {number} durationSec talking time; 0 when never answered
 * @property {string} endReason docs/signaling.md's hangup reason, or `declined` / `missed`
 */

/** The stored history, newest first; anything unreadable counts as empty. @param {string|null} text @returns {HistoryEntry[]} */
export function parseHistory(text) {
  let list;
  try { list = JSON.parse(text ?? '[]'); } catch { return []; }
  if (!Array.isArray(list)) return [];
  return list.filter((e) => e && (e.direction === 'outgoing' || e.direction === 'incoming')
    && typeof e.peer === 'string' && Number.isFinite(e.startedAt) && Number.isFinite(e.durationSec) && typeof e.endReason === 'string');
}

/** A new list with `entry` first, at most `limit` long. @param {HistoryEntry[]} list @param {HistoryEntry} entry */
export function addToHistory(list, entry, limit = HISTORY_LIMIT) {
  return [entry, ...list].slice(0, limit);
}

/** What a history row shows: the caller's name, else a SIP URI's user part, else the peer as dialled. @param {HistoryEntry} entry */
export function peerLabel(entry) {
  if (entry.peerName) return entry.peerName;
  const user = /^sips?:([^@;]+)@/i.exec(entry.peer)?.[1];
  if (!user) return entry.peer;
  try { return decodeURIComponent(user); } catch { return user; }
}

/** `m:ss`, or `h:mm:ss` from an hour on. @param {number} seconds */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const mmss = `${Math.floor((s % 3600) / 60)}:${String(s % 60).padStart(2, '0')}`;
  if (s < 3600) return mmss;
  return `${Math.floor(s / 3600)}:${mmss.padStart(5, '0')}`;
}

/** Human words for how a call ended. @param {string} reason */
export function describeEnd(reason) {
  const words = {
    local_hangup: 'you hung up', normal: 'they hung up', declined: 'declined', missed: 'missed', cancelled: 'missed',
    busy: 'busy', no_answer: 'no answer', answered_elsewhere: 'answered elsewhere', media_timeout: 'connection lost',
  };
  return words[reason] ?? reason.replace(/_/g, ' ');
}

/**
 * Loss, jitter and round-trip time from one getStats() report (its values as an array) and the
 * previous call's totals, so loss is measured over the last interval, not the whole call.
 * @param {any[]} stats @param {{received: number, lost: number}|null} previous
 */
export function summarizeStats(stats, previous) {
  let received = 0, lost = 0, jitterMs = null, rttMs = null;
  for (const s of stats) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      received += s.packetsReceived ?? 0;
      lost += Math.max(0, s.packetsLost ?? 0);
      if (typeof s.jitter === 'number') jitterMs = Math.max(jitterMs ?? 0, s.jitter * 1000);
    } else if (s.type === 'remote-inbound-rtp' && typeof s.roundTripTime === 'number') {
      rttMs = Math.max(rttMs ?? 0, s.roundTripTime * 1000);
    } else if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number' && rttMs === null) {
      rttMs = s.currentRoundTripTime * 1000;
    }
  }
  const newReceived = received - (previous?.received ?? 0);
  const newLost = lost - (previous?.lost ?? 0);
  const expected = newReceived + newLost;
  const lossPercent = expected > 0 ? (100 * Math.max(0, newLost)) / expected : null;
  return { lossPercent, jitterMs, rttMs, totals: { received, lost }, flowing: newReceived > 0 };
}

/**
 * good / fair / poor, after the usual VoIP budgets: under 1 % loss, 30 ms jitter and 150 ms
 * round trip sounds good; over 5 %, 60 ms or 400 ms sounds poor. Unknown figures do not count;
 * nothing known at all gives `unknown`.
 * @param {{lossPercent: number|null, jitterMs: number|null, rttMs: number|null}} figures
 * @returns {'good'|'fair'|'poor'|'unknown'}
 */
export function classifyQuality({ lossPercent, jitterMs, rttMs }) {
  const known = [lossPercent, jitterMs, rttMs].filter((v) => typeof v === 'number');
  if (!known.length) return 'unknown';
  const over = (value, limit) => typeof value === 'number' && value > limit;
  if (over(lossPercent, 5) || over(jitterMs, 60) || over(rttMs, 400)) return 'poor';
  if (over(lossPercent, 1) || over(jitterMs, 30) || over(rttMs, 150)) return 'fair';
  return 'good';
}

/** One line for the quality badge. @param {ReturnType<typeof summarizeStats>} figures */
export function describeQuality(figures) {
  const part = (value, unit, digits = 0) => (typeof value === 'number' ? `${value.toFixed(digits)}${unit}` : '?');
  return `loss ${part(figures.lossPercent, ' %', 1)} · jitter ${part(figures.jitterMs, ' ms')} · rtt ${part(figures.rttMs, ' ms')}`;
}

/** The stored device choice: `{microphone, speaker}` device ids, either possibly missing. @param {string|null} text */
export function parseDeviceChoice(text) {
  try {
    const value = JSON.parse(text ?? '{}');
    return { microphone: typeof value?.microphone === 'string' ? value.microphone : '', speaker: typeof value?.speaker === 'string' ? value.speaker : '' };
  } catch { return { microphone: '', speaker: '' }; }
}

/** The id to open: the remembered one if still plugged in, else the default (''). @param {string} remembered @param {{deviceId: string}[]} devices */
export function pickDevice(remembered, devices) {
  return devices.some((d) => d.deviceId === remembered) ? remembered : '';
}
