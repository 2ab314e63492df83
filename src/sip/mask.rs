//! Secrets taken out of SIP text before it is kept anywhere (call records' ladders) or logged:
//! digest answers, SDES master keys, MIKEY payloads and passwords in URIs. Sans-IO string work.
//!
//! Digest answers are not passwords, but they are replayable material, so only the scheme stays.
//! SDES keys (`a=crypto ... inline:KEY`) are the call's media secret: with one, a captured SRTP
//! stream can be decrypted. Bodies may use bare LF, so lines are split on LF and their CR kept.

/// What replaces a secret.
pub const MASK: &str = "(masked)";

/// `text` (a whole SIP message, or part of one) with every secret replaced by `(masked)`.
pub fn mask_message(text: &str) -> String {
    let mut out = Vec::new();
    // A header may be folded over several lines (RFC 3261 §7.3.1): the lines after a masked
    // header's first one belong to it and go too.
    let mut in_masked_header = false;
    for line in text.split('\n') {
        let folded = line.starts_with([' ', '\t']);
        if in_masked_header && folded {
            continue;
        }
        in_masked_header = false;
        if let Some(masked) = mask_credential_header(line) {
            in_masked_header = true;
            out.push(masked);
            continue;
        }
        let lower = line.to_ascii_lowercase();
        let line = if lower.starts_with("a=crypto:") {
            mask_sdes_keys(line)
        } else if lower.starts_with("a=key-mgmt:") {
            mask_key_mgmt(line)
        } else {
            line.to_string()
        };
        out.push(mask_uri_passwords(&line));
    }
    out.join("\n")
}

/// `Authorization`, `Proxy-Authorization` or `X-Sipbridge-Token` (spaces allowed before the
/// colon) with only the scheme left; `None` for any other line.
fn mask_credential_header(line: &str) -> Option<String> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end_matches([' ', '\t']);
    let secret = ["authorization", "proxy-authorization", "x-sipbridge-token"];
    if !secret.iter().any(|s| name.eq_ignore_ascii_case(s)) {
        return None;
    }
    let cr = if line.ends_with('\r') { "\r" } else { "" };
    let scheme = value.trim().split([' ', '\t', '\r']).next().unwrap_or("");
    // A scheme is a token; anything else (a bare credential) is not kept either.
    let scheme = if scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') { scheme } else { "" };
    Some(format!("{name}: {scheme} {MASK}{cr}"))
}

/// Every `inline:` key of an `a=crypto` line replaced by a marker; lifetime and MKI stay.
pub fn mask_sdes_keys(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.to_ascii_lowercase().find("inline:") {
        let key_start = at + "inline:".len();
        out.push_str(&rest[..key_start]);
        out.push_str(MASK);
        let after = &rest[key_start..];
        let key_end = after.find(|c: char| c == '|' || c == ';' || c.is_ascii_whitespace()).unwrap_or(after.len());
        rest = &after[key_end..];
    }
    out.push_str(rest);
    out
}

/// `a=key-mgmt:mikey DATA` (RFC 4567): the protocol stays, the keying data goes.
fn mask_key_mgmt(line: &str) -> String {
    let cr = if line.ends_with('\r') { "\r" } else { "" };
    let prefix = &line[.."a=key-mgmt:".len()];
    let protocol = line[prefix.len()..].trim().split_ascii_whitespace().next().unwrap_or("");
    format!("{prefix}{protocol} {MASK}{cr}")
}

/// A URI (or any text holding URIs) as records, browsers and logs may show it.
pub fn mask_uri(uri: &str) -> String {
    mask_uri_passwords(uri)
}

