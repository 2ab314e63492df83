//! Hosts in SIP URIs and Via sent-by, with IPv6 literals read as RFC 5118 says.
//!
//! An IPv6 address is only ever written in brackets there (`IPv6reference`), so a colon means a
//! port only after the `]`: `[2001:db8::10:5070]` is an address with no port (RFC 5118 §4.3),
//! and `2001:db8::10` without brackets is not a host at all (§4.2: 400, never routed).
//! RFC 3261's ABNF admitted a third colon before an embedded IPv4 address
//! (`2001:db8:::192.0.2.1`); RFC 5118 §4.10 asks receivers to tolerate it.

use super::SyntaxError;
use std::net::Ipv6Addr;

/// The address inside `[` `]`, as RFC 4291 writes it or with RFC 3261's extra colon.
pub fn parse_ipv6_reference(inside: &str) -> Option<Ipv6Addr> {
    if let Ok(address) = inside.parse::<Ipv6Addr>() {
        return Some(address);
    }
    // Only the form the old ABNF produced: `:::` right before a dotted IPv4 tail.
    let (head, tail) = inside.rsplit_once(":::")?;
    if !tail.contains('.') || head.contains("::") {
        return None;
    }
    format!("{head}::{tail}").parse().ok()
}

/// RFC 5118 §4.10: rewrites RFC 3261's three-colon references (`[2001:db8:::192.0.2.1]`) in the
/// header section to the RFC 4291 form, which the message parser reads; the RFC allows this
/// re-serialization. `None` when there is nothing to rewrite. The body is left alone (SDP never
/// brackets its addresses), so Content-Length still holds.
pub fn rewrite_three_colon_references(message: &[u8]) -> Option<Vec<u8>> {
    let header_end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(message.len());
    let (head, body) = message.split_at(header_end);
    if !head.windows(3).any(|w| w == b":::") {
        return None;
    }
    let mut rest = std::str::from_utf8(head).ok()?;
    let mut out = String::with_capacity(head.len());
    let mut changed = false;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        if inside.contains(":::") && parse_ipv6_reference(inside).is_some() {
            out.push_str(&inside.replacen(":::", "::", 1));
            changed = true;
        } else {
            out.push_str(inside);
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    changed.then(|| [out.as_bytes(), body].concat())
}

/// Splits `host[:port]`: the host keeps its brackets (`[2001:db8::1]`); a port is only read
/// after the `]`. Unbracketed IPv6, stray or unbalanced brackets and bad ports are errors.
pub fn split_host_port(text: &str) -> Result<(String, Option<u16>), SyntaxError> {
    let text = text.trim();
    let bad_host = || SyntaxError(format!("bad host `{text}`"));
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err(bad_host());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(|| SyntaxError(format!("`{text}`: `[` without `]`")))?;
        if parse_ipv6_reference(inside).is_none() {
            return Err(SyntaxError(format!("`{text}`: `{inside}` is not an IPv6 address")));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (format!("[{inside}]"), port)
    } else {
        if text.contains([']', '[']) {
            return Err(SyntaxError(format!("`{text}`: unbalanced `[` `]`")));
        }
        if text.matches(':').count() > 1 {
            return Err(SyntaxError(format!("`{text}`: an IPv6 address must be enclosed in `[` `]` (RFC 5118 §4.2)")));
        }
        match text.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let valid_host = host.starts_with('[') || host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !valid_host || host.is_empty() {
        return Err(bad_host());
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| SyntaxError(format!("bad port in `{text}`")))?)
        }
        Some(_) => return Err(SyntaxError(format!("bad port in `{text}`"))),
        None => None,
    };
    Ok((host, port))
}

