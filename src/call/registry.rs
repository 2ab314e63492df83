//! Which browsers are logged in as which user, so a call for a user rings all of their devices.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use crate::signaling::{ErrorCode, RequestId};
use tokio::sync::mpsc;

/// What the call layer pushes to one browser connection. The connection's channel is bounded:
/// a call waits for room (while still taking its other inputs), so nothing is dropped.
#[derive(Debug)]
pub enum BrowserPush {
    Incoming { call_id: String, caller_uri: String, caller_name: Option<String>, sdp: String, control: mpsc::Sender<BrowserAnswer> },
    Candidate { call_id: String, candidate: Option<Value> },
    Hangup { call_id: String, reason: crate::signaling::HangupReason, cause: String },
    /// For calls the browser placed.
    /// `sdp` set: early media, the answer to the browser's offer arrives now.
    Ringing { call_id: String, sdp: Option<String> },
    Answered { call_id: String, sdp: String },
    Dtmf { call_id: String, digit: char, duration_ms: u32 },
    RemoteHold { call_id: String, on_hold: bool },
    /// The answer to a request the connection passed on (`accept`, `dtmf`, `hold`, `unhold`,
    /// `transfer`, `reclaim`): the WebSocket task never waits for it.
    Reply { call_id: String, id: RequestId, result: Result<(), (ErrorCode, String)> },
}

/// What one browser connection tells a ringing or active call. Requests carry the browser's
/// request id; the call answers it with `BrowserPush::Reply`.
#[derive(Debug)]
pub enum BrowserAnswer {
    Accept { device: u64, sdp: String, id: RequestId },
    Reject { device: u64, busy: bool },
    Candidate { device: u64, candidate: Option<Value> },
    Hangup { device: u64 },
    /// Digits toward the SIP side.
    Dtmf { device: u64, digits: String, id: RequestId },
    /// Hold (`true`) or resume the SIP side; answered once the peer has answered the re-INVITE.
    Hold { device: u64, hold: bool, id: RequestId },
    /// Blind transfer of the SIP side to `target` (REFER); answered when the peer accepts it.
    Transfer { device: u64, target: String, id: RequestId },
    /// The device's WebSocket dropped: an answered call waits for a `Reattach` (grace period).
    Detached { device: u64 },
    /// The user's new connection takes the call over; events go to `push` from now on.
    Reattach { device: u64, push: mpsc::Sender<BrowserPush>, id: RequestId },
}

impl BrowserAnswer {
    pub fn device(&self) -> u64 {
        match self {
            Self::Accept { device, .. } | Self::Reject { device, .. } | Self::Candidate { device, .. } | Self::Hangup { device } => *device,
            Self::Dtmf { device, .. } | Self::Hold { device, .. } | Self::Transfer { device, .. } => *device,
            Self::Detached { device } | Self::Reattach { device, .. } => *device,
        }
    }
}

#[derive(Default)]
pub struct BrowserRegistry {
    users: Mutex<HashMap<String, Vec<(u64, mpsc::Sender<BrowserPush>)>>>,
    /// Calls whose WebSocket dropped, by call id, with the user who may reclaim them. An entry
    /// whose call ended has a closed channel and is swept on the next park.
    parked: Mutex<HashMap<String, (String, mpsc::Sender<BrowserAnswer>)>>,
}

impl BrowserRegistry {
    pub fn add(&self, user: &str, device: u64, push: mpsc::Sender<BrowserPush>) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.entry(user.to_string()).or_default().push((device, push));
    }

    pub fn remove(&self, user: &str, device: u64) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(devices) = users.get_mut(user) {
            devices.retain(|(d, _)| *d != device);
            if devices.is_empty() {
                users.remove(user);
            }
        }
    }

    pub fn park(&self, call_id: &str, user: &str, control: mpsc::Sender<BrowserAnswer>) {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        parked.retain(|_, (_, control)| !control.is_closed());
        parked.insert(call_id.to_string(), (user.to_string(), control));
    }

    /// The parked call `call_id`, if `user` is the one who may take it.
    pub fn unpark(&self, call_id: &str, user: &str) -> Option<mpsc::Sender<BrowserAnswer>> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        match parked.get(call_id) {
            Some((owner, _)) if owner == user => parked.remove(call_id).map(|(_, control)| control),
            _ => None,
        }
    }

    /// Every device the user is logged in on, right now.
    pub fn devices(&self, user: &str) -> Vec<(u64, mpsc::Sender<BrowserPush>)> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(user).cloned().unwrap_or_default()
    }
}
