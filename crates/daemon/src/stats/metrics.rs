//! The Prometheus metrics (`METRICS=IP:PORT`, off by default): `GET /metrics` on that address,
//! in Prometheus's text format (0.0.4, which every Prometheus and `promtool check metrics` read)
//! as prometheus-client writes it, made at each scrape from the latest [`Report`](super::Report)
//! and the plugins' status.
//!
//! Owns: the metrics' names, labels and help, and the listener. Must not touch: the counters
//! themselves (`stats` reads them), the control socket.
//!
//! Series (every counter gets prometheus-client's `_total` suffix; `network` and `endpoint` are
//! the 12-character ids `docker network ls` shows):
//! - `vxbus_bus_frames_total{network}`, `vxbus_bus_load_ratio{network}` (the load's share of a
//!   second, 0 to 1, with the bus load on), `vxbus_bus_bitrate{network}` (bit/s);
//! - `vxbus_member_{sent,received}_{frames,bytes}_total{network,kind,link,endpoint}`,
//!   `vxbus_member_dropped_frames_total{...,where}`, `where` one of gateway, link_tx, link_rx;
//! - `vxbus_tunnel_peer_{sent,received,lost,dropped}_frames_total{network,peer,role}`,
//!   `vxbus_tunnel_peer_restarts_total{...}`;
//! - `vxbus_plugin_up{plugin,status}` (1 when running), `vxbus_plugin_restarts_total{plugin}`;
//! - `vxbus_load_meter_missed_frames_total`.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use axum::{http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::{Registry, Unit},
};

use super::{MemberKind, Report, Stats};
use crate::{state::short_id, supervisor::Supervisor};

/// The content type of Prometheus's text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `address` and serves the metrics there for as long as the process runs. A bind that
/// fails is the daemon's failure to start: the user asked for metrics there.
pub async fn serve(
    address: SocketAddr,
    stats: Stats,
    plugins: Arc<Supervisor>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("METRICS: listening on {address} for Prometheus"))?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Metrics { stats, plugins }));
    let registry = Arc::new(registry);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { scrape(&registry) }
        }),
    );
    tracing::info!("serving Prometheus metrics on http://{address}/metrics");
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!("METRICS: serving on {address}: {err}");
        }
    });
    Ok(())
}

fn scrape(registry: &Registry) -> axum::response::Response {
    let mut body = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut body, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(err) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics: {err}"),
        )
            .into_response(),
    }
}

struct Metrics {
    stats: Stats,
    plugins: Arc<Supervisor>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("vxbus metrics")
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let report = self.stats.latest();
        encode_report(&report, &mut encoder)?;
        let plugins = self.plugins.report();
        let up: Vec<_> = plugins
            .iter()
            .map(|p| {
                let status = format!("{:?}", p.status).to_lowercase();
                let running = p.status == crate::supervisor::Status::Running;
                (
                    vec![("plugin", p.id.clone()), ("status", status)],
                    i64::from(running),
                )
            })
            .collect();
        gauges(
            &mut encoder,
            "vxbus_plugin_up",
            "1 when the plugin's process runs and serves",
            None,
            up,
        )?;
        let restarts = plugins
            .iter()
            .map(|p| (vec![("plugin", p.id.clone())], u64::from(p.restarts)))
            .collect();
        counters(
            &mut encoder,
            "vxbus_plugin_restarts",
            "Times the plugin's process was started again after it ended",
            restarts,
        )
    }
}

