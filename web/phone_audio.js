// The softphone's sound: the ring (made with WebAudio oscillators, so no audio file is needed),
// the microphone level meter (an AnalyserNode on the local stream), and the device lists.

/** The ring: 440 + 480 Hz, 2 s on, 4 s off (the North American ringing cadence). */
export class Ringer {
  /** @param {AudioContext} context */
  constructor(context) {
    this.context = context;
    /** Lets a page (or a test) see what the ring sounds like. */
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 8192;
    this.analyser.connect(context.destination);
    /** @type {{oscillators: OscillatorNode[], gain: GainNode, timer: any}|null} */
    this._playing = null;
  }

  get playing() { return this._playing !== null; }

  async start() {
    if (this._playing) return;
    await this.context.resume().catch(() => {});
    const gain = this.context.createGain();
    gain.gain.value = 0;
    gain.connect(this.analyser);
    const oscillators = [440, 480].map((hz) => {
      const oscillator = this.context.createOscillator();
      oscillator.frequency.value = hz;
      oscillator.connect(gain);
      oscillator.start();
      return oscillator;
    });
    const cadence = () => {
      const now = this.context.currentTime;
      gain.gain.setValueAtTime(0.15, now);
      gain.gain.setValueAtTime(0, now + 2);
    };
    cadence();
    this._playing = { oscillators, gain, timer: setInterval(cadence, 6000) };
  }

  stop() {
    if (!this._playing) return;
    clearInterval(this._playing.timer);
    for (const oscillator of this._playing.oscillators) oscillator.stop();
    this._playing.gain.disconnect();
    this._playing = null;
  }

  /** The loudest frequency of the ring right now (Hz), or 0 when silent. */
  peakHz() {
    const bins = new Float32Array(this.analyser.frequencyBinCount);
    this.analyser.getFloatFrequencyData(bins);
    let best = 1;
    for (let b = 2; b < bins.length; b++) if (bins[b] > bins[best]) best = b;
    return bins[best] > -100 ? (best * this.context.sampleRate) / this.analyser.fftSize : 0;
  }
}

/** The microphone's level, 0 (silence, or muted) to 1, read ten times a second into `onLevel`. */
export class LevelMeter {
  /** @param {AudioContext} context @param {(level: number) => void} onLevel */
  constructor(context, onLevel) {
    this.context = context;
    this.onLevel = onLevel;
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    /** @type {MediaStreamAudioSourceNode|null} */ this._source = null;
    this._timer = null;
  }

  /** Meters `stream` (replacing any stream metered before). @param {MediaStream} stream */
  attach(stream) {
    this._source?.disconnect();
    this._source = this.context.createMediaStreamSource(stream);
    this._source.connect(this.analyser);
    this.context.resume().catch(() => {});
    this._timer ??= setInterval(() => this.onLevel(this.level()), 100);
  }

  detach() {
    this._source?.disconnect();
    this._source = null;
    clearInterval(this._timer);
    this._timer = null;
    this.onLevel(0);
  }

  /** RMS of the last 1024 samples on a 60 dB scale: -60 dBFS and below is empty, 0 dBFS full. */
  level() {
    const samples = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    if (rms === 0) return 0;
    return Math.min(1, Math.max(0, (20 * Math.log10(rms) + 60) / 60));
  }
}

/** Audio inputs and outputs; labels are only known once the page may use the microphone. */
export async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return {
    microphones: devices.filter((d) => d.kind === 'audioinput'),
    speakers: devices.filter((d) => d.kind === 'audiooutput'),
  };
}

/** Whether this browser can route an <audio> element to a chosen output (setSinkId). */
export const canChooseSpeaker = () => typeof HTMLMediaElement !== 'undefined' && typeof HTMLMediaElement.prototype.setSinkId === 'function';

/** The microphone, without the processing that would bend a test tone (and music). @param {string} deviceId */
export function openMicrophone(deviceId) {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: false };
  if (deviceId) audio.deviceId = { exact: deviceId };
  return navigator.mediaDevices.getUserMedia({ audio });
}
