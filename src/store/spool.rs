//! The durable queue in front of the database: an append-only file of JSON lines (one call record
//! write each, synced before `append` returns) and a small file holding the byte offset of the
//! first write not yet in the database. Records leave in the order they came. A crash at any
//! point costs at most a replay, and replays are harmless because the store keeps the newest
//! revision of each record.

use super::record::CallRecord;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub struct Spool {
    path: PathBuf,
    offset_path: PathBuf,
    file: File,
    /// Writes not yet flushed, each with the file offset just past its line.
    pending: VecDeque<(u64, CallRecord)>,
    end: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir` and loads what was not flushed before. A torn last
    /// line from a crash mid-write is cut off.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let path = dir.join("records.spool");
        let offset_path = dir.join("records.flushed");
        let io = |source| SpoolError::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        let flushed = std::fs::read_to_string(&offset_path).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
        let start = if flushed > length { 0 } else { flushed };
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let (pending, at) = read_pending(BufReader::new(&file), start, &path).map_err(io)?;
        if at < length {
            tracing::warn!(path = %path.display(), bytes = length - at, "cutting a torn write off the spool");
            file.set_len(at).map_err(io)?;
        }
        if !pending.is_empty() {
            tracing::info!(records = pending.len(), "call records waiting in the spool from before");
        }
        Ok(Spool { path, offset_path, file, pending, end: at })
    }

    /// Appends a write and syncs it to disk: once this returns, the record survives a crash.
    pub fn append(&mut self, record: &CallRecord) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io { path: self.path.clone(), source };
        let mut line = serde_json::to_string(record).map_err(|e| io(std::io::Error::other(e)))?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.end += line.len() as u64;
        self.pending.push_back((self.end, record.clone()));
        Ok(())
    }

    /// The oldest write not yet in the database.
    pub fn front(&self) -> Option<&CallRecord> {
        self.pending.front().map(|(_, r)| r)
    }

    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    /// The oldest write reached the database: move past it. When nothing is left, the file
    /// starts over empty.
    pub fn acknowledge_front(&mut self) -> Result<(), SpoolError> {
        let Some((offset, _)) = self.pending.pop_front() else { return Ok(()) };
        let io = |source| SpoolError::Io { path: self.offset_path.clone(), source };
        if self.pending.is_empty() {
            self.file.set_len(0).map_err(io)?;
            self.end = 0;
            return write_offset(&self.offset_path, 0).map_err(io);
        }
        write_offset(&self.offset_path, offset).map_err(io)
    }
}

/// Reads the spool's lines from `reader` (positioned at file offset `start`): every whole line
/// that holds a record, with the offset just past it, and the offset where the last whole line
/// ends (a torn write after it is for the caller to cut off). A line that is not a record, or not
/// even UTF-8, is skipped with a warning: one bad line must not keep the records behind it, nor the
/// gateway, from starting. Errors are the reader's own I/O errors only.
pub fn read_pending(mut reader: impl BufRead, start: u64, path: &Path) -> std::io::Result<(VecDeque<(u64, CallRecord)>, u64)> {
    let mut pending = VecDeque::new();
    let mut at = start;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<CallRecord>(&line) {
            Ok(record) => pending.push_back((at + read as u64, record)),
            Err(e) => {
                tracing::warn!(path = %path.display(), offset = at, error = %e, "unreadable spool line skipped");
            }
        }
        at += read as u64;
    }
    Ok((pending, at))
}

/// Replaces the offset file atomically (write, sync, rename).
fn write_offset(path: &Path, offset: u64) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(offset.to_string().as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
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
        spool.acknowledge_front().expect("ack");
        drop(spool);
        let mut spool = Spool::open(dir.path()).expect("reopen");
        assert_eq!(spool.depth(), 2);
        assert_eq!(spool.front().map(|r| r.id.as_str()), Some("b"));
        spool.acknowledge_front().expect("ack");
        spool.acknowledge_front().expect("ack");
        assert_eq!(std::fs::metadata(dir.path().join("records.spool")).expect("meta").len(), 0, "an empty spool starts over");
        spool.append(&record("d", 9)).expect("append");
        drop(spool);
        let spool = Spool::open(dir.path()).expect("reopen");
        assert_eq!(spool.front().map(|r| r.id.as_str()), Some("d"));
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
}
