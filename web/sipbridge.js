// sipbridge.js: a dependency-free browser client for the sipbridge signaling protocol v1
// (docs/signaling.md). Plain ES module, typed with JSDoc.
//
//   const c = await SipBridge.connect('wss://gw.example.com/ws', { token });
//   const call = c.call('echo', { stream });
//   call.on('answered', () => ...); call.hangup();
//   c.on('incoming', call => call.accept({ stream }));

/**
 * @typedef {object} ConnectOptions
 * @property {string} [token] a JWT from your backend (login method `token`)
 * @property {string} [user] with `password`: a local user of the gateway (method `password`)
 * @property {string} [password]
 * @property {boolean} [reconnect] reconnect and reclaim answered calls when the WebSocket drops (default true)
 * @property {RTCIceServer[]} [iceServers] the page's own STUN/TURN servers, used together with the gateway's
 * @property {RTCIceTransportPolicy} [iceTransportPolicy] `'relay'` to send media only through TURN (default `'all'`)
 * @property {string[]} [codecs] audio codecs the browser offers or accepts, in order of preference, e.g. `['opus', 'PCMU']`
 * @property {number} [keepaliveMs] send a `ping` after this long without sending anything, so proxies keep a quiet connection open (default 25000; 0 never)
 */
/**
 * @typedef {object} CallOptions
 * @property {MediaStream} [stream] the microphone; without it the call only receives
 * @property {string} [codec] force this codec on the SIP side (docs/signaling.md §4.4)
 * @property {RTCIceTransportPolicy} [iceTransportPolicy] overrides the client's for this call
 * @property {string[]} [codecs] overrides the client's for this call
 */

const PROTOCOL_VERSION = 1;
const REQUEST_TIMEOUT_MS = 15000;
const KEEPALIVE_MS = 25000;

/** A tiny event emitter: `on(name, fn)`, `off(name, fn)`. */
class Emitter {
  constructor() { /** @type {Map<string, Set<Function>>} */ this._handlers = new Map(); }
  /** @param {string} name @param {Function} fn */
  on(name, fn) {
    if (!this._handlers.has(name)) this._handlers.set(name, new Set());
    this._handlers.get(name).add(fn);
    return this;
  }
  /** @param {string} name @param {Function} fn */
  off(name, fn) { this._handlers.get(name)?.delete(fn); return this; }
  /** @param {string} name @param {...any} args */
  emit(name, ...args) {
    for (const fn of this._handlers.get(name) ?? []) {
      try { fn(...args); } catch (e) { console.error(`sipbridge: '${name}' handler failed`, e); }
    }
  }
}

/** An error the gateway answered with: `code` is one of docs/signaling.md's error codes. */
export class SipBridgeError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) { super(message); this.name = 'SipBridgeError'; this.code = code; }
}

/** One call, outgoing or incoming. Events: ringing({earlyMedia}), answered, ended({reason, cause}), track(MediaStream). */
export class Call extends Emitter {
  /** @param {Client} client @param {string|null} id @param {'outgoing'|'incoming'} direction */
  constructor(client, id, direction) {
    super();
    this.client = client;
    /** @type {string|null} */ this.id = id;
    this.direction = direction;
    /** @type {{uri: string, display_name?: string}|null} */ this.caller = null;
    /** @type {RTCPeerConnection|null} */ this.pc = null;
    /** @type {MediaStream|null} */ this.remoteStream = null;
    this.state = 'new';
    /** Candidates from the gateway that arrived before the remote description. */
    this._pendingRemote = [];
    /** Our candidates gathered before the call had an id. */
    this._pendingLocal = [];
  }

