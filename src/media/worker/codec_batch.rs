//! Transcoded media waits for the worker's codec tick (`[media] codec_batch_ms`).
//!
//! A transcoded packet costs its codecs far more than the rest of its path, and libopus runs
//! fastest when one frame follows another on a warm core: the raw libopus floor of the load
//! benchmark codes its frames back to back. Coded as each packet arrives, a frame shares the core
//! with the kernel's network path, our packet path and the vCPU's halts between wake-ups, and
//! the same frames cost the gateway about 1.2-1.5x more (ARCHITECTURE.md, "Transcoded media on
//! a codec tick").
//!
//! So the worker holds the RTP of every leg whose packets go through a codec, and codes what it
//! holds together on a fixed clock, every tick since the worker started: first every packet
//! from browsers, then every packet from SIP, in arrival order within each, so that decodes
//! follow decodes and encodes follow encodes. A held packet waits at most one tick (20 ms by
//! default, one frame of the usual packet time: the wait of a gateway that codes on a frame
//! clock), half of it on average. On a fixed clock a call that sends every 20 ms has one frame
//! in each tick and always waits the same, so its packets leave as evenly spaced as they came.
//! Each packet is handled with the time it arrived, so jitter, latching, reordering and the
//! record's quality figures see the network as it was. Relayed packets and RTCP never wait;
//! 0 codes each packet on arrival.

use super::{SessionId, Side};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The most packets held at once (a tick's worth at 100 calls is 200): past it the batch is
/// coded at once, so a flood cannot grow the queue without bound.
pub(super) const MAX_HELD: usize = 4_096;

/// One received RTP packet, decrypted, waiting for its session's codec.
pub(super) struct HeldPacket {
    pub session: SessionId,
    pub side: Side,
    pub from: SocketAddr,
    pub packet: Vec<u8>,
    /// The worker's clock when the packet arrived, as the session counts time.
    pub arrived: Duration,
    pub from_browser: bool,
}

pub(super) struct CodecBatch {
    tick: Duration,
    /// The clock's origin: ticks fall at `epoch + n * tick`.
    epoch: Instant,
    held: Vec<HeldPacket>,
    /// When the oldest held packet arrived.
    oldest: Option<Instant>,
}

impl CodecBatch {
    pub(super) fn new(tick: Duration, epoch: Instant) -> CodecBatch {
        CodecBatch { tick, epoch, held: Vec::new(), oldest: None }
    }

    /// Whether packets wait for the tick at all (`codec_batch_ms` above 0).
    pub(super) fn holds(&self) -> bool {
        !self.tick.is_zero()
    }

    pub(super) fn hold(&mut self, packet: HeldPacket, now: Instant) {
        self.oldest.get_or_insert(now);
        self.held.push(packet);
    }

    /// When the held packets are due to be coded, if any are held: the first tick after the
    /// oldest arrived.
    pub(super) fn due_at(&self) -> Option<Instant> {
        let oldest = self.oldest?;
        if self.held.len() >= MAX_HELD || self.tick.is_zero() {
            return Some(oldest);
        }
        let ticks = oldest.saturating_duration_since(self.epoch).as_nanos() / self.tick.as_nanos();
        let next = u32::try_from(ticks + 1).ok().and_then(|n| self.tick.checked_mul(n));
        // A clock past u32::MAX ticks (over two years at 20 ms) codes at once rather than wrap.
        Some(next.map_or(oldest, |since_epoch| self.epoch + since_epoch))
    }

    /// Moves the held packets into `out` once they are due (empty otherwise): browsers' packets
    /// first, then SIP's, each in arrival order.
    pub(super) fn take_due(&mut self, now: Instant, out: &mut Vec<HeldPacket>) {
        if !self.due_at().is_some_and(|due| now >= due) {
            return;
        }
        self.oldest = None;
        std::mem::swap(&mut self.held, out);
        // Stable: arrival order is kept within each side.
        out.sort_by_key(|held| !held.from_browser);
    }
}

impl super::Worker {
    /// Codes the held packets once they are due, each with the time it arrived.
    pub(super) fn code_held(&mut self, now: Instant) {
        let mut coding = std::mem::take(&mut self.coding);
        self.codec_batch.take_due(now, &mut coding);
        for held in coding.drain(..) {
            // A session that stopped meanwhile takes its packets with it.
            let Some(slot) = self.sessions.get_mut(&held.session) else { continue };
            slot.session.handle_rtp(held.side, held.from, held.packet, held.arrived);
            self.drive_session(held.session, now);
        }
        self.coding = coding;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(session: SessionId, from_browser: bool) -> HeldPacket {
        HeldPacket { session, side: Side::A, from: "127.0.0.1:4000".parse().expect("address"), packet: vec![session as u8], arrived: Duration::ZERO, from_browser }
    }

    #[test]
    fn held_packets_wait_for_the_next_tick_then_come_browsers_first_in_arrival_order() {
        let tick = Duration::from_millis(20);
        let start = Instant::now();
        let mut batch = CodecBatch::new(tick, start);
        assert!(batch.holds() && batch.due_at().is_none());
        batch.hold(held(1, false), start);
        batch.hold(held(2, true), start + Duration::from_millis(5));
        batch.hold(held(3, false), start + Duration::from_millis(6));
        batch.hold(held(4, true), start + Duration::from_millis(19));
        assert_eq!(batch.due_at(), Some(start + tick), "the tick after the oldest");
        let mut out = Vec::new();
        batch.take_due(start + Duration::from_millis(19), &mut out);
        assert!(out.is_empty(), "nothing is coded before the tick");
        batch.take_due(start + tick, &mut out);
        let order: Vec<SessionId> = out.iter().map(|h| h.session).collect();
        assert_eq!(order, [2, 4, 1, 3]);
        assert!(batch.due_at().is_none(), "nothing left");
        out.clear();
        batch.hold(held(5, false), start + Duration::from_millis(30));
        assert_eq!(batch.due_at(), Some(start + 2 * tick), "ticks keep the worker's clock: 30 ms waits until 40");
        out.clear();
        let mut batch = CodecBatch::new(tick, start);
        batch.hold(held(6, false), start + 3 * tick);
        assert_eq!(batch.due_at(), Some(start + 4 * tick), "a packet on a tick waits a whole tick");
    }

    #[test]
    fn a_full_batch_is_due_at_once() {
        let start = Instant::now();
        let mut batch = CodecBatch::new(Duration::from_millis(20), start);
        for i in 0..MAX_HELD {
            batch.hold(held(i as SessionId, false), start);
        }
        assert_eq!(batch.due_at(), Some(start));
        let mut out = Vec::new();
        batch.take_due(start, &mut out);
        assert_eq!(out.len(), MAX_HELD);
    }

    #[test]
    fn a_zero_tick_holds_nothing() {
        assert!(!CodecBatch::new(Duration::ZERO, Instant::now()).holds());
    }
}
