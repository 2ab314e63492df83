//! The challenging side: registrar / proxy authenticating phones.
//!
//! Nonces are stateless: `hex(issued_secs || 16 random bytes || tag)` where
//! tag is HMAC-SHA256 (truncated to 128 bits) over realm and the rest under
//! the server key. Issuing therefore costs no memory and nobody without the
//! key can mint one. State is kept only for nonces that have been *used
//! successfully*, to refuse a replayed nonce-count; only authenticated users
//! can add to it, and it is capped.

use super::header::{Credentials, ParseError};
use super::{ct_eq, request_digest, Algorithm, Challenge, Qop, Secret};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 100_000;

const TS_LEN: usize = 8;
const RAND_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// Nonces dated this far ahead of `now` are still honoured, so that a
/// cluster of gateways sharing a key tolerates small clock differences.
const FUTURE_SKEW_SECS: u64 = 5;

type NonceKey = [u8; TAG_LEN];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    Ok {
        username: String,
    },
    /// The response was right for a nonce that has expired (or was
    /// forgotten, see [`DigestServer::with_max_tracked_nonces`]): answer with
    /// `challenge(now, true)` and the phone retries without asking its user.
    Stale,
    Failed(AuthFailure),
}

/// Why credentials were refused. Answering any of these with a fresh
/// `challenge(now, false)` is always correct; owners may instead send 403
/// after repeated `UnknownUser`/`BadResponse` to slow down guessing, and 400
/// for `Malformed`. Do not tell the peer which of `UnknownUser` and
/// `BadResponse` happened: that would confirm which usernames exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Non-Digest scheme; re-challenge (RFC 4475 regaut01).
    UnsupportedScheme(String),
    UnsupportedAlgorithm(String),
    /// We require qop=auth: without it there is no nc, hence no replay
    /// protection, and auth-int would need the body which `verify` lacks.
    UnsupportedQop(String),
    Malformed(&'static str),
    /// Credentials for another realm, e.g. an upstream proxy's.
    WrongRealm(String),
    /// The digest `uri` is not this request's Request-URI: the response was
    /// computed for another request and is being replayed at this one.
    UriMismatch,
    /// Not a nonce this server (with this key and realm) issued.
    BadNonce,
    UnknownUser,
    BadResponse,
    /// nc not above the highest already accepted for this nonce.
    NonceCountReplay,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedScheme(s) => write!(f, "unsupported auth scheme {s:?}"),
            Self::UnsupportedAlgorithm(a) => write!(f, "unsupported algorithm {a:?}"),
            Self::UnsupportedQop(q) => write!(f, "unsupported qop {q:?}"),
            Self::Malformed(why) => write!(f, "malformed credentials: {why}"),
            Self::WrongRealm(r) => write!(f, "credentials for foreign realm {r:?}"),
            Self::UriMismatch => f.write_str("digest uri differs from Request-URI"),
            Self::BadNonce => f.write_str("nonce not issued by us"),
            Self::UnknownUser => f.write_str("unknown user"),
            Self::BadResponse => f.write_str("wrong digest response"),
            Self::NonceCountReplay => f.write_str("nonce count replayed"),
        }
    }
}

impl std::error::Error for AuthFailure {}

impl From<ParseError> for AuthFailure {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::NotDigest(s) => Self::UnsupportedScheme(s),
            ParseError::UnsupportedAlgorithm(a) => Self::UnsupportedAlgorithm(a),
            ParseError::UnsupportedQop(q) => Self::UnsupportedQop(q),
            ParseError::Malformed(m) => Self::Malformed(m),
        }
    }
}

pub struct DigestServer {
    realm: String,
    key: [u8; 32],
    lifetime_secs: u64,
    algorithms: Vec<Algorithm>,
    seen: ReplayTable,
}

impl DigestServer {
    /// `key: None` draws a random key: fine for a single process, but nonces
    /// then die with it, and gateways sharing load must share a key.
    pub fn new(realm: impl Into<String>, key: Option<[u8; 32]>) -> Self {
        let key = key.unwrap_or_else(|| {
            let mut k = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut k);
            k
        });
        DigestServer {
            realm: realm.into(),
            key,
            lifetime_secs: DEFAULT_NONCE_LIFETIME.as_secs(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            seen: ReplayTable::new(DEFAULT_MAX_TRACKED_NONCES),
        }
    }

