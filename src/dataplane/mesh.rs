//! The can-gw rules that make one bus out of its members' links: a pure function of the bus's
//! link indexes, so the driver, the reconciler and the tests all derive the same set.
//!
//! Owns: the routing design. Must not touch: the kernel (it computes, the caller applies).
//!
//! Design (every choice below was seen in the kernel, see ARCHITECTURE.md):
//! - A full mesh of direct rules between the host-side links of the bus (each member's vxcan
//!   host end, and the host device): a frame reaches every other member in one hop. A star
//!   through a central vcan needs two hops and can-gw's default `max_hops=1` drops the second.
//! - Every rule has IIF_TX_OK: interface indexes are per namespace, and a container's vxcan
//!   end often shares its index with a host link; without the flag such frames are dropped.
//! - A rule carries classic or FD frames, never both: a bus with `fd=true` gets both rules.
//! - Rules toward the host device have ECHO, so sockets on the host device (`candump hbus`)
//!   see the bus's frames. The echo arrives on the host device having been routed once, so the
//!   rules out of the host device drop it (hop limit): nothing is delivered twice, nothing loops.
//!   Rules toward a vxcan host end have no ECHO: vxcan hands the frame to its peer in the
//!   container either way, and an echo on the host end would only cost a dropped lookup.

use std::collections::BTreeSet;

use super::cangw::{flags, Rule};

/// The host-side links of one bus, as kernel link indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusLinks {
    /// The host ends of the members' vxcan pairs.
    pub members: Vec<u32>,
    /// The bus's host device (`host_device`), if it has one.
    pub host_device: Option<u32>,
    /// Whether CAN FD frames are carried.
    pub fd: bool,
}

impl BusLinks {
    /// The rules that connect every link of the bus to every other, once.
    pub fn rules(&self) -> BTreeSet<Rule> {
        let all: Vec<u32> = self.indexes().collect();
        let mut rules = BTreeSet::new();
        for &src in &all {
            for &dst in &all {
                if src == dst {
                    continue;
                }
                let echo = if Some(dst) == self.host_device {
                    flags::ECHO
                } else {
                    0
                };
                let base = flags::IIF_TX_OK | echo;
                rules.insert(Rule {
                    src,
                    dst,
                    flags: base,
                });
                if self.fd {
                    rules.insert(Rule {
                        src,
                        dst,
                        flags: base | flags::CAN_FD,
                    });
                }
            }
        }
        rules
    }

    /// Every link index of the bus.
    pub fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.members.iter().copied().chain(self.host_device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(src: u32, dst: u32, flags: u16) -> Rule {
        Rule { src, dst, flags }
    }

    #[test]
    fn a_single_link_needs_no_rule() {
        let bus = BusLinks {
            members: vec![5],
            host_device: None,
            fd: true,
        };
        assert!(bus.rules().is_empty());
        let host_only = BusLinks {
            members: vec![],
            host_device: Some(3),
            fd: true,
        };
        assert!(host_only.rules().is_empty());
    }

    #[test]
    fn two_members_classic_only() {
        let bus = BusLinks {
            members: vec![5, 7],
            host_device: None,
            fd: false,
        };
        let expected: BTreeSet<Rule> =
            [rule(5, 7, flags::IIF_TX_OK), rule(7, 5, flags::IIF_TX_OK)].into();
        assert_eq!(bus.rules(), expected);
    }

    #[test]
    fn echo_only_toward_the_host_device_and_fd_rules_beside_classic() {
        let bus = BusLinks {
            members: vec![5, 7],
            host_device: Some(2),
            fd: true,
        };
        let rules = bus.rules();
        // 3 links: 6 directed pairs, classic and FD.
        assert_eq!(rules.len(), 12);
        for r in &rules {
            assert_ne!(r.src, r.dst);
            assert!(r.flags & flags::IIF_TX_OK != 0, "{r}");
            assert_eq!(r.flags & flags::ECHO != 0, r.dst == 2, "{r}");
        }
        assert!(rules.contains(&rule(5, 2, flags::IIF_TX_OK | flags::ECHO | flags::CAN_FD)));
        assert!(rules.contains(&rule(2, 7, flags::IIF_TX_OK)));
    }

    #[test]
    fn rule_count_grows_as_n_times_n_minus_one() {
        for n in [2u32, 10, 50] {
            let bus = BusLinks {
                members: (10..10 + n).collect(),
                host_device: None,
                fd: true,
            };
            assert_eq!(bus.rules().len() as u32, 2 * n * (n - 1), "{n} members");
        }
    }
}
