//! One network's bridge between its CAN bus and a LIN bus: a loop on one thread that owns the
//! LIN side (an adapter's channel or the simulator) for its whole life, as Kvaser asks of a
//! handle, takes CAN frames in as [`Command`]s, hands CAN frames out, and runs the master's
//! schedule table.
//!
//! Owns: the order of LIN calls, the schedule's timing (each slot at its start time, the loop
//! waking at least every base tick for CAN frames), the latest data for master-published
//! frames, error counts and their logs. Must not touch CAN sockets or the chunk protocol: the
//! plugin's tasks feed the loop and carry its frames to the bus.

use std::{
    collections::HashMap,
    sync::mpsc::{Receiver, TryRecvError},
    time::{Duration, Instant},
};

use kvaser_canlib::{LinChannel, LinError};
use vxbus_lin::{LinFrame, LinId, Role};

use crate::{
    mapping::{self, CanIn, CanOut, ToLin},
    options::Plan,
    schedule::{SlotAction, Stepper},
};

/// What the bridge's LIN side can do: an adapter's channel, or the simulator.
pub trait LinPort: Send {
    fn write(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError>;
    fn request(&mut self, id: LinId) -> Result<(), LinError>;
    fn update(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError>;
    fn clear(&mut self, id: LinId) -> Result<(), LinError>;
    fn read(&mut self, timeout: Duration) -> Result<Option<LinFrame>, LinError>;
}

impl LinPort for LinChannel {
    fn write(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError> {
        LinChannel::write(self, id, data)
    }
    fn request(&mut self, id: LinId) -> Result<(), LinError> {
        LinChannel::request(self, id)
    }
    fn update(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError> {
        LinChannel::update(self, id, data)
    }
    fn clear(&mut self, id: LinId) -> Result<(), LinError> {
        LinChannel::clear(self, id)
    }
    fn read(&mut self, timeout: Duration) -> Result<Option<LinFrame>, LinError> {
        LinChannel::read(self, timeout)
    }
}

/// A CAN frame from the bus, owned, for the bridge's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanFrameIn {
    pub id: u32,
    pub extended: bool,
    pub remote: bool,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A frame from the CAN bus.
    Can(CanFrameIn),
    /// The network is going: end the loop (the LIN side is closed when dropped).
    Stop,
}

/// The most CAN frames the loop takes from its queue between two looks at the schedule.
pub const COMMANDS_PER_TURN: usize = 32;

/// Errors after which the LIN side is gone, not merely unlucky.
fn fatal(e: LinError) -> bool {
    matches!(
        e,
        LinError::NoCard
            | LinError::InvalidHandle
            | LinError::DriverFailed
            | LinError::NotInitialized
    )
}

/// Logs the first ten of a kind, then every thousandth, so a silent slave polled every slot
/// does not flood the log.
pub fn worth_logging(count: u32) -> bool {
    count <= 10 || count % 1000 == 0
}

pub struct Bridge {
    port: Box<dyn LinPort>,
    role: Role,
    name: String,
    status_id: u16,
    tick: Duration,
    /// The master's schedule table, if it runs one.
    schedule: Option<Stepper>,
    running: bool,
    /// Master: the latest data the bus gave for each frame the schedule publishes (the LDF's
    /// initial data until then).
    published: HashMap<LinId, Vec<u8>>,
    lin_errors: u32,
    call_errors: u32,
}

impl Bridge {
    /// A bridge for `plan` on `port`, which is open, set up and on the bus.
    pub fn new(port: Box<dyn LinPort>, plan: &Plan) -> Bridge {
        let options = &plan.options;
        // The bridge runs a schedule only as master; a simulated master (host_mode=slave) runs
        // its own inside the simulator.
        let schedule = plan
            .schedule
            .clone()
            .filter(|_| options.role == Role::Master);
        let schedule = schedule.and_then(|s| Stepper::new(s, Instant::now()));
        let mut published = HashMap::new();
        if let (Some(schedule), Some(ldf)) = (schedule.as_ref().map(Stepper::schedule), &plan.ldf) {
            for slot in &schedule.slots {
                if let SlotAction::Publish(id) = slot.action {
                    if let Some(frame) = ldf.frame_by_id(id) {
                        published.insert(id, ldf.initial_data(frame));
                    }
                }
            }
        }
        Bridge {
            port,
            role: options.role,
            name: options.name.clone(),
            status_id: options.status_id,
            tick: options.base_tick,
            running: schedule.is_some() && options.schedule_autostart,
            schedule,
            published,
            lin_errors: 0,
            call_errors: 0,
        }
    }

    /// Runs until [`Command::Stop`] or until every sender is gone; `emit` puts a frame onto
    /// the CAN bus. An `Err` says why the LIN side failed for good.
    ///
    /// Each turn takes at most [`COMMANDS_PER_TURN`] commands before it looks at the schedule, so
    /// a member flooding the bus delays a slot by at most that many LIN calls, not for ever.
    pub fn run(
        mut self,
        commands: Receiver<Command>,
        mut emit: impl FnMut(CanOut),
    ) -> Result<(), String> {
        loop {
            let mut more = true;
            for _ in 0..COMMANDS_PER_TURN {
                match commands.try_recv() {
                    Ok(Command::Can(frame)) => {
                        let was_running = self.running;
                        self.on_can(frame)?;
                        if let (true, false, Some(schedule)) =
                            (self.running, was_running, &mut self.schedule)
                        {
                            schedule.restart(Instant::now());
                        }
                    }
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return Ok(()),
                    Err(TryRecvError::Empty) => {
                        more = false;
                        break;
                    }
                }
            }
            // With commands still waiting, the LIN side is only polled.
            let mut wait = if more { Duration::ZERO } else { self.tick };
            if self.running {
                let (now, tick) = (Instant::now(), self.tick);
                let due = self.schedule.as_mut().and_then(|s| s.take_due(now, tick));
                if let Some(slot) = due {
                    self.fire(&slot.action)?;
                }
                if let Some(schedule) = &self.schedule {
                    wait = wait.min(schedule.due().saturating_duration_since(Instant::now()));
                }
            }
            match self.port.read(wait) {
                Ok(Some(frame)) => self.on_lin(&frame, &mut emit),
                Ok(None) => {}
                Err(e) if fatal(e) => return Err(format!("reading the LIN bus: {e}")),
                Err(e) => {
                    self.call_failed("reading the LIN bus", e)?;
                    std::thread::sleep(self.tick);
                }
            }
        }
    }

    /// Counts and logs a failed LIN call; `Err` if the LIN side is gone.
    fn call_failed(&mut self, what: &str, e: LinError) -> Result<(), String> {
        if fatal(e) {
            return Err(format!("{what}: {e}"));
        }
        self.call_errors += 1;
        if worth_logging(self.call_errors) {
            eprintln!(
                "{}: {what}: {e} ({} failed calls so far)",
                self.name, self.call_errors
            );
        }
        Ok(())
    }

    fn fire(&mut self, action: &SlotAction) -> Result<(), String> {
        let result = match action {
            SlotAction::Publish(id) => match self.published.get(id) {
                Some(data) => self.port.write(*id, data),
                None => return Ok(()), // no data yet (a diagnostic request nobody sent)
            },
            SlotAction::Header(id) => self.port.request(*id),
            SlotAction::Idle(_) => return Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.call_failed(&format!("schedule slot {action:?}"), e),
        }
    }

    fn in_schedule(&self, id: LinId) -> bool {
        self.schedule.as_ref().is_some_and(|s| {
            s.schedule()
                .slots
                .iter()
                .any(|slot| slot.action == SlotAction::Publish(id))
        })
    }

    fn on_can(&mut self, frame: CanFrameIn) -> Result<(), String> {
        // The status identifier, from the bus: starts (data 1) or stops (data 0) the schedule.
        if !frame.extended && frame.id == u32::from(self.status_id) {
            if let (Some(schedule), Some(&on)) = (&self.schedule, frame.data.first()) {
                if (on != 0) != self.running {
                    self.running = on != 0;
                    let state = if self.running { "started" } else { "stopped" };
                    eprintln!(
                        "{}: schedule table {} {state} by the bus",
                        self.name,
                        schedule.schedule().name
                    );
                }
            }
            return Ok(());
        }
        let can = CanIn {
            id: frame.id,
            extended: frame.extended,
            remote: frame.remote,
            data: &frame.data,
        };
        let (what, result) = match mapping::to_lin(self.role, can) {
            ToLin::Publish(id, data) => {
                let scheduled = self.running && self.in_schedule(id);
                let result = if scheduled {
                    Ok(()) // goes out in its slot
                } else {
                    self.port.write(id, &data)
                };
                self.published.insert(id, data);
                ("publishing", result)
            }
            ToLin::Header(id) => ("sending the header", self.port.request(id)),
            ToLin::Respond(id, data) => ("setting the response", self.port.update(id, &data)),
            ToLin::Withdraw(id) => ("withdrawing the response", self.port.clear(id)),
            ToLin::NotLin(_) => return Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.call_failed(&format!("{what} for CAN id 0x{:X}", frame.id), e),
        }
    }

    fn on_lin(&mut self, frame: &LinFrame, emit: &mut impl FnMut(CanOut)) {
        let errors = frame.flags.errors();
        if !errors.is_empty() {
            self.lin_errors += 1;
            if worth_logging(self.lin_errors) {
                eprintln!(
                    "{}: LIN error on id 0x{:02X}: {} ({} so far; reported on CAN id 0x{:X})",
                    self.name,
                    frame.id,
                    errors.join(", "),
                    self.lin_errors,
                    self.status_id
                );
            }
        }
        if let Some(out) = mapping::to_can(frame, self.status_id, self.lin_errors) {
            emit(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        options::{Options, Target},
        schedule::{test_table, Schedule},
    };
    use std::sync::{mpsc, Arc, Mutex};
    use vxbus_lin::{Checksum, FrameFlags};

    /// Records calls; answers headers from a table.
    #[derive(Clone, Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<(Instant, String)>>>,
        queue: Arc<Mutex<Vec<LinFrame>>>,
        /// How long a write takes (an adapter's call is not free).
        write_time: Duration,
    }

    impl Recorder {
        fn log(&self, call: String) {
            self.calls.lock().unwrap().push((Instant::now(), call));
        }
        fn calls(&self) -> Vec<String> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .map(|(_, c)| c.clone())
                .collect()
        }
    }

    impl LinPort for Recorder {
        fn write(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError> {
            std::thread::sleep(self.write_time);
            self.log(format!("write {} {data:?}", id.get()));
            Ok(())
        }
        fn request(&mut self, id: LinId) -> Result<(), LinError> {
            self.log(format!("request {}", id.get()));
            let flags = if id.get() == 33 {
                FrameFlags::RX | FrameFlags::CHECKSUM_ERROR
            } else {
                FrameFlags::RX
            };
            self.queue.lock().unwrap().push(LinFrame {
                id: id.get().into(),
                data: vec![7, 7],
                flags: FrameFlags(flags),
                timestamp_ms: 0,
            });
            Ok(())
        }
        fn update(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError> {
            self.log(format!("update {} {data:?}", id.get()));
            Ok(())
        }
        fn clear(&mut self, id: LinId) -> Result<(), LinError> {
            self.log(format!("clear {}", id.get()));
            Ok(())
        }
        fn read(&mut self, timeout: Duration) -> Result<Option<LinFrame>, LinError> {
            if let Some(frame) = self.queue.lock().unwrap().pop() {
                return Ok(Some(frame));
            }
            std::thread::sleep(timeout);
            Ok(None)
        }
    }

    fn plan(role: Role, schedule: Option<Schedule>, autostart: bool) -> Plan {
        Plan {
            options: Options {
                role,
                target: Target::Simulator,
                name: "test".into(),
                base_tick: Duration::from_millis(5),
                database: None,
                schedule_table: None,
                schedule_autostart: autostart,
                checksum: None,
                status_id: 0x7F0,
            },
            ldf: None,
            bitrate: 19200,
            checksum: Checksum::Enhanced,
            schedule,
        }
    }

    fn can(id: u32, data: &[u8]) -> Command {
        Command::Can(CanFrameIn {
            id,
            extended: false,
            remote: false,
            data: data.to_vec(),
        })
    }

    /// Runs a bridge on `port` with `commands`, then stops it after `for_ms`; returns what it
    /// put on the bus.
    fn run(port: Recorder, plan: Plan, commands: Vec<Command>, for_ms: u64) -> Vec<CanOut> {
        let (tx, rx) = mpsc::channel();
        for c in commands {
            tx.send(c).unwrap();
        }
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let bridge = Bridge::new(Box::new(port), &plan);
        let thread = std::thread::spawn(move || bridge.run(rx, |f| sink.lock().unwrap().push(f)));
        std::thread::sleep(Duration::from_millis(for_ms));
        tx.send(Command::Stop).unwrap();
        thread.join().unwrap().unwrap();
        let out = out.lock().unwrap().clone();
        out
    }

    #[test]
    fn master_frames_become_lin_calls_and_answers_come_back() {
        let port = Recorder::default();
        let remote = Command::Can(CanFrameIn {
            id: 34,
            extended: false,
            remote: true,
            data: vec![],
        });
        let out = run(
            port.clone(),
            plan(Role::Master, None, true),
            vec![
                can(16, &[1, 2]),
                can(32, &[]),
                remote,
                can(33, &[]),
                can(0x100, &[1]),
            ],
            50,
        );
        assert_eq!(
            port.calls(),
            ["write 16 [1, 2]", "request 32", "request 34", "request 33"]
        );
        let ids: Vec<u16> = out.iter().map(|f| f.id).collect();
        // Answers come back in the order read; 33's has a checksum error: a status frame.
        assert!(ids.contains(&32) && ids.contains(&34), "{out:?}");
        let status = out.iter().find(|f| f.id == 0x7F0).expect("a status frame");
        assert_eq!(status.data, [33, 2, 1, 0, 0, 0]);
    }

    #[test]
    fn slave_frames_set_and_withdraw_responses() {
        let port = Recorder::default();
        run(
            port.clone(),
            plan(Role::Slave, None, true),
            vec![can(5, &[9]), can(5, &[])],
            20,
        );
        assert_eq!(port.calls(), ["update 5 [9]", "clear 5"]);
    }

    /// 16 published, 32's header, a node configuration command, 20 ms apart.
    fn table() -> Schedule {
        test_table(&[(16, 20), (32, 20), (99, 20)])
    }

    #[test]
    fn the_schedule_runs_in_order_with_the_latest_data() {
        let port = Recorder::default();
        run(
            port.clone(),
            plan(Role::Master, Some(table()), true),
            vec![can(16, &[4])],
            130,
        );
        let calls = port.calls.lock().unwrap().clone();
        let names: Vec<&str> = calls.iter().map(|(_, c)| c.as_str()).collect();
        // 16 is in the table: its data waits for the slot; slots every 20 ms, 7 in 130 ms.
        assert_eq!(
            &names[..4],
            ["write 16 [4]", "request 32", "write 16 [4]", "request 32"]
        );
        // Never early (how late depends on the machine's load; the VM test checks on time).
        let gap = calls[2].0 - calls[0].0;
        assert!(gap >= Duration::from_millis(59), "{gap:?}");
    }

    #[test]
    fn without_autostart_the_status_id_starts_and_stops_the_table() {
        let port = Recorder::default();
        run(
            port.clone(),
            plan(Role::Master, Some(table()), false),
            vec![],
            50,
        );
        assert!(port.calls().is_empty(), "{:?}", port.calls());
        let port = Recorder::default();
        run(
            port.clone(),
            plan(Role::Master, Some(table()), false),
            vec![can(0x7F0, &[1]), can(16, &[3])],
            30,
        );
        assert!(
            port.calls().contains(&"request 32".to_owned()),
            "{:?}",
            port.calls()
        );
        // Started, 16 was in the table: no immediate write.
        let port = Recorder::default();
        run(
            port.clone(),
            plan(Role::Master, Some(table()), true),
            vec![can(0x7F0, &[0]), can(16, &[3])],
            50,
        );
        assert_eq!(port.calls(), ["write 16 [3]"], "stopped: written at once");
    }

    /// 200 frames from the bus wait in the queue, each a 1 ms write: the table's header slot
    /// (its second: the first publishes 16, which has no data yet, so it makes no call) still
    /// comes after at most two turns' worth of them, not after all 200.
    #[test]
    fn a_flood_from_the_bus_does_not_starve_the_schedule() {
        let port = Recorder {
            write_time: Duration::from_millis(1),
            ..Recorder::default()
        };
        let flood = (0..200).map(|n| can(17, &[n as u8])).collect();
        run(
            port.clone(),
            plan(Role::Master, Some(table()), true),
            flood,
            120,
        );
        let calls = port.calls();
        let first_slot = calls.iter().position(|c| c == "request 32");
        assert!(
            first_slot.is_some_and(|at| at <= 2 * COMMANDS_PER_TURN),
            "the first header after {first_slot:?} calls: {:?}",
            &calls[..calls.len().min(40)]
        );
    }
}
