//! The can-gw rules that make one bus out of its members' links: a pure function of the bus's
//! link indexes, so the driver, the reconciler and the tests all derive the same set; and the
//! difference between the rules the kernel lists and those the buses want ([`diff`]).
//!
//! Owns: the routing design. Must not touch: the kernel (it computes, the caller applies).
//!
//! Design (every choice below was seen in the kernel, see docs/data-plane.md in the repository):
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
        let mut rules = BTreeSet::new();
        for src in self.indexes() {
            for dst in self.indexes() {
                self.link(src, dst, &mut rules);
            }
        }
        rules
    }

    /// The rules of the bus that have link `index` at one end: what a member that just joined
    /// needs (its link is new, so no rule has it yet), without the rest of the mesh. Their
    /// number grows with the bus's size, not with its square.
    pub fn rules_of(&self, index: u32) -> BTreeSet<Rule> {
        let mut rules = BTreeSet::new();
        for other in self.indexes() {
            self.link(index, other, &mut rules);
            self.link(other, index, &mut rules);
        }
        rules
    }

    /// The rules from `src` to `dst` (none from a link to itself).
    fn link(&self, src: u32, dst: u32, rules: &mut BTreeSet<Rule>) {
        if src == dst {
            return;
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

    /// Every link index of the bus.
    pub fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.members.iter().copied().chain(self.host_device)
    }
}

/// What to change in the kernel so that the rules among the links of `buses` are exactly the
/// union of their meshes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDiff {
    /// Listed rules between two of the buses' links that no bus wants, and every second copy
    /// of a wanted one (the kernel accepts duplicates, and would deliver twice).
    pub remove: Vec<Rule>,
    /// Wanted rules the kernel does not list.
    pub add: Vec<Rule>,
}

/// The changes that make `listed` (the kernel's rules, as `CanGw::list` gives them) agree with
/// the meshes of `buses`. Rules with an end outside the buses' links are never touched: they
/// are someone else's.
pub fn diff(buses: &[BusLinks], listed: impl IntoIterator<Item = Rule>) -> RuleDiff {
    let mut desired: BTreeSet<Rule> = BTreeSet::new();
    let mut ours = BTreeSet::new();
    for bus in buses {
        desired.extend(bus.rules());
        ours.extend(bus.indexes());
    }
    let mut present = BTreeSet::new();
    let mut remove = Vec::new();
    for rule in listed {
        if !(ours.contains(&rule.src) && ours.contains(&rule.dst)) {
            continue;
        }
        if desired.contains(&rule) && present.insert(rule) {
            continue;
        }
        remove.push(rule);
    }
    let add = desired.difference(&present).copied().collect();
    RuleDiff { remove, add }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(src: u32, dst: u32, flags: u16) -> Rule {
        Rule { src, dst, flags }
    }

    #[test]
    fn a_members_rules_are_the_meshs_rules_that_name_it() {
        for (fd, host_device) in [(false, None), (true, Some(9)), (false, Some(9))] {
            let bus = BusLinks {
                members: vec![2, 4, 6, 8],
                host_device,
                fd,
            };
            for index in bus.indexes() {
                let named: BTreeSet<Rule> = bus
                    .rules()
                    .into_iter()
                    .filter(|r| r.src == index || r.dst == index)
                    .collect();
                assert_eq!(bus.rules_of(index), named, "{bus:?} {index}");
            }
        }
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

    /// The diff tests' bus: members 5 and 7, and host device 2 when `host` is set.
    fn bus_of_5_and_7(host: bool) -> BusLinks {
        BusLinks {
            members: vec![5, 7],
            host_device: host.then_some(2),
            fd: host,
        }
    }

    #[test]
    fn the_diff_adds_what_is_missing_and_removes_strays_and_second_copies() {
        let bus = bus_of_5_and_7(false);
        let wanted = rule(5, 7, flags::IIF_TX_OK);
        let listed = [
            wanted,
            wanted,                       // a duplicate: removed once
            rule(5, 7, flags::ECHO),      // between our links, not wanted
            rule(5, 9, flags::IIF_TX_OK), // 9 is not ours: untouched
            rule(3, 4, flags::IIF_TX_OK), // someone else's: untouched
        ];
        let diff = diff(std::slice::from_ref(&bus), listed);
        assert_eq!(diff.remove, [wanted, rule(5, 7, flags::ECHO)]);
        assert_eq!(diff.add, [rule(7, 5, flags::IIF_TX_OK)]);
    }

    #[test]
    fn the_diff_of_a_bus_in_agreement_is_empty() {
        let bus = bus_of_5_and_7(true);
        assert_eq!(
            diff(std::slice::from_ref(&bus), bus.rules()),
            RuleDiff::default()
        );
        // With no buses nothing is ours, whatever the kernel lists.
        assert_eq!(diff(&[], bus.rules()), RuleDiff::default());
    }
}
