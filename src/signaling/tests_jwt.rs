//! HS256 token checks: every way a token can be wrong maps to one `TokenError`.

use super::jwt::{sign, verify, Claims, TokenError, MAX_TOKEN_LEN};
use super::tests::{base64_url, NOW, SECRET};
use serde_json::json;

fn claims(exp: u64) -> Claims {
    Claims { sub: "alice".into(), exp, nbf: None, iat: Some(NOW - 5), profiles: vec!["pbx1".into(), "trunk".into()] }
}

/// A token with the given header and payload JSON, signed correctly with SECRET.
fn raw(header: &serde_json::Value, payload: &serde_json::Value) -> String {
    use hmac::{Hmac, Mac};
    let signed =
        format!("{}.{}", base64_url(header.to_string().as_bytes()), base64_url(payload.to_string().as_bytes()));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", base64_url(&mac.finalize().into_bytes()))
}

fn hs256() -> serde_json::Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

#[test]
fn sign_then_verify_round_trips() {
    let c = Claims { nbf: Some(NOW - 1), ..claims(NOW + 3600) };
    assert_eq!(verify(&sign(&c, SECRET), SECRET, NOW, 0), Ok(c));
    let minimal = raw(&hs256(), &json!({"sub": "bob", "exp": NOW + 1}));
    let got = verify(&minimal, SECRET, NOW, 0).unwrap();
    assert_eq!((got.sub.as_str(), got.nbf, got.iat, got.profiles.len()), ("bob", None, None, 0));
}

#[test]
fn expiry_honours_the_leeway() {
    let t = sign(&claims(NOW), SECRET);
    assert_eq!(verify(&t, SECRET, NOW, 0), Err(TokenError::Expired), "exp == now is expired");
    assert!(verify(&t, SECRET, NOW - 1, 0).is_ok());
    assert!(verify(&t, SECRET, NOW + 29, 30).is_ok());
    assert_eq!(verify(&t, SECRET, NOW + 30, 30), Err(TokenError::Expired));
    assert_eq!(verify(&sign(&claims(0), SECRET), SECRET, 10, u64::MAX), Ok(claims(0)), "no overflow");
}

#[test]
fn not_before_honours_the_leeway() {
    let t = sign(&Claims { nbf: Some(NOW + 100), ..claims(NOW + 1000) }, SECRET);
    assert_eq!(verify(&t, SECRET, NOW, 0), Err(TokenError::NotYetValid));
    assert_eq!(verify(&t, SECRET, NOW, 99), Err(TokenError::NotYetValid));
    assert!(verify(&t, SECRET, NOW, 100).is_ok());
    assert!(verify(&t, SECRET, NOW + 100, 0).is_ok());
}

#[test]
fn only_hs256_is_accepted() {
    let payload = json!({"sub": "alice", "exp": NOW + 60});
    for header in
        [json!({"alg": "none"}), json!({"alg": "HS512"}), json!({"alg": "RS256"}), json!({"alg": "hs256"}), json!({})]
    {
        assert_eq!(verify(&raw(&header, &payload), SECRET, NOW, 0), Err(TokenError::UnsupportedAlgorithm), "{header}");
    }
    let unsigned = format!("{}.{}.", base64_url(br#"{"alg":"none"}"#), base64_url(payload.to_string().as_bytes()));
    assert_eq!(verify(&unsigned, SECRET, NOW, 0), Err(TokenError::UnsupportedAlgorithm));
    let crit = raw(&json!({"alg": "HS256", "crit": ["exp"]}), &payload);
    assert_eq!(verify(&crit, SECRET, NOW, 0), Err(TokenError::Malformed));
}

#[test]
fn signatures_are_checked() {
    let t = sign(&claims(NOW + 60), SECRET);
    assert_eq!(verify(&t, b"another secret", NOW, 0), Err(TokenError::BadSignature));
    assert_eq!(verify(&t, b"", NOW, 0), Err(TokenError::EmptySecret));
    let (signed, _) = t.rsplit_once('.').unwrap();
    let tampered_payload = format!(
        "{}.{}.{}",
        signed.split('.').next().unwrap(),
        base64_url(json!({"sub": "root", "exp": NOW + 60}).to_string().as_bytes()),
        t.rsplit('.').next().unwrap()
    );
    assert_eq!(verify(&tampered_payload, SECRET, NOW, 0), Err(TokenError::BadSignature));
    assert_eq!(verify(&format!("{signed}."), SECRET, NOW, 0), Err(TokenError::BadSignature));
    assert_eq!(verify(&format!("{signed}.AAAA"), SECRET, NOW, 0), Err(TokenError::BadSignature));
}

#[test]
fn malformed_tokens_are_refused() {
    let t = sign(&claims(NOW + 60), SECRET);
    for bad in [
        String::new(),
        "a.b".into(),
        "a.b.c.d".into(),
        format!("{t}.x"),
        format!("{t}="),
        format!("{t}!"),
        t.replacen('.', "..", 1),
        format!("{}.e30.!!!", base64_url(br#"{"alg":"HS256"}"#)),
        format!("{}.e30.AAAA", base64_url(b"not json")),
    ] {
        assert_eq!(verify(&bad, SECRET, NOW, 0), Err(TokenError::Malformed), "{bad}");
    }
    let big = format!("{t}{}", "A".repeat(MAX_TOKEN_LEN));
    assert_eq!(verify(&big, SECRET, NOW, 0), Err(TokenError::TooLarge));
}

#[test]
fn claims_are_validated_after_the_signature() {
    let cases = [
        (json!({"exp": NOW + 60}), TokenError::MissingClaim("sub")),
        (json!({"sub": "a"}), TokenError::MissingClaim("exp")),
        (json!({"sub": "", "exp": NOW + 60}), TokenError::InvalidClaim("sub")),
        (json!({"sub": 5, "exp": NOW + 60}), TokenError::InvalidClaim("sub")),
        (json!({"sub": "a", "exp": "soon"}), TokenError::InvalidClaim("exp")),
        (json!({"sub": "a", "exp": -1}), TokenError::InvalidClaim("exp")),
        (json!({"sub": "a", "exp": NOW + 60, "nbf": "x"}), TokenError::InvalidClaim("nbf")),
        (json!({"sub": "a", "exp": NOW + 60, "profiles": "pbx1"}), TokenError::InvalidClaim("profiles")),
        (json!({"sub": "a", "exp": NOW + 60, "profiles": [1]}), TokenError::InvalidClaim("profiles")),
        (json!(["not", "an", "object"]), TokenError::Malformed),
    ];
    for (payload, want) in cases {
        assert_eq!(verify(&raw(&hs256(), &payload), SECRET, NOW, 0), Err(want), "{payload}");
    }
    let fractional = raw(&hs256(), &json!({"sub": "a", "exp": (NOW + 60) as f64 + 0.5}));
    assert_eq!(verify(&fractional, SECRET, NOW, 0).unwrap().exp, NOW + 60);
}
