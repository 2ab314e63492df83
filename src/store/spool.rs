//! The durable queue in front of the database: an append-only file of JSON lines (one call record
//! write each, synced before `append` returns) and a small file holding the byte offset of the
//! first write not yet in the database. Records leave in the order they came. A crash at any
//! point costs at most a replay, and replays are harmless because the store keeps the newest
//! revision of each record.
//!
//! The spool also remembers which calls are still open (their last write had no end), so that a
//! gateway killed with calls up can close them when it starts again: the open calls are read back
//! from the whole file (flushed lines too) and, across the file's restarts from empty, from the
//! offset file, which lists them after the offset.

use super::record::CallRecord;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A call the previous run of the gateway left open, with its last write when the spool still
/// holds it (else the database does).
#[derive(Debug, Clone)]
pub struct LeftOpen {
    pub id: String,
    pub last_write: Option<CallRecord>,
}

pub struct Spool {
    path: PathBuf,
    offset_path: PathBuf,
    file: File,
    /// Writes not yet flushed, each with the file offset just past its line.
    pending: VecDeque<(u64, CallRecord)>,
    end: u64,
    /// Calls whose last write had no end.
    open: BTreeSet<String>,
    /// Calls open when the previous run stopped, until taken.
    left_open: Vec<LeftOpen>,
}

/// The offset file: the flushed offset on the first line, then one open call id per line.
fn read_offset_file(path: &Path) -> (u64, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let offset = lines.next().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    (offset, lines.map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
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
        let (flushed, listed_open) = read_offset_file(&offset_path);
        let start = if flushed > length { 0 } else { flushed };
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let (lines, at) = read_pending(BufReader::new(&file), 0, &path).map_err(io)?;
        if at < length {
            tracing::warn!(path = %path.display(), bytes = length - at, "cutting a torn write off the spool");
            file.set_len(at).map_err(io)?;
        }
        // The last write of each call decides whether it is open: the listed ones first, then
        // every line of the file in order.
        let mut last: BTreeMap<String, Option<CallRecord>> = listed_open.into_iter().map(|id| (id, None)).collect();
        for (_, record) in &lines {
            match record.ended_at {
                None => last.insert(record.id.clone(), Some(record.clone())),
                Some(_) => last.remove(&record.id),
            };
        }
        let pending: VecDeque<(u64, CallRecord)> = lines.into_iter().filter(|(end, _)| *end > start).collect();
        if !pending.is_empty() {
            tracing::info!(records = pending.len(), "call records waiting in the spool from before");
        }
        let left_open: Vec<LeftOpen> = last.into_iter().map(|(id, last_write)| LeftOpen { id, last_write }).collect();
        let open = left_open.iter().map(|l| l.id.clone()).collect();
        Ok(Spool { path, offset_path, file, pending, end: at, open, left_open })
    }

    /// Appends a write and syncs it to disk: once this returns, the record survives a crash. A
    /// failed write (a full disk) leaves the file as it was, so the write can be tried again.
    pub fn append(&mut self, record: &CallRecord) -> Result<(), SpoolError> {
        self.append_all(std::slice::from_ref(record))
    }

    /// Appends writes in order with one sync for all of them (a burst of calls costs the disk
    /// one flush): all are durable when this returns, or, on failure, none was added.
    pub fn append_all(&mut self, records: &[CallRecord]) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io { path: self.path.clone(), source };
        let mut text = String::new();
        let mut ends = Vec::with_capacity(records.len());
        for record in records {
            text.push_str(&serde_json::to_string(record).map_err(|e| io(std::io::Error::other(e)))?);
            text.push('\n');
            ends.push(self.end + text.len() as u64);
        }
        let written = self.file.write_all(text.as_bytes()).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // A partial line would glue itself to the next write.
            let _ = self.file.set_len(self.end);
            return Err(io(e));
        }
        self.end += text.len() as u64;
        for (record, end) in records.iter().zip(ends) {
            self.pending.push_back((end, record.clone()));
            match record.ended_at {
                None => self.open.insert(record.id.clone()),
                Some(_) => self.open.remove(&record.id),
            };
        }
        Ok(())
    }

    /// The oldest writes not yet in the database, up to `max`, in order.
    pub fn front_batch(&self, max: usize) -> Vec<CallRecord> {
        self.pending.iter().take(max).map(|(_, r)| r.clone()).collect()
    }

    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    /// Calls the previous run left open (taken once).
    pub fn take_left_open(&mut self) -> Vec<LeftOpen> {
        std::mem::take(&mut self.left_open)
    }

    /// A call left open turned out to be closed already (or unknown): stop counting it as open.
    pub fn forget_open(&mut self, id: &str) {
        self.open.remove(id);
    }

    /// The oldest `n` writes reached the database: move past them, with one write of the offset
    /// file. When nothing is left, the file starts over empty (the open calls are kept in the
    /// offset file first).
    pub fn acknowledge(&mut self, n: usize) -> Result<(), SpoolError> {
        let Some(offset) = self.pending.drain(..n.min(self.pending.len())).last().map(|(offset, _)| offset) else { return Ok(()) };
        let io = |source| SpoolError::Io { path: self.offset_path.clone(), source };
        if self.pending.is_empty() {
            write_offset(&self.offset_path, 0, &self.open).map_err(io)?;
            self.file.set_len(0).map_err(io)?;
            self.end = 0;
            return Ok(());
        }
        write_offset(&self.offset_path, offset, &self.open).map_err(io)
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
fn write_offset(path: &Path, offset: u64, open: &BTreeSet<String>) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut text = offset.to_string();
    for id in open {
        text.push('\n');
        text.push_str(id);
    }
    let written = File::create(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_data()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