/// Checks the host part of a `sip:`/`sips:` URI (other schemes are not ours to read).
pub fn check_sip_uri_host(uri: &str) -> Result<(), SyntaxError> {
    let Some((scheme, rest)) = uri.split_once(':') else { return Ok(()) };
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Ok(());
    }
    // A literal `@` cannot appear in the user part (it is escaped there), so the first one ends
    // it; the host then runs to the first `;` (parameters) or `?` (headers).
    let host_part = rest.split_once('@').map_or(rest, |(_, host)| host);
    let host_port = host_part.split([';', '?']).next().unwrap_or(host_part);
    split_host_port(host_port).map(|_| ()).map_err(|e| SyntaxError(format!("URI `{uri}`: {}", e.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_port(text: &str) -> Result<(String, Option<u16>), SyntaxError> {
        split_host_port(text)
    }

    #[test]
    fn a_colon_is_a_port_only_after_the_bracket() {
        assert_eq!(host_port("[2001:db8::10:5070]").expect("§4.3"), ("[2001:db8::10:5070]".to_string(), None));
        assert_eq!(host_port("[2001:db8::10]:5070").expect("§4.4"), ("[2001:db8::10]".to_string(), Some(5070)));
        assert_eq!(host_port("192.0.2.1:5060").expect("v4"), ("192.0.2.1".to_string(), Some(5060)));
        assert_eq!(host_port("[::ffff:192.0.2.10]:19823").expect("§4.9"), ("[::ffff:192.0.2.10]".to_string(), Some(19823)));
    }

    #[test]
    fn unbracketed_or_unbalanced_ipv6_is_refused() {
        for bad in ["2001:db8::10", "2001:db8::10:5070", "[2001:db8::10", "2001:db8::10]", "[2001:db8::10]5070", "[2001:db8::10]:",
            "[2001:db8::10]:port", "[example.com]", "[192.0.2.1]", "[2001:db8::10]]", "[]", "[[::1]]", "::1", "[::1]:70000"]
        {
            assert!(host_port(bad).is_err(), "`{bad}` must be refused");
        }
    }

    #[test]
    fn the_old_abnf_three_colon_form_is_tolerated() {
        let expected: Ipv6Addr = "2001:db8::192.0.2.1".parse().expect("v6");
        assert_eq!(parse_ipv6_reference("2001:db8:::192.0.2.1"), Some(expected), "§4.10");
        assert_eq!(parse_ipv6_reference("2001:db8::192.0.2.1"), Some(expected));
        assert_eq!(parse_ipv6_reference("2001:db8:::10"), None, "only before an IPv4 tail");
        assert_eq!(parse_ipv6_reference("2001::db8:::192.0.2.1"), None, "two elisions stay invalid");
    }

    #[test]
    fn three_colon_references_are_rewritten_in_the_headers_only() {
        let message = b"OPTIONS sip:[2001:db8:::192.0.2.1] SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8:::192.0.2.1]\r\n\r\nx=[a:::1.2.3.4]";
        let rewritten = rewrite_three_colon_references(message).expect("rewritten");
        assert_eq!(rewritten, b"OPTIONS sip:[2001:db8::192.0.2.1] SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::192.0.2.1]\r\n\r\nx=[a:::1.2.3.4]".to_vec());
        assert_eq!(rewrite_three_colon_references(b"OPTIONS sip:[2001:db8::1] SIP/2.0\r\n\r\n"), None);
        assert_eq!(rewrite_three_colon_references(b"OPTIONS sip:[2001:::1] SIP/2.0\r\n\r\n"), None, "not the old ABNF's form");
    }

    #[test]
    fn sip_uri_hosts() {
        for good in ["sip:[2001:db8::10]", "sip:user@[2001:db8::10]:5070;transport=tcp", "sip:[2001:db8::10:5070]",
            "sips:caller@[::ffff:192.0.2.10]:19823", "sip:user;par=u%40example.net@example.com", "tel:+1-201-555-0123",
            "sip:user@example.com?Subject=a:b:c", "sip:[2001:db8:::192.0.2.1]"]
        {
            assert!(check_sip_uri_host(good).is_ok(), "`{good}`: {:?}", check_sip_uri_host(good));
        }
        for bad in ["sip:user@2001:db8::10", "sip:2001:db8::10", "sip:user@[2001:db8::10", "sip:user@2001:db8::10]:5060",
            "sip:user@[2001:db8::10]5060", "sip:user@[2001:db8::zz]"]
        {
            assert!(check_sip_uri_host(bad).is_err(), "`{bad}` must be refused");
        }
    }
}
