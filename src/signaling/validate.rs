//! Field checks that serde's types cannot express. Everything here ends up in SIP headers, SDP or
//! logs, so control characters are refused outright: a CR LF in a target would inject headers.

use super::protocol::IceCandidate;

pub const MAX_CALL_ID: usize = 128;
pub const MAX_TARGET: usize = 256;
pub const MAX_USER: usize = 128;
pub const MAX_PROFILE: usize = 64;
pub const MAX_PASSWORD: usize = 1024;
pub const MAX_CODEC: usize = 32;
pub const MAX_DTMF_DIGITS: usize = 32;
pub const MAX_CANDIDATE: usize = 1024;
pub const MAX_SDP_MID: usize = 64;
pub const MAX_UFRAG: usize = 256;
pub const MAX_ID: usize = 128;

pub type Check = Result<(), String>;

pub fn text(name: &str, value: &str, max: usize) -> Check {
    if value.is_empty() {
        return Err(format!("{name} must not be empty"));
    }
    if value.len() > max {
        return Err(format!("{name} is longer than {max} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{name} contains control characters"));
    }
    Ok(())
}

/// Call ids are ours (the server allocates them), so anything but short visible ASCII is a
/// client bug; refusing it early gives a clearer error than `unknown_call`.
pub fn call_id(value: &str) -> Check {
    if value.is_empty() || value.len() > MAX_CALL_ID || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("call_id must be 1-{MAX_CALL_ID} visible ASCII characters"));
    }
    Ok(())
}

/// RFC 4733 events 0-15 are the only digits both SIP INFO and telephone-event carry.
pub fn digits(value: &str) -> Check {
    if value.is_empty() || value.len() > MAX_DTMF_DIGITS {
        return Err(format!("digits must be 1-{MAX_DTMF_DIGITS} characters"));
    }
    if let Some(bad) = value.chars().find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')) {
        return Err(format!("digit {bad:?} is not one of 0-9 * # A-D"));
    }
    Ok(())
}

/// Only a sanity check: the SDP module parses it for real. RFC 8866 requires `v=` first.
pub fn sdp(value: &str) -> Check {
    if !value.trim_start().starts_with("v=") {
        return Err("sdp must be a session description starting with v=".to_owned());
    }
    Ok(())
}

pub fn codec(value: &str) -> Check {
    let ok = !value.is_empty()
        && value.len() <= MAX_CODEC
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if !ok {
        return Err(format!("codec must be 1-{MAX_CODEC} characters of A-Z a-z 0-9 . _ - /"));
    }
    Ok(())
}

/// Browsers signal end-of-candidates either as `null` or as an empty candidate string; both
/// become `None` so the owner sees one form.
pub fn candidate(value: Option<IceCandidate>) -> Result<Option<IceCandidate>, String> {
    let Some(c) = value else { return Ok(None) };
    if c.candidate.is_empty() {
        return Ok(None);
    }
    text("candidate.candidate", &c.candidate, MAX_CANDIDATE)?;
    // An empty sdpMid is what some stacks send when they only know the m-line index.
    if let Some(mid) = c.sdp_mid.as_deref().filter(|m| !m.is_empty()) {
        text("candidate.sdpMid", mid, MAX_SDP_MID)?;
    }
    if let Some(ufrag) = &c.username_fragment {
        text("candidate.usernameFragment", ufrag, MAX_UFRAG)?;
    }
    if c.sdp_mid.is_none() && c.sdp_m_line_index.is_none() {
        return Err("candidate needs sdpMid or sdpMLineIndex".to_owned());
    }
    Ok(Some(c))
}
