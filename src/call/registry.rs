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
}

/// What one browser connection tells a ringing or active call.
#[derive(Debug)]
pub enum BrowserAnswer {
    Accept { device: u64, sdp: String, reply: oneshot::Sender<Result<(), String>> },
    Reject { device: u64, busy: bool },
    Candidate { device: u64, candidate: Option<Value> },
    Hangup { device: u64 },
}

#[derive(Default)]
pub struct BrowserRegistry {
    users: Mutex<HashMap<String, Vec<(u64, mpsc::Sender<BrowserPush>)>>>,
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

    /// Every device the user is logged in on, right now.
    pub fn devices(&self, user: &str) -> Vec<(u64, mpsc::Sender<BrowserPush>)> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(user).cloned().unwrap_or_default()
    }
}
