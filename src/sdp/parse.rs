//! SDP text to model and back. Reading is lenient where real devices are sloppy (LF-only line
//! ends, trailing spaces, missing `s=` or `t=`, lines in odd order, unknown lines and attributes)
//! and strict where a guess would send media to the wrong place or misread the session.
//! Printing is canonical (RFC 8866 §5 order, CRLF), so parse → print → parse is the identity.

use std::fmt;

use super::{
    AddrType, Attribute, Connection, MediaDescription, Origin, RtpMap, SdpError, SdpLine, SessionDescription, Timing,
    PAYLOAD_TYPES,
};

impl SessionDescription {
    /// An SDP with no media, unbounded timing (RFC 3264 §5) and `s=-`.
    pub fn new(origin: Origin) -> SessionDescription {
        SessionDescription {
            origin,
            session_name: "-".to_string(),
            extra_head: Vec::new(),
            connection: None,
            bandwidth: Vec::new(),
            timing: vec![Timing::unbounded()],
            extra_tail: Vec::new(),
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }
}

impl MediaDescription {
    pub fn new(kind: &str, port: u16, protocol: &str, formats: Vec<String>) -> MediaDescription {
        MediaDescription {
            kind: kind.to_string(),
            port,
            port_count: None,
            protocol: protocol.to_string(),
            formats,
            extra_head: Vec::new(),
            connection: None,
            bandwidth: Vec::new(),
            extra_tail: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

pub(super) fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut lines =
        text.split('\n').enumerate().map(|(i, line)| (i + 1, line.trim())).filter(|(_, line)| !line.is_empty());
    match lines.next() {
        Some((_, "v=0")) => {}
        _ => return Err(SdpError::MissingVersion),
    }
    let mut origin = None;
    let mut session_name = None;
    let placeholder =
        Origin { username: String::new(), session_id: 0, version: 0, addr_type: AddrType::Ip4, address: String::new() };
    let mut session = SessionDescription { timing: Vec::new(), ..SessionDescription::new(placeholder) };
    for (number, line) in lines {
        let (kind, value) = split_line(number, line)?;
        if kind == 'm' {
            session.media.push(parse_media_line(number, value)?);
            continue;
        }
        if let Some(media) = session.media.last_mut() {
            media_line(media, number, kind, value)?;
            continue;
        }
        match kind {
            'v' => return Err(syntax(number, "repeated v= line")),
            'o' if origin.is_some() => return Err(syntax(number, "repeated o= line")),
            'o' => origin = Some(parse_origin(number, value)?),
            's' if session_name.is_some() => return Err(syntax(number, "repeated s= line")),
            's' => session_name = Some(value.to_string()),
            'i' | 'u' | 'e' | 'p' => session.extra_head.push(SdpLine { kind, value: value.to_string() }),
            'c' if session.connection.is_some() => return Err(syntax(number, "repeated c= line")),
            'c' => session.connection = Some(parse_connection(number, value)?),
            'b' => session.bandwidth.push(value.to_string()),
            't' => session.timing.push(Timing { value: value.to_string(), repeats: Vec::new() }),
            'r' => match session.timing.last_mut() {
                Some(timing) => timing.repeats.push(value.to_string()),
                None => return Err(syntax(number, "r= before any t=")),
            },
            'a' => session.attributes.push(parse_attribute(value)),
            _ => session.extra_tail.push(SdpLine { kind, value: value.to_string() }),
        }
    }
    session.origin = origin.ok_or(SdpError::MissingOrigin)?;
    if let Some(name) = session_name {
        session.session_name = name;
    }
    if session.timing.is_empty() {
        session.timing.push(Timing::unbounded());
    }
    for (index, media) in session.media.iter().enumerate() {
        if media.port != 0 && media.connection.is_none() && session.connection.is_none() {
            return Err(SdpError::NoConnection { media: index });
        }
    }
    Ok(session)
}

fn syntax(line: usize, reason: &'static str) -> SdpError {
    SdpError::Syntax { line, reason }
}

/// `<type>=<value>` with a one-letter type.
fn split_line(number: usize, line: &str) -> Result<(char, &str), SdpError> {
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(syntax(number, "control character inside a line"));
    }
    let mut chars = line.chars();
    let kind =
        chars.next().filter(char::is_ascii_alphabetic).ok_or(syntax(number, "line does not start with a type letter"))?;
    let value = chars.as_str().strip_prefix('=').ok_or(syntax(number, "no '=' after the type letter"))?;
    Ok((kind, value))
}

fn media_line(media: &mut MediaDescription, number: usize, kind: char, value: &str) -> Result<(), SdpError> {
    match kind {
        'i' => media.extra_head.push(SdpLine { kind, value: value.to_string() }),
        'c' if media.connection.is_some() => return Err(syntax(number, "repeated c= line in a media section")),
        'c' => media.connection = Some(parse_connection(number, value)?),
        'b' => media.bandwidth.push(value.to_string()),
        'a' => media.attributes.push(parse_attribute(value)),
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
            return Err(syntax(number, "session-level line inside a media section"))
        }
        _ => media.extra_tail.push(SdpLine { kind, value: value.to_string() }),
    }
    Ok(())
}

/// `<username> <sess-id> <sess-version> IN <addrtype> <address>`. Fields are counted from the
/// end because some user agents put spaces in the username.
fn parse_origin(number: usize, value: &str) -> Result<Origin, SdpError> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let split = fields.len().checked_sub(5).filter(|&n| n > 0).and_then(|n| fields.split_at_checked(n));
    let Some((user, [session_id, version, net_type, addr_type, address])) = split else {
        return Err(syntax(number, "o= needs six fields"));
    };
    Ok(Origin {
        username: user.join(" "),
        session_id: digits(session_id).ok_or(syntax(number, "o= session id is not a 64-bit number"))?,
        version: digits(version).ok_or(syntax(number, "o= version is not a 64-bit number"))?,
        addr_type: parse_net(number, net_type, addr_type)?,
        address: address.to_string(),
    })
}

