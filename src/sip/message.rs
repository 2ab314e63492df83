//! Turning bytes from the wire into checked messages.
//!
//! rsipstack parses; this module decides whether the result is acceptable and which status a
//! rejected request deserves (RFC 3261 §8.2, RFC 4475). Nothing here panics on any input.

use super::syntax::{self, NameAddr, ViaValue};
use super::TransportKind;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Request, Response, SipMessage};

/// Methods rsipstack knows; anything else that is a token gets 501 (RFC 3261 §8.2.1).
const KNOWN_METHODS: &[&str] = &[
    "ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK", "PUBLISH", "REFER",
    "REGISTER", "SUBSCRIBE", "UPDATE",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("SIP version {0} is not supported")]
    BadVersion(String),
    #[error("method {0} is not implemented")]
    UnknownMethod(String),
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} must appear once")]
    DuplicateHeader(&'static str),
    #[error("bad {header} header: {reason}")]
    BadHeader { header: &'static str, reason: String },
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { cseq: String, method: String },
}

impl MessageError {
    /// The one place a message error becomes a SIP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadVersion(_) => 505,
            Self::UnknownMethod(_) => 501,
            _ => 400,
        }
    }
}

/// A request that passed syntax checks, with the header values routing depends on already read.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub request: Request,
    pub method: String,
    /// The Request-URI exactly as sent: digest responses hash this text, not a re-printed URI.
    pub request_uri: String,
    pub top_via: ViaValue,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub max_forwards: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct ParsedResponse {
    pub response: Response,
    pub status: u16,
    pub top_via: ViaValue,
    pub cseq: u32,
    pub cseq_method: String,
    pub call_id: String,
}

#[derive(Debug, Clone)]
pub enum Inbound {
    Request(Box<ParsedRequest>),
    Response(Box<ParsedResponse>),
    /// CRLF keep-alive (RFC 5626 §3.5.1) or stray blank lines.
    KeepAlive,
}

/// Why a message was not accepted, and whether it can be answered.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub error: MessageError,
    /// Via/From/To/Call-ID/CSeq recovered from the raw text, when the message was a request whose
    /// Via we could read. Without them no response can be routed, and the message is dropped.
    pub reply_headers: Option<Headers>,
}

pub fn parse(bytes: &[u8], transport: TransportKind) -> Result<Inbound, Rejected> {
    let trimmed = trim_leading_crlf(bytes);
    // RFC 5118 §4.10 asks to tolerate RFC 3261's three-colon IPv6 form, which rsipstack refuses.
    let rewritten = syntax::rewrite_three_colon_references(trimmed);
    let trimmed = rewritten.as_deref().unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Inbound::KeepAlive);
    }
    if trimmed.starts_with(b"SIP/") {
        return parse_response(trimmed)
            .map(|r| Inbound::Response(Box::new(r)))
            .map_err(|error| Rejected { error, reply_headers: None });
    }
    parse_request(trimmed, transport)
        .map(|r| Inbound::Request(Box::new(r)))
        .map_err(|error| Rejected { reply_headers: reply_headers(trimmed), error })
}

fn trim_leading_crlf(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(bytes.len());
    &bytes[start..]
}

fn start_line(bytes: &[u8]) -> Result<&str, MessageError> {
    let end = bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).map_err(|_| MessageError::Malformed("start line is not UTF-8".into()))
}

/// RFC 3261 §7.1: exactly `Method SP Request-URI SP SIP-Version`. Extra or trailing spaces are
/// refused (RFC 4475 §3.1.2.9/10 allow either choice; refusing keeps URI parsing unambiguous).
fn check_request_line(line: &str) -> Result<(), MessageError> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(MessageError::Malformed(format!("request line `{}` is not `METHOD URI SIP/2.0`", truncate(line))));
    };
    if !syntax::is_token(method) {
        return Err(MessageError::Malformed(format!("method `{}` is not a token", truncate(method))));
    }
    if *version != "SIP/2.0" {
        let looks_like_version = version.strip_prefix("SIP/").is_some_and(|v| {
            v.split_once('.').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && (a.to_owned() + b).chars().all(|c| c.is_ascii_digit()))
        });
        return Err(if looks_like_version {
            MessageError::BadVersion(version.to_string())
        } else {
            MessageError::Malformed(format!("bad SIP version `{}`", truncate(version)))
        });
    }
    if !KNOWN_METHODS.contains(method) {
        return Err(MessageError::UnknownMethod(method.to_string()));
    }
    if uri.starts_with('<') {
        return Err(MessageError::Malformed("Request-URI must not be enclosed in <>".into()));
    }
    let scheme = uri.split(':').next().unwrap_or("");
    if (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) && uri.contains('?') {
        // RFC 3261 §19.1.1: headers are not allowed in a Request-URI; never apply them.
        return Err(MessageError::Malformed("Request-URI must not carry headers".into()));
    }
    // An IPv6 address without brackets (RFC 5118 §4.2) or with unbalanced ones is refused here:
    // read leniently, its last groups would pass for a port and the request would be misrouted.
    syntax::check_sip_uri_host(uri).map_err(|e| MessageError::Malformed(format!("Request-URI: {}", truncate(&e.0))))?;
    Ok(())
}

