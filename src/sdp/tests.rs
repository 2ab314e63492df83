use super::*;
use std::net::{IpAddr, Ipv4Addr};

const POLYCOM: &str = "v=0\r\no=- 1700000000 1700000000 IN IP4 192.168.1.50\r\ns=Polycom IP Phone\r\n\
c=IN IP4 192.168.1.50\r\nt=0 0\r\na=sendrecv\r\nm=audio 2222 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n";

/// LF-only line ends and trailing blanks, as some phones and hand-made test tools send.
const YEALINK: &str = "v=0\no=- 20012 20012 IN IP4 10.0.0.21  \ns=SDP data\nc=IN IP4 10.0.0.21\nt=0 0\n\
m=audio 11780 RTP/AVP 9 0 8 18 101\na=rtpmap:9 G722/8000\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n\
a=rtpmap:18 G729/8000\na=fmtp:18 annexb=no\na=ptime:20\na=sendrecv\na=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-15\n\n";

const ASTERISK: &str = "v=0\r\no=- 1234567890 1234567891 IN IP4 203.0.113.10\r\ns=Asterisk\r\n\
c=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 17530 RTP/AVP 8 0 3 101\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:3 GSM/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
a=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n";

const CHROME: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Fs3b\r\na=ice-pwd:6bS0FJ4ob5GmyX4wYRuxnmHm\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=sendrecv\r\n\
a=msid:stream track\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\na=ssrc:1001 cname:Z3uAfC7vcPB5tyGs\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Fs3b\r\na=ice-pwd:6bS0FJ4ob5GmyX4wYRuxnmHm\r\na=setup:actpass\r\na=mid:1\r\na=sendrecv\r\n\
a=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\na=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n";

const HOLD: &str = "v=0\r\no=- 1700000000 1700000001 IN IP4 192.168.1.50\r\ns=Polycom IP Phone\r\n\
c=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 2222 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";

const HOLD_2543: &str = "v=0\r\no=CiscoSystemsSIP-GW-UserAgent 4356 9203 IN IP4 10.1.1.1\r\ns=SIP Call\r\n\
c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 18274 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

const CRYPTO: &str = "v=0\r\no=- 3 3 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
m=audio 40000 RTP/SAVP 0 8 101\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyAo|2^20|1:4\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

const SAMPLES: [&str; 7] = [POLYCOM, YEALINK, ASTERISK, CHROME, HOLD, HOLD_2543, CRYPTO];

const US: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn sdp(text: &str) -> SessionDescription {
    SessionDescription::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn all_codecs() -> LocalCapabilities {
    LocalCapabilities::new(vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma])
}

fn pts(media: &MediaDescription) -> Vec<u8> {
    media.rtpmaps().iter().map(|m| m.payload_type).collect()
}

/// parse → print → parse gives the same model, and printing is a fixed point.
fn assert_round_trip(parsed: &SessionDescription) {
    let printed = parsed.to_string();
    let again = SessionDescription::parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(&again, parsed, "\n{printed}");
    assert_eq!(again.to_string(), printed);
}

#[test]
fn real_world_sdps_round_trip() {
    for text in SAMPLES {
        assert_round_trip(&sdp(text));
    }
    // Canonical text of a well-formed SDP is the SDP itself.
    assert_eq!(sdp(ASTERISK).to_string(), ASTERISK);
    assert_eq!(sdp(CHROME).to_string(), CHROME);
}

#[test]
fn desk_phone_offer_reads_as_expected() {
    let offer = sdp(POLYCOM);
    assert_eq!(offer.origin.session_id, 1_700_000_000);
    assert_eq!(offer.session_name, "Polycom IP Phone");
    let audio = &offer.media[0];
    let maps = audio.rtpmaps();
    let names: Vec<&str> = maps.iter().map(|m| m.encoding.as_str()).collect();
    assert_eq!(names, ["PCMU", "PCMA", "G722", "telephone-event"]);
    assert_eq!(audio.fmtp(101), Some("0-15"));
    assert_eq!(audio.fmtp(0), None);
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.direction(&offer), Direction::SendRecv);
    assert_eq!(audio.rtp_address(&offer), Some("192.168.1.50:2222".parse().unwrap()));

    let yealink = sdp(YEALINK);
    assert_eq!(yealink.origin.address, "10.0.0.21");
    assert_eq!(pts(&yealink.media[0]), [9, 0, 8, 18, 101]);
    assert!(yealink.to_string().contains("\r\na=fmtp:18 annexb=no\r\n"));
}