type Labels = Vec<(&'static str, String)>;

/// The report's series, in the order the module comment lists them.
fn encode_report(report: &Report, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let mut frames = Vec::new();
    let mut load = Vec::new();
    let mut bitrate = Vec::new();
    let mut member: [Vec<(Labels, u64)>; 4] = Default::default();
    let mut dropped = Vec::new();
    let mut peer: [Vec<(Labels, u64)>; 5] = Default::default();
    for (id, bus) in &report.buses {
        let network = short_id(id).to_owned();
        frames.push((vec![("network", network.clone())], bus.frames));
        if let Some(percent) = bus.load_percent {
            load.push((vec![("network", network.clone())], percent / 100.0));
        }
        bitrate.push((vec![("network", network.clone())], i64::from(bus.bitrate)));
        for m in &bus.members {
            let labels = vec![
                ("network", network.clone()),
                (
                    "kind",
                    match m.kind {
                        MemberKind::Container => "container",
                        MemberKind::HostDevice => "host_device",
                    }
                    .to_owned(),
                ),
                ("link", m.link.clone()),
                (
                    "endpoint",
                    m.endpoint.as_deref().map(short_id).unwrap_or("").to_owned(),
                ),
            ];
            let values = [
                m.sent.frames,
                m.received.frames,
                m.sent.bytes,
                m.received.bytes,
            ];
            for (series, value) in member.iter_mut().zip(values) {
                series.push((labels.clone(), value));
            }
            for (place, value) in [
                ("gateway", m.dropped.gateway),
                ("link_tx", m.dropped.link_tx),
                ("link_rx", m.dropped.link_rx),
            ] {
                let mut labels = labels.clone();
                labels.push(("where", place.to_owned()));
                dropped.push((labels, value));
            }
        }
        for p in bus.tunnel.iter().flat_map(|t| &t.peers) {
            let labels = vec![
                ("network", network.clone()),
                ("peer", p.address.clone()),
                ("role", format!("{:?}", p.role).to_lowercase()),
            ];
            let values = [p.tx_frames, p.rx_frames, p.lost, p.dropped, p.restarts];
            for (series, value) in peer.iter_mut().zip(values) {
                series.push((labels.clone(), value));
            }
        }
    }
    counters(
        encoder,
        "vxbus_bus_frames",
        "Frames put on the bus by its members",
        frames,
    )?;
    gauges(encoder, "vxbus_bus_load", "The share of the last second the bus's frames kept it busy at its bit rate, as canbusload -e counts", Some(&Unit::Other("ratio".into())), load)?;
    gauges(
        encoder,
        "vxbus_bus_bitrate",
        "The bit rate in bit/s the load is counted at (baudrate, or the default)",
        None,
        bitrate,
    )?;
    let [sent, received, sent_bytes, received_bytes] = member;
    counters(
        encoder,
        "vxbus_member_sent_frames",
        "Frames the member put on the bus",
        sent,
    )?;
    counters(
        encoder,
        "vxbus_member_received_frames",
        "Frames the bus gave the member",
        received,
    )?;
    counters(
        encoder,
        "vxbus_member_sent_bytes",
        "Data bytes of the frames the member put on the bus",
        sent_bytes,
    )?;
    counters(
        encoder,
        "vxbus_member_received_bytes",
        "Data bytes of the frames the bus gave the member",
        received_bytes,
    )?;
    counters(
        encoder,
        "vxbus_member_dropped_frames",
        "Frames dropped on their way to or from the member, by where",
        dropped,
    )?;
    let [tx, rx, lost, peer_dropped, restarts] = peer;
    counters(
        encoder,
        "vxbus_tunnel_peer_sent_frames",
        "Frames sent to the tunnel's far end",
        tx,
    )?;
    counters(
        encoder,
        "vxbus_tunnel_peer_received_frames",
        "Frames received from the tunnel's far end",
        rx,
    )?;
    counters(
        encoder,
        "vxbus_tunnel_peer_lost_frames",
        "Datagrams from the far end that never came (sequence numbers)",
        lost,
    )?;
    counters(
        encoder,
        "vxbus_tunnel_peer_dropped_frames",
        "Frames for the far end dropped because it did not read (TCP)",
        peer_dropped,
    )?;
    counters(
        encoder,
        "vxbus_tunnel_peer_restarts",
        "Times the link to the far end started afresh",
        restarts,
    )?;
    let missed = ConstCounter::new(report.load_meter.missed_frames);
    missed.encode(encoder.encode_descriptor(
        "vxbus_load_meter_missed_frames",
        "Frames the load meter's socket missed because it fell behind (the buses lost none)",
        None,
        missed.metric_type(),
    )?)
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauges<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: Vec<(Labels, N)>,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{BusStats, Drops, MemberStats, Traffic};

    /// The text of one report's series, as a scrape gives it.
    fn text(report: Report) -> String {
        #[derive(Debug)]
        struct Fixed(Report);
        impl Collector for Fixed {
            fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                encode_report(&self.0, &mut encoder)
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(report)));
        let mut body = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut body, &registry).unwrap();
        body
    }

    #[test]
    fn a_bus_and_its_members_are_series_with_their_labels() {
        let mut report = Report::default();
        report.buses.insert(
            "3f2a9c81d0e4b5a6".into(),
            BusStats {
                bitrate: 500_000,
                frames: 60,
                load_percent: Some(12.5),
                members: vec![MemberStats {
                    kind: MemberKind::Container,
                    endpoint: Some("aabbccddeeff0011".into()),
                    container: None,
                    link: "vxbhaabbccddee".into(),
                    present: true,
                    sent: Traffic {
                        frames: 60,
                        bytes: 480,
                    },
                    sent_per_sec: 0.0,
                    received: Traffic {
                        frames: 4,
                        bytes: 32,
                    },
                    received_per_sec: 0.0,
                    dropped: Drops {
                        gateway: 3,
                        link_tx: 0,
                        link_rx: 0,
                    },
                }],
                ..BusStats::default()
            },
        );
        let body = text(report);
        for line in [
            "# HELP vxbus_bus_frames_total Frames put on the bus by its members",
            "# TYPE vxbus_bus_frames_total counter",
            r#"vxbus_bus_frames_total{network="3f2a9c81d0e4"} 60"#,
            "# TYPE vxbus_bus_load_ratio gauge",
            r#"vxbus_bus_load_ratio{network="3f2a9c81d0e4"} 0.125"#,
            r#"vxbus_member_sent_frames_total{network="3f2a9c81d0e4",kind="container",link="vxbhaabbccddee",endpoint="aabbccddeeff"} 60"#,
            r#"vxbus_member_received_bytes_total{network="3f2a9c81d0e4",kind="container",link="vxbhaabbccddee",endpoint="aabbccddeeff"} 32"#,
            r#"vxbus_member_dropped_frames_total{network="3f2a9c81d0e4",kind="container",link="vxbhaabbccddee",endpoint="aabbccddeeff",where="gateway"} 3"#,
            "vxbus_load_meter_missed_frames_total 0",
        ] {
            assert!(
                body.lines().any(|l| l == line),
                "no line `{line}` in:\n{body}"
            );
        }
    }

    /// The names of every series vxbus serves, from a report with one of each kind, and the
    /// plugins' two.
    fn served_names() -> std::collections::BTreeSet<String> {
        let mut report = Report::default();
        let tunnel: vxbus_tunnel::TunnelStats = serde_json::from_value(serde_json::json!({
            "transport": "udp", "listen": null, "bus_rx_frames": 0, "bus_tx_frames": 0,
            "bus_tx_errors": 0, "foreign_datagrams": 0, "refused_clients": 0,
            "peers": [{"address": "10.0.0.2:20000", "role": "peer", "vxbus": true,
                "connected": true, "tx_frames": 1, "tx_bytes": 8, "rx_frames": 1, "rx_bytes": 8,
                "lost": 0, "reordered": 0, "duplicates": 0, "decode_errors": 0,
                "auth_failures": 0, "sealed": false, "dropped": 0, "connects": 0,
                "restarts": 0, "last_seen_secs": null}]
        }))
        .unwrap();
        report.buses.insert(
            "3f2a9c81d0e4b5a6".into(),
            BusStats {
                load_percent: Some(1.0),
                members: vec![MemberStats {
                    kind: MemberKind::HostDevice,
                    endpoint: None,
                    container: None,
                    link: "hbus".into(),
                    present: true,
                    sent: Traffic::default(),
                    sent_per_sec: 0.0,
                    received: Traffic::default(),
                    received_per_sec: 0.0,
                    dropped: Drops::default(),
                }],
                tunnel: Some(tunnel),
                ..BusStats::default()
            },
        );
        let mut names: std::collections::BTreeSet<String> = text(report)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        names.extend([
            "vxbus_plugin_up".to_owned(),
            "vxbus_plugin_restarts_total".to_owned(),
        ]);
        names
    }

    #[test]
    fn the_grafana_dashboard_queries_only_series_vxbus_serves() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana-vxbus.json");
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let served = served_names();
        let mut used = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("vxbus_") {
                        assert!(
                            served.contains(word),
                            "panel `{}` queries `{word}`, which vxbus does not serve ({served:?})",
                            panel["title"]
                        );
                        used += 1;
                    }
                }
            }
        }
        assert!(used >= 10, "the dashboard queries {used} series");
    }
}