  /** Throws what the browser throws, e.g. for an ICE server it refuses. @param {CallOptions} options */
  _createPeerConnection(options) {
    const client = this.client;
    const iceTransportPolicy = options.iceTransportPolicy ?? client.options.iceTransportPolicy ?? 'all';
    const pc = new RTCPeerConnection({ iceServers: client.iceServers, iceTransportPolicy });
    this.pc = pc;
    this._codecs = options.codecs ?? client.options.codecs;
    const stream = options.stream;
    if (stream) for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    else pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (event) => {
      this.remoteStream = event.streams[0] ?? new MediaStream([event.track]);
      this.emit('track', this.remoteStream);
    };
    pc.onicecandidate = (event) => {
      // hangup() and reject() mark the call ended before the gateway answers them: a candidate
      // gathered meanwhile would reach a call the gateway has dropped (`unknown_call`).
      if (this.state === 'ended') return;
      const candidate = event.candidate ? event.candidate.toJSON() : null;
      if (this.id) this.client._send({ type: 'candidate', call_id: this.id, candidate });
      else this._pendingLocal.push(candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') this.emit('media_failed');
    };
    return pc;
  }

  async _setRemote(/** @type {RTCSessionDescriptionInit} */ description) {
    if (!this.pc) return;
    await this.pc.setRemoteDescription(description);
    for (const candidate of this._pendingRemote.splice(0)) await this._addRemoteCandidate(candidate);
  }

  /** `answered` repeats the SDP an early-media `ringing` already applied; a second answer would fail. */
  async _setRemoteAnswerOnce(/** @type {string} */ sdp) {
    if (!this.pc || this.pc.remoteDescription) return;
    await this._setRemote({ type: 'answer', sdp });
  }

  async _addRemoteCandidate(/** @type {RTCIceCandidateInit|null} */ candidate) {
    if (!this.pc || !this.pc.remoteDescription) { this._pendingRemote.push(candidate); return; }
    try { await this.pc.addIceCandidate(candidate ?? undefined); } catch (e) { console.warn('sipbridge: bad candidate', e); }
  }

  /** Orders (and limits) the codecs of every audio transceiver, where the browser can. */
  _applyCodecPreferences() {
    if (!this._codecs?.length || typeof RTCRtpReceiver.getCapabilities !== 'function') return;
    const available = RTCRtpReceiver.getCapabilities('audio')?.codecs ?? [];
    const wanted = this._codecs.map((name) => `audio/${name}`.toLowerCase());
    const rank = (codec) => wanted.indexOf(codec.mimeType.toLowerCase());
    const chosen = available.filter((codec) => rank(codec) >= 0).sort((a, b) => rank(a) - rank(b));
    // DTMF always stays possible.
    const preferences = [...chosen, ...available.filter((codec) => codec.mimeType.toLowerCase() === 'audio/telephone-event')];
    if (!chosen.length) throw new SipBridgeError('bad_request', `this browser has none of the codecs ${this._codecs.join(', ')}`);
    for (const transceiver of this.pc?.getTransceivers() ?? []) {
      if (typeof transceiver.setCodecPreferences === 'function' && transceiver.receiver.track?.kind === 'audio') transceiver.setCodecPreferences(preferences);
    }
  }

  _flushLocalCandidates() {
    if (this.state === 'ended') { this._pendingLocal = []; return; }
    for (const candidate of this._pendingLocal.splice(0)) this.client._send({ type: 'candidate', call_id: this.id, candidate });
  }

  /** Answer an incoming call. @param {CallOptions} [options] */
  async accept(options = {}) {
    if (this.direction !== 'incoming' || this.state !== 'ringing') throw new SipBridgeError('bad_request', 'only a ringing incoming call can be accepted');
    let pc = this.pc;
    try {
      pc = pc ?? this._createPeerConnection(options);
    } catch (e) {
      // The caller must not ring on: refuse the call, and end it here as any failure does.
      this.client._request({ type: 'reject', call_id: this.id, reason: 'declined' }).catch(() => {});
      this._ended({ reason: 'failed', cause: `the browser refused the peer connection: ${e.message}` });
      throw new SipBridgeError('failed', e.message);
    }
    await this._setRemote({ type: 'offer', sdp: this._offer });
    this._applyCodecPreferences();
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await this.client._request({ type: 'accept', call_id: this.id, sdp: pc.localDescription?.sdp ?? answer.sdp });
    this._flushLocalCandidates();
    this.state = 'answered';
    this.emit('answered');
  }

  /** Refuse an incoming call. @param {'busy'|'declined'} [reason] */
  async reject(reason = 'declined') {
    this.state = 'ended';
    await this.client._request({ type: 'reject', call_id: this.id, reason });
    this._close();
  }

  async hangup() {
    if (this.state === 'ended') return;
    this.state = 'ended';
    if (this.id) await this.client._request({ type: 'hangup', call_id: this.id }).catch(() => {});
    this._ended({ reason: 'local_hangup', cause: 'normal' });
  }

  /** Send DTMF digits (0-9 * # A-D). @param {string} digits */
  async dtmf(digits) { await this.client._request({ type: 'dtmf', call_id: this.id, digits }); }
  async hold() { await this.client._request({ type: 'hold', call_id: this.id }); this.emit('held'); }
  /** Blind transfer: the far end is asked to call `target` instead; resolves once it accepts. @param {string} target */
  async transfer(target) { await this.client._request({ type: 'transfer', call_id: this.id, target }); this.emit('transferring', target); }
  async unhold() { await this.client._request({ type: 'unhold', call_id: this.id }); this.emit('resumed'); }

  /** The call's WebRTC statistics (RTCPeerConnection.getStats), or null before it has a peer connection. @returns {Promise<RTCStatsReport|null>} */
  async getStats() { return this.pc ? this.pc.getStats() : null; }

  /**
   * Sends `track` instead of the current microphone (e.g. another device chosen mid-call), without
   * renegotiating. The old track is left to the page to stop. @param {MediaStreamTrack} track
   */
  async replaceTrack(track) {
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === 'audio');
    if (!sender) throw new SipBridgeError('bad_request', 'this call sends no audio to replace');
    await sender.replaceTrack(track);
  }

