//! `[[http.ice_servers]]`: the STUN and TURN servers handed to browsers at login.
//!
//! A TURN server needs credentials, and operators run coturn one of two ways: with static
//! long-term users (`username` + `credential` here), or with `use-auth-secret`, where the gateway
//! holds the shared secret and mints a time-limited credential per login (the "TURN REST API"
//! convention, see `signaling::ice`). An entry a browser would refuse is a config error, so
//! `check-config` catches it instead of every call failing.

use super::{ConfigErrors, Secret};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// A minted credential lives this long unless `credential_lifetime_secs` says otherwise. A browser
/// uses it for the calls of one login; a day covers a working day's tab.
pub const DEFAULT_CREDENTIAL_LIFETIME_SECS: u64 = 24 * 3_600;
/// Shorter than this and a call set up near the end of the lifetime could not allocate.
const MIN_CREDENTIAL_LIFETIME_SECS: u64 = 300;
const MAX_CREDENTIAL_LIFETIME_SECS: u64 = 7 * 24 * 3_600;

/// One entry as written in the file. Secrets are `Secret`s, so `Debug` never shows them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIceServer {
    /// A list, or one URL as a string (both are what `RTCIceServer.urls` takes).
    #[serde(default, deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<Secret>,
    /// coturn's `static-auth-secret` (with `use-auth-secret`).
    #[serde(default)]
    pub shared_secret: Option<Secret>,
    #[serde(default)]
    pub credential_lifetime_secs: Option<u64>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(deserializer)? {
        Urls::One(url) => vec![url],
        Urls::Many(urls) => urls,
    })
}

/// How a browser authenticates to one ICE server.
#[derive(Clone, PartialEq, Eq)]
pub enum IceAuth {
    /// STUN needs none.
    None,
    /// A long-term user configured on the TURN server.
    Static { username: String, credential: Secret },
    /// Time-limited credentials derived per login from the TURN server's shared secret.
    SharedSecret { secret: Secret, lifetime_secs: u64 },
}

impl fmt::Debug for IceAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Static { username, .. } => write!(f, "Static {{ username: {username:?}, credential: <redacted> }}"),
            Self::SharedSecret { lifetime_secs, .. } => {
                write!(f, "SharedSecret {{ secret: <redacted>, lifetime_secs: {lifetime_secs} }}")
            }
        }
    }
}

/// A validated entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServerConfig {
    pub urls: Vec<String>,
    pub auth: IceAuth,
}

impl IceServerConfig {
    /// For `check-config`: what browsers get, without any secret.
    pub fn summary(&self) -> String {
        let auth = match &self.auth {
            IceAuth::None => String::new(),
            IceAuth::Static { username, .. } => format!(" (static user {username})"),
            IceAuth::SharedSecret { lifetime_secs, .. } => {
                format!(" (per-login credentials from a shared secret, valid {lifetime_secs} s)")
            }
        };
        format!("{}{auth}", self.urls.join(", "))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Stun,
    Turn,
}

/// Checks every entry; returns the valid ones (all of them when no error was pushed).
pub(super) fn validate(file: &Path, raw: &[RawIceServer], errors: &mut ConfigErrors) -> Vec<IceServerConfig> {
    let mut servers = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let key = format!("http.ice_servers[{i}]");
        let before = errors.0.len();
        if entry.urls.is_empty() {
            errors.push(file, format!("{key}.urls"), "list at least one stun:, stuns:, turn: or turns: URL");
        }
        let mut needs_credentials = false;
        for (j, url) in entry.urls.iter().enumerate() {
            match check_url(url) {
                Ok(Scheme::Turn) => needs_credentials = true,
                Ok(Scheme::Stun) => {}
                Err(reason) => errors.push(file, format!("{key}.urls[{j}]"), format!("`{url}`: {reason}")),
            }
        }
        let auth = auth_of(file, &key, entry, needs_credentials, errors);
        if errors.0.len() == before {
            if let Some(auth) = auth {
                servers.push(IceServerConfig { urls: entry.urls.clone(), auth });
            }
        }
    }
    servers
}

