//! Strict readers for the header values the gateway relies on (Via, name-addr, CSeq).
//!
//! rsipstack keeps most header values as text and is deliberately lenient. These readers decide
//! what we accept, because a B2BUA that acts on a half-understood From or Via misroutes responses.

mod host;
pub use host::{check_sip_uri_host, parse_ipv6_reference, rewrite_three_colon_references, split_host_port};

use std::fmt;

/// RFC 3261 §25.1 token characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(reason: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(reason.into()))
}

/// Splits a header value on commas that are outside quotes and angle brackets.
pub fn split_values(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts
}

/// Generic `;name[=value]` parameters. Every name must be a token.
pub fn parse_params(text: &str) -> Result<Vec<(String, Option<String>)>, SyntaxError> {
    let mut params = Vec::new();
    if text.trim().is_empty() {
        return Ok(params);
    }
    for raw in text.split(';') {
        let raw = raw.trim();
        let (name, value) = match raw.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (raw, None),
        };
        if !is_token(name) {
            return err(format!("bad parameter `{raw}`"));
        }
        params.push((name.to_ascii_lowercase(), value));
    }
    Ok(params)
}

pub fn param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<Option<&'a str>> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_deref())
}

/// One Via value: `SIP/2.0/UDP host:port;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaValue {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl ViaValue {
    pub fn parse(value: &str) -> Result<ViaValue, SyntaxError> {
        let value = value.trim();
        // SLASH may be surrounded by whitespace (RFC 3261 §25.1), as in RFC 4475 `wsinv`.
        let mut proto = value.splitn(3, '/');
        let (name, version, after) = (proto.next().map(str::trim), proto.next().map(str::trim), proto.next().map(str::trim_start));
        if !name.is_some_and(|n| n.eq_ignore_ascii_case("SIP")) || version != Some("2.0") {
            return err(format!("Via `{value}`: protocol must be SIP/2.0"));
        }
        let (transport, rest) = after
            .and_then(|a| a.split_once(|c: char| c.is_ascii_whitespace()))
            .ok_or_else(|| SyntaxError(format!("Via `{value}` has no sent-by")))?;
        let transport = match transport {
            t if is_token(t) => t.to_ascii_uppercase(),
            _ => return err(format!("Via `{value}`: bad transport")),
        };
        let rest = rest.trim();
        let (sent_by, params) = match rest.split_once(';') {
            Some((s, p)) => (s.trim(), p),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(sent_by)?;
        let params = parse_params(params)?;
        Ok(ViaValue { transport, host, port, params })
    }

    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch").flatten()
    }

    /// RFC 3261 §8.1.1.7: branches that start with the magic cookie can be matched on alone.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK") && b.len() > "z9hG4bK".len())
    }

    pub fn sent_by(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for ViaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// A From, To, Contact, Route or Record-Route value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn parse(value: &str) -> Result<NameAddr, SyntaxError> {
        let value = value.trim();
        if value.is_empty() {
            return err("empty address");
        }
        let (display_name, rest) = if let Some(quoted) = value.strip_prefix('"') {
            let end = closing_quote(quoted).ok_or_else(|| SyntaxError(format!("unterminated quote in `{value}`")))?;
            let rest = quoted[end + 1..].trim_start();
            if !rest.starts_with('<') {
                return err(format!("quoted display name must be followed by <uri> in `{value}`"));
            }
            (Some(quoted[..end].to_string()), rest)
        } else if let Some(open) = value.find('<') {
            let display = value[..open].trim();
            if !display.split_ascii_whitespace().all(is_token) {
                return err(format!("display name `{display}` must be quoted"));
            }
            ((!display.is_empty()).then(|| display.to_string()), &value[open..])
        } else {
            (None, value)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let close = inner.find('>').ok_or_else(|| SyntaxError(format!("missing `>` in `{value}`")))?;
            let uri = &inner[..close];
            check_uri_text(uri, true)?;
            let after = inner[close + 1..].trim();
            let params = match after {
                "" => Vec::new(),
                p if p.starts_with(';') => parse_params(&p[1..])?,
                p => return err(format!("unexpected `{p}` after address")),
            };
            Ok(NameAddr { display_name, uri: uri.to_string(), params })
        } else {
            // Without brackets the parameters belong to the header, not to the URI (RFC 3261 §20).
            let (uri, params) = match rest.split_once(';') {
                Some((u, p)) => (u.trim(), parse_params(p)?),
                None => (rest, Vec::new()),
            };
            if uri.contains(['?', ',']) {
                return err(format!("URI `{uri}` with `?` or `,` must be enclosed in <>"));
            }
            check_uri_text(uri, false)?;
            Ok(NameAddr { display_name, uri: uri.to_string(), params })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        param(&self.params, "tag").flatten()
    }

    pub fn scheme(&self) -> &str {
        self.uri.split(':').next().unwrap_or("")
    }

    pub fn is_sip_uri(&self) -> bool {
        let scheme = self.scheme();
        scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
    }

    /// User part of a sip/sips URI, percent-escapes left as sent.
    pub fn user(&self) -> Option<&str> {
        uri_user(&self.uri)
    }

    pub fn host(&self) -> Option<&str> {
        uri_host(&self.uri)
    }
}

