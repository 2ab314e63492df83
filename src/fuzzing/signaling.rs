//! Signalling JSON frames through one `Connection`, as the WebSocket task feeds it: each line of
//! the input is a text frame. Requests that reach the call layer are answered, alternately with a
//! success and an error, so logged-in states and pending-request bookkeeping are reached too.

use crate::config::{IceAuth, IceServerConfig, Secret};
use crate::signaling::{Connection, ConnectionConfig, ErrorCode, LoginInfo, Request, DEFAULT_MAX_FRAME};
use serde_json::{json, Value};

/// The secret the seed corpus's tokens are signed with (HS256; see fuzz/README.md).
pub const JWT_SECRET: &[u8] = b"fuzz-secret-0123456789abcdef";
/// The clock of the first frame: tokens in the seeds are valid around it.
pub const NOW: u64 = 1_700_000_000;
/// Frames of one input beyond this are ignored: enough for hello, login and a call's requests.
const MAX_FRAMES: usize = 32;

fn config() -> ConnectionConfig {
    ConnectionConfig {
        jwt_secret: Some(JWT_SECRET.to_vec()),
        server: "sipbridge/fuzz".into(),
        ice_servers: vec![IceServerConfig {
            urls: vec!["turn:turn.example.com:3478".into()],
            auth: IceAuth::Static { username: "u".into(), credential: Secret("c".into()) },
        }],
        max_frame: DEFAULT_MAX_FRAME,
    }
}

/// Everything the connection sends is a JSON object with a string `type`.
fn drain(connection: &mut Connection, answered: &mut u64) {
    loop {
        while let Some(text) = connection.poll_outgoing() {
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("outgoing frame is not JSON ({e}): {text}"));
            assert!(value.get("type").is_some_and(Value::is_string), "outgoing frame without a type: {text}");
        }
        let Some(request) = connection.poll_request() else { return };
        *answered += 1;
        let Some(id) = request.id().cloned() else { continue };
        let succeed = *answered % 2 == 1;
        match request {
            Request::PasswordLogin { user, .. } | Request::PbxLogin { user, .. } => {
                let result = if succeed { Ok(LoginInfo { user, profiles: vec!["pbx1".into()] }) } else { Err(crate::signaling::LoginError::Rejected) };
                connection.login_result(id, result);
            }
            _ if succeed => connection.reply(id, json!({"call_id": "c1"})),
            _ => connection.error(Some(id), ErrorCode::UnknownCall, "no such call"),
        }
    }
}

pub fn signaling(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut connection = Connection::new(config());
    let mut answered = 0;
    for (index, frame) in text.split('\n').take(MAX_FRAMES).enumerate() {
        // Every other frame a second later: both the rate limiter's refill and its burst run.
        connection.handle_frame(frame, NOW + index as u64 / 2);
        drain(&mut connection, &mut answered);
    }
}
