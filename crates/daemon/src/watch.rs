//! The host-side views of what the buses carry: `vxbus stats` (a table, or JSON; once or every
//! few seconds) and `vxbus top` (a live terminal view, ratatui).
//!
//! Owns: how the daemon's [`Report`] is shown, and naming each member's container (Docker
//! tells the daemon no container names; the docker CLI on the host knows them). Must not
//! touch: the counters (it asks the daemon over the control socket).

use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::Context as _;
use ratatui::{
    crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    layout::{Constraint, Layout},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Gauge, Paragraph},
    Frame,
};

use crate::{
    control::ask_stats,
    state::short_id as short,
    stats::{BusStats, MemberKind, Report},
};

/// `vxbus stats`: the report once, or every `watch` seconds until interrupted.
pub async fn stats(
    socket: &Path,
    network: Option<String>,
    watch: Option<u64>,
    as_json: bool,
) -> anyhow::Result<()> {
    loop {
        let mut report = ask_stats(socket, network.clone()).await?;
        name_containers(&mut report).await;
        match (as_json, watch) {
            (true, None) => println!("{}", serde_json::to_string_pretty(&report)?),
            (true, Some(_)) => println!("{}", serde_json::to_string(&report)?),
            (false, None) => print!("{}", table(&report)),
            // Clear the terminal and start at its top, as `watch` does.
            (false, Some(_)) => print!("\x1b[2J\x1b[H{}", table(&report)),
        }
        let Some(seconds) = watch else {
            return Ok(());
        };
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
}

/// Fills in each container member's name, from `docker network inspect` of the report's
/// networks (one call). Without the docker CLI the members keep their endpoint ids only.
async fn name_containers(report: &mut Report) {
    if report.buses.is_empty() {
        return;
    }
    let format = r#"{{range $id, $c := .Containers}}{{$c.EndpointID}} {{$c.Name}}{{"\n"}}{{end}}"#;
    let output = tokio::process::Command::new("docker")
        .args(["network", "inspect", "--format", format])
        .args(report.buses.keys())
        .output()
        .await;
    let Ok(output) = output else {
        return;
    };
    let names: HashMap<String, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(endpoint, name)| (endpoint.to_owned(), name.to_owned()))
        .collect();
    for member in report.buses.values_mut().flat_map(|bus| &mut bus.members) {
        if let Some(name) = member.endpoint.as_ref().and_then(|e| names.get(e)) {
            member.container = Some(name.clone());
        }
    }
}

/// Who a member is, for a person: the container's name, else its endpoint's id; the host
/// device says so.
fn member_name(member: &crate::stats::MemberStats) -> String {
    match (member.kind, &member.container, &member.endpoint) {
        (MemberKind::HostDevice, _, _) => "(host device)".to_owned(),
        (_, Some(name), _) => name.clone(),
        (_, None, Some(endpoint)) => format!("endpoint {}", short(endpoint)),
        (_, None, None) => "-".to_owned(),
    }
}

/// A bus's load and bit rate in words: `12.3 % of 500000 bit/s (default)`.
fn load_text(bus: &BusStats) -> String {
    let rates = if bus.data_bitrate != bus.bitrate {
        format!("{}/{} bit/s", bus.bitrate, bus.data_bitrate)
    } else {
        format!("{} bit/s", bus.bitrate)
    };
    let declared = if bus.bitrate_declared {
        ""
    } else {
        " (the default: no baudrate given)"
    };
    match bus.load_percent {
        Some(load) => format!("load {load:.1} % of {rates}{declared}"),
        None => format!("load not counted (VXBUS_BUS_LOAD=off), {rates}{declared}"),
    }
}

