//! Which browser leg a datagram on a worker's shared WebRTC port belongs to (ICE-mux): a STUN
//! request names the leg by our ICE ufrag (RFC 8445 §7.2.2: USERNAME is "ours:theirs"); every
//! other datagram (DTLS, SRTP, STUN responses) by its 5-tuple, learnt from the first.
//! Pure functions over bytes: hostile input is answered with `None`, never a panic.

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_HEADER_LEN: usize = 20;
const ATTRIBUTE_USERNAME: u16 = 0x0006;

/// RFC 7983's first-byte ranges for what shares an ICE 5-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    Stun,
    Dtls,
    Rtp,
    Unknown,
}

pub fn classify(datagram: &[u8]) -> DatagramKind {
    match datagram.first() {
        Some(0..=3) if datagram.len() >= STUN_HEADER_LEN && datagram[4..8] == STUN_MAGIC_COOKIE => DatagramKind::Stun,
        Some(20..=63) => DatagramKind::Dtls,
        Some(128..=191) => DatagramKind::Rtp,
        _ => DatagramKind::Unknown,
    }
}

/// The recipient's ufrag of a STUN message (the part of USERNAME before ':'), if it has one.
pub fn stun_recipient_ufrag(datagram: &[u8]) -> Option<&str> {
    if classify(datagram) != DatagramKind::Stun {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(STUN_HEADER_LEN..STUN_HEADER_LEN + declared)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == ATTRIBUTE_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        let padded = 4 + len.div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attribute = Vec::new();
        attribute.extend_from_slice(&ATTRIBUTE_USERNAME.to_be_bytes());
        attribute.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attribute.extend_from_slice(username.as_bytes());
        while attribute.len() % 4 != 0 {
            attribute.push(0);
        }
        // A PRIORITY attribute first, so the parser must skip one.
        let mut body = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        body.extend_from_slice(&attribute);
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&STUN_MAGIC_COOKIE);
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn a_binding_request_names_our_ufrag() {
        assert_eq!(stun_recipient_ufrag(&binding_request("gw1234:browser9")), Some("gw1234"));
        assert_eq!(classify(&binding_request("a:b")), DatagramKind::Stun);
    }

    #[test]
    fn hostile_datagrams_name_no_leg() {
        let good = binding_request("gw1234:browser9");
        for cut in 0..good.len() {
            let _ = stun_recipient_ufrag(&good[..cut]);
        }
        let mut lying = good.clone();
        lying[2..4].copy_from_slice(&1_000u16.to_be_bytes());
        assert_eq!(stun_recipient_ufrag(&lying), None, "a length past the end");
        assert_eq!(stun_recipient_ufrag(&binding_request(":browser9")), None, "an empty ufrag");
        assert_eq!(stun_recipient_ufrag(&[0u8; 64]), None, "no magic cookie");
        assert_eq!(classify(&[0x16, 0xfe, 0xfd]), DatagramKind::Dtls);
        assert_eq!(classify(&[0x80, 0x00]), DatagramKind::Rtp);
        assert_eq!(classify(&[0xff]), DatagramKind::Unknown);
        assert_eq!(classify(&[]), DatagramKind::Unknown);
    }
}
