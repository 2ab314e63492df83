//! SDES keying (RFC 4568): the `a=crypto` attribute and offer/answer.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::{SrtpContext, Suite, MASTER_KEY_LEN, MASTER_SALT_LEN};

const KEY_SALT_LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;
/// RFC 3711 §9.2: SRTP indices are 48 bits, so no key can outlive 2^48.
const MAX_LIFETIME_EXP: u32 = 48;

/// One `a=crypto` line with a single inline key and no MKI.
///
/// There is deliberately no `Display`: the text form carries the key, so it
/// is produced only by the explicit [`CryptoAttribute::to_sdp_value`].
#[derive(Clone)]
pub struct CryptoAttribute {
    pub tag: u32,
    pub suite: Suite,
    key: [u8; MASTER_KEY_LEN],
    salt: [u8; MASTER_SALT_LEN],
    lifetime: Option<u64>,
}

impl CryptoAttribute {
    pub fn new(tag: u32, suite: Suite, key: [u8; MASTER_KEY_LEN], salt: [u8; MASTER_SALT_LEN]) -> Self {
        CryptoAttribute {
            tag,
            suite,
            key,
            salt,
            lifetime: None,
        }
    }

    /// A fresh random master key and salt from the OS RNG.
    pub fn generate(tag: u32, suite: Suite) -> Result<Self, SdesError> {
        let mut material = [0u8; KEY_SALT_LEN];
        OsRng.try_fill_bytes(&mut material).map_err(|_| SdesError::Rng)?;
        let (key, salt) = split_key_salt(&material);
        Ok(CryptoAttribute::new(tag, suite, key, salt))
    }

    pub fn key(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.key
    }

    pub fn salt(&self) -> &[u8; MASTER_SALT_LEN] {
        &self.salt
    }

    /// Key lifetime in packets as the peer announced it. Only kept so it can
    /// be echoed; contexts enforce just the hard 2^48 / 2^31 index limits,
    /// and rekeying earlier is the signalling layer's job (re-INVITE).
    pub fn lifetime(&self) -> Option<u64> {
        self.lifetime
    }

    /// Announces a lifetime in our own line; keep it within 1..=2^48, which
    /// is all a peer (and [`CryptoAttribute::parse`]) will accept.
    pub fn with_lifetime(mut self, lifetime: Option<u64>) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Parses an attribute value, with or without the leading `a=crypto:`:
    /// `1 AES_CM_128_HMAC_SHA1_80 inline:<base64 key||salt>[|lifetime][|mki:len]`.
    ///
    /// Refused with a specific error: unknown suites, MKI (the packets would
    /// carry it and we do not), several keys, and session parameters that
    /// change the transform (KDR, UNENCRYPTED_*, FEC_KEY...).
    pub fn parse(line: &str) -> Result<Self, SdesError> {
        let value = line.trim();
        let value = value.strip_prefix("a=").unwrap_or(value);
        let value = value.strip_prefix("crypto:").unwrap_or(value);
        let mut fields = value.split_ascii_whitespace();

        let tag_text = fields.next().ok_or(SdesError::Malformed("missing tag"))?;
        let tag = parse_tag(tag_text)?;
        let suite_text = fields.next().ok_or(SdesError::Malformed("missing crypto suite"))?;
        let suite = Suite::from_name(suite_text).ok_or_else(|| SdesError::UnsupportedSuite(truncated(suite_text)))?;
        let key_params = fields.next().ok_or(SdesError::Malformed("missing key parameters"))?;
        if key_params.contains(';') {
            // Several keys are only distinguishable in packets through an MKI.
            return Err(SdesError::MkiUnsupported);
        }
        let (key, salt, lifetime) = parse_key_param(key_params)?;
        for param in fields {
            check_session_param(param)?;
        }
        Ok(CryptoAttribute {
            tag,
            suite,
            key,
            salt,
            lifetime,
        })
    }

    /// The attribute value without the `a=crypto:` prefix, as SDP builders
    /// that add the attribute name themselves expect. Contains the key.
    pub fn to_sdp_value(&self) -> String {
        let mut material = [0u8; KEY_SALT_LEN];
        for (dst, src) in material.iter_mut().zip(self.key.iter().chain(&self.salt)) {
            *dst = *src;
        }
        let mut out = format!("{} {} inline:{}", self.tag, self.suite.name(), BASE64.encode(material));
        match self.lifetime {
            Some(n) if n.is_power_of_two() => out.push_str(&format!("|2^{}", n.trailing_zeros())),
            Some(n) => out.push_str(&format!("|{n}")),
            None => {}
        }
        out
    }