fn auth_of(file: &Path, key: &str, entry: &RawIceServer, needs_credentials: bool, errors: &mut ConfigErrors) -> Option<IceAuth> {
    let username = entry.username.as_deref().filter(|u| !u.is_empty());
    let credential = entry.credential.as_ref().filter(|c| !c.0.is_empty());
    let secret = entry.shared_secret.as_ref().filter(|s| !s.0.is_empty());
    if entry.credential_lifetime_secs.is_some() && secret.is_none() {
        errors.push(file, format!("{key}.credential_lifetime_secs"), "only applies with shared_secret");
    }
    match (username, credential, secret) {
        (None, None, None) if needs_credentials => {
            errors.push(file, key, "a turn: or turns: URL needs either username and credential, or shared_secret (coturn use-auth-secret)");
            None
        }
        (None, None, None) => Some(IceAuth::None),
        (Some(username), Some(credential), None) => Some(IceAuth::Static { username: username.to_owned(), credential: credential.clone() }),
        (None, None, Some(secret)) => {
            let lifetime_secs = entry.credential_lifetime_secs.unwrap_or(DEFAULT_CREDENTIAL_LIFETIME_SECS);
            if !(MIN_CREDENTIAL_LIFETIME_SECS..=MAX_CREDENTIAL_LIFETIME_SECS).contains(&lifetime_secs) {
                let reason = format!("must be {MIN_CREDENTIAL_LIFETIME_SECS}-{MAX_CREDENTIAL_LIFETIME_SECS} s");
                errors.push(file, format!("{key}.credential_lifetime_secs"), reason);
            }
            Some(IceAuth::SharedSecret { secret: secret.clone(), lifetime_secs })
        }
        (_, _, Some(_)) => {
            errors.push(file, key, "set either username and credential, or shared_secret, not both");
            None
        }
        (Some(_), None, None) => {
            errors.push(file, format!("{key}.credential"), "required with username");
            None
        }
        (None, Some(_), None) => {
            errors.push(file, format!("{key}.username"), "required with credential");
            None
        }
    }
}

/// RFC 7064 / RFC 7065 URIs as browsers accept them: `stun:host[:port]`,
/// `turn:host[:port][?transport=udp|tcp]`, and the `s` variants. Hosts may be IPv6 in brackets.
fn check_url(url: &str) -> Result<Scheme, &'static str> {
    let (scheme, rest) = url.split_once(':').ok_or("not a URL: expected stun:, stuns:, turn: or turns:")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "stun" | "stuns" => Scheme::Stun,
        "turn" | "turns" => Scheme::Turn,
        _ => return Err("the scheme must be stun:, stuns:, turn: or turns:"),
    };
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    match (scheme, query) {
        (_, None) => {}
        (Scheme::Turn, Some("transport=udp" | "transport=tcp")) => {}
        (Scheme::Turn, Some(_)) => return Err("the only query allowed is ?transport=udp or ?transport=tcp"),
        (Scheme::Stun, Some(_)) => return Err("a stun: URL takes no query"),
    }
    check_authority(authority)?;
    Ok(scheme)
}

