use super::ContactsInput::List;
use super::*;

const AOR: &str = "sip:alice@example.com";

fn reg() -> Registrar<u8> {
    Registrar::new(RegistrarPolicy::default())
}

fn contact(uri: &str, expires: Option<u32>) -> ContactInput {
    ContactInput { uri: uri.into(), expires_param: expires, q: None, instance: None, raw: format!("<{uri}>") }
}

fn input(contacts: ContactsInput, expires: Option<u32>, call_id: &str, cseq: u32) -> RegisterInput<'_, u8> {
    RegisterInput { aor: AOR, contacts, expires_header: expires, call_id, cseq, source: 7, user_agent: Some("ua") }
}

type Res = Result<Vec<Binding<u8>>, RegistrarError>;

fn one(r: &mut Registrar<u8>, uri: &str, exp: Option<u32>, cid: &str, cseq: u32, now: Instant) -> Res {
    r.register(input(List(vec![contact(uri, exp)]), None, cid, cseq), now)
}

#[test]
fn add_refresh_and_query() {
    let (mut r, t0) = (reg(), Instant::now());
    let b = one(&mut r, "sip:a@10.0.0.1", None, "c1", 1, t0).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].remaining(t0), Duration::from_secs(3600));
    assert_eq!((b[0].raw.as_str(), b[0].source, b[0].user_agent.as_deref()), ("<sip:a@10.0.0.1>", 7, Some("ua")));
    let t1 = t0 + Duration::from_secs(100);
    let b = one(&mut r, "sip:a@10.0.0.1", Some(600), "c1", 2, t1).unwrap();
    assert_eq!((b.len(), b[0].expires_at, b[0].cseq), (1, t1 + Duration::from_secs(600), 2));
    let q = r.register(input(ContactsInput::None, None, "other", 1), t1).unwrap();
    assert_eq!(q, b);
    assert_eq!(r.lookup("sip:alice@EXAMPLE.COM", t1), b);
    assert_eq!(r.binding_count(), 1);
}

#[test]
fn of_user_reads_that_user_alone_in_every_domain() {
    let (mut r, t0) = (reg(), Instant::now());
    one(&mut r, "sip:a@h1.invalid", None, "c1", 1, t0).unwrap();
    for (aor, contact_uri) in [("sip:alice@other.example", "sip:a@h2.invalid"), ("sip:alicia@example.com", "sip:b@h3.invalid"), ("sip:bob@example.com", "sip:c@h4.invalid")] {
        let mut other = input(List(vec![contact(contact_uri, Some(60))]), None, "c2", 1);
        other.aor = aor;
        r.register(other, t0).unwrap();
    }
    let alice = r.of_user("alice", t0);
    let alice: Vec<(&str, &str)> = alice.iter().map(|(aor, b)| (aor.as_str(), b.contact_uri.as_str())).collect();
    assert_eq!(alice, [("sip:alice@example.com", "sip:a@h1.invalid"), ("sip:alice@other.example", "sip:a@h2.invalid")]);
    let everyone: Vec<(String, Binding<u8>)> = r.all(t0).into_iter().filter(|(aor, _)| aor.starts_with("sip:alice@")).collect();
    assert_eq!(r.of_user("alice", t0), everyone, "the same bindings, in the same order, as the whole table gives");
    assert!(r.of_user("ali", t0).is_empty() && r.of_user("example.com", t0).is_empty());
    let later = t0 + Duration::from_secs(61);
    assert!(r.of_user("bob", later).is_empty(), "expired bindings are not routed to");
    assert_eq!(r.purge_expired(later), 3);
    assert_eq!(r.by_user.keys().collect::<Vec<_>>(), ["alice"], "a user without AORs leaves the index");
    assert_eq!(r.remove_where(|source| *source == 7), 1);
    assert!(r.by_user.is_empty() && r.of_user("alice", t0).is_empty());
}

