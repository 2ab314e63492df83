//! Random and mutated frames: nothing a browser or an attacker sends may panic, and each frame
//! gets at most one answer. Seeded, so a failure reproduces; `cargo fuzz` goes further.

use super::jwt;
use super::tests::{assert_alive, example, fresh, greeted, logged_in, token, NOW, SECRET};
use super::*;
use serde_json::{json, Map, Value};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: enough spread for mutation choices, no dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SNIPPETS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "0",
    "-0",
    "1e999",
    "-1",
    "18446744073709551616",
    "1.5",
    "\"type\"",
    "\"id\"",
    "\"call_id\"",
    "\"candidate\"",
    "\\u0000",
    "\\ud800",
    "\u{feff}",
    "é",
    "\r\n",
    "\\",
];
const KEYS: &[&str] = &[
    "type",
    "id",
    "versions",
    "method",
    "token",
    "user",
    "password",
    "profile",
    "target",
    "sdp",
    "codec",
    "call_id",
    "reason",
    "digits",
    "candidate",
    "sdpMid",
    "sdpMLineIndex",
    "x",
];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 3 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from(rng.below(1000) as u32) / 7.0),
        4 => json!(*rng.pick(&["", "v=0\r\n", "1#*", "c1", "busy", "token", "pbx", "hello", "ping", "a\u{0}b"])),
        5 => json!(*rng.pick(CLIENT_TYPES)),
        6 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => random_object(rng, depth + 1),
    }
}

fn random_object(rng: &mut Rng, depth: u32) -> Value {
    let mut map = Map::new();
    for _ in 0..rng.below(7) {
        map.insert((*rng.pick(KEYS)).to_owned(), random_value(rng, depth));
    }
    if rng.below(4) != 0 {
        map.insert("type".into(), json!(*rng.pick(CLIENT_TYPES)));
    }
    Value::Object(map)
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let last = bytes.len() - 1;
                bytes[at.min(last)] = rng.next() as u8;
            }
            1 => bytes.truncate(at),
            2 => bytes.splice(at..at, rng.pick(SNIPPETS).bytes()).for_each(drop),
            3 => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            _ => {
                let end = (at + rng.below(32)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy).for_each(drop);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn frame(rng: &mut Rng) -> String {
    match rng.below(7) {
        0 => random_object(rng, 0).to_string(),
        1 => random_value(rng, 0).to_string(),
        2 => {
            let t = *rng.pick(CLIENT_TYPES);
            mutate(rng, &example(t).to_string())
        }
        3 => {
            let tok = mutate(rng, &token("alice", NOW + 600));
            json!({"type": "login", "id": 1, "method": "token", "token": tok}).to_string()
        }
        4 => {
            let base = random_object(rng, 0).to_string();
            mutate(rng, &base)
        }
        // Well-formed frames with one field changed reach validation and the owner.
        _ => {
            let t = *rng.pick(CLIENT_TYPES);
            let mut v = example(t);
            if let Some(obj) = v.as_object_mut() {
                let key = *rng.pick(KEYS);
                if rng.below(3) == 0 {
                    obj.remove(key);
                } else if key != "type" {
                    obj.insert(key.to_owned(), random_value(rng, 2));
                }
            }
            v.to_string()
        }
    }
}

/// Answers whatever reached the owner, the way a careless owner might.
fn owner(rng: &mut Rng, c: &mut Connection) {
    while let Some(req) = c.poll_request() {
        let Some(id) = req.id().cloned() else { continue };
        match rng.below(3) {
            0 => c.reply(id, random_value(rng, 0)),
            1 => c.error(Some(id), *rng.pick(&ErrorCode::ALL), "owner says no"),
            _ => c.login_result(id, Ok(LoginInfo { user: "u".into(), profiles: vec![] })),
        }
    }
}

#[test]
fn random_and_mutated_frames_never_panic_and_get_at_most_one_answer() {
    let mut rng = Rng(0x5EED_0F51_6B00_0001);
    let mut conns = [fresh(), greeted(), logged_in()];
    for i in 0..4000u64 {
        // Fresh connections now and then, so login limits and pending caps do not hide later paths.
        if i % 250 == 0 && i < 3750 {
            conns = [fresh(), greeted(), logged_in()];
        }
        let text = frame(&mut rng);
        for c in conns.iter_mut() {
            c.handle_frame(&text, NOW + i);
            let out: Vec<String> = std::iter::from_fn(|| c.poll_outgoing()).collect();
            assert!(out.len() <= 1, "{text:?} -> {out:?}");
            for o in &out {
                let v: Value = serde_json::from_str(o).unwrap();
                assert!(v["type"].is_string(), "{o}");
            }
            owner(&mut rng, c);
            while c.poll_outgoing().is_some() {}
        }
    }
    let [_, mut greeted, mut logged] = conns;
    greeted.handle_frame("{}", NOW + 10_000);
    while greeted.poll_outgoing().is_some() {}
    logged.handle_frame("{}", NOW + 10_000);
    while logged.poll_outgoing().is_some() {}
    assert_alive(&mut logged);
    if greeted.version().is_some() {
        assert_alive(&mut greeted);
    }
}

#[test]
fn hostile_shapes_are_refused_cheaply() {
    let mut c = greeted();
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    for text in
        [deep.as_str(), "{\"type\":\"ping\",\"id\":1e999}", "\u{feff}{}", "{\"type\":\"ping\",\"id\":1,\"id\":2}"]
    {
        c.handle_frame(text, NOW);
        while c.poll_outgoing().is_some() {}
    }
    let nested = format!("{{\"type\":\"ping\",\"id\":1,\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
    c.handle_frame(&nested, NOW);
    let out = c.poll_outgoing().unwrap();
    assert!(out.contains("bad_json"), "serde_json's depth limit keeps the stack safe: {out}");
    assert_alive(&mut c);
}

#[test]
fn mutated_tokens_never_verify_or_panic() {
    let mut rng = Rng(42);
    let good = token("alice", NOW + 600);
    for _ in 0..3000 {
        let t = mutate(&mut rng, &good);
        if let Ok(claims) = jwt::verify(&t, SECRET, NOW, 0) {
            // Only mutations that decode to the same bytes can pass (e.g. none at all).
            assert_eq!(t, good);
            assert_eq!(claims.sub, "alice");
        }
    }
}
