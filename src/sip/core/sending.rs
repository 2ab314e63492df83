//! How the core answers and sends: responses through their server transaction (or statelessly,
//! for refusals), and what a server or client transaction machine asks for once it has run.

use super::*;

impl SipCore {
    /// Sends a response through the server transaction, so it is retransmitted and absorbed as the
    /// RFC wants.
    pub(super) fn respond(&mut self, key: &TransactionKey, status: u16, extra: Vec<Header>, body: Vec<u8>, now: Instant) {
        let Some(tx) = self.server_transactions.get_mut(key) else { return };
        if tx.final_sent {
            return;
        }
        let response = response::build(&tx.request_headers, status, Some(&tx.to_tag), extra, body, &self.config.product);
        let bytes = Bytes::from(response.to_bytes());
        tx.final_sent = status >= 200;
        match &mut tx.machine {
            ServerMachine::Invite(m) => m.send_response(bytes, status, now),
            ServerMachine::NonInvite(m) => m.send_response(bytes, status, now),
        }
        self.counters.count_response(status);
        self.drain_server(key);
    }

    /// Refuses a request with one stateless answer and forgets its transaction: refusals of
    /// strangers are never retransmitted, so the gateway cannot amplify a spoofed flood.
    pub(super) fn refuse_statelessly(&mut self, key: &TransactionKey, status: u16, extra: Vec<Header>, peer: Peer) {
        if let Some(tx) = self.server_transactions.remove(key) {
            let tag = tx.to_tag.clone();
            self.send_stateless(&tx.request_headers, status, &tag, extra, peer);
        }
    }

    pub(super) fn send_stateless(&mut self, headers: &Headers, status: u16, tag: &str, extra: Vec<Header>, peer: Peer) {
        let response = response::build(headers, status, Some(tag), extra, Vec::new(), &self.config.product);
        let route = match stamped_top_via(headers) {
            Ok(via) => response::response_route(&via, &peer),
            Err(_) if peer.connection.is_some() => ResponseRoute::Connection(peer),
            Err(_) => ResponseRoute::Datagram { from: peer.local, to: peer.remote },
        };
        self.counters.count_response(status);
        self.transmits.push_back(Transmit { route: Route::Reply(route), bytes: Bytes::from(response.to_bytes()) });
    }

    pub(super) fn drain_server(&mut self, key: &TransactionKey) {
        let Some(tx) = self.server_transactions.get_mut(key) else { return };
        let (mut terminated, mut timed_out) = (false, false);
        loop {
            let output = match &mut tx.machine {
                ServerMachine::Invite(m) => m.poll_output(),
                ServerMachine::NonInvite(m) => m.poll_output(),
            };
            match output {
                None => break,
                Some(Output::Transmit(bytes)) => self.transmits.push_back(Transmit { route: Route::Reply(tx.route), bytes }),
                Some(Output::Timeout) => {
                    self.counters.count_drop("server_transaction_timeout");
                    timed_out = true;
                }
                Some(Output::TransportError) => {}
                Some(Output::Terminated) => terminated = true,
            }
        }
        if timed_out {
            self.call_not_acknowledged(key);
        }
        let Some(tx) = self.server_transactions.get_mut(key) else { return };
        if terminated {
            self.server_transactions.remove(key);
        } else {
            let at = match &tx.machine {
                ServerMachine::Invite(m) => m.poll_timeout(),
                ServerMachine::NonInvite(m) => m.poll_timeout(),
            };
            self.arm(TimerOwner::Server(key.clone()), at);
        }
    }

    /// Flushes a client transaction's outputs; failures are reported to the owner of the request.
    pub(super) fn drain_client(&mut self, id: u64, now: Instant) {
        let Some(tx) = self.client_transactions.get_mut(&id) else { return };
        let (mut terminated, mut timed_out) = (false, false);
        loop {
            let output = match &mut tx.machine {
                ClientMachine::Invite(m) => m.poll_output(),
                ClientMachine::NonInvite(m) => m.poll_output(),
            };
            match output {
                None => break,
                Some(Output::Transmit(bytes)) => self.transmits.push_back(Transmit { route: tx.route, bytes }),
                Some(Output::Timeout) => timed_out = true,
                Some(Output::TransportError) => {}
                Some(Output::Terminated) => terminated = true,
            }
        }
        let purpose = tx.purpose;
        let at = match &tx.machine {
            ClientMachine::Invite(m) => m.poll_timeout(),
            ClientMachine::NonInvite(m) => m.poll_timeout(),
        };
        if terminated {
            self.client_transactions.remove(&id);
        } else {
            self.arm(TimerOwner::Client(id), at);
        }
        if timed_out {
            self.upstream_failure(purpose, "no response (transaction timeout)", now);
        }
    }
}
