//! When a child plugin that exited is started again: after a delay that doubles with each quick
//! exit in a row, and not at all after too many. A pure type: the supervisor tells it how each
//! run ended and follows its [`Decision`].
//!
//! Owns: the count of quick exits, the delays, when to give up. Must not touch: processes,
//! clocks or sleeping (the caller measures how long a run lasted, and waits).

use std::time::Duration;

/// Crashes in a row (each within [`STABLE_RUN`] of its start) before a plugin is marked failed.
pub const MAX_RESTARTS: u32 = 5;
/// A child that ran this long before exiting is restarted with its count of failures reset.
pub const STABLE_RUN: Duration = Duration::from_secs(30);

/// What to do about a child that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It serves no bus: leave it stopped until a network needs it.
    Idle,
    /// Start it again after `delay`: restart number `attempt` of at most [`MAX_RESTARTS`].
    Restart { delay: Duration, attempt: u32 },
    /// It exited quickly `failures` times in a row after restarts: mark it failed.
    GiveUp { failures: u32 },
}

/// One child's restarts: the first after `backoff`, each next one after twice the last.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    backoff: Duration,
    /// Exits in a row that counted (see [`RestartPolicy::on_exit`]).
    count: u32,
}

impl RestartPolicy {
    pub fn new(backoff: Duration) -> RestartPolicy {
        RestartPolicy { backoff, count: 0 }
    }

    /// Restarts in a row so far, as `vxbus plugins` shows them.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// A new use of a failed plugin tries again from a clean count.
    pub fn reset(&mut self) {
        self.count = 0;
    }

    /// A run ended after `ran_for`. It counts when the child had registered (`was_running`) or
    /// serves buses; a run of [`STABLE_RUN`] or more first clears the count.
    pub fn on_exit(
        &mut self,
        ran_for: Duration,
        was_running: bool,
        serves_buses: bool,
    ) -> Decision {
        if ran_for >= STABLE_RUN {
            self.count = 0;
        }
        if was_running || serves_buses {
            self.count += 1;
        }
        if !serves_buses {
            return Decision::Idle;
        }
        if self.count > MAX_RESTARTS {
            return Decision::GiveUp {
                failures: self.count - 1,
            };
        }
        Decision::Restart {
            delay: self.backoff * (1 << (self.count - 1).min(MAX_RESTARTS)),
            attempt: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(100);

    #[test]
    fn quick_exits_back_off_doubling_then_give_up() {
        let mut policy = RestartPolicy::new(Duration::from_millis(500));
        let delays: Vec<Decision> = (0..6).map(|_| policy.on_exit(QUICK, true, true)).collect();
        let ms = |ms, attempt| Decision::Restart {
            delay: Duration::from_millis(ms),
            attempt,
        };
        assert_eq!(
            delays,
            [
                ms(500, 1),
                ms(1000, 2),
                ms(2000, 3),
                ms(4000, 4),
                ms(8000, 5),
                Decision::GiveUp { failures: 5 },
            ]
        );
        assert_eq!(policy.count(), 6);
        policy.reset();
        assert_eq!(policy.on_exit(QUICK, true, true), ms(500, 1));
    }

    #[test]
    fn a_stable_run_clears_the_count() {
        let mut policy = RestartPolicy::new(Duration::from_secs(1));
        for _ in 0..4 {
            policy.on_exit(QUICK, true, true);
        }
        assert_eq!(
            policy.on_exit(STABLE_RUN, true, true),
            Decision::Restart {
                delay: Duration::from_secs(1),
                attempt: 1
            }
        );
    }

    #[test]
    fn a_child_without_buses_is_left_stopped() {
        let mut policy = RestartPolicy::new(Duration::from_secs(1));
        // It had registered: the exit counts, but there is nothing to restart it for.
        assert_eq!(policy.on_exit(QUICK, true, false), Decision::Idle);
        assert_eq!(policy.count(), 1);
        // It never registered and serves nothing (a failed start): not counted.
        assert_eq!(policy.on_exit(QUICK, false, false), Decision::Idle);
        assert_eq!(policy.count(), 1);
    }
}