/// `IN <addrtype> <address>`.
fn parse_connection(number: usize, value: &str) -> Result<Connection, SdpError> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [net_type, addr_type, address] = fields.as_slice() else {
        return Err(syntax(number, "c= needs three fields"));
    };
    Ok(Connection { addr_type: parse_net(number, net_type, addr_type)?, address: address.to_string() })
}

fn parse_net(number: usize, net_type: &str, addr_type: &str) -> Result<AddrType, SdpError> {
    if !net_type.eq_ignore_ascii_case("IN") {
        return Err(syntax(number, "network type is not IN"));
    }
    if addr_type.eq_ignore_ascii_case("IP4") {
        Ok(AddrType::Ip4)
    } else if addr_type.eq_ignore_ascii_case("IP6") {
        Ok(AddrType::Ip6)
    } else {
        Err(syntax(number, "address type is neither IP4 nor IP6"))
    }
}

/// `<media> <port>[/<count>] <proto> <fmt> ...`.
fn parse_media_line(number: usize, value: &str) -> Result<MediaDescription, SdpError> {
    let mut fields = value.split_whitespace();
    let kind = fields.next().ok_or(syntax(number, "empty m= line"))?;
    let port_field = fields.next().ok_or(syntax(number, "m= line has no port"))?;
    let protocol = fields.next().ok_or(syntax(number, "m= line has no protocol"))?;
    let formats: Vec<String> = fields.map(str::to_string).collect();
    if formats.is_empty() {
        return Err(syntax(number, "m= line has no formats"));
    }
    let (port, count) = match port_field.split_once('/') {
        Some((port, count)) => (port, Some(count)),
        None => (port_field, None),
    };
    let port = digits(port).ok_or(syntax(number, "m= port is not a number from 0 to 65535"))?;
    let port_count = count.map(|c| digits(c).ok_or(syntax(number, "m= port count is not a number"))).transpose()?;
    Ok(MediaDescription { port_count, ..MediaDescription::new(kind, port, protocol, formats) })
}

