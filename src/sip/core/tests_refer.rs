//! The peer's REFER (RFC 3515, `core/refer.rs`), driven with a manual clock.

use super::tests::{core_with, header, profiles, sent, status_line, udp_from};
use super::tests_in_dialog::{answered_call, events, in_dialog};
use super::*;

const TRUNK: &str = "192.0.2.50:5060";

/// The NOTIFYs among `out`: (Subscription-State, sipfrag status line, Event).
fn notifies(out: &[(Route, String)]) -> Vec<(String, String, String)> {
    out.iter()
        .filter(|(_, t)| t.starts_with("NOTIFY "))
        .map(|(_, t)| {
            let body = t.split("\r\n\r\n").nth(1).unwrap_or_default().trim_end().to_string();
            (header(t, "Subscription-State").unwrap_or_default().to_string(), body, header(t, "Event").unwrap_or_default().to_string())
        })
        .collect()
}

#[test]
fn a_refer_is_accepted_and_its_subscription_reports_the_new_call_until_it_ends() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let (id, invite, tag, _) = answered_call(&mut core, t0, &[]);
    let refer = in_dialog(&invite, &tag, "REFER", 2, "z9hG4bKr1", &["Refer-To: <sip:%2B15557654321@example.com>", "Referred-By: <sip:carrier@trunk>"], "");
    core.handle_inbound(&refer, udp_from(TRUNK), t0);
    let out = sent(&mut core);
    assert_eq!(status_line(&out[0].1), 202, "{out:?}");
    let first = notifies(&out);
    assert_eq!(first, [("active;expires=60".to_string(), "SIP/2.0 100 Trying".to_string(), "refer;id=2".to_string())], "{out:?}");
    assert!(out.iter().any(|(_, t)| t.starts_with("NOTIFY ") && header(t, "Content-Type") == Some("message/sipfrag;version=2.0") && header(t, "Contact").is_some()));
    assert!(events(&mut core).contains(&CoreEvent::Dialog(DialogEvent::ReferRequested { id, target: "+15557654321".into() })));
    // Another REFER while this one runs.
    core.handle_inbound(&in_dialog(&invite, &tag, "REFER", 3, "z9hG4bKr2", &["Refer-To: <sip:200@example.com>"], ""), udp_from(TRUNK), t0);
    assert_eq!(status_line(&sent(&mut core)[0].1), 491);
    core.call_refer_progress(id, 180, t0);
    assert_eq!(notifies(&sent(&mut core))[0].1, "SIP/2.0 180 Ringing");
    core.call_refer_progress(id, 200, t0);
    let last = notifies(&sent(&mut core));
    assert_eq!((last[0].0.as_str(), last[0].1.as_str()), ("terminated;reason=noresource", "SIP/2.0 200 OK"));
    core.call_refer_progress(id, 200, t0);
    assert!(notifies(&sent(&mut core)).is_empty(), "the subscription is over");
    // Once it ended, a new REFER is taken.
    core.handle_inbound(&in_dialog(&invite, &tag, "REFER", 4, "z9hG4bKr3", &["Refer-To: sip:200@example.com"], ""), udp_from(TRUNK), t0);
    assert_eq!(status_line(&sent(&mut core)[0].1), 202);
}

#[test]
fn refers_the_gateway_cannot_carry_out_are_refused() {
    let t0 = Instant::now();
    let mut core = core_with(profiles(), t0);
    let (id, invite, tag, _) = answered_call(&mut core, t0, &[]);
    let cases: [(&[&str], u16); 5] = [
        (&[], 400),
        (&["Refer-To: <sip:1@example.com>", "Refer-To: <sip:2@example.com>"], 400),
        (&["Refer-To: <tel:+15557654321>"], 403),
        (&["Refer-To: <sip:example.com>"], 403),
        (&["Refer-To: <sip:200@example.com?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>"], 403),
    ];
    for (i, (headers, status)) in cases.into_iter().enumerate() {
        core.handle_inbound(&in_dialog(&invite, &tag, "REFER", 2 + i as u32, &format!("z9hG4bKbad{i}"), headers, ""), udp_from(TRUNK), t0);
        let out = sent(&mut core);
        assert_eq!(status_line(&out[0].1), status, "{headers:?}: {out:?}");
        assert!(notifies(&out).is_empty(), "{headers:?}");
    }
    assert!(!events(&mut core).iter().any(|e| matches!(e, CoreEvent::Dialog(DialogEvent::ReferRequested { .. }))));
    core.call_refer_progress(id, 200, t0);
    assert!(sent(&mut core).is_empty(), "no subscription, no NOTIFY");
}