/// The report as a table, at most 80 columns wide for buses of up to a few hundred thousand
/// frames per member.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    if report.buses.is_empty() {
        out += "no vxbus networks\n";
    }
    for (id, bus) in &report.buses {
        out += &format!(
            "NETWORK {}  {:.0} frames/s  {} frames\n  {}\n",
            short(id),
            bus.frames_per_sec,
            bus.frames,
            load_text(bus),
        );
        out += "  MEMBER           LINK            SENT      RECEIVED  SENT/S  RECV/S  DROPPED\n";
        for m in &bus.members {
            let dropped = m.dropped.total();
            // Where they were dropped, on a line of its own: the row has no room.
            let detail = if dropped > 0 {
                format!("    dropped: {}\n", m.dropped.describe())
            } else {
                String::new()
            };
            out += &format!(
                "  {:<16} {:<15} {:<9} {:<9} {:<7.0} {:<7.0} {}\n{}",
                truncate(&member_name(m), 16),
                m.link,
                m.sent.frames,
                m.received.frames,
                m.sent_per_sec,
                m.received_per_sec,
                dropped,
                detail,
            );
        }
        for p in bus.tunnel.iter().flat_map(|t| &t.peers) {
            out += &format!(
                "  far end {:<21} {:<6} sent {} received {} lost {} dropped {}\n",
                p.address,
                format!("{:?}", p.role).to_lowercase(),
                p.tx_frames,
                p.rx_frames,
                p.lost,
                p.dropped,
            );
        }
    }
    if report.load_meter.missed_frames > 0 {
        out += &format!(
            "the load meter missed {} frame(s) since the daemon started (the buses lost none)\n",
            report.load_meter.missed_frames
        );
    }
    if let Some(error) = &report.load_meter.error {
        out += &format!("the load meter is not running: {error}\n");
    }
    out
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('~');
        cut
    }
}

/// `vxbus top`: every bus with a load bar, its frames per second and drops, and its members,
/// refreshed each second until `q` (or Esc, or Ctrl-C).
pub async fn top(socket: &Path) -> anyhow::Result<()> {
    // Fail before the terminal is taken over: an unreachable daemon is said plainly.
    let mut report = ask_stats(socket, None).await?;
    name_containers(&mut report).await;
    let mut terminal = ratatui::try_init().context("taking over the terminal")?;
    let result = async {
        loop {
            terminal
                .draw(|frame| draw(frame, &report))
                .context("drawing")?;
            let quit = tokio::task::block_in_place(|| -> std::io::Result<bool> {
                let until = std::time::Instant::now() + Duration::from_secs(1);
                loop {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() || !event::poll(left)? {
                        return Ok(false);
                    }
                    if let Event::Key(key) = event::read()? {
                        let ctrl_c = key.code == KeyCode::Char('c')
                            && key.modifiers.contains(KeyModifiers::CONTROL);
                        if key.kind == KeyEventKind::Press
                            && (matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c)
                        {
                            return Ok(true);
                        }
                    }
                }
            })?;
            if quit {
                return Ok(());
            }
            report = ask_stats(socket, None).await?;
            name_containers(&mut report).await;
        }
    }
    .await;
    ratatui::restore();
    result
}

