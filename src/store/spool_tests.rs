use super::*;
use crate::store::record::CallDirection;

fn record(id: &str, revision: i64) -> CallRecord {
    let mut r = CallRecord::new(id.into(), CallDirection::Inbound, 1_000);
    r.revision = revision;
    r
}

#[test]
fn writes_survive_a_reopen_in_order_until_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path()).expect("open");
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        spool.append(&record(id, i as i64)).expect("append");
    }
    spool.acknowledge(1).expect("ack");
    drop(spool);
    let mut spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(spool.depth(), 2);
    assert_eq!(spool.front_batch(1).first().map(|r| r.id.as_str()), Some("b"));
    spool.acknowledge(1).expect("ack");
    spool.acknowledge(1).expect("ack");
    assert_eq!(std::fs::metadata(dir.path().join("records.spool")).expect("meta").len(), 0, "an empty spool starts over");
    spool.append(&record("d", 9)).expect("append");
    drop(spool);
    let spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(spool.front_batch(1).first().map(|r| r.id.as_str()), Some("d"));
}

#[test]
fn a_torn_last_line_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path()).expect("open");
    spool.append(&record("a", 1)).expect("append");
    drop(spool);
    let mut file = OpenOptions::new().append(true).open(dir.path().join("records.spool")).expect("open");
    file.write_all(b"{\"id\":\"torn").expect("write");
    drop(file);
    let mut spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(spool.depth(), 1);
    spool.append(&record("b", 2)).expect("append after the cut");
    drop(spool);
    assert_eq!(Spool::open(dir.path()).expect("reopen").depth(), 2);
}

fn ended(id: &str, revision: i64) -> CallRecord {
    let mut r = record(id, revision);
    r.finish(2_000, crate::store::CallStatus::Answered, crate::store::HangupSide::Sip, "normal", Some(200));
    r
}

#[test]
fn calls_left_open_are_known_after_a_restart_with_their_last_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path()).expect("open");
    spool.append(&record("a", 1)).expect("append");
    spool.append(&record("b", 2)).expect("append");
    spool.append(&ended("b", 3)).expect("append");
    spool.acknowledge(1).expect("ack");
    drop(spool);
    let mut spool = Spool::open(dir.path()).expect("reopen");
    let left: Vec<(String, Option<i64>)> = spool.take_left_open().into_iter().map(|l| (l.id, l.last_write.map(|r| r.revision))).collect();
    assert_eq!(left, vec![("a".to_string(), Some(1))], "a flushed line still tells which call was open");
    assert!(spool.take_left_open().is_empty(), "taken once");
}

#[test]
fn open_calls_outlive_the_spool_starting_over_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path()).expect("open");
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        spool.append(&record(id, i as i64)).expect("append");
    }
    spool.append(&ended("b", 9)).expect("append");
    for _ in 0..4 {
        spool.acknowledge(1).expect("ack");
    }
    assert_eq!(std::fs::metadata(dir.path().join("records.spool")).expect("meta").len(), 0, "the spool started over");
    spool.forget_open("c");
    spool.append(&record("d", 10)).expect("append");
    spool.acknowledge(1).expect("ack");
    drop(spool);
    let mut spool = Spool::open(dir.path()).expect("reopen");
    let left: Vec<(String, bool)> = spool.take_left_open().into_iter().map(|l| (l.id, l.last_write.is_some())).collect();
    assert_eq!(left, vec![("a".to_string(), false), ("d".to_string(), false)], "from the offset file: the database has their last write");
    assert_eq!(spool.depth(), 0);
}

#[test]
fn a_line_that_is_not_utf8_is_skipped_and_the_records_after_it_kept() {
    // Found by the spool_lines fuzz target: `read_line` refused the whole file, so the
    // spool (and the gateway) failed to open.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path()).expect("open");
    spool.append(&record("a", 1)).expect("append");
    drop(spool);
    let mut file = OpenOptions::new().append(true).open(dir.path().join("records.spool")).expect("file");
    file.write_all(b"\xc3\x28 not a record\n").expect("write junk");
    drop(file);
    let mut spool = Spool::open(dir.path()).expect("a junk line does not stop the spool opening");
    spool.append(&record("b", 2)).expect("append");
    drop(spool);
    let spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(spool.depth(), 2, "both records survive the junk line between them");
}

#[test]
fn a_burst_is_appended_with_one_sync_and_acknowledged_in_one_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = Spool::open(dir.path()).expect("open");
    let burst: Vec<CallRecord> = ["a", "b", "c", "d"].iter().enumerate().map(|(i, id)| record(id, i as i64)).collect();
    spool.append_all(&burst).expect("append");
    assert_eq!(spool.front_batch(3).iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    spool.acknowledge(3).expect("ack");
    drop(spool);
    let mut spool = Spool::open(dir.path()).expect("reopen");
    assert_eq!(spool.front_batch(64).iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["d"], "the offset moved past all three");
    spool.acknowledge(64).expect("ack more than there is");
    assert_eq!(spool.depth(), 0);
    assert_eq!(std::fs::metadata(dir.path().join("records.spool")).expect("meta").len(), 0, "an empty spool starts over");
    spool.append_all(&[]).expect("nothing to append");
    assert_eq!(spool.depth(), 0);
}
