use super::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REALM: &str = "sip.example.net";
const URI: &str = "sip:sip.example.net";
const T0: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn server() -> DigestServer {
    DigestServer::new(REALM, Some([7u8; 32]))
}

fn users(user: &str, _realm: &str) -> Option<Secret> {
    (user == "alice").then(|| Secret::Password("s3cret".into()))
}

fn client(password: &str) -> DigestClient {
    let mut n = 0u32;
    DigestClient::new("alice", password).with_cnonce_source(move || {
        n += 1;
        format!("cnonce{n}")
    })
}

/// Challenge → client answer → the single header value.
fn answer(c: &mut DigestClient, challenges: &[String], method: &str) -> String {
    let h = c
        .respond(
            ChallengeKind::Www,
            challenges.iter().map(String::as_str),
            method,
            URI,
            None,
        )
        .unwrap();
    assert_eq!(h.len(), 1);
    h[0].value.clone()
}

fn next(c: &mut DigestClient, method: &str) -> String {
    c.authorize(method, URI, None).unwrap().remove(0).value
}

fn verify(s: &mut DigestServer, method: &str, value: &str, now: u64) -> AuthResult {
    s.verify(method, URI, value, users, at(now))
}

fn ok() -> AuthResult {
    AuthResult::Ok {
        username: "alice".into(),
    }
}

const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

fn rfc7616(alg: &str, expected: &str) {
    let challenge = format!(
        "Digest\r\n realm=\"http-auth@example.org\",\r\n qop=\"auth, auth-int\",\r\n \
         algorithm={alg},\r\n nonce=\"{RFC_NONCE}\",\r\n opaque=\"{RFC_OPAQUE}\""
    );
    let c = Challenge::parse(&challenge).unwrap();
    let creds = answer_challenge(
        &c,
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        None,
        RFC_CNONCE,
        1,
    )
    .unwrap();
    assert_eq!(creds.response, expected);
    assert_eq!(creds.qop, Some(Qop::Auth));
    assert_eq!(creds.opaque.as_deref(), Some(RFC_OPAQUE));
    let printed = creds.to_string();
    assert!(printed.contains("nc=00000001"), "{printed}");
    assert_eq!(Credentials::parse(&printed).unwrap(), creds);

    // The same through the stateful client with a pinned cnonce.
    let mut client =
        DigestClient::new("Mufasa", "Circle of Life").with_cnonce_source(|| RFC_CNONCE.to_owned());
    let h = client
        .respond(
            ChallengeKind::Www,
            [challenge.as_str()],
            "GET",
            "/dir/index.html",
            None,
        )
        .unwrap();
    assert!(h[0].value.contains(&format!("response=\"{expected}\"")));
    assert_eq!(h[0].name, "Authorization");
}

#[test]
fn rfc7616_md5_vector() {
    rfc7616("MD5", "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn rfc7616_sha256_vector() {
    rfc7616(
        "SHA-256",
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    );
}

#[test]
fn parser_tolerates_layout() {
    let v = "  dIgEsT   NONCE = abc ,, Realm=\"a, \\\"b\\\"\" ,x-unknown=\"1,2\",\tALGORITHM=sha-256,\r\n \
             qop=\"auth-int , AUTH\" , stale=TRUE, opaque=\"\" ";
    let c = Challenge::parse(v).unwrap();
    assert_eq!(c.realm, "a, \"b\"");
    assert_eq!(c.nonce, "abc");
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.qop, ["auth-int", "auth"]);
    assert!(c.stale && c.offers(Qop::Auth));
    assert_eq!(c.opaque.as_deref(), Some(""));
    assert_eq!(Challenge::parse(&c.to_string()).unwrap(), c);

    let cr = Credentials::parse(
        "Digest uri=sip:bob@example.com;transport=udp, username=alice, realm=r, nonce=n, \
         response=ABCDEF, qop=auth, nc=1, cnonce=c",
    )
    .unwrap();
    assert_eq!(cr.uri, "sip:bob@example.com;transport=udp");
    assert_eq!(cr.nc, Some(1));
    assert_eq!(cr.algorithm, Algorithm::Md5);
}

