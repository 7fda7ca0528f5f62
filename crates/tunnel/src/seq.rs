//! Loss and reordering seen in a UDP peer's sequence numbers (one byte, wrapping), as counts.
//!
//! Owns: the arithmetic. Must not touch sockets or counters' storage.

/// What one datagram's sequence number says, against those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first datagram, or the first after a silence: nothing to compare with.
    First,
    /// The one expected next.
    InOrder,
    /// Ahead of the expected one: `missing` datagrams were skipped (lost, or late).
    Ahead { missing: u8 },
    /// Behind the expected one: a datagram counted missing has come after all (reordered),
    /// or a duplicate.
    Late,
}

/// The next sequence number expected from one peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqTracker {
    next: Option<u8>,
}

impl SeqTracker {
    /// Forgets the past: the next datagram is [`Arrival::First`] (after a peer's silence, as it
    /// may have restarted its numbering).
    pub fn reset(&mut self) {
        self.next = None;
    }

    pub fn arrive(&mut self, seq: u8) -> Arrival {
        let Some(next) = self.next else {
            self.next = Some(seq.wrapping_add(1));
            return Arrival::First;
        };
        // Half the number space ahead counts as ahead, the other half as behind.
        match seq.wrapping_sub(next) {
            0 => {
                self.next = Some(seq.wrapping_add(1));
                Arrival::InOrder
            }
            missing @ 1..=127 => {
                self.next = Some(seq.wrapping_add(1));
                Arrival::Ahead { missing }
            }
            _ => Arrival::Late,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_late_arrivals_across_the_wrap() {
        let mut seq = SeqTracker::default();
        assert_eq!(seq.arrive(254), Arrival::First);
        assert_eq!(seq.arrive(255), Arrival::InOrder);
        assert_eq!(seq.arrive(0), Arrival::InOrder);
        assert_eq!(seq.arrive(3), Arrival::Ahead { missing: 2 });
        assert_eq!(seq.arrive(1), Arrival::Late);
        assert_eq!(seq.arrive(4), Arrival::InOrder);
        seq.reset();
        assert_eq!(seq.arrive(0), Arrival::First);
    }
}