#[test]
fn chrome_offer_reads_as_expected() {
    let offer = sdp(CHROME);
    let (audio, video) = (&offer.media[0], &offer.media[1]);
    assert_eq!(audio.protocol, "UDP/TLS/RTP/SAVPF");
    assert_eq!(audio.fmtp(111), Some("minptime=10;useinbandfec=1"));
    assert!(audio.rtcp_mux());
    assert_eq!(audio.attribute("mid").and_then(|a| a.value.as_deref()), Some("0"));
    assert_eq!(audio.attribute("msid-semantic"), None);
    assert_eq!(offer.attributes[2].value.as_deref(), Some(" WMS stream"));
    // 0.0.0.0 with ICE is "address from candidates", not a hold.
    assert_eq!(audio.connection_address(&offer), Some(ConnectionAddress::FromIce));
    assert_eq!(audio.rtp_address(&offer), None);
    assert_eq!(video.kind, "video");
    assert_eq!(pts(video), [96, 97, 102, 103]);
}

#[test]
fn holds_are_reported() {
    let hold = sdp(HOLD);
    assert_eq!(hold.media[0].direction(&hold), Direction::SendOnly);
    assert!(!is_same_version(&sdp(POLYCOM), &hold));
    assert!(is_same_version(&hold, &sdp(HOLD)));

    let old = sdp(HOLD_2543);
    let audio = &old.media[0];
    assert_eq!(audio.connection_address(&old), Some(ConnectionAddress::Hold));
    assert_eq!(audio.rtp_address(&old), None);
    assert_eq!(audio.direction(&old), Direction::SendRecv);
}

#[test]
fn crypto_lines_are_listed_and_never_logged() {
    let offer = sdp(CRYPTO);
    let lines = offer.media[0].crypto_lines();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
    let (answer_sdp, got) = answer(&offer, &all_codecs(), US, 30_000, 7).unwrap();
    assert_eq!(answer_sdp.media[0].protocol, "RTP/SAVP");
    assert_eq!(got.crypto.len(), 2);
    assert!(!format!("{got:?}").contains("inline"));
}

#[test]
fn lenient_where_devices_are_sloppy() {
    let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\t \nc=IN IP4 10.0.0.1\nx=unknown line\nm=audio 5004 RTP/AVP 0 8 9 18\n\
                k=prompt\na=x-custom:anything goes\na=flag\n";
    let parsed = sdp(text);
    assert_eq!(parsed.session_name, "-");
    assert_eq!(parsed.timing, [Timing::unbounded()]);
    let audio = &parsed.media[0];
    let maps = audio.rtpmaps();
    let names: Vec<(&str, u32)> = maps.iter().map(|m| (m.encoding.as_str(), m.clock_rate)).collect();
    assert_eq!(names, [("PCMU", 8000), ("PCMA", 8000), ("G722", 8000), ("G729", 8000)]);
    let printed = parsed.to_string();
    for line in ["x=unknown line\r\n", "k=prompt\r\n", "a=x-custom:anything goes\r\n", "a=flag\r\n", "s=-\r\n"] {
        assert!(printed.contains(line), "{line:?} missing from\n{printed}");
    }
    assert_round_trip(&parsed);
    // A port-0 stream needs no address.
    assert!(SessionDescription::parse("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 0 RTP/AVP 0\r\n").is_ok());
}

#[test]
fn refuses_what_cannot_be_used() {
    let base = "o=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\n";
    let cases: [(String, SdpError); 9] = [
        (format!("{base}m=audio 5004 RTP/AVP 0\r\n"), SdpError::MissingVersion),
        ("v=1\r\n".to_string() + base, SdpError::MissingVersion),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 0\r\n".to_string(), SdpError::MissingOrigin),
        (format!("v=0\r\n{base}m=audio 70000 RTP/AVP 0\r\n"), SdpError::Syntax { line: 4, reason: "" }),
        (format!("v=0\r\n{base}m=audio -1 RTP/AVP 0\r\n"), SdpError::Syntax { line: 4, reason: "" }),
        (format!("v=0\r\n{base}m=audio 5004 RTP/AVP\r\n"), SdpError::Syntax { line: 4, reason: "" }),
        (format!("v=0\r\n{base}garbage\r\n"), SdpError::Syntax { line: 4, reason: "" }),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 5004 RTP/AVP 0\r\n".to_string(), SdpError::NoConnection { media: 0 }),
        ("v=0\r\no=- x 1 IN IP4 h\r\n".to_string(), SdpError::Syntax { line: 2, reason: "" }),
    ];
    for (text, expected) in cases {
        let got = SessionDescription::parse(&text).expect_err(&text);
        match (&got, &expected) {
            (SdpError::Syntax { line, .. }, SdpError::Syntax { line: want, .. }) => assert_eq!(line, want, "{got}"),
            _ => assert_eq!(got, expected),
        }
    }
    assert_eq!(SessionDescription::parse_bytes(b"v=0\r\ns=\xff\r\n"), Err(SdpError::NotUtf8));
}