#[test]
fn parser_rejects_ambiguity() {
    let m = |v: &str| matches!(Challenge::parse(v), Err(ParseError::Malformed(_)));
    assert!(m("Digest realm=\"a\", realm=\"b\", nonce=n"));
    assert!(m("Digest realm=\"a, nonce=n"));
    assert!(m("Digest realm=\"a\" nonce=n"));
    assert!(m("Digest nonce=n"));
    assert!(m(""));
    // Without the space it is some other scheme, not a broken Digest.
    assert!(matches!(
        Challenge::parse("Digestrealm=a"),
        Err(ParseError::NotDigest(_))
    ));
    assert_eq!(
        Challenge::parse("Digest realm=a, nonce=n, algorithm=SHA-512-256"),
        Err(ParseError::UnsupportedAlgorithm("SHA-512-256".into()))
    );
    assert!(matches!(
        Credentials::parse("Digest username=a, realm=r, nonce=n, uri=u, response=x, qop=auth"),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        Credentials::parse(
            "Digest username=a, realm=r, nonce=n, uri=u, response=x, qop=auth, nc=+1, cnonce=c"
        ),
        Err(ParseError::Malformed(_))
    ));
}

#[test]
fn printing_cannot_inject_headers() {
    let c = Challenge {
        realm: "r\r\nVia: evil".into(),
        nonce: "n".into(),
        algorithm: Algorithm::Md5,
        qop: vec![],
        opaque: None,
        stale: false,
        domain: None,
        userhash: false,
    };
    assert!(!c.to_string().contains('\n'));
}

