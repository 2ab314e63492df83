//! Packet index estimation (RFC 3711 §3.3.1, Appendix A) and the sliding
//! replay window (§3.3.2), shared by SRTP and SRTCP.

use super::SrtpError;

/// Twice the RFC's minimum of 64, and what libsrtp uses: audio bursts after a
/// jitter spike on the SIP side can reorder by more than 64 packets.
pub(super) const WINDOW_SIZE: u64 = 128;

const SEQ_HALF: u64 = 1 << 15;
const MAX_ROC: u64 = u32::MAX as u64;

/// Highest index accepted so far plus a bitmap of the ones just below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ReplayWindow {
    top: u64,
    // Bit n set <=> index `top - n` was accepted; bit 0 is `top` itself.
    seen: u128,
}

impl ReplayWindow {
    pub(super) fn starting_at(index: u64) -> Self {
        ReplayWindow { top: index, seen: 1 }
    }

    pub(super) fn top(&self) -> u64 {
        self.top
    }

    /// Whether `index` may still be accepted; does not record it, because
    /// the caller must authenticate first (§3.3.2: update only after auth).
    pub(super) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.top {
            return Ok(());
        }
        let back = self.top - index;
        if back >= WINDOW_SIZE || (self.seen >> back) & 1 == 1 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    pub(super) fn accept(&mut self, index: u64) {
        if index > self.top {
            let shift = index - self.top;
            self.seen = if shift >= WINDOW_SIZE { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = index;
        } else {
            let back = self.top - index;
            if back < WINDOW_SIZE {
                self.seen |= 1 << back;
            }
        }
    }
}

/// Guesses the 48-bit SRTP index of `seq` from the highest index seen so far
/// (Appendix A). The first packet of a stream gets ROC 0, as both ends start
/// there (§3.3.1).
///
/// A guess of ROC - 1 while ROC is still 0 would name a packet from before the
/// stream began; that is reported as a replay rather than wrapped to 2^32 - 1,
/// which could only fail authentication later at a higher cost.
pub(super) fn estimate_rtp_index(top: Option<u64>, seq: u16) -> Result<u64, SrtpError> {
    let seq = u64::from(seq);
    let Some(top) = top else {
        return Ok(seq);
    };
    let roc = top >> 16;
    let s_l = top & 0xffff;
    let guess = if s_l < SEQ_HALF {
        if seq > s_l + SEQ_HALF {
            roc.checked_sub(1).ok_or(SrtpError::Replay)?
        } else {
            roc
        }
    } else if seq + SEQ_HALF < s_l {
        roc + 1
    } else {
        roc
    };
    if guess > MAX_ROC {
        return Err(SrtpError::KeyExhausted);
    }
    Ok((guess << 16) | seq)
}

/// The ROC half of a 48-bit index, as it is appended before the RTP MAC.
pub(super) fn roc_of(index: u64) -> u32 {
    // Indices are built from a u32 ROC above, so the high bits are zero.
    (index >> 16) as u32
}
