// Unit tests of web/phone_logic.mjs (the softphone's pure logic), run with `node --test` by
// tests/browser_phone.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addToHistory, classifyQuality, controlsFor, describeEnd, describeQuality, formatDuration, nextState,
  parseDeviceChoice, parseHistory, peerLabel, pickDevice, summarizeStats,
} from '../../web/phone_logic.mjs';

test('the call state follows a whole outgoing and incoming call, ignoring events out of turn', () => {
  let state = 'idle';
  for (const [event, expected] of [['answered', 'idle'], ['dial', 'calling'], ['hold', 'calling'], ['answered', 'in_call'],
    ['hold', 'held'], ['incoming', 'held'], ['resume', 'in_call'], ['ended', 'idle'], ['incoming', 'ringing'], ['dial', 'ringing'], ['ended', 'idle']]) {
    state = nextState(state, event);
    assert.equal(state, expected, `after ${event}`);
  }
  assert.equal(nextState('nonsense', 'dial'), 'nonsense');
});

test('controls: answer and decline only while ringing, hold and mute only while talking', () => {
  assert.deepEqual(controlsFor('ringing'), { dial: false, answer: true, decline: true, hangup: false, hold: false, mute: false, keypadSendsDtmf: false });
  assert.equal(controlsFor('idle').dial, true);
  assert.equal(controlsFor('calling').hangup, true);
  assert.equal(controlsFor('held').hold, true);
  assert.equal(controlsFor('held').keypadSendsDtmf, false, 'digits are not sent on hold');
  assert.equal(controlsFor('in_call').keypadSendsDtmf, true);
});

test('history: newest first, bounded, and garbage in storage reads as empty', () => {
  const entry = (n) => ({ direction: 'outgoing', peer: `p${n}`, startedAt: n, durationSec: n, endReason: 'local_hangup' });
  let list = [];
  for (let n = 0; n < 5; n++) list = addToHistory(list, entry(n), 3);
  assert.deepEqual(list.map((e) => e.peer), ['p4', 'p3', 'p2']);
  assert.deepEqual(parseHistory(JSON.stringify(list)), list);
  assert.deepEqual(parseHistory('{not json'), []);
  assert.deepEqual(parseHistory('{"a":1}'), []);
  assert.deepEqual(parseHistory(null), []);
  assert.deepEqual(parseHistory(JSON.stringify([entry(1), { direction: 'sideways', peer: 'x', startedAt: 1, durationSec: 1, endReason: 'x' }, null])), [entry(1)]);
});

test('durations and end reasons read as people say them', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(65.9), '1:05');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(-3), '0:00');
  assert.equal(describeEnd('local_hangup'), 'you hung up');
  assert.equal(describeEnd('some_new_reason'), 'some new reason');
});

test('history rows name the caller, else the user part of a SIP URI, else what was dialled', () => {
  assert.equal(peerLabel({ peer: 'sip:+15550001111@127.0.0.1', peerName: 'Carrier Caller' }), 'Carrier Caller');
  assert.equal(peerLabel({ peer: 'sip:%2B15550003333@gw.example;transport=tcp' }), '+15550003333');
  assert.equal(peerLabel({ peer: 'sip:100%@gw.example' }), '100%', 'a stray % is shown as it is');
  assert.equal(peerLabel({ peer: 'echo' }), 'echo');
  assert.equal(peerLabel({ peer: 'sip:gw.example' }), 'sip:gw.example');
});

test('quality: loss over the last interval, the worst jitter and round trip, graded', () => {
  const report = (received, lost) => [
    { type: 'inbound-rtp', kind: 'audio', packetsReceived: received, packetsLost: lost, jitter: 0.004 },
    { type: 'remote-inbound-rtp', roundTripTime: 0.02 },
    { type: 'candidate-pair', nominated: true, currentRoundTripTime: 0.5 },
  ];
  const first = summarizeStats(report(100, 0), null);
  assert.deepEqual([first.lossPercent, first.jitterMs, first.rttMs, first.flowing], [0, 4, 20, true]);
  const second = summarizeStats(report(190, 10), first.totals);
  assert.equal(second.lossPercent, 10, '10 lost of 100 expected since the last report');
  assert.equal(classifyQuality(second), 'poor');
  const still = summarizeStats(report(190, 10), second.totals);
  assert.equal(still.lossPercent, null, 'no packets, no loss figure');
  assert.equal(still.flowing, false);
  const pairOnly = summarizeStats([{ type: 'candidate-pair', nominated: true, currentRoundTripTime: 0.2 }], null);
  assert.equal(pairOnly.rttMs, 200, 'the ICE round trip when RTCP gave none');
  assert.equal(classifyQuality({ lossPercent: 0.5, jitterMs: 10, rttMs: 40 }), 'good');
  assert.equal(classifyQuality({ lossPercent: 2, jitterMs: 10, rttMs: 40 }), 'fair');
  assert.equal(classifyQuality({ lossPercent: null, jitterMs: 45, rttMs: null }), 'fair');
  assert.equal(classifyQuality({ lossPercent: 0, jitterMs: 10, rttMs: 450 }), 'poor');
  assert.equal(classifyQuality({ lossPercent: null, jitterMs: null, rttMs: null }), 'unknown');
  assert.equal(describeQuality({ lossPercent: 1.25, jitterMs: 3.4, rttMs: null }), 'loss 1.3 % · jitter 3 ms · rtt ?');
});

test('devices: a remembered device is used while it is plugged in', () => {
  assert.deepEqual(parseDeviceChoice('{"microphone":"m1","speaker":7}'), { microphone: 'm1', speaker: '' });
  assert.deepEqual(parseDeviceChoice('nope'), { microphone: '', speaker: '' });
  assert.equal(pickDevice('m1', [{ deviceId: 'default' }, { deviceId: 'm1' }]), 'm1');
  assert.equal(pickDevice('gone', [{ deviceId: 'default' }]), '');
});
