//! A schedule table: what the master does in each slot ([`Schedule`], resolved from an LDF),
//! and the one clock that runs it ([`Stepper`]), shared by the bridge (a real master's table)
//! and the simulator (a simulated master's).
//!
//! Owns: slot timing. Slots are kept on absolute times, so a late one does not delay the rest;
//! a stall of more than a tick (a blocked adapter, a busy machine) restarts the table's clock
//! rather than firing the missed slots back to back. Must not touch adapters or frames: the
//! caller does what a slot says.

use std::time::{Duration, Instant};

use vxbus_lin::{ldf::Ldf, LinId};

/// What a schedule slot does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAction {
    /// The master publishes this frame (header and data).
    Publish(LinId),
    /// The master sends the header; a slave answers.
    Header(LinId),
    /// A command the plugin does not send (node configuration); the slot passes silently.
    Idle(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub action: SlotAction,
    pub delay: Duration,
}

/// A schedule table, resolved to frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub slots: Vec<Slot>,
}

/// The diagnostic frames: the master's request and the slave's response.
const MASTER_REQUEST: u32 = 0x3C;
const SLAVE_RESPONSE: u32 = 0x3D;

impl Schedule {
    /// The table `name` of `ldf`, each entry resolved to what the master does in its slot.
    pub fn from_ldf(ldf: &Ldf, name: &str) -> Option<Schedule> {
        let table = ldf.schedule_table(name)?;
        let master = ldf.master.as_ref().map(|m| m.name.as_str());
        let id = |n| LinId::new(n).expect("diagnostic ids are LIN ids");
        let slots = table
            .entries
            .iter()
            .map(|entry| {
                let action = match (entry.command.as_str(), ldf.frame(&entry.command)) {
                    (_, Some(frame)) if Some(frame.publisher.as_str()) == master => {
                        SlotAction::Publish(frame.id)
                    }
                    (_, Some(frame)) => SlotAction::Header(frame.id),
                    ("MasterReq", None) => SlotAction::Publish(id(MASTER_REQUEST)),
                    ("SlaveResp", None) => SlotAction::Header(id(SLAVE_RESPONSE)),
                    (other, None) => SlotAction::Idle(other.to_owned()),
                };
                Slot {
                    action,
                    delay: Duration::from_secs_f64(entry.delay_ms.max(0.0) / 1000.0),
                }
            })
            .collect();
        Some(Schedule {
            name: table.name.clone(),
            slots,
        })
    }
}

/// A schedule table running: which slot is next, and when it is due.
#[derive(Debug, Clone)]
pub struct Stepper {
    schedule: Schedule,
    next: usize,
    due: Instant,
}

impl Stepper {
    /// `schedule` with its first slot due at `now`; `None` for a table without slots.
    pub fn new(schedule: Schedule, now: Instant) -> Option<Stepper> {
        (!schedule.slots.is_empty()).then_some(Stepper {
            schedule,
            next: 0,
            due: now,
        })
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// When the next slot is due.
    pub fn due(&self) -> Instant {
        self.due
    }

    /// Starts the table again from its first slot, due at `now`.
    pub fn restart(&mut self, now: Instant) {
        self.next = 0;
        self.due = now;
    }

    /// The slot due at `now`, if one is; the clock moves on by its delay. When that leaves the
    /// clock more than `tick` behind `now`, it starts afresh from `now`.
    pub fn take_due(&mut self, now: Instant, tick: Duration) -> Option<Slot> {
        if now < self.due {
            return None;
        }
        let current = self.schedule.slots.get(self.next)?.clone();
        self.next = (self.next + 1) % self.schedule.slots.len();
        self.due += current.delay;
        if self.due + tick < now {
            self.due = now + current.delay;
        }
        Some(current)
    }
}

/// For tests: a table `T` of the master's frame 16 (published) and then headers, each given as
/// (LIN id, delay in ms); id 99 stands for a node configuration command (an idle slot).
#[cfg(test)]
pub fn test_table(slots: &[(u32, u64)]) -> Schedule {
    let slots = slots
        .iter()
        .map(|&(id, ms)| Slot {
            action: match LinId::new(id) {
                Some(id) if id.get() == 16 => SlotAction::Publish(id),
                Some(id) => SlotAction::Header(id),
                None => SlotAction::Idle("AssignNAD".into()),
            },
            delay: Duration::from_millis(ms),
        })
        .collect();
    Schedule {
        name: "T".into(),
        slots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn table() -> Schedule {
        test_table(&[(16, 20), (32, 10)])
    }

    #[test]
    fn slots_come_in_order_each_at_its_absolute_time() {
        let t0 = Instant::now();
        let mut stepper = Stepper::new(table(), t0).unwrap();
        let first = stepper.take_due(t0, TICK).unwrap();
        assert_eq!(first.action, table().slots[0].action);
        assert_eq!(stepper.due(), t0 + ms(20));
        assert_eq!(
            stepper.take_due(t0 + ms(19), TICK),
            None,
            "not before its time"
        );
        // 3 ms late: the next slot keeps its own time (20 + 10), not 3 ms later.
        let second = stepper.take_due(t0 + ms(23), TICK).unwrap();
        assert_eq!(second.action, table().slots[1].action);
        assert_eq!(stepper.due(), t0 + ms(30));
        assert_eq!(
            stepper.take_due(t0 + ms(30), TICK).unwrap().action,
            table().slots[0].action,
            "and round again"
        );
    }

    #[test]
    fn a_stall_restarts_the_clock_instead_of_a_burst() {
        let t0 = Instant::now();
        let mut stepper = Stepper::new(table(), t0).unwrap();
        stepper.take_due(t0, TICK).unwrap();
        // 200 ms pass (ten slots' worth): one slot now, the next one delay later.
        let late = t0 + ms(200);
        stepper.take_due(late, TICK).unwrap();
        assert_eq!(stepper.due(), late + ms(10));
        assert_eq!(stepper.take_due(late + ms(1), TICK), None);
    }

    #[test]
    fn restart_begins_at_the_first_slot_and_an_empty_table_has_no_stepper() {
        let t0 = Instant::now();
        let mut stepper = Stepper::new(table(), t0).unwrap();
        stepper.take_due(t0, TICK).unwrap();
        stepper.restart(t0 + ms(5));
        assert_eq!(
            stepper.take_due(t0 + ms(5), TICK).unwrap().action,
            table().slots[0].action
        );
        let empty = Schedule {
            name: "E".into(),
            slots: vec![],
        };
        assert!(Stepper::new(empty, t0).is_none());
    }
}
