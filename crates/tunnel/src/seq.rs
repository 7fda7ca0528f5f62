//! Loss, reordering, duplicates and restarts seen in a UDP peer's sequence numbers (one byte,
//! wrapping), as counts.
//!
//! One byte cannot tell every story apart; the rules, and where they guess:
//! - A number ahead of the next by up to 127 counts the skipped ones lost; one that comes later
//!   is counted late instead. A datagram held back more than 127 behind its successors reads as
//!   a jump ahead.
//! - The same bytes under the same number within [`DUPLICATE_WITHIN`] are a network duplicate.
//! - A number already seen through that is neither (nor a copy, at any age, of what came under
//!   it) is passed on uncounted, and is the first of a far end numbering afresh (a restart) if
//!   the very next datagram follows it. A burst of 128 to 255 datagrams lost reads the same
//!   way, as a restart.
//! - After a silence, a plain peer's 0, or a number behind, is a restart at once (cannelloni and
//!   vxbus number from 0); a number ahead counts the skipped ones lost.
//! - A far end that restarts and sends the very bytes of its last run under the same numbers
//!   (the same frames in the same datagrams) is not told from late copies: its frames go on,
//!   no restart is counted.
//!
//! Owns: the arithmetic. Must not touch sockets or counters' storage.

use std::time::{Duration, Instant};

/// What one datagram's sequence number says, against those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first datagram, or the first after a silence: nothing to compare with.
    First,
    /// The one expected next.
    InOrder,
    /// Ahead of the expected one: `missing` datagrams were skipped (lost, or late).
    Ahead { missing: u8 },
    /// Behind the expected one: a datagram counted missing has come after all (reordered).
    Late,
    /// The same datagram again, right after it came (the network duplicated it): its frames
    /// must not go on again.
    Duplicate,
    /// Behind the expected one, neither counted missing nor a copy: from before the first
    /// datagram seen, a copy too late to tell, or the first of a far end numbering afresh (the
    /// next datagram says which). Its frames go on; nothing is counted.
    Stale,
    /// The far end numbers its datagrams afresh (it restarted; or, after a silence, the link
    /// was down that long): this datagram follows a [`Stale`](Arrival::Stale) one, or is a 0
    /// or a number behind after a silence. Counting starts again; nothing is counted lost.
    Restart,
}

/// How soon after its original a network duplicate comes, at most; a peer that restarted
/// cannot send the same bytes under the same number this soon.
pub const DUPLICATE_WITHIN: Duration = Duration::from_millis(100);

/// The next sequence number expected from one peer, and what came before it.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    next: Option<u8>,
    /// The numbers behind `next` counted missing that have not come since (bit `n`: the number
    /// `n + 1` behind).
    missing: u128,
    /// How far behind `next` this tracker has seen through since the first datagram (at most
    /// 128): a number further behind is from before.
    span: u8,
    /// By number: when a datagram with it last came, and a fingerprint of its bytes.
    recent: Box<[(Option<Instant>, u64); 256]>,
    /// The last datagram, if it was [`Arrival::Stale`] though seen through and not a copy of
    /// what came under its number: its number, fingerprint and arrival. A restart, if the next
    /// one follows it.
    suspect: Option<(u8, u64, Instant)>,
}

impl Default for SeqTracker {
    fn default() -> SeqTracker {
        SeqTracker {
            next: None,
            missing: 0,
            span: 0,
            recent: Box::new([(None, 0); 256]),
            suspect: None,
        }
    }
}

impl SeqTracker {
    /// Forgets the past: the next datagram is [`Arrival::First`].
    pub fn reset(&mut self) {
        *self = SeqTracker::default();
    }

    /// A datagram numbered `seq`, whose bytes have `fingerprint`, came at `now`.
    pub fn arrive(&mut self, seq: u8, fingerprint: u64, now: Instant) -> Arrival {
        let Some(next) = self.next else {
            self.take(seq, fingerprint, now);
            self.span = 1;
            return Arrival::First;
        };
        if let Some((suspect, suspect_print, suspect_at)) = self.suspect.take() {
            let copy_of_seen = self.recent[usize::from(seq)].1 == fingerprint;
            if seq == suspect.wrapping_add(1)
                && seq != next
                && !self.is_missing(next, seq)
                && !copy_of_seen
            {
                // The far end goes on from the suspect: it numbers afresh. The suspect is the
                // new run's first datagram (so that a copy of it is told as one).
                let restarted = self.restart(suspect, suspect_print, suspect_at);
                self.arrive(seq, fingerprint, now);
                return restarted;
            }
        }
        // Half the number space ahead counts as ahead, the other half as behind.
        match seq.wrapping_sub(next) {
            ahead @ 0..=127 => {
                // Each step ahead pushes the window back by one, `seq` itself taken.
                let steps = u32::from(ahead) + 1;
                let skipped = (1u128 << ahead) - 1;
                self.missing = self.missing.checked_shl(steps).unwrap_or(0) | (skipped << 1);
                self.span = self.span.saturating_add(ahead).saturating_add(1).min(128);
                self.take(seq, fingerprint, now);
                match ahead {
                    0 => Arrival::InOrder,
                    missing => Arrival::Ahead { missing },
                }
            }
            _ => {
                // 1 for the number just before the next, up to 128.
                let behind = next.wrapping_sub(seq);
                let bit = 1u128 << (behind - 1);
                let (at, seen) = self.recent[usize::from(seq)];
                let copy = seen == fingerprint
                    && at.is_some_and(|at| now.saturating_duration_since(at) <= DUPLICATE_WITHIN);
                if self.missing & bit != 0 {
                    self.missing &= !bit;
                    self.recent[usize::from(seq)] = (Some(now), fingerprint);
                    Arrival::Late
                } else if copy {
                    Arrival::Duplicate
                } else {
                    // Not a copy of what came under its number, at any age (a late copy of one
                    // seen through restarts nothing).
                    if behind <= self.span && seen != fingerprint {
                        self.suspect = Some((seq, fingerprint, now));
                    }
                    // A copy of this one soon after is told as such.
                    self.recent[usize::from(seq)] = (Some(now), fingerprint);
                    Arrival::Stale
                }
            }
        }
    }

