//! What the buses carry: each second, every bus's members with their frames and bytes each
//! way and their drops, and the bus's load, for `vxbus stats`, `vxbus top` and the Prometheus
//! metrics ([`metrics`]).
//!
//! Owns: reading the kernel's counters (links' IFLA_STATS64, can-gw rules' counters), the load
//! meter ([`meter`]), the latest [`Report`], and the warnings when a member drops frames. Must
//! not touch: links, rules or the state (it asks the driver for a view of the buses, and only
//! reads the kernel, over connections of its own).
//!
//! Where each figure comes from:
//! - a container's frames *sent* (onto the bus) are those its vxcan host end received, and its
//!   frames *received* (from the bus) those its host end sent: exact, counted by the kernel;
//! - the host device's frames received are those the can-gw rules toward it handled, and its
//!   frames sent those the rules out of it handled toward any one member (the most of them: a
//!   member that joined late was not there for the first);
//! - drops: `gateway`, frames a can-gw rule toward the member could not send (its link down or
//!   its queue full); `link`, frames its host-side link dropped (tx: no peer, a full queue; rx:
//!   a full backlog). A container's own socket that does not read drops inside the container,
//!   where only the container sees it (`candump -d`, SO_RXQ_OVFL); a tunnel's far end that does
//!   not read shows as its `dropped`;
//! - the load: the bits the meter weighed in the last interval, over the bus's bit rates.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vxbus_busload::{load_percent, BitRates, Bits};
use vxbus_dataplane::{
    cangw::{RuleStats, SharedGw},
    links::{Link, Links},
};
use vxbus_tunnel::TunnelStats;

use crate::driver::{BusView, Driver};

pub mod meter;
pub mod metrics;

use meter::{Meter, Tally};

/// How often the counters are read: the interval of the load and the rates.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The bit rates a bus that declares none is weighed at (`baudrate`, `baudrate_fd`).
pub const DEFAULT_BITRATE: u32 = 500_000;
pub const DEFAULT_DATA_BITRATE: u32 = 2_000_000;
/// A member that drops frames is logged at most once per this interval.
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Every bus, as of the last reading.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The seconds the rates and the load are over (the time between the last two readings).
    pub interval_secs: f64,
    pub load_meter: MeterStatus,
    /// By network id.
    pub buses: BTreeMap<String, BusStats>,
}

/// Whether the load is measured (`VXBUS_BUS_LOAD`), and what the meter missed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MeterStatus {
    pub on: bool,
    /// Frames the meter's socket dropped because it fell behind (the bus lost none of them):
    /// the load was under-counted by that many since the daemon started.
    pub missed_frames: u64,
    /// Why the meter is not running, when it should be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BusStats {
    /// The bus's host device, if it has one.
    pub host_device: Option<String>,
    /// The bit rates the load is counted at, and whether the bus declared them (else the
    /// defaults, [`DEFAULT_BITRATE`] and [`DEFAULT_DATA_BITRATE`]).
    pub bitrate: u32,
    pub data_bitrate: u32,
    pub bitrate_declared: bool,
    /// Frames put on the bus by its members (the sum of their `sent`), and per second.
    pub frames: u64,
    pub frames_per_sec: f64,
    /// The share of the interval the frames would keep a bus at `bitrate` busy, in percent (as
    /// `canbusload -e` counts, unrounded); `None` when the meter is off.
    pub load_percent: Option<f64>,
    /// The frames and bits the meter weighed on the bus since the daemon started (the bits as
    /// `canbusload -e` prints them each second, summed); `None` when the meter is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metered: Option<Tally>,
    pub members: Vec<MemberStats>,
    /// The bus's tunnel to other hosts and its far ends' counters, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    /// A container's vxcan pair.
    Container,
    /// The bus's host device (where its plugin and tunnel are too).
    HostDevice,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStats {
    pub kind: MemberKind,
    /// Docker's endpoint id (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The container's name: the daemon does not know it (Docker does not tell a driver), the
    /// host-side command fills it in from `docker network inspect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The member's link on the host: a vxcan host end, or the host device.
    pub link: String,
    /// Whether the link exists (a member between Docker's calls may have none yet).
    pub present: bool,
    /// Frames the member put on the bus, and per second.
    pub sent: Traffic,
    pub sent_per_sec: f64,
    /// Frames the bus gave the member, and per second.
    pub received: Traffic,
    pub received_per_sec: f64,
    pub dropped: Drops,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub frames: u64,
    pub bytes: u64,
}

