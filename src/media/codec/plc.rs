//! Packet loss concealment for waveform codecs (G.711, G.722), after ITU-T G.711 Appendix I,
//! simplified to work without added delay:
//!
//! * At the first lost sample the pitch is estimated on the last 20 ms of output by normalised
//!   cross-correlation over lags of 5..15 ms (the multi-period lags also catch pitches up to 800 Hz
//!   and pure tones), and the last pitch period is repeated from there on, in phase.
//! * Level: full for the first 10 ms of a burst, then a linear fade of 20 % per 10 ms, silence from
//!   60 ms on (Appendix I's schedule).
//! * The first good frame after a burst is cross-faded with the continued repetition over 5 ms, so
//!   there is no click at either end.
//!
//! Unlike Appendix I there is no 3.75 ms look-back overlap-add at the start of the loss (it needs
//! the decoder to delay its output); the phase-aligned repetition keeps that edge smooth anyway.
//! Allocation happens only in `new`.

pub struct Plc {
    hist: Vec<i16>,
    min_lag: usize,
    max_lag: usize,
    win: usize,
    ms: usize,
    ola: usize,
    in_loss: bool,
    lost: usize,
    pitch: usize,
    period: Vec<i16>,
    phase: usize,
}

impl Plc {
    pub fn new(rate: u32) -> Self {
        let ms = (rate / 1000) as usize;
        let min_lag = 5 * ms;
        let max_lag = 15 * ms;
        let win = 20 * ms;
        Plc {
            hist: vec![0; win + max_lag],
            min_lag,
            max_lag,
            win,
            ms,
            ola: 5 * ms,
            in_loss: false,
            lost: 0,
            pitch: max_lag,
            period: vec![0; max_lag],
            phase: 0,
        }
    }

    /// To be called with every decoded (real) frame: cross-fades it after a loss, then records it.
    pub fn good_frame(&mut self, frame: &mut [i16]) {
        if self.in_loss {
            let n = self.ola.min(frame.len());
            for (i, s) in frame[..n].iter_mut().enumerate() {
                let synth = self.next_synth() as f32;
                let w = (i + 1) as f32 / (n + 1) as f32;
                *s = (synth * (1.0 - w) + *s as f32 * w).round().clamp(-32768.0, 32767.0) as i16;
            }
            self.in_loss = false;
        }
        self.record(frame);
    }

    /// Appends `samples` concealment samples to `out`.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        if !self.in_loss {
            self.start_loss();
        }
        let start = out.len();
        out.reserve(samples);
        for _ in 0..samples {
            let s = self.next_synth();
            out.push(s);
        }
        // Keep the history continuous (a later burst right after a short good run uses it).
        self.record_slice(&out[start..]);
    }

    fn next_synth(&mut self) -> i16 {
        let fade_start = 10 * self.ms;
        let fade_len = 50 * self.ms;
        let gain = if self.lost < fade_start {
            1.0
        } else {
            (1.0 - (self.lost - fade_start) as f32 / fade_len as f32).max(0.0)
        };
        let s = self.period[self.phase % self.pitch] as f32 * gain;
        self.phase += 1;
        self.lost += 1;
        s as i16
    }

    fn start_loss(&mut self) {
        self.pitch = self.find_pitch();
        let h = self.hist.len();
        self.period[..self.pitch].copy_from_slice(&self.hist[h - self.pitch..]);
        self.phase = 0;
        self.lost = 0;
        self.in_loss = true;
    }

    fn find_pitch(&self) -> usize {
        let h = self.hist.len();
        let x = &self.hist;
        let tgt = &x[h - self.win..];
        let mut best = self.max_lag;
        let mut best_score = 0.0f64;
        for lag in self.min_lag..=self.max_lag {
            let cand = &x[h - self.win - lag..h - lag];
            let mut c = 0i64;
            let mut e = 0i64;
            for (&a, &b) in tgt.iter().zip(cand) {
                c += a as i64 * b as i64;
                e += b as i64 * b as i64;
            }
            if e > 0 && c > 0 {
                let score = c as f64 / (e as f64).sqrt();
                // Prefer the shortest lag among (nearly) equal ones: multiples of the true period
                // score the same on stationary signals.
                if score > best_score * 1.0001 {
                    best_score = score;
                    best = lag;
                }
            }
        }
        best
    }

    fn record(&mut self, frame: &[i16]) {
        self.record_slice(frame);
    }

    fn record_slice(&mut self, frame: &[i16]) {
        let h = self.hist.len();
        if frame.len() >= h {
            self.hist.copy_from_slice(&frame[frame.len() - h..]);
        } else {
            let n = frame.len();
            self.hist.copy_within(n.., 0);
            self.hist[h - n..].copy_from_slice(frame);
        }
    }
}