#[test]
fn chrome_offer_answered_with_opus_and_video_declined() {
    let offer = sdp(CHROME);
    let (ans, got) = answer(&offer, &all_codecs(), US, 30_000, 42).unwrap();
    assert_eq!(got.codecs[0].codec, Codec::Opus);
    assert_eq!((got.codecs[0].payload_type, got.codecs[0].channels), (111, 1));
    let chosen: Vec<Codec> = got.codecs.iter().map(|c| c.codec).collect();
    assert_eq!(chosen, [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma]);
    assert_eq!(got.telephone_event, Some((110, 48_000)));
    assert_eq!((got.direction, got.rtcp_mux, got.remote), (Direction::SendRecv, true, None));
    let audio = &ans.media[0];
    assert_eq!((audio.port, audio.protocol.as_str()), (30_000, "UDP/TLS/RTP/SAVPF"));
    assert_eq!(audio.formats, ["111", "9", "0", "8", "110"]);
    assert_eq!(audio.fmtp(111), Some("minptime=10;useinbandfec=1"));
    assert_eq!(audio.direction(&ans), Direction::SendRecv);
    let video = &ans.media[1];
    assert_eq!((video.port, &video.formats), (0, &offer.media[1].formats));
    assert_eq!(video.attribute("mid").and_then(|a| a.value.as_deref()), Some("1"));
    assert!(ans.to_string().contains("a=group:BUNDLE 0\r\n"));
    assert_round_trip(&ans);
    assert_eq!(read_answer(&offer, &ans).unwrap().codecs, got.codecs);
}

#[test]
fn answers_keep_offer_order_not_ours() {
    let (ans, got) = answer(&sdp(YEALINK), &all_codecs(), US, 30_000, 1).unwrap();
    assert_eq!(got.codecs[0].codec, Codec::G722);
    assert_eq!(ans.media[0].formats, ["9", "0", "8", "101"]);
    assert_eq!(got.telephone_event, Some((101, 8_000)));
    assert_eq!(got.remote, Some("10.0.0.21:11780".parse().unwrap()));
    assert_eq!(got.ptime, Some(20));

    let (_, got) = answer(&sdp(POLYCOM), &all_codecs(), US, 30_000, 1).unwrap();
    assert_eq!(got.codecs[0].codec, Codec::Pcmu);
    let only_alaw = LocalCapabilities { telephone_event: false, ..LocalCapabilities::new(vec![Codec::Pcma]) };
    let (ans, got) = answer(&sdp(POLYCOM), &only_alaw, US, 30_000, 1).unwrap();
    assert_eq!((ans.media[0].formats.as_slice(), got.telephone_event), (&["8".to_string()][..], None));
}

#[test]
fn g729_only_offer_has_no_common_codec() {
    let offer = sdp("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 101\r\n\
                     a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n");
    assert_eq!(answer(&offer, &all_codecs(), US, 30_000, 1).unwrap_err(), SdpError::NoCommonCodec);
    let video_only = sdp("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 h\r\nm=video 4000 RTP/AVP 96\r\n");
    assert_eq!(answer(&video_only, &all_codecs(), US, 30_000, 1).unwrap_err(), SdpError::NoAudio);
}