    /// [`arrive`](SeqTracker::arrive) for a plain peer's first datagram after a silence: the
    /// next number means the peer was only idle, a number ahead that datagrams were lost
    /// meanwhile; a 0 or a number behind starts the count afresh.
    pub fn arrive_after_silence(&mut self, seq: u8, fingerprint: u64, now: Instant) -> Arrival {
        let Some(next) = self.next else {
            return self.arrive(seq, fingerprint, now);
        };
        if seq == next || (seq != 0 && seq.wrapping_sub(next) <= 127) {
            return self.arrive(seq, fingerprint, now);
        }
        self.restart(seq, fingerprint, now)
    }

    fn restart(&mut self, seq: u8, fingerprint: u64, now: Instant) -> Arrival {
        self.reset();
        self.arrive(seq, fingerprint, now);
        Arrival::Restart
    }

    /// Whether `seq`, behind `next`, is counted missing.
    fn is_missing(&self, next: u8, seq: u8) -> bool {
        match next.wrapping_sub(seq) {
            behind @ 1..=128 => self.missing & (1u128 << (behind - 1)) != 0,
            _ => false,
        }
    }

    fn take(&mut self, seq: u8, fingerprint: u64, now: Instant) {
        self.next = Some(seq.wrapping_add(1));
        self.recent[usize::from(seq)] = (Some(now), fingerprint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams that differ by number only, all at one moment unless told otherwise.
    struct Peer {
        seq: SeqTracker,
        now: Instant,
    }

    impl Peer {
        fn new() -> Peer {
            Peer {
                seq: SeqTracker::default(),
                now: Instant::now(),
            }
        }

        /// A peer that has had `0..=last`, in order.
        fn through(last: u8) -> Peer {
            let mut peer = Peer::new();
            for seq in 0..=last {
                peer.arrive(seq);
            }
            peer
        }

        fn arrive(&mut self, seq: u8) -> Arrival {
            self.seq.arrive(seq, u64::from(seq), self.now)
        }
    }

    #[test]
    fn gaps_and_late_arrivals_across_the_wrap() {
        let mut peer = Peer::new();
        assert_eq!(peer.arrive(254), Arrival::First);
        assert_eq!(peer.arrive(255), Arrival::InOrder);
        assert_eq!(peer.arrive(0), Arrival::InOrder);
        assert_eq!(peer.arrive(3), Arrival::Ahead { missing: 2 });
        assert_eq!(peer.arrive(1), Arrival::Late);
        assert_eq!(peer.arrive(4), Arrival::InOrder);
        assert_eq!(peer.arrive(2), Arrival::Late);
        // A gap as wide as the window: its oldest number is still told late.
        assert_eq!(peer.arrive(132), Arrival::Ahead { missing: 127 });
        assert_eq!(peer.arrive(5), Arrival::Late);
        assert_eq!(peer.arrive(131), Arrival::Late);
        peer.seq.reset();
        assert_eq!(peer.arrive(0), Arrival::First);
    }

    #[test]
    fn a_duplicate_is_the_same_bytes_again_at_once() {
        let mut peer = Peer::new();
        assert_eq!(peer.arrive(10), Arrival::First);
        assert_eq!(peer.arrive(10), Arrival::Duplicate);
        assert_eq!(peer.arrive(13), Arrival::Ahead { missing: 2 });
        assert_eq!(peer.arrive(12), Arrival::Late);
        assert_eq!(peer.arrive(12), Arrival::Duplicate);
        assert_eq!(peer.arrive(11), Arrival::Late);
        assert_eq!(peer.arrive(13), Arrival::Duplicate);
        // Before the first datagram: passed on, nothing counted.
        assert_eq!(peer.arrive(9), Arrival::Stale);
    }

    #[test]
    fn a_peer_that_numbers_afresh_while_sending_restarts_the_count() {
        let mut peer = Peer::through(40);
        // It restarted at once, without a silence: its 0 and 1 are other bytes than the old
        // ones (other frames). The 1 after the 0 says so.
        assert_eq!(peer.seq.arrive(0, 1000, peer.now), Arrival::Stale);
        assert_eq!(peer.seq.arrive(1, 1001, peer.now), Arrival::Restart);
        assert_eq!(peer.seq.arrive(2, 1002, peer.now), Arrival::InOrder);
        assert_eq!(
            peer.seq.arrive(5, 1005, peer.now),
            Arrival::Ahead { missing: 2 }
        );
        // A run that sends the very bytes of the old one under the same numbers (the same
        // frames, in the same datagrams) is not told from late copies: nothing restarts, the
        // frames go on.
        let mut same = Peer::through(40);
        same.now += DUPLICATE_WITHIN * 2;
        assert_eq!(same.arrive(0), Arrival::Stale);
        assert_eq!(same.arrive(1), Arrival::Stale);
    }

    #[test]
    fn a_late_copy_is_passed_on_and_restarts_nothing() {
        let mut peer = Peer::through(40);
        peer.now += DUPLICATE_WITHIN * 2;
        assert_eq!(
            peer.arrive(30),
            Arrival::Stale,
            "too late to be told a copy"
        );
        assert_eq!(peer.arrive(30), Arrival::Duplicate, "its own copy, at once");
        assert_eq!(peer.arrive(41), Arrival::InOrder);
        // Just behind the next, then the next: the far end went on, nothing restarted.
        peer.now += DUPLICATE_WITHIN * 2;
        assert_eq!(peer.arrive(41), Arrival::Stale);
        assert_eq!(peer.arrive(42), Arrival::InOrder);
        // Before the first datagram seen: never the start of a restart.
        let mut fresh = Peer::new();
        assert_eq!(fresh.arrive(100), Arrival::First);
        assert_eq!(fresh.arrive(50), Arrival::Stale);
        assert_eq!(fresh.arrive(51), Arrival::Stale);
        assert_eq!(fresh.arrive(101), Arrival::InOrder);
    }

    #[test]
    fn late_copies_in_a_row_restart_nothing() {
        let mut peer = Peer::through(40);
        peer.now += DUPLICATE_WITHIN * 2;
        assert_eq!(peer.arrive(30), Arrival::Stale);
        assert_eq!(
            peer.arrive(31),
            Arrival::Stale,
            "a late copy too, not a restart"
        );
        assert_eq!(peer.arrive(41), Arrival::InOrder, "nothing counted lost");
        // A number counted missing that follows a suspect is late, not a restart.
        assert_eq!(peer.arrive(44), Arrival::Ahead { missing: 2 });
        assert_eq!(peer.seq.arrive(20, 99, peer.now), Arrival::Stale);
        assert_eq!(
            peer.arrive(21),
            Arrival::Stale,
            "seen through, its own bytes"
        );
        assert_eq!(peer.seq.arrive(42, 99, peer.now), Arrival::Late);
    }

    #[test]
    fn a_restarts_first_datagram_is_known_for_its_copies() {
        let mut peer = Peer::through(40);
        // Its datagrams carry other frames than the old run's under the same numbers.
        assert_eq!(peer.seq.arrive(0, 1000, peer.now), Arrival::Stale);
        assert_eq!(peer.seq.arrive(1, 1001, peer.now), Arrival::Restart);
        assert_eq!(peer.seq.arrive(0, 1000, peer.now), Arrival::Duplicate);
        assert_eq!(peer.seq.arrive(2, 1002, peer.now), Arrival::InOrder);
    }

    #[test]
    fn over_128_lost_in_a_row_reads_as_a_restart() {
        let mut peer = Peer::through(200);
        // 201 to 100 (156 datagrams, numbers wrapping) lost, in a moment: 101 is behind the
        // next (201), seen through.
        peer.now += DUPLICATE_WITHIN * 2;
        assert_eq!(peer.seq.arrive(101, 1101, peer.now), Arrival::Stale);
        assert_eq!(peer.seq.arrive(102, 1102, peer.now), Arrival::Restart);
        assert_eq!(peer.seq.arrive(103, 1103, peer.now), Arrival::InOrder);
    }

    #[test]
    fn after_a_silence_a_gap_ahead_is_loss_and_a_zero_or_behind_a_restart() {
        let mut peer = Peer::new();
        let now = peer.now;
        assert_eq!(peer.seq.arrive_after_silence(5, 5, now), Arrival::First);
        assert_eq!(peer.arrive(6), Arrival::InOrder);
        assert_eq!(peer.seq.arrive_after_silence(7, 7, now), Arrival::InOrder);
        // The two sent during the silence were lost (keepalives on a lossy link).
        assert_eq!(
            peer.seq.arrive_after_silence(10, 10, now),
            Arrival::Ahead { missing: 2 }
        );
        assert_eq!(peer.seq.arrive_after_silence(0, 0, now), Arrival::Restart);
        assert_eq!(peer.arrive(1), Arrival::InOrder);
        assert_eq!(peer.arrive(1), Arrival::Duplicate);
        for seq in 2..=20 {
            peer.arrive(seq);
        }
        assert_eq!(peer.seq.arrive_after_silence(3, 3, now), Arrival::Restart);
        assert_eq!(peer.arrive(4), Arrival::InOrder);
    }
}