  /** Ends the call once: a page sees one `ended`, however many ways the end arrives. */
  _ended(/** @type {{reason: string, cause?: string}} */ info) {
    if (this._finished) return;
    this._finished = true;
    this.state = 'ended';
    this._pendingLocal = [];
    this._close();
    this.client._calls.delete(this.id);
    this.emit('ended', info);
  }

  _close() { try { this.pc?.close(); } catch { /* already closed */ } }
}

/** A connection to the gateway. Events: incoming(Call), state('connecting'|'connected'|'reconnecting'|'closed'), error(SipBridgeError). */
export class Client extends Emitter {
  /** @param {string} url @param {ConnectOptions} options */
  constructor(url, options) {
    super();
    this.url = url;
    this.options = { reconnect: true, keepaliveMs: KEEPALIVE_MS, ...options };
    /** The page's own servers, then the gateway's from the last login reply. @type {RTCIceServer[]} */
    this.iceServers = options.iceServers ?? [];
    /** @type {Map<string, Call>} */ this._calls = new Map();
    /** @type {Map<number, {resolve: Function, reject: Function, timer: any}>} */ this._pending = new Map();
    this._nextId = 1;
    this._closedByUser = false;
    this._retry = 0;
    /** @type {WebSocket|null} */ this.ws = null;
    this.user = null;
    /** Milliseconds from the last keep-alive `ping` to its `pong`, or null before the first. */
    this.roundTripMs = null;
    this._lastSentAt = 0;
    this._keepalive = null;
  }