#[test]
fn bindings_of_a_closed_flow_go_and_others_stay() {
    let (mut r, t0) = (reg(), Instant::now());
    one(&mut r, "sip:a@h1.invalid", None, "c1", 1, t0).unwrap();
    let mut other = input(List(vec![contact("sip:a@h2.invalid", None)]), None, "c2", 1);
    other.source = 8;
    r.register(other, t0).unwrap();
    assert_eq!(r.remove_where(|source| *source == 7), 1);
    let left = r.lookup(AOR, t0);
    assert_eq!((left.len(), left[0].contact_uri.as_str()), (1, "sip:a@h2.invalid"));
    assert_eq!(r.remove_where(|source| *source == 7), 0);
    assert_eq!(r.remove_where(|source| *source == 8), 1);
    assert_eq!(r.binding_count(), 0);
}

#[test]
fn several_contacts_and_remove_one() {
    let (mut r, t0) = (reg(), Instant::now());
    let cs = vec![contact("sip:a@h1", None), contact("sip:a@h2", None), contact("sip:a@h3", None)];
    assert_eq!(r.register(input(List(cs), Some(300), "c1", 1), t0).unwrap().len(), 3);
    let b = one(&mut r, "SIP:a@H2", Some(0), "c1", 2, t0).unwrap();
    let uris: Vec<&str> = b.iter().map(|b| b.contact_uri.as_str()).collect();
    assert!(uris.contains(&"sip:a@h1") && uris.contains(&"sip:a@h3") && uris.len() == 2);
    assert!(b.iter().all(|b| b.remaining(t0) == Duration::from_secs(300)));
}

#[test]
fn wildcard_removes_all_and_must_be_alone() {
    let (mut r, t0) = (reg(), Instant::now());
    let cs = vec![contact("sip:a@h1", None), contact("sip:a@h2", None)];
    r.register(input(List(cs), None, "c1", 1), t0).unwrap();
    let bad = r.register(input(ContactsInput::Wildcard, Some(60), "c2", 1), t0);
    assert_eq!(bad, Err(RegistrarError::WildcardNotAlone));
    assert_eq!(RegistrarError::WildcardNotAlone.status(), 400);
    let mixed = List(vec![contact("*", None), contact("sip:a@h3", None)]);
    assert_eq!(r.register(input(mixed, Some(0), "c2", 1), t0), Err(RegistrarError::WildcardNotAlone));
    assert_eq!(r.register(input(ContactsInput::Wildcard, Some(0), "c1", 1), t0), Err(RegistrarError::OutOfOrder));
    assert_eq!(r.binding_count(), 2);
    assert!(r.register(input(ContactsInput::Wildcard, Some(0), "c2", 1), t0).unwrap().is_empty());
    assert_eq!((r.binding_count(), r.all(t0).len()), (0, 0));
}

#[test]
fn expiry_purge_and_next_expiry() {
    let (mut r, t0) = (reg(), Instant::now());
    one(&mut r, "sip:a@h1", Some(60), "c1", 1, t0).unwrap();
    one(&mut r, "sip:a@h2", Some(120), "c1", 2, t0).unwrap();
    assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(60)));
    let t1 = t0 + Duration::from_secs(60);
    assert_eq!(r.lookup(AOR, t1).len(), 1);
    assert_eq!(r.purge_expired(t1), 1);
    assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(120)));
    assert_eq!(r.purge_expired(t0 + Duration::from_secs(121)), 1);
    assert_eq!((r.next_expiry(), r.binding_count()), (None, 0));
}

#[test]
fn too_brief_is_atomic_and_long_is_clamped() {
    let (mut r, t0) = (reg(), Instant::now());
    let cs = vec![contact("sip:a@h1", Some(3600)), contact("sip:a@h2", Some(30))];
    let err = r.register(input(List(cs), None, "c1", 1), t0).unwrap_err();
    assert_eq!((err.clone(), err.status()), (RegistrarError::IntervalTooBrief { min_expires: 60 }, 423));
    assert_eq!(r.binding_count(), 0);
    let b = one(&mut r, "sip:a@h1", Some(999_999), "c1", 2, t0).unwrap();
    assert_eq!(b[0].remaining(t0), Duration::from_secs(7200));
}