/// One screen of `vxbus top`: a title line, then per bus a load bar and a line per member.
fn draw(frame: &mut Frame, report: &Report) {
    let mut rows = vec![Constraint::Length(1)];
    for bus in report.buses.values() {
        rows.push(Constraint::Length(1));
        rows.push(Constraint::Length(
            u16::try_from(bus.members.len())
                .unwrap_or(u16::MAX)
                .saturating_add(1),
        ));
    }
    rows.push(Constraint::Min(0));
    let areas = Layout::vertical(rows).split(frame.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let title = Line::from(vec![
        Span::styled("vxbus top", bold),
        Span::raw(format!(
            "  {} bus(es), every {:.0} s  (q quits)",
            report.buses.len(),
            report.interval_secs.max(1.0)
        )),
    ]);
    frame.render_widget(Paragraph::new(title), areas[0]);
    for (i, (id, bus)) in report.buses.iter().enumerate() {
        let (Some(bar_area), Some(members_area)) = (areas.get(1 + 2 * i), areas.get(2 + 2 * i))
        else {
            break;
        };
        let load = bus.load_percent.unwrap_or(0.0);
        let color = match load {
            l if l >= 80.0 => Color::Red,
            l if l >= 50.0 => Color::Yellow,
            _ => Color::Green,
        };
        let label = format!(
            "{} {:.0} fr/s {}",
            short(id),
            bus.frames_per_sec,
            match bus.load_percent {
                Some(load) => format!("{load:.1} %"),
                None => "load off".to_owned(),
            }
        );
        let gauge = Gauge::default()
            .gauge_style(Style::default().fg(color))
            .ratio((load / 100.0).clamp(0.0, 1.0))
            .label(label);
        frame.render_widget(gauge, *bar_area);
        let mut lines = vec![Line::styled(
            "  MEMBER           SENT/S  RECV/S  SENT      RECEIVED  DROPPED",
            bold,
        )];
        for m in &bus.members {
            let dropped = m.dropped.total();
            let style = if dropped > 0 {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            };
            lines.push(Line::styled(
                format!(
                    "  {:<16} {:<7.0} {:<7.0} {:<9} {:<9} {}",
                    truncate(&member_name(m), 16),
                    m.sent_per_sec,
                    m.received_per_sec,
                    m.sent.frames,
                    m.received.frames,
                    dropped
                ),
                style,
            ));
        }
        frame.render_widget(Paragraph::new(lines).block(Block::default()), *members_area);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Drops, MemberStats, Traffic};

    fn report() -> Report {
        let mut report = Report::default();
        let member = |name: &str, kind, sent, dropped| MemberStats {
            kind,
            endpoint: Some("0123456789abcdef".into()),
            container: Some(name.into()),
            link: "vxbh0123456789".into(),
            present: true,
            sent: Traffic {
                frames: sent,
                bytes: sent * 8,
            },
            sent_per_sec: 100.0,
            received: Traffic {
                frames: 123_456_789,
                bytes: 0,
            },
            received_per_sec: 1000.0,
            dropped: Drops {
                gateway: dropped,
                link_tx: 0,
                link_rx: 0,
            },
        };
        report.buses.insert(
            "3f2a9c81d0e4b5a6c7".into(),
            BusStats {
                bitrate: 500_000,
                data_bitrate: 2_000_000,
                load_percent: Some(12.34),
                frames: 1000,
                frames_per_sec: 100.0,
                members: vec![
                    member("ecu-a", MemberKind::Container, 1000, 0),
                    member("a-container-with-a-long-name", MemberKind::Container, 0, 7),
                    member("", MemberKind::HostDevice, 0, 0),
                ],
                ..BusStats::default()
            },
        );
        report
    }

    #[test]
    fn the_table_names_members_and_fits_80_columns() {
        let text = table(&report());
        assert!(text.contains("NETWORK 3f2a9c81d0e4  100 frames/s  1000 frames\n  load 12.3 % of 500000/2000000 bit/s (the default: no baudrate given)\n"), "{text}");
        assert!(
            text.contains(
                "  ecu-a            vxbh0123456789  1000      123456789 100     1000    0\n"
            ),
            "{text}"
        );
        assert!(text.contains("a-container-wit~"), "{text}");
        assert!(text.contains(" 7\n    dropped: gateway 7\n"), "{text}");
        assert!(text.contains("(host device)"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "wider than 80: `{line}`");
        }
    }

    #[test]
    fn top_draws_into_80_columns() {
        let backend = ratatui::backend::TestBackend::new(80, 12);
        let mut terminal = ratatui::Terminal::new(backend).unwrap();
        terminal.draw(|frame| draw(frame, &report())).unwrap();
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .chunks(80)
            .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>() + "\n")
            .collect();
        assert!(screen.contains("3f2a9c81d0e4 100 fr/s 12.3 %"), "{screen}");
        assert!(
            screen.contains("  ecu-a            100     1000    1000      123456789 0"),
            "{screen}"
        );
        assert!(screen.contains("(host device)"), "{screen}");
    }
}