/// `sip:user:password@host` (a deprecated form RFC 3261 §19.1.1 still parses) with the password
/// masked. A port (`sip:host:5060`) has no `@` after it and stays.
fn mask_uri_passwords(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("sip") {
        let at = search + found;
        let scheme_end = if lower[at..].starts_with("sips:") {
            at + 5
        } else if lower[at..].starts_with("sip:") {
            at + 4
        } else {
            search = at + 3;
            continue;
        };
        search = scheme_end;
        // The userinfo ends at '@'; the end of the URI first means there is none. A user part
        // may hold `;`, `?` and `,`, so those do not end it.
        let Some(userinfo_len) = line[scheme_end..].find(|c: char| matches!(c, '@' | '>' | '<' | '"') || c.is_whitespace()) else { break };
        let userinfo_end = scheme_end + userinfo_len;
        if !line[userinfo_end..].starts_with('@') {
            continue;
        }
        if let Some(colon) = line[scheme_end..userinfo_end].find(':') {
            out.push_str(&line[copied..scheme_end + colon + 1]);
            out.push_str(MASK);
            copied = userinfo_end;
        }
        search = userinfo_end;
    }
    out.push_str(&line[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAo";

    #[test]
    fn digest_answers_keep_only_their_scheme_even_folded() {
        let message = "INVITE sip:a@gw SIP/2.0\r\nProxy-Authorization: Digest username=\"bob\", response=\"abc\"\r\nauthorization : Digest username=\"bob\",\r\n  nonce=\"n\",\r\n\tresponse=\"def\"\r\nCall-ID: c\r\n\r\n";
        let masked = mask_message(message);
        assert_eq!(
            masked,
            "INVITE sip:a@gw SIP/2.0\r\nProxy-Authorization: Digest (masked)\r\nauthorization: Digest (masked)\r\nCall-ID: c\r\n\r\n"
        );
        // A bearer token (or anything that is not a scheme) goes whole.
        assert_eq!(mask_message("Authorization: c2VjcmV0OnNlY3JldA==\r"), "Authorization:  (masked)\r");
        assert_eq!(mask_message("X-Sipbridge-Token: eyJhbGciOi.eyJzdWIi.c2ln\r"), "X-Sipbridge-Token:  (masked)\r");
        // Other headers that merely mention the word stay.
        let kept = "WWW-Authenticate: Digest realm=\"gw\", nonce=\"n\"\r\nX-Authorization-Hint: none\r\n";
        assert_eq!(mask_message(kept), kept);
    }

    #[test]
    fn sdes_and_mikey_keys_are_masked_in_any_case_and_line_ending() {
        let body = format!("v=0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4\r\nA=CRYPTO:2 AES_CM_128_HMAC_SHA1_32 INLINE:{KEY}\na=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:{KEY};inline:{KEY}|2^31\r\na=key-mgmt:mikey AQAFgM0X{KEY}\r\na=sendrecv\r\n");
        let masked = mask_message(&body);
        assert!(!masked.contains(KEY), "{masked}");
        assert!(masked.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:(masked)|2^20|1:4\r\n"), "{masked}");
        assert!(masked.contains("A=CRYPTO:2 AES_CM_128_HMAC_SHA1_32 INLINE:(masked)\na=crypto:3"), "{masked}");
        assert!(masked.contains("inline:(masked);inline:(masked)|2^31\r\n"), "{masked}");
        assert!(masked.contains("a=key-mgmt:mikey (masked)\r\na=sendrecv\r\n"), "{masked}");
        assert!(masked.starts_with("v=0\r\nm=audio 4000 RTP/SAVP 0\r\n"), "the rest is untouched");
    }

    #[test]
    fn passwords_in_uris_are_masked_ports_are_not() {
        assert_eq!(mask_message("INVITE sip:alice:secret@gw SIP/2.0\r"), "INVITE sip:alice:(masked)@gw SIP/2.0\r");
        assert_eq!(mask_uri("sip:+15550001111:1234@carrier.example;user=phone"), "sip:+15550001111:(masked)@carrier.example;user=phone");
        assert_eq!(mask_uri("sip:+15550001111@carrier.example:5060"), "sip:+15550001111@carrier.example:5060");
        assert_eq!(mask_message("To: <SIPS:bob;x=1:p,w@gw:5061>;tag=1"), "To: <SIPS:bob;x=1:(masked)@gw:5061>;tag=1");
        for kept in ["Contact: <sip:10.0.0.1:5060;transport=tcp>", "Via: SIP/2.0/UDP 10.0.0.1:5060", "From: \"sip:x\" <sip:a@gw:5060>", "Route: <sip:gw:5060>, <sip:b@c>", "m=audio 4000 RTP/AVP 0"] {
            assert_eq!(mask_message(kept), kept);
        }
    }

    #[test]
    fn multi_byte_text_is_handled_without_panicking() {
        let odd = "From: \"Zoë\" <sip:zoë:pässword@gw>\r\nAuthorization: é\r\na=crypto:1 X inline:ké\r\na=key-mgmt:\r\nsip:";
        let masked = mask_message(odd);
        assert!(!masked.contains("pässword") && !masked.contains("ké"), "{masked}");
    }
}