#[test]
fn out_of_order_and_call_id_change() {
    let (mut r, t0) = (reg(), Instant::now());
    one(&mut r, "sip:a@h1", None, "c1", 5, t0).unwrap();
    assert_eq!(one(&mut r, "sip:a@h1", Some(0), "c1", 5, t0), Err(RegistrarError::OutOfOrder));
    assert_eq!(one(&mut r, "sip:a@h1", None, "c1", 4, t0).map_err(|e| e.status()), Err(500));
    let b = one(&mut r, "sip:a@h1", None, "c2", 1, t0).unwrap();
    assert_eq!((b.len(), b[0].call_id.as_str(), b[0].cseq), (1, "c2", 1));
}

#[test]
fn instance_id_match_replaces_changed_uri() {
    let (mut r, t0) = (reg(), Instant::now());
    let inst = Some("<urn:uuid:1>".to_string());
    let c1 = ContactInput { instance: inst.clone(), ..contact("sip:a@10.0.0.1:5060", None) };
    r.register(input(List(vec![c1]), None, "c1", 1), t0).unwrap();
    let c2 = ContactInput { instance: inst.clone(), ..contact("sip:a@10.0.0.2:6000", None) };
    let b = r.register(input(List(vec![c2]), None, "c1", 2), t0).unwrap();
    assert_eq!((b.len(), b[0].contact_uri.as_str()), (1, "sip:a@10.0.0.2:6000"));
    let c3 = ContactInput { instance: Some("<urn:uuid:2>".into()), ..contact("sip:a@10.0.0.2:6000", None) };
    assert_eq!(r.register(input(List(vec![c3]), None, "c1", 3), t0).unwrap().len(), 2);
}

#[test]
fn max_contacts() {
    let (mut r, t0) = (reg(), Instant::now());
    let cs: Vec<_> = (0..10).map(|i| contact(&format!("sip:a@h{i}"), None)).collect();
    r.register(input(List(cs), None, "c1", 1), t0).unwrap();
    let err = one(&mut r, "sip:a@h10", None, "c1", 2, t0).unwrap_err();
    assert_eq!((err, r.binding_count()), (RegistrarError::TooManyContacts { max: 10 }, 10));
    assert_eq!(one(&mut r, "sip:a@h3", None, "c1", 3, t0).unwrap().len(), 10);
}

#[test]
fn lookup_orders_by_q_then_recency() {
    let (mut r, t0) = (reg(), Instant::now());
    let low = ContactInput { q: Some(0.1), ..contact("sip:a@low", None) };
    let hi = ContactInput { q: Some(0.9), ..contact("sip:a@hi", None) };
    r.register(input(List(vec![low, hi]), None, "c1", 1), t0).unwrap();
    let t1 = t0 + Duration::from_secs(5);
    let hi2 = ContactInput { q: Some(0.9), ..contact("sip:a@hi2", None) };
    r.register(input(List(vec![hi2]), None, "c1", 2), t1).unwrap();
    let order: Vec<String> = r.lookup(AOR, t1).into_iter().map(|b| b.contact_uri).collect();
    assert_eq!(order, ["sip:a@hi2", "sip:a@hi", "sip:a@low"]);
}

#[test]
fn uri_comparison() {
    assert!(uri_eq("sip:Bob@EXAMPLE.com;transport=TCP;ob", "SIP:Bob@example.COM;ob;transport=tcp"));
    assert!(!uri_eq("sip:bob@example.com", "sip:BOB@example.com"));
    assert!(!uri_eq("sip:bob@example.com", "sips:bob@example.com"));
    assert!(uri_eq("sip:+1;npdi@h", "sip:+1;npdi@H"));
    assert_eq!(canonical_aor("SIP:Alice@Example.COM"), "sip:Alice@example.com");
}