    /// Whole seconds, at least one.
    pub fn with_nonce_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime_secs = lifetime.as_secs().max(1);
        self
    }

    /// Offered in the given order. RFC 8760 wants the strongest first, but many phones read only
    /// the first challenge, so the operator decides. An empty list keeps the current one, since a
    /// server that offers nothing cannot authenticate.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        let mut algs: Vec<Algorithm> = Vec::new();
        for algorithm in algorithms {
            if !algs.contains(algorithm) {
                algs.push(*algorithm);
            }
        }
        if !algs.is_empty() {
            self.algorithms = algs;
        }
        self
    }

    /// Caps the nc table (minimum 1). When it is full and nothing in it has
    /// expired, the oldest-issued nonce is forgotten, together with any
    /// unused nonce sorting before it: their next use gets
    /// [`AuthResult::Stale`], never `Ok`, so eviction costs the phone a round
    /// trip but cannot admit a replay.
    pub fn with_max_tracked_nonces(mut self, cap: usize) -> Self {
        self.seen.cap = cap.max(1);
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How many nonces the replay table currently remembers.
    pub fn tracked_nonces(&self) -> usize {
        self.seen.entries.len()
    }

    /// One header value per offered algorithm, strongest first, each with its
    /// own nonce. Use them for WWW-Authenticate (401, registrar) or
    /// Proxy-Authenticate (407, proxy) alike.
    pub fn challenge(&self, now: SystemTime, stale: bool) -> Vec<String> {
        let issued = secs(now);
        self.algorithms
            .iter()
            .map(|&algorithm| {
                Challenge {
                    realm: self.realm.clone(),
                    nonce: self.new_nonce(issued),
                    algorithm,
                    qop: vec![Qop::Auth.as_str().to_owned()],
                    opaque: None,
                    stale,
                    domain: None,
                    userhash: false,
                }
                .to_string()
            })
            .collect()
    }

    /// Checks an Authorization / Proxy-Authorization value against the
    /// request it came with. `request_uri` is the Request-URI exactly as
    /// received; it is compared byte for byte with the digest `uri`, since
    /// that string is what the phone hashed. `lookup(username, realm)` asks
    /// the user store.
    ///
    /// Call once per transaction, not per retransmission: a retransmitted
    /// request repeats its nc and would be refused as a replay. Requests
    /// sharing a nonce that arrive out of order (nc 3 before nc 2) also
    /// lose the later-arriving one; the phone then gets a fresh challenge.
    pub fn verify<F>(
        &mut self,
        method: &str,
        request_uri: &str,
        credentials: &str,
        lookup: F,
        now: SystemTime,
    ) -> AuthResult
    where
        F: Fn(&str, &str) -> Option<Secret>,
    {
        use AuthFailure as F_;
        let fail = AuthResult::Failed;
        let now = secs(now);
        let creds = match Credentials::parse(credentials) {
            Ok(c) => c,
            Err(e) => return fail(e.into()),
        };
        if creds.realm != self.realm {
            return fail(F_::WrongRealm(creds.realm));
        }
        if !self.algorithms.contains(&creds.algorithm) {
            return fail(F_::UnsupportedAlgorithm(
                creds.algorithm.as_str().to_owned(),
            ));
        }
        let (nc, cnonce) = match (creds.qop, creds.nc, creds.cnonce.as_deref()) {
            (Some(Qop::Auth), Some(nc), Some(cnonce)) => (nc, cnonce),
            (Some(Qop::AuthInt), _, _) => return fail(F_::UnsupportedQop("auth-int".into())),
            (None, _, _) => return fail(F_::UnsupportedQop("none".into())),
            _ => return fail(F_::Malformed("qop without cnonce or nc")),
        };
        if nc == 0 {
            return fail(F_::Malformed("nc starts at 00000001"));
        }
        if creds.userhash {
            return fail(F_::Malformed("userhash was not offered"));
        }
        if creds.uri != request_uri {
            return fail(F_::UriMismatch);
        }
        let Some((issued, key)) = self.open_nonce(&creds.nonce) else {
            return fail(F_::BadNonce);
        };
        let Some(secret) = lookup(&creds.username, &creds.realm) else {
            return fail(F_::UnknownUser);
        };
        let Some(base) = secret.base_ha1(creds.algorithm, &creds.username, &self.realm) else {
            return fail(F_::UnsupportedAlgorithm(
                creds.algorithm.as_str().to_owned(),
            ));
        };
        let expected = request_digest(
            creds.algorithm,
            &base,
            &creds.nonce,
            Some((Qop::Auth, nc, cnonce)),
            method,
            &creds.uri,
            b"",
        );
        let given = creds.response.to_ascii_lowercase();
        if !expected.is_some_and(|e| ct_eq(e.as_bytes(), given.as_bytes())) {
            return fail(F_::BadResponse);
        }
        // Checked after the response so that Stale, which makes the phone
        // retry silently, is only ever said to someone holding the password.
        let fresh = issued <= now.saturating_add(FUTURE_SKEW_SECS)
            && now < issued.saturating_add(self.lifetime_secs);
        if !fresh {
            return AuthResult::Stale;
        }
        match self.seen.record(key, issued, nc, now, self.lifetime_secs) {
            Seen::Accepted => AuthResult::Ok {
                username: creds.username,
            },
            Seen::Replay => fail(F_::NonceCountReplay),
            Seen::Forgotten => AuthResult::Stale,
        }
    }

    /// Drops expired nonces from the replay table; call from a timer (every
    /// lifetime or so). Correctness does not depend on it, only memory.
    pub fn purge(&mut self, now: SystemTime) {
        self.seen.purge(secs(now), self.lifetime_secs);
    }

    fn new_nonce(&self, issued: u64) -> String {
        let mut bytes = Vec::with_capacity(TS_LEN + RAND_LEN + TAG_LEN);
        bytes.extend_from_slice(&issued.to_be_bytes());
        let mut random = [0u8; RAND_LEN];
        rand::thread_rng().fill_bytes(&mut random);
        bytes.extend_from_slice(&random);
        // HMAC accepts any key length, so the mac always exists; if it ever
        // did not, the short nonce would just fail verification.
        if let Some(mac) = self.mac(&bytes) {
            bytes.extend(mac.finalize().into_bytes().iter().take(TAG_LEN));
        }
        hex::encode(bytes)
    }

    /// Authenticates a nonce; returns when it was issued and its identity.
    fn open_nonce(&self, nonce: &str) -> Option<(u64, NonceKey)> {
        if nonce.len() != 2 * (TS_LEN + RAND_LEN + TAG_LEN) {
            return None;
        }
        let bytes = hex::decode(nonce).ok()?;
        let (body, tag) = bytes.split_at_checked(TS_LEN + RAND_LEN)?;
        self.mac(body)?.verify_truncated_left(tag).ok()?;
        let issued = u64::from_be_bytes(body.get(..TS_LEN)?.try_into().ok()?);
        Some((issued, tag.try_into().ok()?))
    }

    /// The realm is bound in so that servers sharing a key across realms
    /// cannot have nonces carried from one to the other.
    fn mac(&self, body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(b"sipbridge digest nonce v1\0");
        mac.update(self.realm.as_bytes());
        mac.update(b"\0");
        mac.update(body);
        Some(mac)
    }
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("key", &"<redacted>")
            .field("lifetime_secs", &self.lifetime_secs)
            .field("algorithms", &self.algorithms)
            .field("tracked_nonces", &self.seen.entries.len())
            .field("max_tracked_nonces", &self.seen.cap)
            .finish()
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum Seen {
    Accepted,
    Replay,
    Forgotten,
}

/// Highest nc per used nonce, plus an issue-time index for cheap expiry and
/// eviction in age order.
struct ReplayTable {
    entries: HashMap<NonceKey, u32>,
    by_issue: BTreeSet<(u64, NonceKey)>,
    cap: usize,
    /// Entries leave `by_issue` only from the front, so every nonce ever
    /// dropped sorts at or below this mark; an untracked nonce at or below it
    /// may have been used before and cannot be checked for replay. Raising it
    /// on purge as well as on eviction also covers a wall clock stepping back
    /// and making purged nonces look fresh again.
    forgotten_upto: Option<(u64, NonceKey)>,
}

impl ReplayTable {
    fn new(cap: usize) -> Self {
        ReplayTable {
            entries: HashMap::new(),
            by_issue: BTreeSet::new(),
            cap,
            forgotten_upto: None,
        }
    }

    fn record(&mut self, key: NonceKey, issued: u64, nc: u32, now: u64, lifetime: u64) -> Seen {
        if let Some(max) = self.entries.get_mut(&key) {
            if nc <= *max {
                return Seen::Replay;
            }
            *max = nc;
            return Seen::Accepted;
        }
        if self.forgotten_upto.is_some_and(|f| (issued, key) <= f) {
            return Seen::Forgotten;
        }
        self.entries.insert(key, nc);
        self.by_issue.insert((issued, key));
        if self.entries.len() > self.cap {
            self.purge(now, lifetime);
        }
        while self.entries.len() > self.cap {
            let Some(oldest) = self.by_issue.pop_first() else {
                break;
            };
            self.entries.remove(&oldest.1);
            self.forget_upto(oldest);
        }
        // The newcomer itself is evicted when it is the oldest of all.
        if self.entries.contains_key(&key) {
            Seen::Accepted
        } else {
            Seen::Forgotten
        }
    }

    fn purge(&mut self, now: u64, lifetime: u64) {
        while let Some(&oldest) = self.by_issue.first() {
            if oldest.0.saturating_add(lifetime) > now {
                break;
            }
            self.by_issue.pop_first();
            self.entries.remove(&oldest.1);
            self.forget_upto(oldest);
        }
    }

    fn forget_upto(&mut self, entry: (u64, NonceKey)) {
        self.forgotten_upto = Some(self.forgotten_upto.map_or(entry, |f| f.max(entry)));
    }
}
