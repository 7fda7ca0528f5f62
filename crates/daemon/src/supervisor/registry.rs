//! The registry and the channel relay (seed 003): plugins find each other by well-known name
//! (their id), hear when one connects or goes away, and open channels to each other that the
//! daemon relays.
//!
//! Owns: the open channels and their ends ([`Channels`]), `plugins.list`, the
//! connected/disconnected notices and relaying `channel.*` messages. Must not touch: processes,
//! restarts or settings.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use futures_util::future::join_all;
use vxbus_sdk::{
    cmd, parse_channel, parse_channel_data, ChannelOpened, Connection, Incoming, OpenChannel,
    PluginName,
};

use super::{json, Child, Supervisor};

/// The open channels: each a number and the ids of its two ends.
#[derive(Debug, Default)]
pub struct Channels {
    open: HashMap<u64, [String; 2]>,
    next: u64,
}

impl Channels {
    /// Records a new channel between `from` and `to`; returns its number.
    pub fn open(&mut self, from: &str, to: &str) -> u64 {
        self.next += 1;
        self.open
            .insert(self.next, [from.to_owned(), to.to_owned()]);
        self.next
    }

    /// The other end of `channel` as seen from `me`; with `close`, the channel is removed.
    /// `Err` when `me` is not an end of an open channel of that number.
    pub fn other_end(&mut self, channel: u64, me: &str, close: bool) -> Result<String, String> {
        let ends = match self.open.get(&channel) {
            Some(ends) if ends.iter().any(|end| end == me) => ends.clone(),
            _ => return Err(format!("channel {channel} is not open for plugin {me}")),
        };
        if close {
            self.open.remove(&channel);
        }
        Ok(if ends[0] == me {
            ends[1].clone()
        } else {
            ends[0].clone()
        })
    }

    /// Removes every channel with `id` at one end; returns each one's number and other end.
    pub fn close_all_of(&mut self, id: &str) -> Vec<(u64, String)> {
        let numbers: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, ends)| ends.iter().any(|end| end == id))
            .map(|(n, _)| *n)
            .collect();
        numbers
            .into_iter()
            .filter_map(|n| {
                self.open.remove(&n).map(|ends| {
                    let other = ends.into_iter().find(|end| end != id).unwrap_or_default();
                    (n, other)
                })
            })
            .collect()
    }
}

impl Supervisor {
    /// Answers a child's `plugins.list` and `channel.*` messages.
    pub(super) async fn relay(&self, child: &Child, incoming: Incoming) -> Result<Bytes, String> {
        match incoming.cmd.as_str() {
            cmd::PLUGINS_LIST => Ok(json(&self.connected_names())),
            cmd::CHANNEL_OPEN => {
                let OpenChannel { to } = serde_json::from_slice(&incoming.buffer)
                    .map_err(|e| format!("channel.open: {e}"))?;
                if to == child.id.as_str() {
                    // Its own data would come back to it through the daemon, for ever.
                    return Err(format!("plugin {to} cannot open a channel to itself"));
                }
                let (target_child, target) = self
                    .running(&to)
                    .ok_or_else(|| format!("no plugin `{to}` is connected"))?;
                let channel = self.channels().open(&child.id, &to);
                let opened = ChannelOpened {
                    channel,
                    peer: child.id.to_string(),
                };
                target
                    .notify(cmd::CHANNEL_OPENED, json(&opened))
                    .await
                    .map_err(|e| {
                        self.kill_if_stalled(&target_child, &e);
                        e.to_string()
                    })?;
                Ok(json(&ChannelOpened { channel, peer: to }))
            }
            cmd::CHANNEL_DATA | cmd::CHANNEL_CLOSE => {
                let closing = incoming.cmd == cmd::CHANNEL_CLOSE;
                let channel = if closing {
                    parse_channel(&incoming.buffer)?
                } else {
                    parse_channel_data(&incoming.buffer)?.0
                };
                let other = self.channels().other_end(channel, &child.id, closing)?;
                let (other_child, conn) = self
                    .running(&other)
                    .ok_or_else(|| format!("plugin {other} is gone"))?;
                conn.notify(&incoming.cmd, incoming.buffer)
                    .await
                    .map_err(|e| {
                        self.kill_if_stalled(&other_child, &e);
                        e.to_string()
                    })?;
                Ok(Bytes::new())
            }
            other => Err(format!("unknown command `{other}`")),
        }
    }

    /// The child registered as `id` and its connection, while it runs.
    pub(super) fn running(&self, id: &str) -> Option<(Arc<Child>, Connection)> {
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let child = children.get(id)?.clone();
        let conn = child.lock().running_conn()?;
        Some((child, conn))
    }

    /// A one-way message to each of `targets` at once, so that one slow child holds up no
    /// other; a child that reads nothing is killed (`kill_if_stalled`).
    async fn notify_each(&self, targets: Vec<(Arc<Child>, Connection, &str, Bytes)>) {
        let sends = targets.iter().map(|(child, conn, cmd, body)| async move {
            if let Err(err) = conn.notify(cmd, body.clone()).await {
                self.kill_if_stalled(child, &err);
            }
        });
        join_all(sends).await;
    }

    fn connected_names(&self) -> Vec<String> {
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .values()
            .filter(|c| c.lock().status == super::Status::Running)
            .map(|c| c.id.to_string())
            .collect()
    }

    /// Tells every other running plugin that `id` connected or disconnected.
    pub(super) async fn broadcast(&self, id: &str, cmd: &str) {
        let body = json(&PluginName {
            name: id.to_owned(),
        });
        let others: Vec<_> = {
            let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
            children
                .values()
                .filter(|c| c.id.as_str() != id)
                .filter_map(|c| Some((c.clone(), c.lock().running_conn()?, cmd, body.clone())))
                .collect()
        };
        self.notify_each(others).await;
    }

    /// A child went away: close its channels and tell the others.
    pub(super) async fn disconnected(&self, id: &str) {
        let closed = self.channels().close_all_of(id);
        let ends = closed
            .into_iter()
            .filter_map(|(channel, other)| {
                let (child, conn) = self.running(&other)?;
                Some((child, conn, cmd::CHANNEL_CLOSE, channel.to_string().into()))
            })
            .collect();
        self.notify_each(ends).await;
        self.broadcast(id, cmd::PLUGINS_DISCONNECTED).await;
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_relays_between_its_two_ends_only() {
        let mut channels = Channels::default();
        let one = channels.open("a", "b");
        let two = channels.open("a", "c");
        assert_ne!(one, two);
        assert_eq!(channels.other_end(one, "a", false).as_deref(), Ok("b"));
        assert_eq!(channels.other_end(one, "b", false).as_deref(), Ok("a"));
        let refused = channels.other_end(one, "c", false).unwrap_err();
        assert_eq!(refused, format!("channel {one} is not open for plugin c"));
        assert!(channels.other_end(99, "a", false).is_err());
        // Closing removes it for both ends.
        assert_eq!(channels.other_end(one, "b", true).as_deref(), Ok("a"));
        assert!(channels.other_end(one, "a", false).is_err());
    }

    #[test]
    fn a_plugin_that_goes_away_takes_its_channels_with_it() {
        let mut channels = Channels::default();
        let ab = channels.open("a", "b");
        let ca = channels.open("c", "a");
        let bc = channels.open("b", "c");
        let mut closed = channels.close_all_of("a");
        closed.sort();
        assert_eq!(closed, [(ab, "b".to_owned()), (ca, "c".to_owned())]);
        assert_eq!(channels.other_end(bc, "b", false).as_deref(), Ok("c"));
        assert!(channels.close_all_of("a").is_empty());
    }
}
