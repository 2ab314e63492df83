//! A small reorder buffer in front of a decoder. Passthrough never uses it (the far end has its
//! own jitter buffer); transcoding does, because a decoder must see packets in order and must be
//! told about each loss to conceal it. Bounded by count and by age; sans-IO.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Packet(Vec<u8>),
    /// One packet was lost. The next packet, when it is already here, is offered for Opus FEC.
    Lost { next: Option<Vec<u8>> },
}

/// A held packet's payload and when it arrived.
type Held = (Vec<u8>, Duration);

#[derive(Debug)]
pub struct ReorderBuffer {
    capacity: usize,
    max_wait: Duration,
    next: Option<u16>,
    /// Slot `i` holds sequence `next + i`. A ring rather than a map: an in-order packet goes in
    /// and out without allocating (a map allocated and freed a node for each one).
    slots: VecDeque<Option<Held>>,
    /// How many slots hold a packet.
    held: usize,
    late: u64,
}

impl ReorderBuffer {
    /// `capacity` packets at most are held; none longer than `max_wait`.
    pub fn new(capacity: usize, max_wait: Duration) -> ReorderBuffer {
        ReorderBuffer { capacity: capacity.max(1), max_wait, next: None, slots: VecDeque::new(), held: 0, late: 0 }
    }

    /// Packets that arrived after their slot was given up (counted, dropped).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Takes one received payload; appends what can now go to the decoder, in order.
    pub fn push(&mut self, sequence: u16, payload: Vec<u8>, now: Duration, out: &mut Vec<Released>) {
        let next = *self.next.get_or_insert(sequence);
        let ahead = sequence.wrapping_sub(next);
        if ahead >= 0x8000 {
            self.late += 1;
            return;
        }
        // A jump far beyond the buffer is a new stream (restart), not thousands of losses.
        if usize::from(ahead) > self.capacity * 8 {
            self.flush_all(out);
            self.next = Some(sequence);
        }
        let slot = usize::from(sequence.wrapping_sub(self.next.unwrap_or(sequence)));
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        if let Some(empty @ None) = self.slots.get_mut(slot) {
            *empty = Some((payload, now));
            self.held += 1;
        }
        self.release(now, out);
    }

    /// Gives up on anything that has waited too long (call from a timer).
    pub fn handle_timeout(&mut self, now: Duration, out: &mut Vec<Released>) {
        self.release(now, out);
    }

    pub fn poll_timeout(&self) -> Option<Duration> {
        self.held_packets().map(|(_, at)| *at + self.max_wait).min()
    }

    fn held_packets(&self) -> impl Iterator<Item = &Held> {
        self.slots.iter().flatten()
    }

    fn release(&mut self, now: Duration, out: &mut Vec<Released>) {
        loop {
            if let Some(Some(_)) = self.slots.front() {
                if let Some(Some((payload, _))) = self.slots.pop_front() {
                    self.held -= 1;
                    out.push(Released::Packet(payload));
                }
                self.next = self.next.map(|n| n.wrapping_add(1));
                continue;
            }
            let oldest_waited_too_long = self.held_packets().any(|(_, at)| now.saturating_sub(*at) >= self.max_wait);
            if self.held == 0 || self.slots.is_empty() || (self.held < self.capacity && !oldest_waited_too_long) {
                return;
            }
            // The packet we wait for is lost: conceal it, with the following packet for FEC.
            let next = self.slots.get(1).and_then(Option::as_ref).map(|(p, _)| p.clone());
            out.push(Released::Lost { next });
            self.slots.pop_front();
            self.next = self.next.map(|n| n.wrapping_add(1));
        }
    }

    /// Releases everything held, each gap declared lost.
    fn flush_all(&mut self, out: &mut Vec<Released>) {
        // The last slot always holds a packet (slots are only added up to one), so no loss is
        // declared past the newest packet.
        while let Some(slot) = self.slots.pop_front() {
            out.push(match slot {
                Some((payload, _)) => Released::Packet(payload),
                None => Released::Lost { next: None },
            });
        }
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn run(buffer: &mut ReorderBuffer, sequence: u16, at: u64) -> Vec<Released> {
        let mut out = Vec::new();
        buffer.push(sequence, vec![sequence as u8], ms(at), &mut out);
        out
    }

    #[test]
    fn in_order_passes_at_once() {
        let mut buffer = ReorderBuffer::new(4, ms(60));
        for i in 0..5u16 {
            assert_eq!(run(&mut buffer, 65_533u16.wrapping_add(i), u64::from(i) * 20), vec![Released::Packet(vec![65_533u16.wrapping_add(i) as u8])]);
        }
    }

    #[test]
    fn reordered_packets_are_put_back_in_order() {
        let mut buffer = ReorderBuffer::new(4, ms(60));
        run(&mut buffer, 10, 0);
        assert!(run(&mut buffer, 12, 20).is_empty(), "12 waits for 11");
        assert_eq!(run(&mut buffer, 11, 25), vec![Released::Packet(vec![11]), Released::Packet(vec![12])]);
        assert_eq!(run(&mut buffer, 9, 30), vec![], "too late: dropped");
        assert_eq!(buffer.late(), 1);
    }

    #[test]
    fn a_loss_is_declared_with_the_next_packet_for_fec() {
        let mut buffer = ReorderBuffer::new(3, ms(60));
        run(&mut buffer, 1, 0);
        assert!(run(&mut buffer, 3, 20).is_empty());
        assert!(run(&mut buffer, 4, 40).is_empty());
        // Capacity reached: 2 is given up.
        assert_eq!(
            run(&mut buffer, 5, 60),
            vec![Released::Lost { next: Some(vec![3]) }, Released::Packet(vec![3]), Released::Packet(vec![4]), Released::Packet(vec![5])]
        );
    }

    #[test]
    fn waiting_is_bounded_in_time() {
        let mut buffer = ReorderBuffer::new(10, ms(60));
        run(&mut buffer, 1, 0);
        assert!(run(&mut buffer, 3, 20).is_empty());
        assert_eq!(buffer.poll_timeout(), Some(ms(80)));
        let mut out = Vec::new();
        buffer.handle_timeout(ms(80), &mut out);
        assert_eq!(out, vec![Released::Lost { next: Some(vec![3]) }, Released::Packet(vec![3])]);
    }

    #[test]
    fn a_duplicate_is_released_once_and_the_ring_stays_small() {
        let mut buffer = ReorderBuffer::new(4, ms(60));
        run(&mut buffer, 1, 0);
        assert!(run(&mut buffer, 3, 20).is_empty());
        assert!(run(&mut buffer, 3, 21).is_empty(), "a copy of a held packet is dropped");
        assert_eq!(run(&mut buffer, 2, 25), vec![Released::Packet(vec![2]), Released::Packet(vec![3])]);
        assert_eq!(run(&mut buffer, 2, 26), vec![], "a copy of a released packet is late");
        for i in 4..1_000u16 {
            run(&mut buffer, i, u64::from(i) * 20);
        }
        assert!(buffer.slots.capacity() <= 8, "in-order packets reuse the ring: {} slots", buffer.slots.capacity());
        assert_eq!(buffer.poll_timeout(), None);
    }

    #[test]
    fn a_restart_is_not_thousands_of_losses() {
        let mut buffer = ReorderBuffer::new(4, ms(60));
        run(&mut buffer, 1, 0);
        assert_eq!(run(&mut buffer, 20_000, 20), vec![Released::Packet(vec![20_000u16 as u8])]);
    }
}
