//! `type=simulator`: a LIN bus with no adapter, made from the LDF, behind the same
//! [`LinPort`] as an adapter's channel so the bridge runs unchanged.
//!
//! - host_mode=master (the containers are the master): the LDF's slave nodes answer headers
//!   for the frames they publish, with their signals' initial values; a header nobody
//!   publishes gets no answer (a no-data error, as on a real bus).
//! - host_mode=slave (the containers are a slave): a simulated master runs the schedule table
//!   and publishes its own frames with their initial values; a header is answered with the
//!   response the bus set (linUpdateMessage's part), else by the LDF's slave that publishes the
//!   frame.
//!
//! Owns: the simulated nodes and their timing. Must not touch adapters or sockets. Checksums
//! and bit rates do not apply; frames are never corrupted.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use kvaser_canlib::LinError;
use vxbus_lin::{ldf::Ldf, FrameFlags, LinFrame, LinId, Role};

use crate::{
    bridge::LinPort,
    options::Plan,
    schedule::{SlotAction, Stepper},
};

pub struct SimulatedBus {
    role: Role,
    /// What each LDF frame's publisher sends, by id, and whether the master publishes it.
    frames: HashMap<LinId, (Vec<u8>, bool)>,
    /// Slave role: the simulated master's table.
    schedule: Option<Stepper>,
    /// How far the simulated master's clock may fall behind before it starts afresh.
    tick: Duration,
    /// Slave role: the responses the bus set.
    responses: HashMap<LinId, Vec<u8>>,
    pending: VecDeque<LinFrame>,
    started: Instant,
}

impl SimulatedBus {
    /// The simulated side of `plan`, which has an LDF (the options require one).
    pub fn new(plan: &Plan) -> SimulatedBus {
        let empty = Ldf::default();
        let ldf = plan.ldf.as_ref().unwrap_or(&empty);
        let master = ldf.master.as_ref().map(|m| m.name.as_str());
        let frames = ldf
            .frames
            .iter()
            .map(|f| {
                (
                    f.id,
                    (ldf.initial_data(f), Some(f.publisher.as_str()) == master),
                )
            })
            .collect();
        let schedule = match plan.options.role {
            Role::Slave => plan
                .schedule
                .clone()
                .and_then(|s| Stepper::new(s, Instant::now())),
            Role::Master => None,
        };
        SimulatedBus {
            role: plan.options.role,
            frames,
            schedule,
            tick: plan.options.base_tick,
            responses: HashMap::new(),
            pending: VecDeque::new(),
            started: Instant::now(),
        }
    }

