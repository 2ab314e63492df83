//! The ICE servers of a login reply: the configured ones, with a TURN credential minted for this
//! user when the server runs coturn's `use-auth-secret`.
//!
//! The "TURN REST API" convention (draft-uberti-behave-turn-rest, what coturn implements): the
//! username is `expiry-unix-time:user` and the password is base64(HMAC-SHA1(secret, username)).
//! The TURN server recomputes the password from the username alone, and refuses it once the
//! expiry has passed, so a credential copied out of a page is worth little.

use super::protocol::IceServer;
use crate::config::{IceAuth, IceServerConfig};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// What a browser logged in as `user` at `now_unix` gets in its login reply.
pub fn for_login(servers: &[IceServerConfig], user: &str, now_unix: u64) -> Vec<IceServer> {
    servers
        .iter()
        .map(|server| {
            let (username, credential) = match &server.auth {
                IceAuth::None => (None, None),
                IceAuth::Static { username, credential } => (Some(username.clone()), Some(credential.0.clone())),
                IceAuth::SharedSecret { secret, lifetime_secs } => {
                    let (username, password) = rest_credential(secret.0.as_bytes(), user, now_unix.saturating_add(*lifetime_secs));
                    (Some(username), Some(password))
                }
            };
            IceServer { urls: server.urls.clone(), username, credential }
        })
        .collect()
}

/// A time-limited TURN credential valid until `expires_at` (seconds since the Unix epoch).
pub fn rest_credential(secret: &[u8], user: &str, expires_at: u64) -> (String, String) {
    let username = format!("{expires_at}:{user}");
    // HMAC takes keys of any length; the error arm cannot happen, and an empty MAC would only
    // make the TURN server refuse the credential.
    let password = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// Computed independently with
    /// `printf %s '1700086400:alice' | openssl dgst -sha1 -hmac 'S' -binary | base64`.
    #[test]
    fn rest_credential_matches_openssl() {
        let (username, password) = rest_credential(b"S", "alice", 1_700_086_400);
        assert_eq!(username, "1700086400:alice");
        assert_eq!(password, OPENSSL_REFERENCE);
    }

    const OPENSSL_REFERENCE: &str = "WDwCxxu1KtWNZAfB8DpbHecUd9k=";

    #[test]
    fn each_kind_of_server_gets_its_credentials() {
        let servers = vec![
            IceServerConfig { urls: vec!["stun:s.example.com".into()], auth: IceAuth::None },
            IceServerConfig { urls: vec!["turn:a.example.com".into()], auth: IceAuth::Static { username: "u".into(), credential: Secret("p".into()) } },
            IceServerConfig { urls: vec!["turn:b.example.com".into()], auth: IceAuth::SharedSecret { secret: Secret("S".into()), lifetime_secs: 86_400 } },
        ];
        let got = for_login(&servers, "alice", 1_700_000_000);
        assert_eq!((got[0].username.as_deref(), got[0].credential.as_deref()), (None, None));
        assert_eq!((got[1].username.as_deref(), got[1].credential.as_deref()), (Some("u"), Some("p")));
        assert_eq!(got[2].username.as_deref(), Some("1700086400:alice"));
        assert_eq!(got[2].credential.as_deref(), Some(OPENSSL_REFERENCE));
        assert!(!format!("{got:?}").contains(OPENSSL_REFERENCE), "Debug hides minted credentials: {got:?}");
    }
}