/// A member's dropped frames, by where they were dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    /// By a can-gw rule toward the member (its link down, its transmit queue full).
    pub gateway: u64,
    /// By its host-side link: frames it could not send (`tx_dropped`) or take in
    /// (`rx_dropped`).
    pub link_tx: u64,
    pub link_rx: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.gateway
            .saturating_add(self.link_tx)
            .saturating_add(self.link_rx)
    }

    /// The counters as `name count` pairs, the non-zero ones, for logs and tables.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("gateway", self.gateway),
            ("link_tx", self.link_tx),
            ("link_rx", self.link_rx),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
        parts.join(", ")
    }
}

/// The readings, shared: the latest [`Report`].
#[derive(Clone)]
pub struct Stats {
    latest: watch::Receiver<Arc<Report>>,
}

impl Stats {
    pub fn latest(&self) -> Arc<Report> {
        self.latest.borrow().clone()
    }
}

/// Starts reading the counters every [`PERIOD`], with the load meter if `bus_load`.
pub fn start(driver: Arc<Driver>, bus_load: bool) -> anyhow::Result<Stats> {
    use anyhow::Context as _;
    let links = Links::connect().context("opening an rtnetlink connection for the counters")?;
    let gw = SharedGw::open().context("opening a can-gw connection for the counters")?;
    let (meter, meter_error) = if bus_load {
        match Meter::start() {
            Ok(meter) => (Some(meter), None),
            Err(err) => {
                let message = format!("opening the load meter's CAN socket: {err}");
                tracing::error!("{message}; the buses' load is not counted");
                (None, Some(message))
            }
        }
    } else {
        tracing::info!("bus load is not counted (VXBUS_BUS_LOAD=off)");
        (None, None)
    };
    let (publish, latest) = watch::channel(Arc::new(Report::default()));
    let mut sampler = Sampler {
        meter,
        meter_status: MeterStatus {
            on: bus_load,
            missed_frames: 0,
            error: meter_error,
        },
        last: None,
        drops: HashMap::new(),
        meter_missed_logged: 0,
        metered: HashMap::new(),
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let buses = driver.bus_views().await;
            let links = links.list().await;
            let rules = gw.list().await;
            match (links, rules) {
                (Ok(links), Ok(rules)) => {
                    let report = sampler.read(&buses, &links, &rules, Instant::now());
                    publish.send_replace(Arc::new(report));
                }
                (Err(err), _) => tracing::debug!("stats: listing links: {err}"),
                (_, Err(err)) => tracing::debug!("stats: listing can-gw rules: {err}"),
            }
        }
    });
    Ok(Stats { latest })
}

/// The counters at the last reading, for rates.
struct Last {
    at: Instant,
    /// Since the reading before (0 at the first reading: no rates yet).
    seconds: f64,
    /// Sent and received frames by (network id, link).
    members: HashMap<(String, String), (u64, u64)>,
    buses: HashMap<String, u64>,
}

/// Drops of one member (or a tunnel's far end): logged at most once per interval.
struct DropLog {
    /// The total at the last reading.
    seen: u64,
    /// Dropped since the last warning.
    pending: u64,
    logged: Option<Instant>,
    /// The reading it was last in.
    read_at: Instant,
}

struct Sampler {
    meter: Option<Meter>,
    meter_status: MeterStatus,
    last: Option<Last>,
    drops: HashMap<(String, String), DropLog>,
    meter_missed_logged: u64,
    /// Each bus's metered frames and bits since the daemon started.
    metered: HashMap<String, Tally>,
}

impl Sampler {
    fn read(
        &mut self,
        buses: &[BusView],
        links: &[Link],
        rules: &[RuleStats],
        now: Instant,
    ) -> Report {
        let (tallies, missed) = self.meter.as_ref().map(Meter::take).unwrap_or_default();
        self.meter_status.missed_frames = missed;
        if missed > self.meter_missed_logged {
            tracing::warn!(
                "load meter: its socket fell behind and missed {} frame(s) (the buses lost none); \
                 the load was under-counted",
                missed - self.meter_missed_logged
            );
            self.meter_missed_logged = missed;
        }
        let interval = self
            .last
            .as_ref()
            .map_or(PERIOD, |last| now.saturating_duration_since(last.at));
        let seconds = interval.as_secs_f64();
        let by_name: HashMap<&str, &Link> = links.iter().map(|l| (l.name.as_str(), l)).collect();
        let mut next = Last {
            at: now,
            seconds: if self.last.is_some() { seconds } else { 0.0 },
            members: HashMap::new(),
            buses: HashMap::new(),
        };
        let mut report = Report {
            interval_secs: next.seconds,
            load_meter: self.meter_status.clone(),
            buses: BTreeMap::new(),
        };
        for view in buses {
            let bus = self.bus(view, &by_name, rules, &tallies, &mut next);
            for warning in self.drop_warnings(&view.id, &bus, now) {
                tracing::warn!("{warning}");
            }
            report.buses.insert(view.id.clone(), bus);
        }
        // Members and far ends gone since (a container left, a bus was removed) are forgotten.
        self.drops.retain(|_, log| log.read_at == now);
        self.metered.retain(|id, _| report.buses.contains_key(id));
        self.last = Some(next);
        report
    }