fn parse_request(bytes: &[u8], transport: TransportKind) -> Result<ParsedRequest, MessageError> {
    let line = start_line(bytes)?;
    check_request_line(line)?;
    let method = line.split(' ').next().unwrap_or_default().to_string();
    let request_uri = line.split(' ').nth(1).unwrap_or_default().to_string();
    let mut request = match SipMessage::try_from(bytes) {
        Ok(SipMessage::Request(request)) => request,
        Ok(SipMessage::Response(_)) => return Err(MessageError::Malformed("expected a request".into())),
        Err(e) => return Err(MessageError::Malformed(truncate(&e.to_string()).to_string())),
    };
    let headers = &request.headers;
    for (name, header_is) in SINGLE_VALUED {
        if headers.iter().filter(|h| header_is(h)).count() > 1 {
            return Err(MessageError::DuplicateHeader(name));
        }
    }
    let top_via = read_vias(headers)?;
    let from = read_name_addr(headers, "From", |h| matches!(h, Header::From(_)))?;
    let to = read_name_addr(headers, "To", |h| matches!(h, Header::To(_)))?;
    let call_id = read_call_id(headers)?;
    let (cseq, cseq_method) = read_cseq(headers)?;
    if cseq_method != method {
        return Err(MessageError::CSeqMismatch { cseq: cseq_method, method });
    }
    let max_forwards = match find(headers, |h| matches!(h, Header::MaxForwards(_))) {
        None => None,
        Some(value) => Some(
            value.trim().parse::<u64>().map(|v| v.min(u64::from(u32::MAX)) as u32).map_err(|_| MessageError::BadHeader {
                header: "Max-Forwards",
                reason: format!("`{}` is not a number", truncate(value)),
            })?,
        ),
    };
    for value in headers.iter().filter(|h| matches!(h, Header::Contact(_))).map(|h| h.value()) {
        if value.trim() == "*" {
            continue;
        }
        for contact in syntax::split_values(value) {
            NameAddr::parse(contact).map_err(|e| MessageError::BadHeader { header: "Contact", reason: e.0 })?;
        }
    }
    fix_body_length(bytes, &mut request, transport)?;
    Ok(ParsedRequest { request, method, request_uri, top_via, from, to, call_id, cseq, max_forwards })
}

fn parse_response(bytes: &[u8]) -> Result<ParsedResponse, MessageError> {
    let line = start_line(bytes)?;
    let mut parts = line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if version != "SIP/2.0" {
        return Err(MessageError::BadVersion(version.to_string()));
    }
    let status: u16 = code
        .parse()
        .ok()
        .filter(|c| (100..=699).contains(c) && code.len() == 3)
        .ok_or_else(|| MessageError::Malformed(format!("status code `{}` is not 100-699", truncate(code))))?;
    let response = match SipMessage::try_from(bytes) {
        Ok(SipMessage::Response(response)) => response,
        Ok(SipMessage::Request(_)) => return Err(MessageError::Malformed("expected a response".into())),
        Err(e) => return Err(MessageError::Malformed(truncate(&e.to_string()).to_string())),
    };
    let headers = &response.headers;
    let top_via = read_vias(headers)?;
    let call_id = read_call_id(headers)?;
    let (cseq, cseq_method) = read_cseq(headers)?;
    read_name_addr(headers, "From", |h| matches!(h, Header::From(_)))?;
    read_name_addr(headers, "To", |h| matches!(h, Header::To(_)))?;
    Ok(ParsedResponse { response, status, top_via, cseq, cseq_method, call_id })
}

type HeaderTest = fn(&Header) -> bool;

