//! What the gateway, as a UAS, refuses before any application logic runs (RFC 3261 §8.2.1-§8.2.3):
//! methods, URI schemes, extensions and bodies it does not handle. These checks run before trust
//! checks on purpose: they reveal nothing about users or routes, and RFC 4475 expects them.

use super::message::ParsedRequest;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Scheme};

pub const ALLOWED_METHODS: &[&str] = &["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "REFER", "NOTIFY", "PRACK"];
/// Option tags we implement. RFC 3261 allows an empty Supported header; this grows with features.
pub const SUPPORTED_OPTIONS: &[&str] = &["timer", "100rel"];
pub const ACCEPTED_BODIES: &[&str] = &["application/sdp", "application/dtmf-relay", "application/dtmf", "message/sipfrag"];

pub fn allow_header() -> Header {
    make_header("Allow", ALLOWED_METHODS.join(", "))
}
pub fn accept_header() -> Header {
    make_header("Accept", ACCEPTED_BODIES.join(", "))
}
pub fn supported_header() -> Header {
    make_header("Supported", SUPPORTED_OPTIONS.join(", "))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("Request-URI scheme {0} is not supported")]
    UnsupportedScheme(String),
    #[error("unsupported extension(s): {}", .0.join(", "))]
    BadExtension(Vec<String>),
    #[error("unsupported body type {0}")]
    UnsupportedMediaType(String),
    #[error("Accept rules out every body we could answer with")]
    NotAcceptable,
}

impl PolicyError {
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed(_) => 405,
            Self::UnsupportedScheme(_) => 416,
            Self::BadExtension(_) => 420,
            Self::UnsupportedMediaType(_) => 415,
            Self::NotAcceptable => 406,
        }
    }

    /// Headers the RFC requires with each refusal.
    pub fn headers(&self) -> Vec<Header> {
        match self {
            Self::MethodNotAllowed(_) => vec![allow_header()],
            Self::BadExtension(tags) => vec![make_header("Unsupported", tags.join(", "))],
            Self::UnsupportedMediaType(_) => vec![accept_header(), make_header("Accept-Encoding", "identity".into())],
            Self::UnsupportedScheme(_) | Self::NotAcceptable => vec![],
        }
    }
}

pub fn check(parsed: &ParsedRequest) -> Result<(), PolicyError> {
    let method = parsed.method.as_str();
    if !ALLOWED_METHODS.contains(&method) {
        return Err(PolicyError::MethodNotAllowed(method.to_string()));
    }
    match &parsed.request.uri.scheme {
        Some(Scheme::Sip) | Some(Scheme::Sips) => {}
        Some(Scheme::Other(s)) if s.eq_ignore_ascii_case("tel") => {}
        Some(Scheme::Other(s)) => return Err(PolicyError::UnsupportedScheme(s.clone())),
        None => return Err(PolicyError::UnsupportedScheme(String::new())),
    }
    // ACK and CANCEL cannot be refused with 420/415 (RFC 3261 §8.2.2.3): they have no answer of
    // their own to carry the refusal.
    if method == "ACK" || method == "CANCEL" {
        return Ok(());
    }
    let headers = &parsed.request.headers;
    let unknown: Vec<String> = headers
        .iter()
        .filter(|h| matches!(h, Header::Require(_)))
        .flat_map(|h| h.value().split(',').map(|t| t.trim().to_string()).collect::<Vec<_>>())
        .filter(|tag| !tag.is_empty() && !SUPPORTED_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(tag)))
        .collect();
    if !unknown.is_empty() {
        return Err(PolicyError::BadExtension(unknown));
    }
    for encoding in headers.iter().filter(|h| matches!(h, Header::ContentEncoding(_))) {
        let value = encoding.value().trim();
        if !value.is_empty() && !value.eq_ignore_ascii_case("identity") {
            return Err(PolicyError::UnsupportedMediaType(format!("encoding {value}")));
        }
    }
    if !parsed.request.body.is_empty() {
        let content_type = headers
            .iter()
            .find(|h| matches!(h, Header::ContentType(_)))
            .map(|h| media_type(h.value()))
            .unwrap_or_default();
        if !ACCEPTED_BODIES.contains(&content_type.as_str()) {
            return Err(PolicyError::UnsupportedMediaType(if content_type.is_empty() { "(none)".into() } else { content_type }));
        }
    }
    if method == "INVITE" {
        let accepts: Vec<String> = headers
            .iter()
            .filter(|h| matches!(h, Header::Accept(_)))
            .flat_map(|h| h.value().split(',').map(media_type).collect::<Vec<_>>())
            .filter(|t| !t.is_empty())
            .collect();
        let answerable = |t: &String| t == "application/sdp" || t == "application/*" || t == "*/*";
        if !accepts.is_empty() && !accepts.iter().any(answerable) {
            return Err(PolicyError::NotAcceptable);
        }
    }
    Ok(())
}

fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse, Inbound};
    use crate::sip::TransportKind;

    fn check_file(name: &str) -> Result<(), PolicyError> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475").join(name);
        let bytes = std::fs::read(path).expect("corpus");
        match parse(&bytes, TransportKind::Tcp).expect("parses") {
            Inbound::Request(request) => check(&request),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn torture_semantics() {
        assert_eq!(check_file("unkscm.dat").map_err(|e| e.status()), Err(416));
        assert_eq!(check_file("novelsc.dat").map_err(|e| e.status()), Err(416));
        assert_eq!(check_file("bext01.dat").map_err(|e| e.status()), Err(420));
        assert_eq!(check_file("invut.dat").map_err(|e| e.status()), Err(415));
        assert_eq!(check_file("sdp01.dat"), Err(PolicyError::NotAcceptable));
        assert_eq!(check_file("mpart01.dat").map_err(|e| e.status()), Err(405));
        for fine in ["wsinv.dat", "esc01.dat", "zeromf.dat", "cparam01.dat", "inv2543.dat", "semiuri.dat"] {
            assert_eq!(check_file(fine), Ok(()), "{fine}");
        }
    }

    #[test]
    fn refusals_carry_required_headers() {
        let names: Vec<String> = PolicyError::BadExtension(vec!["x".into()]).headers().iter().map(|h| h.name().to_string()).collect();
        assert_eq!(names, vec!["Unsupported"]);
        let names: Vec<String> = PolicyError::UnsupportedMediaType("x".into()).headers().iter().map(|h| h.name().to_string()).collect();
        assert!(names.contains(&"Accept".to_string()));
        let names: Vec<String> = PolicyError::MethodNotAllowed("MESSAGE".into()).headers().iter().map(|h| h.name().to_string()).collect();
        assert_eq!(names, vec!["Allow"]);
    }
}