fn check_authority(authority: &str) -> Result<(), &'static str> {
    if authority.starts_with("//") || authority.contains('@') {
        return Err("write scheme:host[:port], without // or user@");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("an IPv6 host needs its closing ]")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the bracketed host is not an IPv6 address");
        }
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = authority.starts_with('[') || !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if !host_ok {
        return Err("the host is empty or not a host name or IP address");
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err("the port must be 1-65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_urls_are_accepted() {
        for url in ["stun:stun.example.com", "stun:192.0.2.1:3478", "stuns:[2001:db8::1]:5349", "turn:t.example.com:3478?transport=udp", "TURNS:t.example.com?transport=tcp"] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn urls_browsers_refuse_are_errors() {
        for url in ["http://x", "stun:", "turn://t.example.com", "turn:user@t.example.com", "turn:t:0", "turn:t:99999", "stun:s?transport=udp", "turn:t?transport=sctp", "stun:[::1", "stun:bad host"] {
            assert!(check_url(url).is_err(), "{url}");
        }
    }

    fn raw(urls: &[&str]) -> RawIceServer {
        RawIceServer { urls: urls.iter().map(|u| u.to_string()).collect(), username: None, credential: None, shared_secret: None, credential_lifetime_secs: None }
    }

    fn errors_of(entries: &[RawIceServer]) -> Vec<String> {
        let mut errors = ConfigErrors::default();
        validate(Path::new("gw.toml"), entries, &mut errors);
        errors.0.iter().map(|e| format!("{}: {}", e.key, e.reason)).collect()
    }

    #[test]
    fn turn_needs_one_kind_of_credentials() {
        assert!(errors_of(&[raw(&["stun:s.example.com"])]).is_empty());
        let bare = errors_of(&[raw(&["turn:t.example.com"])]);
        assert!(bare.iter().any(|e| e.contains("needs either username and credential, or shared_secret")), "{bare:?}");
        let mut both = raw(&["turn:t.example.com"]);
        both.username = Some("u".into());
        both.credential = Some(Secret("p".into()));
        both.shared_secret = Some(Secret("s".into()));
        assert!(errors_of(&[both]).iter().any(|e| e.contains("not both")));
        let mut half = raw(&["turn:t.example.com"]);
        half.username = Some("u".into());
        assert!(errors_of(&[half]).iter().any(|e| e.starts_with("http.ice_servers[0].credential: required")));
        assert!(errors_of(&[raw(&[])]).iter().any(|e| e.starts_with("http.ice_servers[0].urls")));
    }

    #[test]
    fn urls_may_be_one_string_or_a_list() {
        let one: RawIceServer = toml::from_str("urls = \"stun:s.example.com\"").expect("one");
        let many: RawIceServer = toml::from_str("urls = [\"stun:a\", \"stun:b\"]").expect("many");
        assert_eq!((one.urls.len(), many.urls.len()), (1, 2));
        assert!(toml::from_str::<RawIceServer>("urls = 3").is_err());
    }

    #[test]
    fn lifetime_is_bounded_and_only_for_shared_secrets() {
        let mut entry = raw(&["turn:t.example.com"]);
        entry.shared_secret = Some(Secret("s".into()));
        entry.credential_lifetime_secs = Some(10);
        assert!(errors_of(&[entry.clone()]).iter().any(|e| e.contains("credential_lifetime_secs: must be")));
        entry.credential_lifetime_secs = None;
        let mut errors = ConfigErrors::default();
        let servers = validate(Path::new("gw.toml"), &[entry], &mut errors);
        assert_eq!(servers[0].auth, IceAuth::SharedSecret { secret: Secret("s".into()), lifetime_secs: DEFAULT_CREDENTIAL_LIFETIME_SECS });
        let mut stun = raw(&["stun:s.example.com"]);
        stun.credential_lifetime_secs = Some(600);
        assert!(errors_of(&[stun]).iter().any(|e| e.contains("only applies with shared_secret")));
    }

    #[test]
    fn debug_and_summary_never_show_secrets() {
        let servers = [
            IceServerConfig { urls: vec!["turn:t".into()], auth: IceAuth::SharedSecret { secret: Secret("hush-1".into()), lifetime_secs: 600 } },
            IceServerConfig { urls: vec!["turn:t".into()], auth: IceAuth::Static { username: "u".into(), credential: Secret("hush-2".into()) } },
        ];
        for server in &servers {
            let shown = format!("{server:?} {}", server.summary());
            assert!(!shown.contains("hush"), "{shown}");
        }
    }
}
