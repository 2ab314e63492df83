use super::*;
use std::path::PathBuf;

fn corpus(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn status_of(name: &str, transport: TransportKind) -> Option<u16> {
    match parse(&corpus(name), transport) {
        Ok(_) => None,
        Err(rejected) => Some(rejected.error.status()),
    }
}

#[test]
fn valid_torture_requests_parse() {
    for name in ["wsinv.dat", "esc01.dat", "escnull.dat", "lwsdisp.dat", "longreq.dat", "dblreq.dat", "semiuri.dat",
        "transports.dat", "mpart01.dat", "cparam01.dat", "cparam02.dat", "regescrt.dat", "inv2543.dat", "zeromf.dat",
        "regaut01.dat", "unkscm.dat", "novelsc.dat", "unksm2.dat", "bext01.dat", "invut.dat", "sdp01.dat", "badbranch.dat"]
    {
        let parsed = parse(&corpus(name), TransportKind::Tcp);
        assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
    }
}

#[test]
fn syntax_errors_get_their_rfc_4475_status() {
    let expected = [
        ("badinv01.dat", 400), ("clerr.dat", 400), ("ncl.dat", 400), ("scalar02.dat", 400), ("quotbal.dat", 400),
        ("ltgtruri.dat", 400), ("lwsruri.dat", 400), ("lwsstart.dat", 400), ("trws.dat", 400), ("escruri.dat", 400),
        ("regbadct.dat", 400), ("badaspec.dat", 400), ("baddn.dat", 400), ("badvers.dat", 505), ("mismatch01.dat", 400),
        ("mismatch02.dat", 501), ("insuf.dat", 400), ("multi01.dat", 400), ("mcl01.dat", 400), ("intmeth.dat", 501),
        ("esc02.dat", 501),
    ];
    for (name, status) in expected {
        assert_eq!(status_of(name, TransportKind::Udp), Some(status), "{name}");
        let rejected = parse(&corpus(name), TransportKind::Udp).expect_err("rejected");
        assert!(rejected.reply_headers.is_some(), "{name}: a request with a readable Via must be answerable");
    }
}

#[test]
fn responses_parse_or_drop() {
    for name in ["unreason.dat", "noreason.dat"] {
        assert!(matches!(parse(&corpus(name), TransportKind::Udp), Ok(Inbound::Response(_))), "{name}");
    }
    for name in ["bigcode.dat", "scalarlg.dat"] {
        let rejected = parse(&corpus(name), TransportKind::Udp).expect_err(name);
        assert!(rejected.reply_headers.is_none(), "{name}: responses are never answered");
    }
}

#[test]
fn udp_body_rules() {
    let dblreq = parse(&corpus("dblreq.dat"), TransportKind::Udp).expect("dblreq");
    let Inbound::Request(request) = dblreq else { panic!("request expected") };
    assert!(request.request.body.is_empty(), "trailing octets past Content-Length are ignored");
    let mpart = parse(&corpus("mpart01.dat"), TransportKind::Udp).expect("mpart01");
    let Inbound::Request(request) = mpart else { panic!("request expected") };
    assert!(request.request.body.contains(&0u8), "binary body must survive byte-exact");
}

#[test]
fn keepalive_and_garbage_never_panic() {
    assert!(matches!(parse(b"\r\n\r\n", TransportKind::Tcp), Ok(Inbound::KeepAlive)));
    let mut seed: u32 = 0x1234_5678;
    let sample = corpus("wsinv.dat");
    for round in 0..2_000 {
        let mut bytes = sample.clone();
        for _ in 0..(round % 7 + 1) {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = seed as usize % bytes.len();
            bytes[at] = (seed >> 24) as u8;
        }
        bytes.truncate(seed as usize % (bytes.len() + 1));
        let _ = parse(&bytes, TransportKind::Udp);
    }
}