    /// The full SDP line, `a=crypto:` included (no line terminator).
    pub fn to_sdp_line(&self) -> String {
        format!("a=crypto:{}", self.to_sdp_value())
    }

    /// A context keyed with this attribute's master key and salt.
    pub fn context(&self) -> SrtpContext {
        SrtpContext::new(self.suite, &self.key, &self.salt)
    }

    /// One line per suite in `suites`, tags from 1. Each line gets its own
    /// key so that no master key ever serves two different transforms.
    pub fn generate_offer(suites: &[Suite]) -> Result<Vec<Self>, SdesError> {
        (1u32..)
            .zip(suites)
            .map(|(tag, suite)| CryptoAttribute::generate(tag, *suite))
            .collect()
    }
}

impl PartialEq for CryptoAttribute {
    fn eq(&self, other: &Self) -> bool {
        // Constant time on the secret part, in case this ever compares a
        // received attribute against a stored one.
        let secret = self.key.ct_eq(&other.key) & self.salt.ct_eq(&other.salt);
        bool::from(secret) && self.tag == other.tag && self.suite == other.suite && self.lifetime == other.lifetime
    }
}

impl Eq for CryptoAttribute {}

impl fmt::Debug for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoAttribute")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("key", &"<redacted>")
            .field("salt", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// The negotiated pair: our attribute (keys what we send) and the peer's
/// (keys what we receive). Both carry the same tag and suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdesKeys {
    pub local: CryptoAttribute,
    pub remote: CryptoAttribute,
}

impl SdesKeys {
    /// Answerer side: takes the peer's `a=crypto` values in offer order, keeps
    /// the first one we support, and generates our key under its tag and suite.
    pub fn answer<'a, I>(offer: I) -> Result<Self, SdesError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let remote = select_supported(offer)?;
        let local = CryptoAttribute::generate(remote.tag, remote.suite)?;
        Ok(SdesKeys { local, remote })
    }

    /// Offerer side: matches the answer's tag against what we offered and
    /// checks that the suite was not changed on the way.
    pub fn from_answer(offered: &[CryptoAttribute], answer: &str) -> Result<Self, SdesError> {
        let remote = CryptoAttribute::parse(answer)?;
        let local = offered
            .iter()
            .find(|a| a.tag == remote.tag)
            .ok_or(SdesError::UnknownTag(remote.tag))?;
        if local.suite != remote.suite {
            return Err(SdesError::SuiteMismatch);
        }
        Ok(SdesKeys {
            local: local.clone(),
            remote,
        })
    }

    /// `(outbound, inbound)`: outbound protects with our key, inbound
    /// unprotects with the peer's.
    pub fn contexts(&self) -> (SrtpContext, SrtpContext) {
        (self.local.context(), self.remote.context())
    }
}

/// First attribute in `values` that parses and is supported. When none is,
/// every line's reason is returned so logs say why the call got no media.
pub fn select_supported<'a, I>(values: I) -> Result<CryptoAttribute, SdesError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut reasons = Vec::new();
    for value in values {
        match CryptoAttribute::parse(value) {
            Ok(attr) => return Ok(attr),
            Err(e) => reasons.push(e),
        }
    }
    Err(SdesError::NoUsableCrypto(reasons))
}

/// Why an `a=crypto` attribute (or a set of them) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdesError {
    Malformed(&'static str),
    /// Suite name as received, cut to a sane length.
    UnsupportedSuite(String),
    /// An MKI, or several keys (which require one).
    MkiUnsupported,
    /// Session parameter as received, cut to a sane length.
    UnsupportedSessionParam(String),
    /// No line was usable; one reason per line, in order (empty: no lines).
    NoUsableCrypto(Vec<SdesError>),
    /// The answer names a tag we did not offer.
    UnknownTag(u32),
    /// The answer kept our tag but changed the suite.
    SuiteMismatch,
    /// The OS random generator failed.
    Rng,
}

impl fmt::Display for SdesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdesError::Malformed(what) => write!(f, "malformed a=crypto: {what}"),
            SdesError::UnsupportedSuite(s) => write!(f, "unsupported SRTP crypto suite {s:?}"),
            SdesError::MkiUnsupported => f.write_str("a=crypto with MKI or several keys is not supported"),
            SdesError::UnsupportedSessionParam(p) => write!(f, "unsupported SDES session parameter {p:?}"),
            SdesError::NoUsableCrypto(reasons) if reasons.is_empty() => f.write_str("no a=crypto attribute"),
            SdesError::NoUsableCrypto(reasons) => {
                f.write_str("no usable a=crypto attribute")?;
                for (i, reason) in reasons.iter().enumerate() {
                    write!(f, "{} {reason}", if i == 0 { ":" } else { ";" })?;
                }
                Ok(())
            }
            SdesError::UnknownTag(tag) => write!(f, "a=crypto answer uses tag {tag} that was not offered"),
            SdesError::SuiteMismatch => f.write_str("a=crypto answer changed the crypto suite"),
            SdesError::Rng => f.write_str("random number generator failed"),
        }
    }
}

