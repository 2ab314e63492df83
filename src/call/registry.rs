//! Which browsers are logged in as which user, so a call for a user rings all of their devices.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// What the call layer pushes to one browser connection.
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
}

/// What one browser connection tells a ringing or active call.
#[derive(Debug)]
pub enum BrowserAnswer {
    Accept { device: u64, sdp: String, reply: oneshot::Sender<Result<(), String>> },
    Reject { device: u64, busy: bool },
    Candidate { device: u64, candidate: Option<Value> },
    Hangup { device: u64 },
    /// Digits toward the SIP side.
    Dtmf { digits: String, reply: oneshot::Sender<Result<(), String>> },
    /// Hold (`true`) or resume the SIP side; answered once the peer has answered the re-INVITE.
    Hold { hold: bool, reply: oneshot::Sender<Result<(), String>> },
    /// Blind transfer of the SIP side to `target` (REFER); answered when the peer accepts it.
    Transfer { target: String, reply: oneshot::Sender<Result<(), String>> },
    /// The device's WebSocket dropped: an answered call waits for a `Reattach` (grace period).
    Detached { device: u64 },
    /// The user's new connection takes the call over; events go to `push` from now on.
    Reattach { device: u64, push: mpsc::Sender<BrowserPush>, reply: oneshot::Sender<Result<(), String>> },
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

/// The grace period of an answered call whose browser's WebSocket dropped (`reclaim_grace_secs`).
pub struct Parking {
    grace: std::time::Duration,
    until: Option<tokio::time::Instant>,
}

impl Parking {
    pub fn new(grace_secs: u64) -> Parking {
        Parking { grace: std::time::Duration::from_secs(grace_secs), until: None }
    }

    /// Starts the grace period; false when there is none and the call should end now.
    pub fn detach(&mut self) -> bool {
        if self.grace.is_zero() {
            return false;
        }
        self.until = Some(tokio::time::Instant::now() + self.grace);
        true
    }

    pub fn reattach(&mut self) {
        self.until = None;
    }

    pub fn is_parked(&self) -> bool {
        self.until.is_some()
    }

    /// Completes when the grace period runs out; never while the browser is attached.
    pub async fn expired(&self) {
        match self.until {
            Some(until) => tokio::time::sleep_until(until).await,
            None => std::future::pending().await,
        }
    }
}
