//! The packet paths of a worker. Every function runs to completion on the worker's thread: a
//! datagram read here is handled and queued to leave before the next one is read, with no channel,
//! lock or task in between, and packet buffers come from the session's pool.

use super::codec_batch::HeldPacket;
use super::datagrams::{self, MAX_BATCH};
use super::demux::{self, DatagramKind};
use super::outbox::Outbox;
use super::{BrowserSlot, LegId, PacketTable, SessionId, SessionSlot, SharedSocket, SlotLeg, TimerKey, Worker};
use crate::media::engine::INTERNAL_PEER;
use crate::media::session::Side;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Datagrams read from one socket per readiness event before the others get their turn.
const READ_BATCH: usize = 64;

impl Worker {
    /// Reads the shared WebRTC socket `index` until it is empty (or a batch is done).
    pub(super) fn read_shared(&mut self, index: usize) {
        let mut read = 0;
        while read < READ_BATCH {
            let Some(shared) = self.shared.get(index) else { return };
            let (local, fd) = (shared.local, shared.socket.as_raw_fd());
            let mut received = [(0, None); MAX_BATCH];
            let mut buffers = self.batch.each_mut().map(|b| b.as_mut_slice());
            let got = match datagrams::receive(fd, &mut buffers, &mut received) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    read += 1;
                    continue;
                }
            };
            for (i, (len, peer)) in received.into_iter().take(got).enumerate() {
                // The datagram's handlers read `self.buffer`: lend them this one.
                std::mem::swap(&mut self.buffer, &mut self.batch[i]);
                if let Some(peer) = peer {
                    self.shared_datagram(index, local, peer, len);
                }
                std::mem::swap(&mut self.buffer, &mut self.batch[i]);
            }
            read += got;
            if got < MAX_BATCH {
                return;
            }
        }
        // More may be queued, and edge-triggered readiness will not fire again for them: a
        // bounded batch keeps one busy socket from starving the rest, the remainder is read on
        // the next turn of the loop.
        self.pending_reads.push(index);
    }

    /// One datagram from the shared socket `index`, in `self.buffer[..len]`.
    fn shared_datagram(&mut self, index: usize, local: std::net::SocketAddr, peer: std::net::SocketAddr, len: usize) {
        let now = Instant::now();
        if self.outbox.due(now) {
            self.flush_outbox();
        }
        let Some(id) = self.leg_for(index, peer, len) else { return };
        match demux::classify(&self.buffer[..len]) {
            DatagramKind::Rtp => self.media_from_browser(id, len, now),
            DatagramKind::Stun | DatagramKind::Dtls => self.signal_from_browser(id, local, peer, len, now),
            DatagramKind::Unknown => {
                self.counters.rejected_by_leg.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// STUN or DTLS in `self.buffer[..len]`, for leg `id`'s state machines.
    fn signal_from_browser(&mut self, id: LegId, local: std::net::SocketAddr, peer: std::net::SocketAddr, len: usize, now: Instant) {
        let Some(slot) = self.legs.get_mut(&id) else { return };
        match slot.leg.handle_datagram(local, peer, &self.buffer[..len], now) {
            Ok(()) => {}
            // Counted, and the leg is still driven: its timers may have moved.
            Err(_) => {
                self.counters.rejected_by_leg.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.after_leg(id);
    }

    /// SRTP or SRTCP in `self.buffer[..len]` from leg `id`: decrypted into a buffer of its
    /// session's pool and handled there, then whatever the session sends goes out. Packets that
    /// fail authentication (or come before DTLS is up) are counted and dropped.
    fn media_from_browser(&mut self, id: LegId, len: usize, now: Instant) {
        let Some(slot) = self.legs.get_mut(&id) else { return };
        // Media before the session is bridged (early ICE) has nowhere to go.
        let Some((session_id, side)) = slot.session else { return };
        let Some(session_slot) = self.sessions.get_mut(&session_id) else { return };
        let session = &mut session_slot.session;
        let datagram = &self.buffer[..len];
        let rtcp = demux::is_rtcp(datagram);
        let mut packet = session.buffer();
        packet.extend_from_slice(datagram);
        if slot.leg.unprotect(&mut packet, rtcp).is_err() {
            self.counters.rejected_by_leg.fetch_add(1, Ordering::Relaxed);
            return session.recycle(packet);
        }
        let elapsed = now.saturating_duration_since(self.started);
        if rtcp {
            session.handle_rtcp(side, INTERNAL_PEER, &packet, elapsed);
            session.recycle(packet);
        } else if self.codec_batch.holds() && session.transcodes_from(side) {
            let held = HeldPacket { session: session_id, side, from: INTERNAL_PEER, packet, arrived: elapsed, from_browser: true };
            return self.codec_batch.hold(held, now);
        } else {
            session.handle_rtp(side, INTERNAL_PEER, packet, elapsed);
        }
        self.drive_session(session_id, now);
    }

    /// ICE-mux: the 5-tuple if known, else the ufrag of a STUN request (which then owns it).
    fn leg_for(&mut self, index: usize, peer: std::net::SocketAddr, len: usize) -> Option<LegId> {
        if let Some(id) = self.flows.get(&(index, peer)) {
            return Some(*id);
        }
        let datagram = &self.buffer[..len];
        if demux::classify(datagram) != DatagramKind::Stun {
            self.counters.unknown_flow.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let Some(id) = demux::stun_recipient_ufrag(datagram).and_then(|ufrag| self.ufrags.get(ufrag)).copied() else {
            self.counters.unknown_ufrag.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        learn_flow(&mut self.flows, self.legs.get_mut(&id)?, id, (index, peer));
        Some(id)
    }

    /// After a leg took input or time: its datagrams and events out, its timer re-armed.
    pub(super) fn after_leg(&mut self, id: LegId) {
        let Some(slot) = self.legs.get_mut(&id) else { return };
        flush_leg(slot, id, &self.shared, &mut self.flows);
        schedule_leg(slot, id, &mut self.timers);
    }

    /// Reads a SIP-side RTP or RTCP socket of session `id` until it would block.
    pub(super) fn read_session(&mut self, id: SessionId, side: Side, rtcp: bool) {
        for _ in 0..READ_BATCH {
            let now = Instant::now();
            if self.outbox.due(now) {
                self.flush_outbox();
            }
            let Some(slot) = self.sessions.get_mut(&id) else { return };
            let SlotLeg::Udp(endpoint) = &slot.legs[side.index()] else { return };
            let socket = if rtcp { &endpoint.rtcp } else { &endpoint.rtp };
            let elapsed = now.saturating_duration_since(self.started);
            if rtcp {
                match socket.recv_from(&mut self.buffer) {
                    Ok((len, from)) => slot.session.handle_rtcp(side, from, &self.buffer[..len], elapsed),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(_) => continue,
                }
            } else {
                let mut packets = [slot.session.buffer(), slot.session.buffer()];
                let mut received = [(0, None); 2];
                let got = match datagrams::receive_vectors(socket.as_raw_fd(), &mut packets, 1_500, &mut received) {
                    Ok(got) => got,
                    Err(e) => {
                        packets.into_iter().for_each(|p| slot.session.recycle(p));
                        if e.kind() == ErrorKind::WouldBlock {
                            return;
                        }
                        continue;
                    }
                };
                for (i, (packet, (_, from))) in packets.into_iter().zip(received).enumerate() {
                    match from.filter(|_| i < got) {
                        Some(from) if self.codec_batch.holds() && slot.session.transcodes_from(side) => {
                            self.codec_batch.hold(HeldPacket { session: id, side, from, packet, arrived: elapsed, from_browser: false }, now);
                        }
                        Some(from) => slot.session.handle_rtp(side, from, packet, elapsed),
                        None => slot.session.recycle(packet),
                    }
                }
                self.drive_session(id, now);
                // Room for two and one came: the socket is empty (a call's socket carries 50
                // packets a second, so that is nearly every read).
                if got < received.len() {
                    return;
                }
                continue;
            }
            self.drive_session(id, now);
        }
        self.pending_sessions.push((id, side, rtcp));
    }

    /// Sends what session `id` produced, toward sockets or browser legs, and its events out.
    pub(super) fn drive_session(&mut self, id: SessionId, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        let Some(slot) = self.sessions.get_mut(&id) else { return };
        // Loopback packets re-enter as if received; they only travel toward the other leg, so
        // this cannot cycle, and the bound is a guard.
        for _ in 0..8 {
            let mut looped = false;
            while let Some(transmit) = slot.session.poll_transmit() {
                match &slot.legs[transmit.side.index()] {
                    SlotLeg::Udp(endpoint) => {
                        let socket = if transmit.rtcp { &endpoint.rtcp } else { &endpoint.rtp };
                        if let Some(spare) = self.outbox.push(socket.as_raw_fd(), transmit.to, transmit.packet, now) {
                            slot.session.recycle(spare);
                        }
                    }
                    SlotLeg::Browser(leg) => {
                        let spare = match self.legs.get_mut(leg) {
                            Some(browser) => send_to_browser(browser, &self.shared, &mut self.outbox, transmit.packet, transmit.rtcp, now),
                            None => Some(transmit.packet),
                        };
                        if let Some(spare) = spare {
                            slot.session.recycle(spare);
                        }
                    }
                    SlotLeg::Loopback if !transmit.rtcp => {
                        looped = true;
                        slot.session.handle_rtp(transmit.side, INTERNAL_PEER, transmit.packet, elapsed);
                    }
                    SlotLeg::Loopback | SlotLeg::Closed => slot.session.recycle(transmit.packet),
                }
            }
            if !looped {
                break;
            }
        }
        while let Some(event) = slot.session.poll_event() {
            let _ = slot.events.try_send(event);
        }
        schedule_session(slot, id, self.started, &mut self.timers);
    }

    /// Fires every timer that is due, then re-arms what they changed.
    pub(super) fn run_timers(&mut self, now: Instant) {
        // Bounded: a state machine that keeps asking for a time already past must not spin here.
        for _ in 0..4_096 {
            let Some(std::cmp::Reverse((at, key))) = self.timers.peek().copied() else { break };
            if at > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Session(id) => {
                    let Some(slot) = self.sessions.get_mut(&id) else { continue };
                    if slot.deadline != Some(at) {
                        continue;
                    }
                    slot.deadline = None;
                    slot.session.handle_timeout(now.saturating_duration_since(self.started));
                    self.drive_session(id, now);
                }
                TimerKey::Leg(id) => {
                    let Some(slot) = self.legs.get_mut(&id) else { continue };
                    if slot.deadline != Some(at) {
                        continue;
                    }
                    slot.deadline = None;
                    slot.leg.handle_timeout(now);
                    self.after_leg(id);
                }
            }
        }
    }
}

/// Protects `packet` under the leg's SRTP keys and queues it by the leg's selected pair; before
/// DTLS is up there are no keys and the packet is dropped (media from SIP often starts first).
/// Returns a buffer for the session's pool: the packet itself when it was not queued.
fn send_to_browser(browser: &mut BrowserSlot, shared: &[SharedSocket], outbox: &mut Outbox, mut packet: Vec<u8>, rtcp: bool, now: Instant) -> Option<Vec<u8>> {
    let Some((local, peer)) = browser.leg.route() else { return Some(packet) };
    if browser.leg.protect(&mut packet, rtcp).is_err() {
        return Some(packet);
    }
    match shared.iter().find(|s| s.local == local) {
        Some(socket) => outbox.push(socket.socket.as_raw_fd(), peer, packet, now),
        None => Some(packet),
    }
}

fn learn_flow(flows: &mut PacketTable<(usize, std::net::SocketAddr), LegId>, slot: &mut BrowserSlot, id: LegId, flow: (usize, std::net::SocketAddr)) {
    if flows.insert(flow, id).is_none() {
        slot.flows.push(flow);
    }
}

/// Sends the leg's datagrams from the shared socket they name, and passes its events on.
pub(super) fn flush_leg(slot: &mut BrowserSlot, id: LegId, shared: &[SharedSocket], flows: &mut PacketTable<(usize, std::net::SocketAddr), LegId>) {
    while let Some(datagram) = slot.leg.poll_datagram() {
        let Some(index) = shared.iter().position(|s| s.local == datagram.local) else { continue };
        // Our own checks and DTLS flights open the 5-tuple their answers come back on.
        learn_flow(flows, slot, id, (index, datagram.peer));
        let _ = shared[index].socket.send_to(&datagram.payload, datagram.peer);
    }
    while let Some(event) = slot.leg.poll_event() {
        if matches!(event, crate::webrtc_leg::LegEvent::Connected) {
            tracing::info!(leg = id, browser = ?slot.leg.last_peer(), "browser media connected");
        }
        let _ = slot.events.try_send(event);
    }
}

fn schedule_leg(slot: &mut BrowserSlot, id: LegId, timers: &mut std::collections::BinaryHeap<std::cmp::Reverse<(Instant, TimerKey)>>) {
    let next = slot.leg.poll_timeout();
    if next.is_some() && next != slot.deadline {
        slot.deadline = next;
        if let Some(at) = next {
            timers.push(std::cmp::Reverse((at, TimerKey::Leg(id))));
        }
    }
}

fn schedule_session(slot: &mut SessionSlot, id: SessionId, started: Instant, timers: &mut std::collections::BinaryHeap<std::cmp::Reverse<(Instant, TimerKey)>>) {
    let next = slot.session.poll_timeout().map(|d| started + d);
    if next.is_some() && next != slot.deadline {
        slot.deadline = next;
        if let Some(at) = next {
            timers.push(std::cmp::Reverse((at, TimerKey::Session(id))));
        }
    }
}