#[test]
fn answer_direction_follows_rfc_3264() {
    let cases = [
        (HOLD, Direction::SendRecv, Direction::RecvOnly, Direction::SendOnly),
        (HOLD_2543, Direction::SendRecv, Direction::RecvOnly, Direction::SendOnly),
        (POLYCOM, Direction::SendRecv, Direction::SendRecv, Direction::SendRecv),
        (POLYCOM, Direction::SendOnly, Direction::SendOnly, Direction::RecvOnly),
        (HOLD, Direction::SendOnly, Direction::Inactive, Direction::Inactive),
    ];
    for (offer, ours, answered, remote) in cases {
        let local = LocalCapabilities { direction: ours, ..all_codecs() };
        let offer = sdp(offer);
        let (ans, got) = answer(&offer, &local, US, 30_000, 1).unwrap();
        assert_eq!((ans.media[0].direction(&ans), got.direction), (answered, remote));
    }
    let recvonly = POLYCOM.replace("a=sendrecv", "a=recvonly");
    let (ans, _) = answer(&sdp(&recvonly), &all_codecs(), US, 30_000, 1).unwrap();
    assert_eq!(ans.media[0].direction(&ans), Direction::SendOnly);
}

#[test]
fn extra_audio_lines_are_declined() {
    let text = format!("{ASTERISK}m=audio 17532 RTP/AVP 0\r\nm=application 5000 TCP/MSRP *\r\n");
    let (ans, got) = answer(&sdp(&text), &all_codecs(), US, 30_000, 1).unwrap();
    assert_eq!(got.media_index, 0);
    let ports: Vec<u16> = ans.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [30_000, 0, 0]);
    assert_eq!(ans.media[2].formats, ["*"]);
}

#[test]
fn our_offer_and_the_answer_to_it() {
    let local = LocalCapabilities { ptime: Some(20), ..all_codecs() };
    let ours = offer(&local, US, 30_000, 99, 1);
    let text = ours.to_string();
    assert!(text.starts_with("v=0\r\no=- 99 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"));
    assert!(text.contains("m=audio 30000 RTP/AVP 111 9 0 8 101 102\r\n"));
    for line in ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1", "a=ptime:20", "a=sendrecv",
        "a=rtpmap:101 telephone-event/8000", "a=rtpmap:102 telephone-event/48000"]
    {
        assert!(text.contains(&format!("{line}\r\n")), "{line}\n{text}");
    }
    assert_round_trip(&ours);

    let stereo = "v=0\r\no=- 5 5 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n\
                  m=audio 7000 RTP/AVP 96 102\r\na=rtpmap:96 OPUS/48000/2\r\na=fmtp:96 stereo=1; sprop-stereo=1\r\n\
                  a=rtpmap:102 telephone-event/48000\r\na=recvonly\r\n";
    let got = read_answer(&ours, &sdp(stereo)).unwrap();
    assert_eq!((got.codecs[0].codec, got.codecs[0].payload_type, got.codecs[0].channels), (Codec::Opus, 96, 2));
    assert_eq!(got.telephone_event, Some((102, 48_000)));
    assert_eq!(got.direction, Direction::RecvOnly);
    assert_eq!(got.remote, Some("10.0.0.9:7000".parse().unwrap()));

    let (ans, _) = answer(&ours, &LocalCapabilities::new(vec![Codec::Pcma]), US, 40_000, 3).unwrap();
    assert_eq!(read_answer(&ours, &ans).unwrap().codecs[0].codec, Codec::Pcma);
}

#[test]
fn read_answer_refuses_what_we_did_not_offer() {
    let ours = offer(&LocalCapabilities::new(vec![Codec::Pcmu, Codec::Pcma]), US, 30_000, 1, 1);
    let answer_with = |m: &str| sdp(&format!("v=0\r\no=- 2 2 IN IP4 10.0.0.2\r\nc=IN IP4 10.0.0.2\r\n{m}"));
    let got = read_answer(&ours, &answer_with("m=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"));
    assert_eq!(got.unwrap_err(), SdpError::CodecNotOffered { payload_type: 18, encoding: "G729".to_string() });
    let got = read_answer(&ours, &answer_with("m=audio 6000 RTP/AVP 0 110\r\na=rtpmap:110 telephone-event/48000\r\n"));
    assert!(matches!(got, Err(SdpError::CodecNotOffered { payload_type: 110, .. })));
    let got = read_answer(&ours, &answer_with("m=audio 6000 RTP/AVP 97\r\n"));
    assert!(matches!(got, Err(SdpError::CodecNotOffered { payload_type: 97, .. })));
    assert_eq!(read_answer(&ours, &answer_with("m=audio 0 RTP/AVP 0\r\n")), Err(SdpError::AudioDeclined));
    let two = answer_with("m=audio 6000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n");
    assert!(matches!(read_answer(&ours, &two), Err(SdpError::BadAnswer(_))));
    let got = read_answer(&ours, &answer_with("m=audio 6000 RTP/AVP 8 101\r\na=sendrecv\r\n")).unwrap();
    assert_eq!((got.codecs[0].payload_type, got.telephone_event), (8, Some((101, 8_000))));
}