    fn bus(
        &mut self,
        view: &BusView,
        links: &HashMap<&str, &Link>,
        rules: &[RuleStats],
        tallies: &HashMap<u32, Tally>,
        next: &mut Last,
    ) -> BusStats {
        let seconds = next.seconds;
        let spec = view.spec.as_ref();
        let declared = spec.and_then(|s| s.bitrate).map(|r| r.get());
        let data_declared = spec.and_then(|s| s.data_bitrate).map(|r| r.get());
        let bitrate = declared.unwrap_or(DEFAULT_BITRATE);
        let data_bitrate = data_declared.unwrap_or(if declared.is_some() {
            bitrate
        } else {
            DEFAULT_DATA_BITRATE
        });
        let last = self.last.as_ref();
        let host = view
            .network
            .host_device
            .as_ref()
            .map(|h| h.name.to_string());
        let host_index = host.as_deref().and_then(|n| links.get(n)).map(|l| l.index);
        let mut members = Vec::new();
        let member_indexes: Vec<u32> = view
            .network
            .endpoints
            .values()
            .filter_map(|e| links.get(e.host_end.as_str()).map(|l| l.index))
            .collect();
        for (endpoint, record) in &view.network.endpoints {
            let link = links.get(record.host_end.as_str());
            let counters = link.and_then(|l| l.counters).unwrap_or_default();
            let index = link.map(|l| l.index);
            let toward = |wanted: u32| rules.iter().filter(move |r| r.rule.dst == wanted);
            let gateway = index.map_or(0, |i| toward(i).map(|r| u64::from(r.dropped)).sum());
            let sent = Traffic {
                frames: counters.rx_packets,
                bytes: counters.rx_bytes,
            };
            let received = Traffic {
                frames: counters.tx_packets,
                bytes: counters.tx_bytes,
            };
            members.push(self.member(
                view,
                MemberKind::Container,
                Some(endpoint.clone()),
                record.host_end.to_string(),
                link.is_some(),
                sent,
                received,
                Drops {
                    gateway,
                    link_tx: counters.tx_dropped,
                    link_rx: counters.rx_dropped,
                },
                next,
            ));
        }
        if let (Some(name), Some(index)) = (&host, host_index) {
            let counters = links
                .get(name.as_str())
                .and_then(|l| l.counters)
                .unwrap_or_default();
            let toward: Vec<&RuleStats> = rules.iter().filter(|r| r.rule.dst == index).collect();
            let received = toward.iter().map(|r| u64::from(r.handled)).sum();
            // Frames out of the host device: each goes to every member once (a classic and an
            // FD rule per member); the member with the most saw them all.
            let sent = member_indexes
                .iter()
                .map(|m| {
                    rules
                        .iter()
                        .filter(|r| r.rule.src == index && r.rule.dst == *m)
                        .map(|r| u64::from(r.handled))
                        .sum::<u64>()
                })
                .max()
                .unwrap_or(0);
            members.push(self.member(
                view,
                MemberKind::HostDevice,
                None,
                name.clone(),
                true,
                Traffic {
                    frames: sent,
                    bytes: 0,
                },
                Traffic {
                    frames: received,
                    bytes: 0,
                },
                Drops {
                    gateway: toward.iter().map(|r| u64::from(r.dropped)).sum(),
                    link_tx: counters.tx_dropped,
                    link_rx: counters.rx_dropped,
                },
                next,
            ));
        }
        let mut metered = Tally::default();
        for index in bus_indexes(&member_indexes, host_index) {
            if let Some(tally) = tallies.get(&index) {
                metered.add(*tally);
            }
        }
        let frames: u64 = members.iter().map(|m| m.sent.frames).sum();
        next.buses.insert(view.id.clone(), frames);
        let total = self.meter.is_some().then(|| {
            let total = self.metered.entry(view.id.clone()).or_default();
            total.add(metered);
            *total
        });
        let load_percent = self.meter.as_ref().map(|_| {
            load_percent(
                Bits {
                    total: u32::try_from(metered.bits).unwrap_or(u32::MAX),
                    data_phase: u32::try_from(metered.data_phase_bits).unwrap_or(u32::MAX),
                },
                BitRates {
                    nominal: bitrate,
                    data: Some(data_bitrate),
                },
                seconds,
            )
        });
        BusStats {
            host_device: host,
            bitrate,
            data_bitrate,
            bitrate_declared: declared.is_some(),
            frames,
            frames_per_sec: per_second(
                last.and_then(|l| l.buses.get(&view.id).copied()),
                frames,
                seconds,
            ),
            load_percent,
            metered: total,
            members,
            tunnel: view.tunnel.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn member(
        &self,
        view: &BusView,
        kind: MemberKind,
        endpoint: Option<String>,
        link: String,
        present: bool,
        sent: Traffic,
        received: Traffic,
        dropped: Drops,
        next: &mut Last,
    ) -> MemberStats {
        let key = (view.id.clone(), link.clone());
        let before = self
            .last
            .as_ref()
            .and_then(|l| l.members.get(&key))
            .copied();
        let seconds = next.seconds;
        next.members.insert(key, (sent.frames, received.frames));
        MemberStats {
            kind,
            endpoint,
            container: None,
            link,
            present,
            sent,
            sent_per_sec: per_second(before.map(|b| b.0), sent.frames, seconds),
            received,
            received_per_sec: per_second(before.map(|b| b.1), received.frames, seconds),
            dropped,
        }
    }

    /// The warnings for members (and tunnel far ends) whose drops grew: once per member per
    /// [`DROP_LOG_INTERVAL`], with what they dropped since the last warning.
    fn drop_warnings(&mut self, network: &str, bus: &BusStats, now: Instant) -> Vec<String> {
        let mut warnings = Vec::new();
        let short = crate::state::short_id(network);
        let mut counted: Vec<(String, String, u64, String)> = bus
            .members
            .iter()
            .map(|m| {
                let who = match &m.endpoint {
                    Some(endpoint) => format!(
                        "the container of endpoint {} (link {})",
                        crate::state::short_id(endpoint),
                        m.link
                    ),
                    None => format!("the host device {}", m.link),
                };
                (m.link.clone(), who, m.dropped.total(), m.dropped.describe())
            })
            .collect();
        for peer in bus.tunnel.iter().flat_map(|t| &t.peers) {
            counted.push((
                format!("tunnel {}", peer.address),
                format!("the tunnel's far end {}", peer.address),
                peer.dropped,
                format!("dropped {} (it does not read)", peer.dropped),
            ));
        }
        for (key, who, total, what) in counted {
            let entry = self
                .drops
                .entry((network.to_owned(), key))
                .or_insert(DropLog {
                    seen: total,
                    pending: 0,
                    logged: None,
                    read_at: now,
                });
            entry.read_at = now;
            entry.pending = entry
                .pending
                .saturating_add(total.saturating_sub(entry.seen));
            entry.seen = total;
            let due = entry
                .logged
                .is_none_or(|at| now.saturating_duration_since(at) >= DROP_LOG_INTERVAL);
            if entry.pending > 0 && due {
                warnings.push(format!(
                    "network {short}: {who} is dropping frames: {} more since the last warning \
                     (counters: {what}; `vxbus stats` shows them)",
                    entry.pending
                ));
                entry.pending = 0;
                entry.logged = Some(now);
            }
        }
        warnings
    }
}

/// The interfaces whose meter tallies make up a bus's load: its host device if it has one
/// (every frame of the bus is seen there, see [`meter`]), else its members' host ends.
fn bus_indexes(members: &[u32], host: Option<u32>) -> Vec<u32> {
    match host {
        Some(host) => vec![host],
        None => members.to_vec(),
    }
}

/// The rate of a counter that went from `was` to `now` in `seconds`; 0 without a reading
/// before, or over no time.
fn per_second(was: Option<u64>, now: u64, seconds: f64) -> f64 {
    match was {
        Some(was) if seconds > 0.0 => now.saturating_sub(was) as f64 / seconds,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests;
