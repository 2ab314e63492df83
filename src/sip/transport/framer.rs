//! Cutting a TCP/TLS byte stream into SIP messages by Content-Length (RFC 3261 §18.3), with CRLF
//! keep-alives (RFC 5626 §3.5.1). Sans-IO: bytes in, frames out.

use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Message(Bytes),
    /// A double-CRLF ping: the peer expects a single CRLF back.
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// More than the configured maximum is buffered without a complete message.
    TooLarge,
    /// The Content-Length cannot be used to find the end of the message. The header section is
    /// handed over so it can still be answered with 400 before the stream is closed.
    BadLength(Bytes),
}

pub struct StreamFramer {
    buffer: BytesMut,
    max_message: usize,
    /// How far the buffer has been searched for the end of the headers, so trickled bytes are
    /// not rescanned from the start on every read.
    scanned: usize,
}

impl StreamFramer {
    pub fn new(max_message: usize) -> StreamFramer {
        StreamFramer { buffer: BytesMut::with_capacity(4096), max_message, scanned: 0 }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete frame, `None` when more bytes are needed. After an error the stream must
    /// be closed: its framing can no longer be trusted.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buffer.starts_with(b"\r\n\r\n") {
            self.buffer.advance(4);
            self.scanned = 0;
            return Ok(Some(Frame::Ping));
        }
        // A lone CRLF is a pong or padding between messages (RFC 3261 §7.5): skip it.
        while self.buffer.starts_with(b"\r\n") && !self.buffer.starts_with(b"\r\n\r\n") {
            self.buffer.advance(2);
            self.scanned = 0;
        }
        if self.buffer.starts_with(b"\r\n\r\n") {
            return self.next_frame();
        }
        let from = self.scanned.saturating_sub(3);
        let Some(head_end) = self.buffer.get(from..).and_then(|tail| find(tail, b"\r\n\r\n")).map(|i| i + from) else {
            self.scanned = self.buffer.len();
            return if self.buffer.len() > self.max_message { Err(FrameError::TooLarge) } else { Ok(None) };
        };
        let head = &self.buffer[..head_end];
        let body_len = match content_length(head) {
            Ok(len) => len,
            Err(()) => {
                self.scanned = 0;
                let head = self.buffer.split_to(head_end + 4).freeze();
                return Err(FrameError::BadLength(head));
            }
        };
        // Checked: a Content-Length near usize::MAX must not wrap into a small, "valid" frame.
        let total = match head_end.checked_add(4).and_then(|n| n.checked_add(body_len)) {
            Some(total) if total <= self.max_message => total,
            _ => return Err(FrameError::TooLarge),
        };
        if self.buffer.len() < total {
            return Ok(None);
        }
        self.scanned = 0;
        Ok(Some(Frame::Message(self.buffer.split_to(total).freeze())))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Content-Length (or `l`) from a header section; absent means 0. Several values, or one that is
/// not a plain number, make the stream unframeable (RFC 4475 §3.1.2.3, §3.3.9).
fn content_length(head: &[u8]) -> Result<usize, ()> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<usize> = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || found.is_some() {
                return Err(());
            }
            found = Some(value.parse().map_err(|_| ())?);
        }
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn frames_split_across_reads_and_back_to_back() {
        let mut framer = StreamFramer::new(65_535);
        let mut stream = OPTIONS.to_vec();
        stream.extend_from_slice(OPTIONS);
        for chunk in stream.chunks(7) {
            framer.push(chunk);
        }
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Message(Bytes::from_static(OPTIONS)))));
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Message(Bytes::from_static(OPTIONS)))));
        assert_eq!(framer.next_frame(), Ok(None));
    }

    #[test]
    fn trickled_headers_are_found_once_complete() {
        let mut framer = StreamFramer::new(65_535);
        for byte in OPTIONS {
            framer.push(&[*byte]);
            let frame = framer.next_frame();
            if framer.buffered() == 0 {
                assert_eq!(frame, Ok(Some(Frame::Message(Bytes::from_static(OPTIONS)))));
            }
        }
        assert_eq!(framer.buffered(), 0, "the message was delivered when its last byte arrived");
    }

    #[test]
    fn waits_for_the_whole_body() {
        let mut framer = StreamFramer::new(65_535);
        framer.push(&OPTIONS[..OPTIONS.len() - 2]);
        assert_eq!(framer.next_frame(), Ok(None));
        framer.push(&OPTIONS[OPTIONS.len() - 2..]);
        assert!(matches!(framer.next_frame(), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn keepalives() {
        let mut framer = StreamFramer::new(65_535);
        framer.push(b"\r\n\r\n\r\n");
        assert_eq!(framer.next_frame(), Ok(Some(Frame::Ping)));
        framer.push(OPTIONS);
        assert!(matches!(framer.next_frame(), Ok(Some(Frame::Message(_)))), "a lone CRLF before a message is skipped");
    }

    #[test]
    fn refuses_unframeable_and_oversized() {
        let mut framer = StreamFramer::new(65_535);
        framer.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\nxyz");
        assert!(matches!(framer.next_frame(), Err(FrameError::BadLength(_))));
        let mut framer = StreamFramer::new(65_535);
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx");
        assert!(matches!(framer.next_frame(), Err(FrameError::BadLength(_))));
        let mut framer = StreamFramer::new(100);
        framer.push(&[b'a'; 200]);
        assert_eq!(framer.next_frame(), Err(FrameError::TooLarge));
        let mut framer = StreamFramer::new(100);
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(framer.next_frame(), Err(FrameError::TooLarge));
        // Found by the fuzz harness: the length sum used to overflow.
        let mut framer = StreamFramer::new(65_535);
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(framer.next_frame(), Err(FrameError::TooLarge));
    }
}
