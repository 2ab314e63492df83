//! The spool's line reader, on what a crash, a full disk or a stray editor may leave in the file.

use crate::store::read_spool_lines;
use std::path::Path;

pub fn spool_lines(data: &[u8]) {
    let start = 17;
    let (pending, end) = read_spool_lines(data, start, Path::new("fuzz.spool")).unwrap_or_else(|e| panic!("an in-memory spool failed to read: {e}"));
    let end_in_data = usize::try_from(end - start).expect("offset fits"); // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
    assert!(end_in_data <= data.len(), "read past the end");
    assert!(end_in_data == 0 || data[end_in_data - 1] == b'\n', "the kept part does not end with a whole line");
    let mut previous = start;
    for (offset, record) in &pending {
        assert!(*offset > previous && *offset <= end, "offsets out of order");
        previous = *offset;
        // What was read can be written again (a re-spooled write after a restart reads back).
        let line = serde_json::to_string(record).expect("a record serialises"); // ok: fuzz harness, never reached from the network; a panic here is the fuzzer's finding
        let again: Result<crate::store::CallRecord, _> = serde_json::from_str(&line);
        assert!(again.is_ok(), "a record read from the spool does not read back once written: {line}");
    }
}