#[test]
fn hold_and_resume_raise_the_version() {
    let ours = offer(&all_codecs(), US, 30_000, 9, 4);
    let held = with_direction(&ours, Direction::SendOnly);
    assert_eq!(held.origin.version, 5);
    assert!(!is_same_version(&ours, &held));
    let audio = &held.media[0];
    assert_eq!(audio.direction(&held), Direction::SendOnly);
    let directions = audio.attributes.iter().filter(|a| Direction::from_attribute(a).is_some()).count();
    assert_eq!(directions, 1);
    let resumed = with_direction(&held, Direction::SendRecv);
    assert_eq!((resumed.origin.version, resumed.media[0].direction(&resumed)), (6, Direction::SendRecv));
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPLICES: [&[u8]; 16] = [b"\r\n", b"\n", b" ", b":", b"/", b"=", b"65536", b"\xff\xfe", b"\0", b"\t",
    b"a=rtpmap:", b"a=fmtp:111 stereo=1\r\n", b"m=audio 0 RTP/AVP 0\r\n", b"c=IN IP4 0.0.0.0\r\n",
    b"18446744073709551616", b"a=sendonly\r\n"];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if at < out.len() => out[at] = rng.next() as u8,
            1 => out.splice(at..at, SPLICES[rng.below(SPLICES.len())].iter().copied()).for_each(drop),
            2 => out.drain(at..(at + rng.below(40)).min(out.len())).for_each(drop),
            3 => {
                let end = (at + rng.below(200)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy).for_each(drop);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Whatever parses must print back to itself, and negotiating with it must not panic; an answer
/// we produce must be one we would accept.
fn exercise(body: &[u8]) {
    let Ok(parsed) = SessionDescription::parse_bytes(body) else { return };
    assert_round_trip(&parsed);
    for media in &parsed.media {
        let _ = (media.rtpmaps(), media.ptime(), media.direction(&parsed), media.rtp_address(&parsed));
        let _ = (media.fmtp(0), media.crypto_lines(), media.rtcp_mux());
    }
    if let Ok((ans, _)) = answer(&parsed, &all_codecs(), US, 30_000, 1) {
        assert_round_trip(&ans);
        assert!(read_answer(&parsed, &ans).is_ok(), "{ans}");
    }
    let ours = offer(&all_codecs(), US, 30_000, 1, 1);
    let _ = read_answer(&ours, &parsed);
    assert_round_trip(&with_direction(&parsed, Direction::Inactive));
}

fn seeds() -> Vec<Vec<u8>> {
    let corpus = "tests/data/sdp-seeds";
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(corpus);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut seeds: Vec<Vec<u8>> = entries.map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    assert!(!seeds.is_empty());
    seeds.extend(SAMPLES.iter().map(|s| s.as_bytes().to_vec()));
    seeds
}

#[test]
fn seed_corpus_and_mutations_never_panic() {
    let seeds = seeds();
    for seed in &seeds {
        exercise(seed);
    }
    // A corpus that stopped parsing altogether would make the mutations test nothing.
    assert!(seeds.iter().filter(|s| SessionDescription::parse_bytes(s).is_ok()).count() > SAMPLES.len());
    let mut rng = Rng(0x5EED_05D9);
    for _ in 0..5_000 {
        let seed = &seeds[rng.below(seeds.len())];
        exercise(&mutate(&mut rng, seed));
    }
}

#[test]
fn hostile_sizes_stay_cheap() {
    let formats = " 0".repeat(20_000);
    let maps = "a=rtpmap:96 opus/48000/2\r\n".repeat(2_000);
    let text = format!("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP{formats}\r\n{maps}");
    let parsed = sdp(&text);
    assert_eq!(pts(&parsed.media[0]), [0]);
    let (ans, _) = answer(&parsed, &all_codecs(), US, 30_000, 1).unwrap();
    assert_eq!(ans.media[0].formats, ["0"]);
}
