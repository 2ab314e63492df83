//! RFC 4475 torture messages, byte-exact, against a running gateway over TCP and UDP. Each gets the
//! answer tests/data/rfc4475/INDEX.tsv names. Over UDP the answer goes to the message's
//! own Via (example.com hosts), so UDP is judged by the gateway's response counters.

mod support;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{status_code, Gateway, GatewayOptions};

/// What a UAS must do with a message.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// One of these statuses.
    Status(&'static [u16]),
    /// Parsed and handled by the application: any answer that is not a refusal of the message
    /// itself (a 401 challenge, 403 for an untrusted INVITE, 405, 200 ...).
    Processed,
    /// No answer (responses nobody asked for; over TCP, a Content-Length we must wait for).
    Nothing,
}

const REFUSALS: &[u16] = &[400, 406, 415, 416, 420, 501, 505];

/// (file, TCP expectation, UDP expectation), with INDEX.tsv's expected behaviour as the reason.
fn expectations() -> Vec<(&'static str, Expect, Expect)> {
    use Expect::*;
    let same = |file, e| (file, e, e);
    vec![
        same("wsinv.dat", Processed),
        same("intmeth.dat", Status(&[501])),
        same("esc01.dat", Processed),
        same("escnull.dat", Processed),
        same("esc02.dat", Status(&[501])),
        same("lwsdisp.dat", Processed),
        same("longreq.dat", Processed),
        same("dblreq.dat", Processed),
        same("semiuri.dat", Processed),
        same("transports.dat", Processed),
        same("mpart01.dat", Processed),
        same("unreason.dat", Nothing),
        same("noreason.dat", Nothing),
        same("badinv01.dat", Status(&[400])),
        ("clerr.dat", Nothing, Status(&[400])),
        same("ncl.dat", Status(&[400])),
        same("scalar02.dat", Status(&[400])),
        same("scalarlg.dat", Nothing),
        same("quotbal.dat", Status(&[400])),
        same("ltgtruri.dat", Status(&[400])),
        same("lwsruri.dat", Status(&[400])),
        same("lwsstart.dat", Status(&[400])),
        same("trws.dat", Status(&[400])),
        same("escruri.dat", Status(&[400])),
        same("baddate.dat", Processed),
        same("regbadct.dat", Status(&[400])),
        same("badaspec.dat", Status(&[400])),
        same("baddn.dat", Status(&[400])),
        same("badvers.dat", Status(&[505])),
        same("mismatch01.dat", Status(&[400])),
        same("mismatch02.dat", Status(&[501])),
        same("bigcode.dat", Nothing),
        same("badbranch.dat", Status(&[200, 400])),
        same("insuf.dat", Status(&[400])),
        same("unkscm.dat", Status(&[416])),
        same("novelsc.dat", Status(&[416])),
        same("unksm2.dat", Status(&[400])),
        same("bext01.dat", Status(&[420])),
        same("invut.dat", Status(&[415])),
        same("regaut01.dat", Status(&[401])),
        same("multi01.dat", Status(&[400])),
        same("mcl01.dat", Status(&[400])),
        same("bcast.dat", Nothing),
        same("zeromf.dat", Status(&[200])),
        same("cparam01.dat", Processed),
        same("cparam02.dat", Processed),
        same("regescrt.dat", Processed),
        same("sdp01.dat", Status(&[406])),
        same("inv2543.dat", Processed),
    ]
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

fn judge(expect: Expect, answer: Option<u16>) -> bool {
    match (expect, answer) {
        (Expect::Status(codes), Some(code)) => codes.contains(&code),
        (Expect::Processed, Some(code)) => !REFUSALS.contains(&code),
        (Expect::Nothing, None) => true,
        _ => false,
    }
}

/// Sends `bytes` on a fresh connection and returns the first final answer (1xx are skipped).
fn over_tcp(gateway: &Gateway, bytes: &[u8], expect: Expect) -> Option<u16> {
    let mut stream = TcpStream::connect(gateway.sip_addr()).expect("connect");
    stream.write_all(bytes).expect("write");
    let wait = if matches!(expect, Expect::Nothing) { Duration::from_millis(700) } else { Duration::from_secs(3) };
    let deadline = Instant::now() + wait;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        let finals = text.split("SIP/2.0 ").skip(1).filter_map(|r| r.get(..3)?.parse::<u16>().ok()).find(|c| *c >= 200);
        if finals.is_some() || Instant::now() >= deadline {
            return finals.or_else(|| status_code(&text));
        }
        stream.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)))).expect("timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return status_code(&text),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return status_code(&text),
        }
    }
}