  async _open() {
    this.emit('state', this._retry ? 'reconnecting' : 'connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new SipBridgeError('connection_failed', `cannot reach ${this.url}`));
    });
    ws.onmessage = (event) => this._receive(event.data);
    ws.onclose = () => this._lost();
    await this._request({ type: 'hello', versions: [PROTOCOL_VERSION] });
    const login = this.options.token
      ? { type: 'login', method: 'token', token: this.options.token }
      : { type: 'login', method: 'password', user: this.options.user, password: this.options.password };
    const reply = await this._request(login);
    this.user = reply.user;
    // Each login brings fresh TURN credentials: they replace the last login's, never the page's.
    this.iceServers = [...(this.options.iceServers ?? []), ...(reply.ice_servers ?? [])];
    this._retry = 0;
    this._startKeepalive();
    this.emit('state', 'connected');
    // Answered calls survive a dropped connection for the gateway's grace period: take them back.
    for (const call of this._calls.values()) {
      if (call.state !== 'answered') continue;
      this._request({ type: 'reclaim', call_id: call.id })
        .then(() => call.emit('reclaimed'))
        .catch(() => call._ended({ reason: 'failed', cause: 'the call could not be reclaimed after a reconnect' }));
    }
  }

  /** A `ping` once the connection has been quiet for `keepaliveMs` (docs/signaling.md §10). */
  _startKeepalive() {
    clearInterval(this._keepalive);
    const quietMs = this.options.keepaliveMs;
    if (!quietMs) return;
    this._keepalive = setInterval(() => {
      if (Date.now() - this._lastSentAt < quietMs) return;
      const sentAt = performance.now();
      this._request({ type: 'ping' })
        .then(() => { this.roundTripMs = performance.now() - sentAt; this.emit('pong', this.roundTripMs); })
        .catch(() => { /* a dropped connection is handled by onclose */ });
    }, Math.max(50, Math.min(5000, quietMs / 5)));
  }

  _lost() {
    clearInterval(this._keepalive);
    for (const { reject, timer } of this._pending.values()) { clearTimeout(timer); reject(new SipBridgeError('connection_lost', 'the connection to the gateway dropped')); }
    this._pending.clear();
    if (this._closedByUser || !this.options.reconnect) { this.emit('state', 'closed'); return; }
    // Back off 0.5 s, 1 s, 2 s ... up to 10 s, each wait cut by up to half at random so that the
    // pages a gateway restart dropped do not all come back at once; answered calls are reclaimed
    // once logged in again.
    const ceiling = Math.min(10000, 500 * 2 ** this._retry++);
    const delay = ceiling * (0.5 + Math.random() / 2);
    this.emit('state', 'reconnecting');
    setTimeout(() => this._open().catch((e) => { this.emit('error', e); this._lost(); }), delay);
  }

  /** @param {object} message */
  _send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify(message));
    this._lastSentAt = Date.now();
  }

  /** @param {object} message @returns {Promise<any>} */
  _request(message) {
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this._pending.delete(id); reject(new SipBridgeError('timeout', `no reply to ${message.type}`)); }, REQUEST_TIMEOUT_MS);
      this._pending.set(id, { resolve, reject, timer });
      this._send({ ...message, id });
    });
  }

  /** @param {string} text */
  _receive(text) {
    let message;
    try { message = JSON.parse(text); } catch { return; }
    if (message.id !== undefined && this._pending.has(message.id)) {
      const { resolve, reject, timer } = this._pending.get(message.id);
      clearTimeout(timer);
      this._pending.delete(message.id);
      if (message.type === 'error') reject(new SipBridgeError(message.code, message.message));
      else resolve(message);
      return;
    }
    this._event(message).catch((e) => this.emit('error', e));
  }

  async _event(/** @type {any} */ message) {
    const call = message.call_id ? this._calls.get(message.call_id) : undefined;
    switch (message.type) {
      case 'incoming': {
        const incoming = new Call(this, message.call_id, 'incoming');
        incoming.caller = message.caller;
        incoming._offer = message.sdp;
        incoming.state = 'ringing';
        this._calls.set(message.call_id, incoming);
        this.emit('incoming', incoming);
        break;
      }
      case 'ringing':
        // With `sdp` the far end plays early media (ringback, announcements): apply the answer now.
        if (call && message.sdp) await call._setRemoteAnswerOnce(message.sdp);
        if (call?.state === 'new') call.state = 'ringing';
        call?.emit('ringing', { earlyMedia: Boolean(message.sdp) });
        break;
      case 'answered':
        if (call) { if (message.sdp) await call._setRemoteAnswerOnce(message.sdp); call.state = 'answered'; call.emit('answered'); }
        break;
      case 'candidate': await call?._addRemoteCandidate(message.candidate); break;
      case 'hangup': call?._ended({ reason: message.reason, cause: message.cause }); break;
      case 'dtmf': call?.emit('dtmf', { digit: message.digit, durationMs: message.duration_ms }); break;
      case 'remote_hold': call?.emit(message.on_hold ? 'remote_hold' : 'remote_resume'); break;
      case 'error': this.emit('error', new SipBridgeError(message.code, message.message)); break;
      default: break;
    }
  }

  /** Place a call. @param {string} target @param {CallOptions} [options] @returns {Call} */
  call(target, options = {}) {
    const call = new Call(this, null, 'outgoing');
    let pc;
    try {
      pc = call._createPeerConnection(options);
    } catch (e) {
      // Pages attach their handlers after call() returns: end the call once they have.
      setTimeout(() => call._ended({ reason: 'failed', cause: `the browser refused the peer connection: ${e.message}` }), 0);
      return call;
    }
    (async () => {
      call._applyCodecPreferences();
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const request = { type: 'call', target, sdp: pc.localDescription?.sdp ?? offer.sdp };
      if (options.codec) request.codec = options.codec;
      const reply = await this._request(request);
      call.id = reply.call_id;
      // Hung up while the request was in flight: the gateway has the call now, end it there.
      if (call.state === 'ended') { this._request({ type: 'hangup', call_id: call.id }).catch(() => {}); return; }
      this._calls.set(call.id, call);
      call._flushLocalCandidates();
    })().catch((e) => call._ended({ reason: e.code ?? 'failed', cause: e.message }));
    return call;
  }

  close() { this._closedByUser = true; clearInterval(this._keepalive); this.ws?.close(); }
}

export const SipBridge = {
  /** @param {string} url @param {ConnectOptions} options @returns {Promise<Client>} */
  async connect(url, options) {
    const client = new Client(url, options);
    try {
      await client._open();
    } catch (e) {
      // A refused login (or an unreachable gateway) must not leave a socket reconnecting behind.
      client.close();
      throw e;
    }
    return client;
  },
};

export default SipBridge;