impl std::error::Error for SdesError {}

fn parse_tag(text: &str) -> Result<u32, SdesError> {
    // RFC 4568 §9.1: tag = 1*9DIGIT, so it always fits in a u32.
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdesError::Malformed("tag must be 1 to 9 digits"));
    }
    text.parse()
        .map_err(|_| SdesError::Malformed("tag must be 1 to 9 digits"))
}

type KeyParam = ([u8; MASTER_KEY_LEN], [u8; MASTER_SALT_LEN], Option<u64>);

fn parse_key_param(param: &str) -> Result<KeyParam, SdesError> {
    let (method, info) = param
        .split_once(':')
        .ok_or(SdesError::Malformed("key parameter lacks a method"))?;
    if !method.eq_ignore_ascii_case("inline") {
        return Err(SdesError::Malformed("only the inline key method exists"));
    }
    let mut parts = info.split('|');
    let encoded = parts.next().unwrap_or_default();
    let material = BASE64
        .decode(encoded)
        .map_err(|_| SdesError::Malformed("key is not valid base64"))?;
    let material: [u8; KEY_SALT_LEN] = material
        .as_slice()
        .try_into()
        .map_err(|_| SdesError::Malformed("key||salt must be 30 bytes"))?;
    let (key, salt) = split_key_salt(&material);

    let mut lifetime = None;
    for part in parts {
        // The grammar tells them apart only by the colon: mki = value ":" length.
        if part.contains(':') {
            return Err(SdesError::MkiUnsupported);
        }
        if lifetime.is_some() {
            return Err(SdesError::Malformed("more than one lifetime"));
        }
        lifetime = Some(parse_lifetime(part)?);
    }
    Ok((key, salt, lifetime))
}

fn parse_lifetime(text: &str) -> Result<u64, SdesError> {
    const BAD: SdesError = SdesError::Malformed("lifetime must be 2^N or a packet count up to 2^48");
    let all_digits = |s: &str| !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit());
    let value = match text.strip_prefix("2^") {
        Some(exp) if all_digits(exp) => {
            let exp: u32 = exp.parse().map_err(|_| BAD)?;
            if exp > MAX_LIFETIME_EXP {
                return Err(BAD);
            }
            1u64 << exp
        }
        Some(_) => return Err(BAD),
        None if all_digits(text) => text.parse().map_err(|_| BAD)?,
        None => return Err(BAD),
    };
    if value == 0 || value > 1 << MAX_LIFETIME_EXP {
        return Err(BAD);
    }
    Ok(value)
}

/// RFC 4568 §6.3: a session parameter we do not understand may change the
/// transform, so the whole line is refused rather than the parameter ignored.
fn check_session_param(param: &str) -> Result<(), SdesError> {
    let (name, value) = param.split_once('=').unwrap_or((param, ""));
    let accepted = match name {
        // Only a window-size hint; ours is at least as large as any sane one.
        "WSH" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        // KDR=n asks for re-derivation every 2^n packets; only its absence
        // means the key_derivation_rate 0 we implement.
        "KDR" => false,
        "FEC_ORDER" => value == "FEC_SRTP",
        _ => false,
    };
    if accepted {
        Ok(())
    } else {
        Err(SdesError::UnsupportedSessionParam(truncated(param)))
    }
}

fn split_key_salt(material: &[u8; KEY_SALT_LEN]) -> ([u8; MASTER_KEY_LEN], [u8; MASTER_SALT_LEN]) {
    let mut key = [0u8; MASTER_KEY_LEN];
    let mut salt = [0u8; MASTER_SALT_LEN];
    let (k, s) = material.split_at(MASTER_KEY_LEN);
    key.copy_from_slice(k);
    salt.copy_from_slice(s);
    (key, salt)
}

/// Error payloads echo peer input into logs; keep them short and printable.
/// Refused text as an error shows it (in logs and records): short, printable, and never a key,
/// which a line with its fields out of order puts where a suite name or a parameter belongs.
fn truncated(text: &str) -> String {
    let shown = match text.to_ascii_lowercase().find("inline:") {
        Some(at) => format!("{}inline:(masked)", &text[..at]),
        None => text.to_string(),
    };
    shown.chars().take(40).filter(|c| !c.is_control()).collect()
}