/// RFC 3261 §7.3.1: these may not be repeated (RFC 4475 §3.3.8 and §3.3.9).
const SINGLE_VALUED: &[(&str, HeaderTest)] = &[
    ("From", |h| matches!(h, Header::From(_))),
    ("To", |h| matches!(h, Header::To(_))),
    ("Call-ID", |h| matches!(h, Header::CallId(_))),
    ("CSeq", |h| matches!(h, Header::CSeq(_))),
    ("Max-Forwards", |h| matches!(h, Header::MaxForwards(_))),
    ("Content-Length", |h| matches!(h, Header::ContentLength(_))),
    ("Content-Type", |h| matches!(h, Header::ContentType(_))),
];

fn find(headers: &Headers, test: impl Fn(&Header) -> bool) -> Option<&str> {
    headers.iter().find(|h| test(h)).map(|h| h.value())
}

fn read_vias(headers: &Headers) -> Result<ViaValue, MessageError> {
    let mut top = None;
    for value in headers.iter().filter(|h| matches!(h, Header::Via(_))).map(|h| h.value()) {
        for via in syntax::split_values(value) {
            let parsed = ViaValue::parse(via).map_err(|e| MessageError::BadHeader { header: "Via", reason: e.0 })?;
            top.get_or_insert(parsed);
        }
    }
    top.ok_or(MessageError::MissingHeader("Via"))
}

fn read_name_addr(headers: &Headers, name: &'static str, test: HeaderTest) -> Result<NameAddr, MessageError> {
    let value = find(headers, test).ok_or(MessageError::MissingHeader(name))?;
    NameAddr::parse(value).map_err(|e| MessageError::BadHeader { header: name, reason: e.0 })
}

fn read_call_id(headers: &Headers) -> Result<String, MessageError> {
    let value = find(headers, |h| matches!(h, Header::CallId(_))).ok_or(MessageError::MissingHeader("Call-ID"))?;
    let value = value.trim();
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(MessageError::BadHeader { header: "Call-ID", reason: "must be one word".into() });
    }
    Ok(value.to_string())
}

fn read_cseq(headers: &Headers) -> Result<(u32, String), MessageError> {
    let value = find(headers, |h| matches!(h, Header::CSeq(_))).ok_or(MessageError::MissingHeader("CSeq"))?;
    syntax::parse_cseq(value).map_err(|e| MessageError::BadHeader { header: "CSeq", reason: e.0 })
}

/// RFC 3261 §18.3: on UDP a Content-Length larger than the datagram is an error, a smaller one
/// truncates, and a missing one means "the rest of the datagram" (so too for a WebSocket message,
/// RFC 7118 §5.1). On streams the framer already
/// cut the message at Content-Length.
fn fix_body_length(bytes: &[u8], request: &mut Request, transport: TransportKind) -> Result<(), MessageError> {
    let available = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|end| bytes.len() - end - 4)
        .ok_or_else(|| MessageError::Malformed("no empty line after the headers".into()))?;
    match find(&request.headers, |h| matches!(h, Header::ContentLength(_))) {
        Some(value) => {
            let declared: usize = value
                .trim()
                .parse()
                .map_err(|_| MessageError::BadContentLength(format!("`{}` is not a non-negative number", truncate(value))))?;
            if declared > available {
                return Err(MessageError::BadContentLength(format!("{declared} declared, {available} received")));
            }
        }
        None if transport.is_message_framed() && available > 0 => {
            let body_start = bytes.len() - available;
            request.body = bytes[body_start..].to_vec();
        }
        // On streams a missing Content-Length means an empty body (the framer cut there); RFC 4475
        // `inv2543` shows old UAs omit it, so this is tolerated rather than refused.
        None => {}
    }
    Ok(())
}

/// Best-effort recovery of the headers a response must echo, from a request rsipstack or our checks
/// refused. Folding and compact forms are honoured; anything unreadable is skipped.
fn reply_headers(bytes: &[u8]) -> Option<Headers> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut lines: Vec<String> = Vec::new();
    for line in head.split("\r\n").skip(1) {
        match (line.starts_with([' ', '\t']), lines.last_mut()) {
            (true, Some(last)) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.to_string()),
        }
    }
    let mut headers = Headers::default();
    for line in &lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let header = make_header(name.trim(), value.trim().to_string());
        let keep = matches!(header, Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_));
        let first_of_kind = !matches!(header, Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_))
            || !headers.iter().any(|h| std::mem::discriminant(h) == std::mem::discriminant(&header));
        if keep && first_of_kind {
            headers.push(header);
        }
    }
    // Even a garbled Via is echoed: the sender matches the answer by its own bytes, and the answer is
    // routed to the source address anyway.
    let has_via = headers.iter().any(|h| matches!(h, Header::Via(_)));
    has_via.then_some(headers)
}

fn truncate(text: &str) -> &str {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rfc5118;
