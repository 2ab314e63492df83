//! HS256 JSON Web Tokens (RFC 7519) for `login {method:"token"}`.
//!
//! Only HS256 is accepted, whatever the header says: letting the token pick its algorithm is how
//! `alg:none` and RS256/HS256 confusion forgeries work. The signature is checked before the
//! payload is parsed, so unauthenticated claims never reach serde.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Our tokens are a few hundred bytes; the cap bounds the work an attacker gets per login frame.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name the connection is logged in as.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// SIP profiles the user may call through; empty means none.
    #[serde(default)]
    pub profiles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token longer than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    #[error("token is not three base64url JSON parts")]
    Malformed,
    #[error("token algorithm is not HS256")]
    UnsupportedAlgorithm,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token claim `{0}` is missing")]
    MissingClaim(&'static str),
    #[error("token claim `{0}` is invalid")]
    InvalidClaim(&'static str),
    /// HMAC with an empty key is forgeable by anyone; refuse rather than accept everything.
    #[error("no token secret configured")]
    EmptySecret,
}

/// Checks an HS256 token. Valid while `now_unix < exp + leeway` and `nbf <= now_unix + leeway`.
pub fn verify(token: &str, secret: &[u8], now_unix: u64, leeway_secs: u64) -> Result<Claims, TokenError> {
    if secret.is_empty() {
        return Err(TokenError::EmptySecret);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge);
    }
    let (signed, sig_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header_b64, payload_b64) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    if payload_b64.contains('.') {
        return Err(TokenError::Malformed);
    }
    check_header(&decode(header_b64)?)?;

    let signature = decode(sig_b64)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| TokenError::EmptySecret)?;
    mac.update(signed.as_bytes());
    // verify_slice compares in constant time, so timing does not reveal a correct prefix.
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;

    let payload: Value = serde_json::from_slice(&decode(payload_b64)?).map_err(|_| TokenError::Malformed)?;
    let claims = claims_from(&payload)?;
    if claims.exp.saturating_add(leeway_secs) <= now_unix {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now_unix.saturating_add(leeway_secs)) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// Signs `claims` as an HS256 token, for tests and operators' tooling.
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serializing a struct of strings and integers cannot fail.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signed = format!("{header}.{payload}");
    let signature = match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(signed.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm is unreachable.
        Err(_) => Vec::new(),
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// NO_PAD rejects padding and non-canonical trailing bits, so one token has exactly one spelling.
fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)
}

fn check_header(raw: &[u8]) -> Result<(), TokenError> {
    let header: Value = serde_json::from_slice(raw).map_err(|_| TokenError::Malformed)?;
    let header = header.as_object().ok_or(TokenError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    // RFC 7515 §4.1.11: extensions we do not understand but are told are critical mean reject.
    if header.contains_key("crit") {
        return Err(TokenError::Malformed);
    }
    Ok(())
}

fn claims_from(payload: &Value) -> Result<Claims, TokenError> {
    let obj = payload.as_object().ok_or(TokenError::Malformed)?;
    let sub = match obj.get("sub") {
        None | Some(Value::Null) => return Err(TokenError::MissingClaim("sub")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(TokenError::InvalidClaim("sub")),
    };
    let exp = match obj.get("exp") {
        None | Some(Value::Null) => return Err(TokenError::MissingClaim("exp")),
        Some(v) => numeric_date(v).ok_or(TokenError::InvalidClaim("exp"))?,
    };
    let nbf = optional_date(obj.get("nbf"), "nbf")?;
    let iat = optional_date(obj.get("iat"), "iat")?;
    let profiles = match obj.get("profiles") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| p.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(TokenError::InvalidClaim("profiles"))?,
        Some(_) => return Err(TokenError::InvalidClaim("profiles")),
    };
    Ok(Claims { sub, exp, nbf, iat, profiles })
}

fn optional_date(v: Option<&Value>, name: &'static str) -> Result<Option<u64>, TokenError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => numeric_date(v).map(Some).ok_or(TokenError::InvalidClaim(name)),
    }
}

/// RFC 7519 NumericDate may be fractional; whole seconds are all we compare.
fn numeric_date(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.floor() as u64)
}