/// Waits until the gateway has processed everything in flight (counters stop moving).
fn settle(gateway: &Gateway) {
    let mut last = support::sip_counters(gateway);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = support::sip_counters(gateway);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Sends one datagram and reads back, from the counters, which status (if any) it produced.
fn over_udp(gateway: &Gateway, socket: &UdpSocket, bytes: &[u8]) -> Option<u16> {
    std::thread::sleep(Duration::from_millis(350));
    support::answer_to_datagram(gateway, socket, bytes)
}

fn options(method_transport: &str, port: u16) -> Vec<u8> {
    format!(
        "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{method_transport} 127.0.0.1:{port};branch=z9hG4bK-after-{method_transport};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:gw@127.0.0.1>\r\nCall-ID: after-torture-{method_transport}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn rfc4475_torture_messages_get_the_indexed_answers() {
    let table = expectations();
    let index = std::fs::read_to_string(corpus_dir().join("INDEX.tsv")).expect("INDEX.tsv");
    let indexed: Vec<&str> = index.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(indexed.len(), 49);
    for file in &indexed {
        assert!(table.iter().any(|(f, _, _)| f == file), "{file} from INDEX.tsv has no expectation");
    }

    // RFC 4475 reuses branches across messages (e.g. z9hG4bKkdjuw), so by RFC 3261 matching a later
    // file can be a retransmission of an earlier one. A 5 ms T1 ends every transaction within
    // 64*T1 = 320 ms, and UDP sends are paced beyond that, so each file is judged on its own.
    let gateway = Gateway::start(GatewayOptions { extra_sip: "t1_ms = 5\nt2_ms = 20\nt4_ms = 50\n".into(), ..Default::default() });
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let tcp: Vec<Option<u16>> = table
        .iter()
        .map(|(file, expect, _)| over_tcp(&gateway, &std::fs::read(corpus_dir().join(file)).expect("corpus file"), *expect))
        .collect();
    settle(&gateway);
    let udp_answers: Vec<Option<u16>> =
        table.iter().map(|(file, _, _)| over_udp(&gateway, &udp, &std::fs::read(corpus_dir().join(file)).expect("corpus file"))).collect();
    let mut failures = Vec::new();
    println!("\n{:<16} {:<22} {:<10} {:<10}", "message", "expected (TCP / UDP)", "TCP", "UDP");
    for (((file, tcp_expect, udp_expect), tcp), udp_answer) in table.iter().zip(tcp).zip(udp_answers) {
        let (tcp_ok, udp_ok) = (judge(*tcp_expect, tcp), judge(*udp_expect, udp_answer));
        let show = |a: Option<u16>| a.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<16} {:<22} {:<10} {:<10}",
            file,
            format!("{tcp_expect:?} / {udp_expect:?}").chars().take(22).collect::<String>(),
            format!("{}{}", show(tcp), if tcp_ok { "" } else { " FAIL" }),
            format!("{}{}", show(udp_answer), if udp_ok { "" } else { " FAIL" }),
        );
        if !tcp_ok || !udp_ok {
            failures.push(format!("{file}: TCP {tcp:?} (want {tcp_expect:?}), UDP {udp_answer:?} (want {udp_expect:?})"));
        }
    }
    println!("{} messages, {} failures", table.len(), failures.len());

    // The gateway is still healthy: OPTIONS is answered on both transports.
    let port = udp.local_addr().expect("addr").port();
    udp.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    // Drain anything addressed to us (none expected: torture answers go to their own Via).
    udp.send_to(&options("UDP", port), gateway.sip_addr()).expect("send");
    let mut buffer = [0u8; 4096];
    let mut udp_answer = None;
    while let Ok(n) = udp.recv(&mut buffer) {
        let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
        if text.contains("after-torture-UDP") {
            udp_answer = status_code(&text);
            break;
        }
    }
    assert_eq!(udp_answer, Some(200), "OPTIONS over UDP after the torture run");
    assert_eq!(over_tcp(&gateway, &options("TCP", 5060), Expect::Status(&[200])), Some(200), "OPTIONS over TCP");
    assert!(failures.is_empty(), "torture failures:\n{}\n\nlog:\n{}", failures.join("\n"), gateway.log());
}
