//! What a browser's requests do: calls to SIP and to `echo`, requests about calls from SIP, and
//! logins. Nothing here waits for a call: a request that needs a call's answer carries its id,
//! and the answer comes back as `BrowserPush::Reply`.

use super::{Session, MAX_CALLS_PER_CONNECTION};
use crate::call::echo::EchoCall;
use crate::call::registry::BrowserAnswer;
use crate::config::{LocalUser, UserSecret};
use crate::signaling::{ErrorCode, LoginError, LoginInfo, RejectReason, Request, RequestId, ServerEvent};
use tokio::sync::mpsc;

impl Session<'_> {
    /// A browser calls SIP: a phone registered to the gateway by its user name, else through the
    /// first profile the user may use (token claim or PBX login). `codec` is the only codec
    /// offered to the SIP side (docs/signaling.md §4.4).
    pub(super) async fn place_call(&mut self, id: RequestId, target: &str, sdp: &str, codec: Option<&str>) {
        let Some((user, profile)) = self.connection.user().map(|u| (u.user.clone(), u.profiles.first().cloned())) else { return };
        let sip_codec = match codec.map(|name| crate::call::echo::encoding_of(name).ok_or(name)) {
            None => None,
            Some(Ok(encoding)) => Some(encoding),
            Some(Err(name)) => return self.connection.error(Some(id), ErrorCode::BadRequest, &format!("unknown codec `{name}` (use opus, g722, pcmu or pcma)")),
        };
        if profile.is_none() && !self.phone_registered(target).await {
            tracing::info!(%user, %target, "call refused: the user has no profile to call out through and the target is no registered phone");
            return self.connection.error(Some(id), ErrorCode::Forbidden, "this user may only call phones registered to the gateway (no profile)");
        }
        if self.bridged.len() >= MAX_CALLS_PER_CONNECTION {
            return self.connection.error(Some(id), ErrorCode::RateLimited, "too many calls on this connection");
        }
        let call_id = uuid::Uuid::new_v4().to_string();
        let (control_tx, control_rx) = mpsc::channel(32);
        self.bridged.insert(call_id.clone(), control_tx);
        self.connection.reply(id, serde_json::json!({ "call_id": call_id }));
        let layer = self.state.signaling.calls.clone();
        let span = tracing::info_span!("call", %call_id);
        let call = crate::call::outbound::OutboundCall {
            call_id,
            device: self.device,
            user,
            profile,
            target: target.to_string(),
            browser_offer: sdp.to_string(),
            sip_codec,
        };
        tokio::spawn(tracing::Instrument::instrument(crate::call::outbound::place(layer, call, self.push.clone(), control_rx), span));
    }

    async fn phone_registered(&self, user: &str) -> bool {
        self.state.sip.bindings_of(user).await.iter().any(|b| crate::sip::syntax::uri_user(b.aor.trim_start_matches('<')) == Some(user))
    }

    /// Requests about calls from SIP go to that call's task; anything else is returned for
    /// `handle`. The call's control channel is bounded and the call always takes from it, so
    /// `send` only waits for room.
    pub(super) async fn route_bridged(&mut self, request: Request) -> Option<Request> {
        let call_id = match &request {
            Request::Accept { call_id, .. } | Request::Reject { call_id, .. } | Request::Candidate { call_id, .. } => call_id,
            Request::Hangup { call_id, .. } | Request::Dtmf { call_id, .. } | Request::Hold { call_id, .. } | Request::Unhold { call_id, .. } => call_id,
            Request::Transfer { call_id, .. } => call_id,
            _ => return Some(request),
        };
        let call_id = call_id.clone();
        let Some(control) = self.bridged.get(&call_id).cloned() else { return Some(request) };
        let device = self.device;
        // What to answer at once, if anything: requests the call answers itself get `Err(id)`.
        let (message, reply_now) = match request {
            Request::Accept { id, sdp, .. } => (BrowserAnswer::Accept { device, sdp, id: id.clone() }, Err(id)),
            Request::Reject { id, reason, .. } => {
                self.bridged.remove(&call_id);
                (BrowserAnswer::Reject { device, busy: reason == RejectReason::Busy }, Ok(Some(id)))
            }
            Request::Hangup { id, .. } => {
                self.bridged.remove(&call_id);
                (BrowserAnswer::Hangup { device }, Ok(Some(id)))
            }
            Request::Candidate { id, candidate, .. } => {
                let candidate = candidate.and_then(|c| serde_json::to_value(c).ok());
                (BrowserAnswer::Candidate { device, candidate }, Ok(id))
            }
            Request::Dtmf { id, digits, .. } => (BrowserAnswer::Dtmf { device, digits, id: id.clone() }, Err(id)),
            Request::Transfer { id, target, .. } => (BrowserAnswer::Transfer { device, target, id: id.clone() }, Err(id)),
            Request::Hold { id, .. } => (BrowserAnswer::Hold { device, hold: true, id: id.clone() }, Err(id)),
            Request::Unhold { id, .. } => (BrowserAnswer::Hold { device, hold: false, id: id.clone() }, Err(id)),
            other => return Some(other),
        };
        if control.send(message).await.is_err() {
            // The call ended meanwhile (its `hangup` event is on the way): no live call by that name.
            self.bridged.remove(&call_id);
            let id = match reply_now {
                Ok(id) => id,
                Err(id) => Some(id),
            };
            self.connection.error(id, ErrorCode::UnknownCall, "the call has ended");
        } else if let Ok(Some(id)) = reply_now {
            self.connection.reply(id, serde_json::json!({}));
        }
        None
    }

    /// Takes over a call whose WebSocket dropped: only its own user, only within the grace
    /// period. The call answers the request itself (through this connection's push channel).
    pub(super) async fn reclaim(&mut self, id: RequestId, call_id: String) {
        let Some(user) = self.connection.user().map(|u| u.user.clone()) else { return };
        let Some(control) = self.state.signaling.browsers.unpark(&call_id, &user) else {
            return self.connection.error(Some(id), ErrorCode::UnknownCall, "no call of yours is waiting to be reclaimed under this id");
        };
        if control.send(BrowserAnswer::Reattach { device: self.device, push: self.push.clone(), id: id.clone() }).await.is_err() {
            return self.connection.error(Some(id), ErrorCode::UnknownCall, "the call has ended");
        }
        tracing::info!(%call_id, %user, "reclaim passed to the call");
        self.bridged.insert(call_id, control);
    }

    /// Logins, and the requests of echo calls (the only calls this connection runs itself).
    pub(super) async fn handle(&mut self, request: Request) {
        match request {
            Request::PasswordLogin { id, user, password } => {
                let signaling = &self.state.signaling;
                let result = match signaling.local_users.iter().find(|u| u.username == user) {
                    Some(local) if password_matches(local, &signaling.realm, password.expose()) => Ok(LoginInfo { user, profiles: local.profiles.clone() }),
                    Some(_) => Err(LoginError::Rejected),
                    None => self.console_login(user, password.expose().to_string()).await,
                };
                self.connection.login_result(id, result);
            }
            Request::PbxLogin { id, profile, user, password } => self.pbx_login(id, profile, user, password.expose()).await,
            Request::Call { id, sdp, codec, .. } => self.start_echo(id, &sdp, codec.as_deref()).await,
            Request::Candidate { id, call_id, candidate } => match self.calls.get(&call_id) {
                Some(call) => {
                    let value = candidate.and_then(|c| serde_json::to_value(c).ok());
                    match call.add_remote_candidate(value).await {
                        Ok(()) => {
                            if let Some(id) = id {
                                self.connection.reply(id, serde_json::json!({}));
                            }
                        }
                        Err(e) => self.connection.error(id, ErrorCode::BadRequest, &e.to_string()),
                    }
                }
                None => self.connection.error(id, ErrorCode::UnknownCall, "no such call"),
            },
            Request::Hangup { id, call_id } => match self.calls.remove(&call_id) {
                Some(call) => {
                    call.hangup().await;
                    self.connection.reply(id, serde_json::json!({}));
                }
                None => self.connection.error(Some(id), ErrorCode::UnknownCall, "no such call"),
            },
            Request::Dtmf { id, call_id, .. } | Request::Hold { id, call_id } | Request::Unhold { id, call_id } => {
                if self.calls.contains_key(&call_id) {
                    // The echo loop has no far end to signal; acknowledged so pages behave the same.
                    self.connection.reply(id, serde_json::json!({}));
                } else {
                    self.connection.error(Some(id), ErrorCode::UnknownCall, "no such call");
                }
            }
            Request::Accept { id, .. } | Request::Reject { id, .. } => self.connection.error(Some(id), ErrorCode::UnknownCall, "no such incoming call"),
            Request::Reclaim { id, .. } => self.connection.error(Some(id), ErrorCode::UnknownCall, "no such call"),
            Request::Transfer { id, call_id, .. } => match self.calls.contains_key(&call_id) {
                true => self.connection.error(Some(id), ErrorCode::BadRequest, "the echo test cannot be transferred"),
                false => self.connection.error(Some(id), ErrorCode::UnknownCall, "no such call"),
            },
        }
    }

    /// The login stands only if the PBX accepts the user's own REGISTER.
    async fn pbx_login(&mut self, id: RequestId, profile: String, user: String, password: &str) {
        match self.state.sip.register_user(&profile, &user, password).await {
            Ok(key) => {
                tracing::info!(%user, %profile, "browser user registered upstream");
                self.registrations.push(key);
                self.connection.login_result(id, Ok(LoginInfo { user, profiles: vec![profile] }));
            }
            Err(reason) if reason.starts_with("no PBX profile") => self.connection.login_result(id, Err(LoginError::Forbidden)),
            Err(reason) if reason.contains("credentials rejected") || reason.contains(" 403 ") || reason.starts_with("403") => {
                self.connection.login_result(id, Err(LoginError::Rejected))
            }
            Err(reason) => self.connection.login_result(id, Err(LoginError::Upstream(reason))),
        }
    }

    /// The echo test: the media engine loops the caller's audio back.
    async fn start_echo(&mut self, id: RequestId, sdp: &str, codec: Option<&str>) {
        if !self.state.signaling.calls.drain.accepting() {
            // Refused as a call to SIP is while the gateway drains: a call id, then its `hangup`.
            let call_id = uuid::Uuid::new_v4().to_string();
            self.connection.reply(id, serde_json::json!({ "call_id": call_id }));
            let (reason, cause) = crate::call::machine::mapping::browser_hangup(&crate::call::machine::EndReason::Draining);
            return self.connection.event(ServerEvent::Hangup { call_id, reason, cause });
        }
        if self.calls.len() >= MAX_CALLS_PER_CONNECTION {
            return self.connection.error(Some(id), ErrorCode::RateLimited, "too many calls on this connection");
        }
        let signaling = &self.state.signaling;
        let factory = crate::media::codec_glue::factory(signaling.opus_complexity);
        match EchoCall::start(sdp, codec, &signaling.engine, factory, signaling.webrtc.clone()).await {
            Ok((call, answer, mut call_events)) => {
                let call_id = uuid::Uuid::new_v4().to_string();
                tracing::info!(%call_id, transcoding = call.transcoding, "echo call answered");
                self.calls.insert(call_id.clone(), call);
                self.connection.reply(id, serde_json::json!({ "call_id": call_id }));
                self.connection.event(ServerEvent::Answered { call_id: call_id.clone(), sdp: answer });
                let events = self.echo_events.clone();
                tokio::spawn(async move {
                    while let Some(event) = call_events.recv().await {
                        if events.send((call_id.clone(), event)).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => self.connection.error(Some(id), ErrorCode::BadRequest, &e.to_string()),
        }
    }

    /// A console user granted profiles logs in to the softphone with the console password.
    async fn console_login(&self, user: String, password: String) -> Result<LoginInfo, LoginError> {
        let console = self.state.console.clone();
        let name = user.clone();
        let granted = tokio::task::spawn_blocking(move || super::super::console::softphone_login(&console.users.all(), &name, &password)).await;
        match granted {
            Ok(Some(profiles)) => Ok(LoginInfo { user, profiles }),
            _ => Err(LoginError::Rejected),
        }
    }
}

fn password_matches(user: &LocalUser, realm: &str, password: &str) -> bool {
    use md5::{Digest, Md5};
    use subtle::ConstantTimeEq;
    match &user.secret {
        UserSecret::Password(expected) => expected.as_bytes().ct_eq(password.as_bytes()).into(),
        UserSecret::Ha1Md5(expected) => {
            let computed = hex::encode(Md5::digest(format!("{}:{realm}:{password}", user.username)));
            computed.as_bytes().ct_eq(expected.as_bytes()).into()
        }
    }
}