    fn frame(&self, id: LinId, data: Vec<u8>, flags: u32) -> LinFrame {
        LinFrame {
            id: id.get().into(),
            data,
            flags: FrameFlags(flags),
            timestamp_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    /// What goes on the bus after a header for `id`: a slave's answer, or nothing.
    fn slave_answer(&self, id: LinId) -> LinFrame {
        match self.frames.get(&id) {
            Some((data, false)) => self.frame(id, data.clone(), FrameFlags::RX),
            _ => self.frame(id, Vec::new(), FrameFlags::RX | FrameFlags::NO_DATA),
        }
    }

    fn master_only(&self) -> Result<(), LinError> {
        match self.role {
            Role::Master => Ok(()),
            Role::Slave => Err(LinError::MasterOnly),
        }
    }

    fn slave_only(&self) -> Result<(), LinError> {
        match self.role {
            Role::Slave => Ok(()),
            Role::Master => Err(LinError::SlaveOnly),
        }
    }

    /// Slave role: the simulated master's slot, if one is due by `deadline` (waiting for it).
    fn next_slot(&mut self, deadline: Instant) -> Option<LinFrame> {
        let schedule = self.schedule.as_mut()?;
        if schedule.due() > deadline {
            return None;
        }
        std::thread::sleep(schedule.due().saturating_duration_since(Instant::now()));
        let current = schedule.take_due(Instant::now(), self.tick)?;
        let frame = match current.action {
            SlotAction::Publish(id) => {
                let data = self
                    .frames
                    .get(&id)
                    .map(|(d, _)| d.clone())
                    .unwrap_or_default();
                self.frame(id, data, FrameFlags::RX)
            }
            SlotAction::Header(id) => match self.responses.get(&id) {
                // The bus's own answer: the adapter transmitted it.
                Some(data) => self.frame(id, data.clone(), FrameFlags::TX),
                None => self.slave_answer(id),
            },
            SlotAction::Idle(_) => return None,
        };
        Some(frame)
    }
}

impl LinPort for SimulatedBus {
    fn write(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError> {
        self.master_only()?;
        let frame = self.frame(id, data.to_vec(), FrameFlags::TX);
        self.pending.push_back(frame);
        Ok(())
    }

    fn request(&mut self, id: LinId) -> Result<(), LinError> {
        self.master_only()?;
        let answer = self.slave_answer(id);
        self.pending.push_back(answer);
        Ok(())
    }

    fn update(&mut self, id: LinId, data: &[u8]) -> Result<(), LinError> {
        self.slave_only()?;
        self.responses.insert(id, data.to_vec());
        Ok(())
    }

    fn clear(&mut self, id: LinId) -> Result<(), LinError> {
        self.slave_only()?;
        self.responses.remove(&id);
        Ok(())
    }

    fn read(&mut self, timeout: Duration) -> Result<Option<LinFrame>, LinError> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(Some(frame));
        }
        let deadline = Instant::now() + timeout;
        while self.schedule.is_some() {
            match self.next_slot(deadline) {
                Some(frame) => return Ok(Some(frame)),
                None if self
                    .schedule
                    .as_ref()
                    .is_some_and(|schedule| schedule.due() <= deadline) =>
                {
                    continue; // an idle slot passed
                }
                None => break,
            }
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;
    use serde_json::json;

    /// The e2e scenario's LDF: LockCmd (16, the master's), DoorState (32, Door), SeatState (34,
    /// Seat); the table Normal runs them 20 ms apart.
    const LDF: &str = include_str!("../../../tests/e2e/lin/body.ldf");

    fn sim(role: &str) -> SimulatedBus {
        sim_with(json!({"host_mode": role, "type": "simulator", "database": "/t.ldf"}))
    }

    fn sim_with(options: serde_json::Value) -> SimulatedBus {
        let options = Options::from_plugin(options.as_object().unwrap(), "vxbn0").unwrap();
        SimulatedBus::new(&Plan::new(options, None, |_| Ok(LDF.into())).unwrap())
    }

    fn id(n: u32) -> LinId {
        LinId::new(n).unwrap()
    }

    /// The next `n` frames the simulated master's schedule brings; fails after 5 s.
    fn next_frames(bus: &mut SimulatedBus, n: usize) -> Vec<LinFrame> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut frames = Vec::new();
        while frames.len() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} frames in 5 s",
                frames.len()
            );
            if let Some(f) = bus.read(Duration::from_millis(5)).unwrap() {
                frames.push(f);
            }
        }
        frames
    }

    #[test]
    fn as_master_the_ldfs_slaves_answer_with_initial_values() {
        let mut bus = sim("master");
        bus.request(id(32)).unwrap();
        bus.request(id(16)).unwrap(); // the master's own frame: no slave answers
        bus.write(id(16), &[5]).unwrap();
        let tick = Duration::from_millis(1);
        let answer = bus.read(tick).unwrap().unwrap();
        assert_eq!((answer.id, answer.data.as_slice()), (32, &[0x34, 0x12][..]));
        assert!(bus.read(tick).unwrap().unwrap().flags.no_data());
        assert!(bus.read(tick).unwrap().unwrap().flags.transmitted());
        assert_eq!(bus.read(tick).unwrap(), None);
        assert_eq!(bus.update(id(1), &[1]), Err(LinError::SlaveOnly));
    }

    #[test]
    fn as_slave_a_simulated_master_runs_the_first_table() {
        let mut bus = sim("slave");
        bus.update(id(34), &[9]).unwrap();
        let started = Instant::now();
        let seen: Vec<_> = next_frames(&mut bus, 4)
            .into_iter()
            .map(|f| (f.id, f.data, f.flags.transmitted()))
            .collect();
        assert_eq!(
            seen,
            [
                (16, vec![1, 0x40], false),
                (32, vec![0x34, 0x12], false),
                (34, vec![9], true),
                (16, vec![1, 0x40], false)
            ]
        );
        // Slots at 0, 20, 40, 60 ms.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(60), "{took:?}");
        assert_eq!(bus.write(id(16), &[1]), Err(LinError::MasterOnly));
    }

    #[test]
    fn a_node_configuration_slot_passes_with_nothing_on_the_bus() {
        let mut bus = sim_with(json!({"host_mode": "slave", "type": "simulator",
                                      "database": "/t.ldf", "schedule_table_name": "Diag"}));
        let started = Instant::now();
        // AssignNAD's slot (0 ms) sends nothing; DoorState's comes at 10 ms.
        assert_eq!(next_frames(&mut bus, 1)[0].id, 32);
        assert!(started.elapsed() >= Duration::from_millis(10));
    }
}
