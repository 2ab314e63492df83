//! The RTP port range: even ports for RTP, the odd one above for RTCP (RFC 3550 §11), handed out
//! round-robin so a port just released is not reused at once (late packets of the old call must
//! not land in a new one). Sans-IO bookkeeping; the driver binds and reports failures.

use std::collections::{HashSet, VecDeque};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("the RTP port range {0}-{1} is exhausted")]
    Exhausted(u16, u16),
    #[error("the RTP port range {0}-{1} holds no even/odd pair")]
    Empty(u16, u16),
}

#[derive(Debug)]
pub struct PortPool {
    range: (u16, u16),
    free: VecDeque<u16>,
    in_use: HashSet<u16>,
}

impl PortPool {
    pub fn new(min: u16, max: u16) -> Result<PortPool, PortError> {
        let first = if min % 2 == 0 { min } else { min.saturating_add(1) };
        let free: VecDeque<u16> = (first..max).step_by(2).filter(|p| *p < max).collect();
        if free.is_empty() {
            return Err(PortError::Empty(min, max));
        }
        Ok(PortPool { range: (min, max), free, in_use: HashSet::new() })
    }

    /// An even RTP port; RTCP is the port above it.
    pub fn allocate(&mut self) -> Result<u16, PortError> {
        let port = self.free.pop_front().ok_or(PortError::Exhausted(self.range.0, self.range.1))?;
        self.in_use.insert(port);
        Ok(port)
    }

    pub fn release(&mut self, port: u16) {
        if self.in_use.remove(&port) {
            self.free.push_back(port);
        }
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin() {
        let mut pool = PortPool::new(30_001, 30_010).expect("pool");
        let ports: Vec<u16> = (0..4).map(|_| pool.allocate().expect("port")).collect();
        assert_eq!(ports, vec![30_002, 30_004, 30_006, 30_008]);
        assert_eq!(pool.allocate(), Err(PortError::Exhausted(30_001, 30_010)));
        pool.release(30_004);
        pool.release(30_004);
        assert_eq!(pool.available(), 1, "double release is harmless");
        assert_eq!(pool.allocate(), Ok(30_004));
        assert!(PortPool::new(40_001, 40_002).is_err(), "no even port with its odd partner inside");
    }
}