fn parse_attribute(value: &str) -> Attribute {
    match value.split_once(':') {
        Some((name, value)) => Attribute { name: name.to_string(), value: Some(value.to_string()) },
        None => Attribute { name: value.to_string(), value: None },
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        // An empty username or name would print a line the parser (and others) cannot read.
        let username = if o.username.is_empty() { "-" } else { o.username.as_str() };
        write!(f, "v=0\r\no={username} {} {} IN {} {}\r\n", o.session_id, o.version, o.addr_type, o.address)?;
        // RFC 8866 §5.3: an empty session name is a single space.
        let name = if self.session_name.is_empty() { " " } else { self.session_name.as_str() };
        write!(f, "s={name}\r\n")?;
        write_lines(f, &self.extra_head)?;
        write_connection(f, self.connection.as_ref())?;
        write_values(f, 'b', &self.bandwidth)?;
        // t= is mandatory (RFC 8866 §5.9), even in a model built by hand without one.
        if self.timing.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for timing in &self.timing {
            write!(f, "t={}\r\n", timing.value)?;
            write_values(f, 'r', &timing.repeats)?;
        }
        write_lines(f, &self.extra_tail)?;
        write_attributes(f, &self.attributes)?;
        self.media.iter().try_for_each(|media| write!(f, "{media}"))
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind, self.port)?;
        if let Some(count) = self.port_count {
            write!(f, "/{count}")?;
        }
        write!(f, " {}", self.protocol)?;
        self.formats.iter().try_for_each(|format| write!(f, " {format}"))?;
        f.write_str("\r\n")?;
        write_lines(f, &self.extra_head)?;
        write_connection(f, self.connection.as_ref())?;
        write_values(f, 'b', &self.bandwidth)?;
        write_lines(f, &self.extra_tail)?;
        write_attributes(f, &self.attributes)
    }
}

fn write_connection(f: &mut fmt::Formatter<'_>, connection: Option<&Connection>) -> fmt::Result {
    match connection {
        Some(c) => write!(f, "c=IN {} {}\r\n", c.addr_type, c.address),
        None => Ok(()),
    }
}

fn write_values(f: &mut fmt::Formatter<'_>, kind: char, values: &[String]) -> fmt::Result {
    values.iter().try_for_each(|value| write!(f, "{kind}={value}\r\n"))
}

fn write_lines(f: &mut fmt::Formatter<'_>, lines: &[SdpLine]) -> fmt::Result {
    lines.iter().try_for_each(|line| write!(f, "{}={}\r\n", line.kind, line.value))
}

fn write_attributes(f: &mut fmt::Formatter<'_>, attributes: &[Attribute]) -> fmt::Result {
    attributes.iter().try_for_each(|a| match &a.value {
        Some(value) => write!(f, "a={}:{value}\r\n", a.name),
        None => write!(f, "a={}\r\n", a.name),
    })
}

/// RFC 3551 §6 audio payload types, for m-lines that list them without `a=rtpmap`.
pub(super) fn static_payload(pt: u8) -> Option<RtpMap> {
    let (encoding, clock_rate, channels) = match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        15 => ("G728", 8000, 1),
        18 => ("G729", 8000, 1),
        _ => return None,
    };
    Some(RtpMap { payload_type: pt, encoding: encoding.to_string(), clock_rate, channels })
}

/// `<pt> <encoding>/<clock>[/<channels>]`.
pub(super) fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.split_once(char::is_whitespace)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty())?.to_string();
    let clock_rate = digits(parts.next()?).filter(|&c| c > 0)?;
    let channels = match parts.next() {
        Some(ch) => digits(ch).filter(|&c| c > 0)?,
        None => 1,
    };
    Some(RtpMap { payload_type: payload_type(pt)?, encoding, clock_rate, channels })
}

pub(super) fn payload_type(format: &str) -> Option<u8> {
    digits(format).filter(|&pt: &u8| usize::from(pt) < PAYLOAD_TYPES)
}

/// Digits only: `str::parse` would also take a sign, which no SDP number has.
pub(super) fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