pub fn uri_user(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(':')?;
    let (user, _) = rest.rsplit_once('@')?;
    Some(user.split(':').next().unwrap_or(user))
}

pub fn uri_host(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(':')?;
    let host_part = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let host_part = host_part.split([';', '?']).next().unwrap_or(host_part);
    if let Some(v6) = host_part.strip_prefix('[') {
        return v6.split(']').next();
    }
    host_part.split(':').next()
}

fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

fn check_uri_text(uri: &str, bracketed: bool) -> Result<(), SyntaxError> {
    if uri.is_empty() || uri.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return err(format!("URI `{uri}` is empty or contains whitespace{}", if bracketed { " inside <>" } else { "" }));
    }
    match uri.split_once(':') {
        Some((scheme, rest)) if !rest.is_empty() && scheme_is_valid(scheme) => check_sip_uri_host(uri),
        _ => err(format!("`{uri}` is not a URI")),
    }
}

fn scheme_is_valid(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// CSeq: a 31-bit sequence number and the method (RFC 3261 §8.1.1.5).
pub fn parse_cseq(value: &str) -> Result<(u32, String), SyntaxError> {
    let mut parts = value.split_ascii_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return err(format!("CSeq `{value}` must be `number METHOD`"));
    };
    let number: u32 = number
        .parse()
        .ok()
        .filter(|n| *n < (1 << 31))
        .ok_or_else(|| SyntaxError(format!("CSeq number `{number}` is not below 2^31")))?;
    if !is_token(method) {
        return err(format!("CSeq method `{method}` is not a token"));
    }
    Ok((number, method.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_values_parse_and_print() {
        let via = ViaValue::parse("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKabc;rport").expect("via");
        assert_eq!((via.transport.as_str(), via.host.as_str(), via.port), ("UDP", "192.0.2.1", Some(5070)));
        assert_eq!(via.branch(), Some("z9hG4bKabc"));
        assert!(via.has_rfc3261_branch());
        assert_eq!(via.to_string(), "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKabc;rport");
        let v6 = ViaValue::parse("SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx").expect("v6");
        assert_eq!(v6.host, "[2001:db8::1]");
        assert!(ViaValue::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(ViaValue::parse("SIP/3.0/UDP host").is_err());
        assert!(!ViaValue::parse("SIP/2.0/UDP h;branch=z9hG4bK").expect("bare").has_rfc3261_branch());
    }

    #[test]
    fn name_addr_accepts_rfc_forms() {
        let a = NameAddr::parse("\"Mr. J. User\" <sip:j.user@example.com>;tag=1").expect("quoted");
        assert_eq!((a.display_name.as_deref(), a.uri.as_str(), a.tag()), (Some("Mr. J. User"), "sip:j.user@example.com", Some("1")));
        let b = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").expect("bare");
        assert_eq!(b.uri, "sip:+19725552222@gw1.example.net");
        assert_eq!(b.params[0].0, "unknownparam");
        let c = NameAddr::parse("caller<sip:caller@example.com>;tag=323").expect("no LWS before <");
        assert_eq!(c.display_name.as_deref(), Some("caller"));
        assert_eq!(NameAddr::parse("<sip:user;par=u%40example.net@example.com>").expect("semi").user(), Some("user;par=u%40example.net"));
    }

    #[test]
    fn name_addr_rejects_torture_forms() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(parse_cseq("8 INVITE").expect("ok"), (8, "INVITE".to_string()));
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("2147483648 INVITE").is_err());
        assert!(parse_cseq("1").is_err());
    }

    #[test]
    fn split_respects_quotes_and_brackets() {
        assert_eq!(split_values("\"a, b\" <sip:x>, <sip:y,z>"), vec!["\"a, b\" <sip:x>", "<sip:y,z>"]);
    }

    #[test]
    fn uri_parts() {
        assert_eq!(uri_user("sip:alice@example.com:5060;transport=tcp"), Some("alice"));
        assert_eq!(uri_host("sip:alice@example.com:5060;transport=tcp"), Some("example.com"));
        assert_eq!(uri_host("sip:[::1]:5060"), Some("::1"));
        assert_eq!(uri_host("sip:example.com"), Some("example.com"));
    }
}
