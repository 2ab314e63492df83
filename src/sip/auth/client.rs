//! The answering side: we are the UAC and an upstream PBX or proxy
//! challenges us with 401/407.

use super::header::{Challenge, Credentials};
use super::{ha1, request_digest, Qop};
use rand::RngCore;
use std::fmt;

/// Which status the challenge came with, which decides the header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401 with WWW-Authenticate, answered in Authorization.
    Www,
    /// 407 with Proxy-Authenticate, answered in Proxy-Authorization.
    Proxy,
}

impl ChallengeKind {
    pub fn challenge_header(self) -> &'static str {
        match self {
            Self::Www => "WWW-Authenticate",
            Self::Proxy => "Proxy-Authenticate",
        }
    }

    pub fn credentials_header(self) -> &'static str {
        match self {
            Self::Www => "Authorization",
            Self::Proxy => "Proxy-Authorization",
        }
    }
}

/// One header to add to the outgoing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Authorization` or `Proxy-Authorization`.
    pub name: &'static str,
    pub value: String,
    pub realm: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// No header offered Digest with an algorithm and qop we implement.
    NoUsableChallenge,
    /// `authorize` before any challenge was handled.
    NoChallenge,
    /// The realm challenged again, without stale=true, right after we
    /// answered a fresh challenge from it: the username or password is wrong.
    /// Stop retrying; the realm's cached challenge is dropped.
    CredentialsRejected { realm: String },
    /// 2^32-1 requests on one nonce; a new challenge is needed.
    NonceCountExhausted { realm: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUsableChallenge => f.write_str("no usable digest challenge"),
            Self::NoChallenge => f.write_str("no challenge to answer"),
            Self::CredentialsRejected { realm } => write!(f, "credentials rejected by {realm:?}"),
            Self::NonceCountExhausted { realm } => write!(f, "nonce count exhausted for {realm:?}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// The qop to answer with: `Some(None)` is the RFC 2069 form, `None` means
/// the challenge cannot be answered. `auth` wins over `auth-int` because
/// proxies that rewrite bodies (SDP in a B2BUA) break `auth-int`.
fn pick_qop(c: &Challenge) -> Option<Option<Qop>> {
    if c.qop.is_empty() {
        // -sess needs a cnonce, which only exists with qop.
        return (!c.algorithm.is_sess()).then_some(None);
    }
    [Qop::Auth, Qop::AuthInt]
        .into_iter()
        .find(|q| c.offers(*q))
        .map(Some)
}

/// Answers one challenge; the pure core of [`DigestClient`]. `uri` must be
/// the Request-URI exactly as it will be sent, `body` is hashed only for
/// auth-int (`None` = empty body), `cnonce` and `nc` are ignored in the
/// RFC 2069 form.
#[allow(clippy::too_many_arguments)]
pub fn answer_challenge(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    body: Option<&[u8]>,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, ClientError> {
    let qop = pick_qop(challenge).ok_or(ClientError::NoUsableChallenge)?;
    let alg = challenge.algorithm;
    let base = ha1(alg, username, &challenge.realm, password);
    let response = request_digest(
        alg,
        &base,
        &challenge.nonce,
        qop.map(|q| (q, nc, cnonce)),
        method,
        uri,
        body.unwrap_or_default(),
    )
    .ok_or(ClientError::NoUsableChallenge)?;
    let username = if challenge.userhash {
        alg.base()
            .hash(&[username.as_bytes(), challenge.realm.as_bytes()])
    } else {
        username.to_owned()
    };
    Ok(Credentials {
        username,
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response,
        algorithm: alg,
        cnonce: qop.map(|_| cnonce.to_owned()),
        qop,
        nc: qop.map(|_| nc),
        opaque: challenge.opaque.clone(),
        userhash: challenge.userhash,
    })
}

#[derive(Debug)]
struct RealmState {
    kind: ChallengeKind,
    challenge: Challenge,
    /// Last nc sent with `challenge.nonce`.
    nc: u32,
    /// Our last answer was the first one to a challenge we had just been
    /// sent, so another non-stale challenge means the password is wrong.
    answered_fresh: bool,
}

/// Credentials for one account, remembering per realm the challenge to
/// answer so in-dialog requests are authorized without a round trip.
pub struct DigestClient {
    username: String,
    password: String,
    cnonce_source: Box<dyn FnMut() -> String + Send>,
    realms: Vec<RealmState>,
}

impl DigestClient {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        DigestClient {
            username: username.into(),
            password: password.into(),
            cnonce_source: Box::new(|| {
                let mut b = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut b);
                hex::encode(b)
            }),
            realms: Vec::new(),
        }
    }

    /// Replaces the random cnonce, for deterministic tests.
    pub fn with_cnonce_source(mut self, source: impl FnMut() -> String + Send + 'static) -> Self {
        self.cnonce_source = Box::new(source);
        self
    }

    /// Takes all WWW-Authenticate (`Www`) or Proxy-Authenticate (`Proxy`)
    /// values of a 401/407; call once per kind when a response carries both.
    /// Per realm the strongest usable algorithm is kept; unparseable and
    /// non-Digest values are skipped.
    pub fn handle_challenge<'a>(
        &mut self,
        kind: ChallengeKind,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ClientError> {
        let mut best: Vec<Challenge> = Vec::new();
        for c in values.into_iter().filter_map(|v| Challenge::parse(v).ok()) {
            if pick_qop(&c).is_none() {
                continue;
            }
            match best.iter_mut().find(|b| b.realm == c.realm) {
                Some(b) if c.algorithm.rank() > b.algorithm.rank() => *b = c,
                Some(_) => {}
                None => best.push(c),
            }
        }
        if best.is_empty() {
            return Err(ClientError::NoUsableChallenge);
        }
        let rejected = best.iter().find(|c| {
            !c.stale
                && self
                    .realms
                    .iter()
                    .any(|r| r.challenge.realm == c.realm && r.answered_fresh)
        });
        if let Some(c) = rejected {
            let realm = c.realm.clone();
            self.realms.retain(|r| r.challenge.realm != realm);
            return Err(ClientError::CredentialsRejected { realm });
        }
        for c in best {
            match self
                .realms
                .iter_mut()
                .find(|r| r.challenge.realm == c.realm)
            {
                Some(r) => {
                    // The same nonce again must continue its nc sequence, or
                    // the server would take our next request for a replay.
                    if r.challenge.nonce != c.nonce {
                        r.nc = 0;
                    }
                    r.kind = kind;
                    r.challenge = c;
                    r.answered_fresh = false;
                }
                None => self.realms.push(RealmState {
                    kind,
                    challenge: c,
                    nc: 0,
                    answered_fresh: false,
                }),
            }
        }
        Ok(())
    }

    /// Headers for a request, one per realm challenged so far, from the
    /// cached challenges (the next nc on the same nonce). `uri` is the
    /// Request-URI as sent; `body` matters only when a server insists on
    /// auth-int.
    pub fn authorize(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<AuthHeader>, ClientError> {
        if self.realms.is_empty() {
            return Err(ClientError::NoChallenge);
        }
        let mut out = Vec::with_capacity(self.realms.len());
        for r in &mut self.realms {
            let nc =
                r.nc.checked_add(1)
                    .ok_or_else(|| ClientError::NonceCountExhausted {
                        realm: r.challenge.realm.clone(),
                    })?;
            let cnonce = (self.cnonce_source)();
            let creds = answer_challenge(
                &r.challenge,
                &self.username,
                &self.password,
                method,
                uri,
                body,
                &cnonce,
                nc,
            )?;
            r.nc = nc;
            r.answered_fresh = nc == 1;
            out.push(AuthHeader {
                name: r.kind.credentials_header(),
                value: creds.to_string(),
                realm: r.challenge.realm.clone(),
            });
        }
        Ok(out)
    }

    /// Handles a challenge and answers it in one go: the usual reaction to a
    /// 401/407. Same errors as the two calls it makes.
    pub fn respond<'a>(
        &mut self,
        kind: ChallengeKind,
        values: impl IntoIterator<Item = &'a str>,
        method: &str,
        uri: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<AuthHeader>, ClientError> {
        self.handle_challenge(kind, values)?;
        self.authorize(method, uri, body)
    }

    /// Call when a request carrying our credentials got a final response
    /// other than 401/407. Without it, a later 401 to a request we chose to
    /// send without credentials would be mistaken for a rejection.
    pub fn request_accepted(&mut self) {
        for r in &mut self.realms {
            r.answered_fresh = false;
        }
    }

    /// Drops every cached challenge (e.g. after re-configuring the account).
    pub fn forget(&mut self) {
        self.realms.clear();
    }
}

impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("realms", &self.realms)
            .finish()
    }
}