#[test]
fn unknown_scheme_means_rechallenge() {
    let v = "NoOneKnowsThisScheme opaque-data=here";
    assert_eq!(
        Credentials::parse(v),
        Err(ParseError::NotDigest("NoOneKnowsThisScheme".into()))
    );
    let mut s = server();
    assert_eq!(
        verify(&mut s, "REGISTER", v, T0),
        AuthResult::Failed(AuthFailure::UnsupportedScheme(
            "NoOneKnowsThisScheme".into()
        ))
    );
    assert!(matches!(
        verify(&mut s, "REGISTER", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", T0),
        AuthResult::Failed(AuthFailure::UnsupportedScheme(_))
    ));
}

#[test]
fn never_panics_on_garbage() {
    let frags = [
        "Digest",
        "digest ",
        " ",
        ",",
        "=",
        "\"",
        "\\",
        "realm",
        "nonce",
        "uri",
        "response",
        "username",
        "qop",
        "auth",
        "auth-int",
        "nc",
        "00000001",
        "ffffffff1",
        "cnonce",
        "algorithm",
        "SHA-256-sess",
        "MD5",
        "stale",
        "true",
        "é",
        "日本",
        "\r\n",
        "\t",
        "sip:a@b",
        "alice",
        "x",
    ];
    let mut s = server();
    let valid = answer(&mut client("s3cret"), &s.challenge(at(T0), false), "INVITE");
    let mut inputs: Vec<String> = Vec::new();
    inputs.extend(valid.char_indices().map(|(i, _)| valid[..i].to_owned()));
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut step = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..400 {
        let n = step() % 30;
        inputs.push(
            (0..n)
                .map(|_| frags[(step() % frags.len() as u64) as usize])
                .collect(),
        );
        let mut bytes = valid.clone().into_bytes();
        let i = (step() % bytes.len() as u64) as usize;
        bytes[i] = b"\"\\,= x0"[(step() % 7) as usize];
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    for v in &inputs {
        let _ = Challenge::parse(v);
        let _ = Credentials::parse(v);
        let _ = verify(&mut s, "INVITE", v, T0);
        let mut c = client("s3cret");
        if c.handle_challenge(ChallengeKind::Proxy, [v.as_str()])
            .is_ok()
        {
            let h = c.authorize("INVITE", URI, Some(b"v=0")).unwrap();
            let _ = verify(&mut s, "INVITE", &h[0].value, T0);
        }
    }
}

#[test]
fn client_and_server_agree() {
    for algs in [
        &[Algorithm::Sha256, Algorithm::Md5][..],
        &[Algorithm::Md5],
        &[Algorithm::Sha256Sess],
        &[Algorithm::Md5Sess],
    ] {
        let mut s = server().with_algorithms(algs);
        let mut c = client("s3cret");
        let v = answer(&mut c, &s.challenge(at(T0), false), "REGISTER");
        assert!(v.contains(&format!("algorithm={}", algs[0])), "{v}");
        assert_eq!(verify(&mut s, "REGISTER", &v, T0 + 1), ok(), "{algs:?}");
    }
}

#[test]
fn sha256_preferred_whatever_the_order() {
    let s = server();
    let mut ch = s.challenge(at(T0), false);
    assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
    assert_ne!(
        Challenge::parse(&ch[0]).unwrap().nonce,
        Challenge::parse(&ch[1]).unwrap().nonce
    );
    ch.reverse();
    let v = answer(&mut client("s3cret"), &ch, "REGISTER");
    assert_eq!(Credentials::parse(&v).unwrap().algorithm, Algorithm::Sha256);
}

#[test]
fn wrong_password_and_unknown_user_refused() {
    let mut s = server();
    let ch = s.challenge(at(T0), false);
    let v = answer(&mut client("guess"), &ch, "REGISTER");
    assert_eq!(
        verify(&mut s, "REGISTER", &v, T0),
        AuthResult::Failed(AuthFailure::BadResponse)
    );
    let v = answer(&mut DigestClient::new("mallory", "x"), &ch, "REGISTER");
    assert_eq!(
        verify(&mut s, "REGISTER", &v, T0),
        AuthResult::Failed(AuthFailure::UnknownUser)
    );
}

#[test]
fn response_is_bound_to_method_and_uri() {
    let mut s = server();
    let v = answer(&mut client("s3cret"), &s.challenge(at(T0), false), "INVITE");
    assert_eq!(
        verify(&mut s, "BYE", &v, T0),
        AuthResult::Failed(AuthFailure::BadResponse)
    );
    assert_eq!(
        s.verify("INVITE", "sip:other@example.net", &v, users, at(T0)),
        AuthResult::Failed(AuthFailure::UriMismatch)
    );
}

#[test]
fn nonce_count_replay_and_increase() {
    let mut s = server();
    let mut c = client("s3cret");
    let first = answer(&mut c, &s.challenge(at(T0), false), "INVITE");
    assert_eq!(verify(&mut s, "INVITE", &first, T0), ok());
    assert_eq!(
        verify(&mut s, "INVITE", &first, T0 + 1),
        AuthResult::Failed(AuthFailure::NonceCountReplay)
    );
    let second = next(&mut c, "INVITE");
    assert!(second.contains("nc=00000002"), "{second}");
    let third = next(&mut c, "INVITE");
    assert_eq!(verify(&mut s, "INVITE", &third, T0 + 2), ok());
    // nc 2 after nc 3 is as much a replay as nc 3 twice.
    assert_eq!(
        verify(&mut s, "INVITE", &second, T0 + 3),
        AuthResult::Failed(AuthFailure::NonceCountReplay)
    );
}

#[test]
fn expired_nonce_is_stale_only_with_right_password() {
    let mut s = server().with_nonce_lifetime(Duration::from_secs(60));
    let ch = s.challenge(at(T0), false);
    let good = answer(&mut client("s3cret"), &ch, "REGISTER");
    let bad = answer(&mut client("guess"), &ch, "REGISTER");
    assert_eq!(
        verify(&mut s, "REGISTER", &good, T0 + 60),
        AuthResult::Stale
    );
    assert_eq!(
        verify(&mut s, "REGISTER", &bad, T0 + 60),
        AuthResult::Failed(AuthFailure::BadResponse)
    );
    assert!(s
        .challenge(at(T0 + 60), true)
        .iter()
        .all(|c| c.ends_with("stale=true")));
    // Far-future nonces (clock skew between gateways) are not honoured either.
    assert_eq!(
        verify(&mut s, "REGISTER", &good, T0 - 10),
        AuthResult::Stale
    );
}

#[test]
fn forged_and_foreign_nonces_refused() {
    let mut s = server();
    let ch = s.challenge(at(T0), false);
    let nonce = Challenge::parse(&ch[0]).unwrap().nonce;
    for i in [0, 20, nonce.len() - 1] {
        let mut forged = nonce.clone().into_bytes();
        forged[i] = if forged[i] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        let v = answer(
            &mut client("s3cret"),
            &[ch[0].replace(&nonce, &forged)],
            "REGISTER",
        );
        assert_eq!(
            verify(&mut s, "REGISTER", &v, T0),
            AuthResult::Failed(AuthFailure::BadNonce)
        );
    }
    let other = DigestServer::new(REALM, None);
    let v = answer(
        &mut client("s3cret"),
        &other.challenge(at(T0), false),
        "REGISTER",
    );
    assert_eq!(
        verify(&mut s, "REGISTER", &v, T0),
        AuthResult::Failed(AuthFailure::BadNonce)
    );
    let v = answer(
        &mut client("s3cret"),
        &["Digest realm=\"sip.example.net\", nonce=\"abc\", qop=auth".into()],
        "REGISTER",
    );
    assert_eq!(
        verify(&mut s, "REGISTER", &v, T0),
        AuthResult::Failed(AuthFailure::BadNonce)
    );
}

#[test]
fn foreign_realm_refused() {
    let mut s = server();
    let other = DigestServer::new("pbx.example.com", Some([7u8; 32]));
    let v = answer(
        &mut client("s3cret"),
        &other.challenge(at(T0), false),
        "REGISTER",
    );
    assert_eq!(
        verify(&mut s, "REGISTER", &v, T0),
        AuthResult::Failed(AuthFailure::WrongRealm("pbx.example.com".into()))
    );
}

#[test]
fn prehashed_ha1_works() {
    let store = |user: &str, realm: &str| {
        (user == "alice").then(|| Secret::Ha1 {
            md5: Some(ha1(Algorithm::Md5, user, realm, "s3cret").to_uppercase()),
            sha256: Some(ha1(Algorithm::Sha256, user, realm, "s3cret")),
        })
    };
    for alg in [Algorithm::Sha256, Algorithm::Md5, Algorithm::Md5Sess] {
        let mut s = server().with_algorithms(&[alg]);
        let v = answer(
            &mut client("s3cret"),
            &s.challenge(at(T0), false),
            "REGISTER",
        );
        assert_eq!(s.verify("REGISTER", URI, &v, store, at(T0)), ok(), "{alg}");
    }
    let md5_only = |_: &str, _: &str| {
        Some(Secret::Ha1 {
            md5: Some("00".into()),
            sha256: None,
        })
    };
    let mut s = server();
    let v = answer(
        &mut client("s3cret"),
        &s.challenge(at(T0), false),
        "REGISTER",
    );
    assert!(matches!(
        s.verify("REGISTER", URI, &v, md5_only, at(T0)),
        AuthResult::Failed(AuthFailure::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn server_requires_qop_auth_and_offered_algorithm() {
    let mut s = server().with_algorithms(&[Algorithm::Sha256]);
    let nonce = Challenge::parse(&s.challenge(at(T0), false)[0])
        .unwrap()
        .nonce;
    let no_qop = format!("Digest realm={REALM}, nonce={nonce}, algorithm=SHA-256");
    let v = answer(&mut client("s3cret"), &[no_qop], "REGISTER");
    assert!(!v.contains("nc="), "RFC 2069 form carries no nc: {v}");
    assert_eq!(
        verify(&mut s, "REGISTER", &v, T0),
        AuthResult::Failed(AuthFailure::UnsupportedQop("none".into()))
    );
    let md5 = format!("Digest realm={REALM}, nonce={nonce}, algorithm=MD5, qop=auth");
    let v = answer(&mut client("s3cret"), &[md5], "REGISTER");
    assert!(matches!(
        verify(&mut s, "REGISTER", &v, T0),
        AuthResult::Failed(AuthFailure::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn replay_table_stays_bounded_and_forgets_safely() {
    let mut s = server().with_max_tracked_nonces(10);
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut c = client("s3cret");
        let v = answer(&mut c, &s.challenge(at(T0 + i), false), "REGISTER");
        assert_eq!(verify(&mut s, "REGISTER", &v, T0 + i), ok());
        assert!(s.tracked_nonces() <= 10);
        clients.push(c);
    }
    assert_eq!(s.tracked_nonces(), 10);
    // An evicted nonce cannot be checked for replay any more: Stale, not Ok.
    let v = next(&mut clients[0], "REGISTER");
    assert_eq!(verify(&mut s, "REGISTER", &v, T0 + 50), AuthResult::Stale);
    let v = next(&mut clients[49], "REGISTER");
    assert_eq!(verify(&mut s, "REGISTER", &v, T0 + 50), ok());
    s.purge(at(T0 + 49 + 300));
    assert_eq!(s.tracked_nonces(), 0);
}

#[test]
fn client_detects_wrong_password() {
    let s = server();
    let mut c = client("guess");
    answer(&mut c, &s.challenge(at(T0), false), "REGISTER");
    // Server said stale: same password, new nonce, nc starts over.
    let v = answer(&mut c, &s.challenge(at(T0 + 400), true), "REGISTER");
    assert!(v.contains("nc=00000001"));
    let again = s.challenge(at(T0 + 401), false);
    let err = c.respond(
        ChallengeKind::Www,
        again.iter().map(String::as_str),
        "REGISTER",
        URI,
        None,
    );
    assert_eq!(
        err,
        Err(ClientError::CredentialsRejected {
            realm: REALM.into()
        })
    );
    assert_eq!(
        c.authorize("REGISTER", URI, None),
        Err(ClientError::NoChallenge)
    );
}

#[test]
fn client_accepts_new_nonce_after_reuse_or_success() {
    let s = server();
    let mut c = client("s3cret");
    answer(&mut c, &s.challenge(at(T0), false), "REGISTER");
    next(&mut c, "REGISTER"); // nc=2 on a cached nonce: a new challenge is just a refresh
    answer(&mut c, &s.challenge(at(T0 + 1), false), "REGISTER");
    c.request_accepted();
    answer(&mut c, &s.challenge(at(T0 + 2), false), "REGISTER");
}

#[test]
fn client_handles_proxy_and_registrar_realms() {
    let proxy = DigestServer::new("proxy.example", None);
    let mut c = client("s3cret");
    c.handle_challenge(
        ChallengeKind::Proxy,
        proxy.challenge(at(T0), false).iter().map(String::as_str),
    )
    .unwrap();
    c.handle_challenge(
        ChallengeKind::Www,
        server().challenge(at(T0), false).iter().map(String::as_str),
    )
    .unwrap();
    let h = c.authorize("INVITE", URI, None).unwrap();
    let names: Vec<_> = h.iter().map(|h| (h.name, h.realm.as_str())).collect();
    assert_eq!(
        names,
        [
            ("Proxy-Authorization", "proxy.example"),
            ("Authorization", REALM)
        ]
    );
    assert_eq!(
        c.handle_challenge(
            ChallengeKind::Www,
            ["Basic realm=x", "Digest realm=x, nonce=n, qop=foo"]
        ),
        Err(ClientError::NoUsableChallenge)
    );
}

#[test]
fn client_uses_auth_int_only_when_forced() {
    let ch = Challenge::parse("Digest realm=r, nonce=n, qop=\"auth-int\"").unwrap();
    let body = b"v=0\r\n";
    let cr = answer_challenge(&ch, "alice", "pw", "INVITE", URI, Some(body), "c", 1).unwrap();
    let h = |s: &str| hex::encode(<md5::Md5 as sha2::Digest>::digest(s.as_bytes()));
    let ha2 = h(&format!(
        "INVITE:{URI}:{}",
        hex::encode(<md5::Md5 as sha2::Digest>::digest(body))
    ));
    let want = h(&format!("{}:n:00000001:c:auth-int:{ha2}", h("alice:r:pw")));
    assert_eq!((cr.qop, cr.response), (Some(Qop::AuthInt), want));
}

#[test]
fn secrets_stay_out_of_debug() {
    let c = client("hunter2");
    let s = DigestServer::new(REALM, Some([0x41; 32]));
    let p = Secret::Password("hunter2".into());
    let dbg = format!("{c:?} {s:?} {p:?}");
    assert!(
        !dbg.contains("hunter2") && !dbg.contains("65, 65") && !dbg.contains("4141"),
        "{dbg}"
    );
}
