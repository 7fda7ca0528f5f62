//! vcan links and vxcan pairs over rtnetlink (the rtnetlink crate's builders; nothing hand-written).
//!
//! Owns: creating, bringing up, finding and deleting links in the daemon's network namespace
//! (the host's: the managed plugin runs with host networking). Must not touch: can-gw rules,
//! or links it is not named.

use futures_util::TryStreamExt;
use rtnetlink::{
    packet_route::link::{
        InfoCan, InfoData, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage,
    },
    Handle, LinkCan, LinkMessageBuilder, LinkUnspec, LinkVcan, LinkVxcan,
};

use crate::ifname::IfName;

/// ENODEV: the kernel's answer when a link does not exist.
const ENODEV: i32 = 19;
/// EOPNOTSUPP: the kernel's answer to a link kind it does not know ("Unknown device type"),
/// which is what a missing vcan or vxcan module looks like.
const EOPNOTSUPP: i32 = 95;

/// The MTU of a CAN interface that carries classic frames only (CAN_MTU).
pub const CAN_MTU: u32 = 16;
/// The MTU of a CAN interface that carries CAN FD frames too (CANFD_MTU).
pub const CANFD_MTU: u32 = 72;

/// A link as the kernel lists it: what vxbus needs to know to use or clean it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The rtnetlink kind (`vcan`, `vxcan`, `can` for a controller driven by can-dev, ...);
    /// `None` for a link that reports none.
    pub kind: Option<String>,
    /// Whether it is a CAN interface (link type ARPHRD_CAN).
    pub is_can: bool,
    pub up: bool,
    /// A CAN controller's bit rate, if it reports one.
    pub can_bitrate: Option<u32>,
    /// The kernel's frame counters of the link (`ip -s link`), if it reports them.
    pub counters: Option<LinkCounters>,
}

/// A link's counters as the kernel keeps them (IFLA_STATS64), seen from the link: `rx` is what
/// arrived on it, `tx` what was sent out of it. On a vxcan end, what one end sends the other
/// receives; on a CAN link a packet is a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames that arrived and were dropped before any socket saw them (a full backlog).
    pub rx_dropped: u64,
    /// Frames the link could not send (no peer, a full queue).
    pub tx_dropped: u64,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Link {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            kind: None,
            is_can: message.header.link_layer_type == LinkLayerType::Can,
            up: message.header.flags.contains(LinkFlags::Up),
            can_bitrate: None,
            counters: None,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Stats64(stats) => {
                    link.counters = Some(LinkCounters {
                        rx_packets: stats.rx_packets,
                        rx_bytes: stats.rx_bytes,
                        tx_packets: stats.tx_packets,
                        tx_bytes: stats.tx_bytes,
                        rx_dropped: stats.rx_dropped,
                        tx_dropped: stats.tx_dropped,
                    })
                }
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                            LinkInfo::Data(InfoData::Can(data)) => {
                                for item in data {
                                    if let InfoCan::BitTiming(timing) = item {
                                        link.can_bitrate = Some(timing.bitrate);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    /// Whether it is a CAN controller driven by the kernel's can-dev (a physical `can0`, an
    /// `slcan0`): the kind of link whose bit rates can be set.
    pub fn is_can_controller(&self) -> bool {
        self.is_can && self.kind.as_deref() == Some("can")
    }
}

/// Bit timing for a CAN controller (`ip link set DEV type can bitrate .. dbitrate .. fd on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanTiming {
    pub bitrate: Option<u32>,
    pub data_bitrate: Option<u32>,
    /// Turn CAN FD mode on (or off) with the bit rates.
    pub fd: Option<bool>,
}

/// In `ip link` words: `bitrate 500000 dbitrate 2000000 fd on`.
impl std::fmt::Display for CanTiming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words = Vec::new();
        if let Some(rate) = self.bitrate {
            words.push(format!("bitrate {rate}"));
        }
        if let Some(rate) = self.data_bitrate {
            words.push(format!("dbitrate {rate}"));
        }
        if let Some(fd) = self.fd {
            words.push(format!("fd {}", if fd { "on" } else { "off" }));
        }
        f.write_str(&words.join(" "))
    }
}

/// A link request the kernel refused, or that could not reach it.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct LinkError {
    op: String,
    #[source]
    source: rtnetlink::Error,
}

impl LinkError {
    /// Whether the kernel refused the link's kind (EOPNOTSUPP, "Unknown device type"): the
    /// module for it is missing.
    pub fn is_unknown_kind(&self) -> bool {
        self.errno() == Some(EOPNOTSUPP)
    }

    /// The error a caller reports for this one: the kernel lacks `module` if the link's kind was
    /// refused, else this error itself.
    pub fn or_missing<E>(self, module: &'static str) -> E
    where
        E: From<LinkError> + From<super::kernel::Missing>,
    {
        if self.is_unknown_kind() {
            super::kernel::Missing(vec![module]).into()
        } else {
            self.into()
        }
    }

    /// The errno the kernel answered with, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match &self.source {
            rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
            _ => None,
        }
    }
}

/// An rtnetlink connection for link requests.
#[derive(Clone)]
pub struct Links {
    handle: Handle,
}

impl Links {
    /// Opens the connection; its driver runs as a task on the current tokio runtime.
    pub fn connect() -> std::io::Result<Links> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        Ok(Links { handle })
    }

    /// The index of the link named `name`, or `None` if there is none.
    pub async fn index(&self, name: &IfName) -> Result<Option<u32>, LinkError> {
        Ok(self.get(name).await?.map(|link| link.index))
    }

    /// The link named `name`, or `None` if there is none.
    pub async fn get(&self, name: &IfName) -> Result<Option<Link>, LinkError> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await;
        match found {
            // The kernel finds a link by its alternative names too (`ip link property add ...
            // altname`): only the link whose name it is answers to it here.
            Ok(message) => Ok(message
                .as_ref()
                .map(Link::from_message)
                .filter(|link| link.name == name.as_str())),
            Err(source) => {
                let error = LinkError {
                    op: format!("looking up link {name}"),
                    source,
                };
                if error.errno() == Some(ENODEV) {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Every link in the namespace.
    pub async fn list(&self) -> Result<Vec<Link>, LinkError> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| LinkError {
                op: "listing links".to_owned(),
                source,
            })?;
        Ok(messages.iter().map(Link::from_message).collect())
    }

    async fn must_index(&self, name: &IfName, op: &str) -> Result<u32, LinkError> {
        self.index(name).await?.ok_or_else(|| LinkError {
            op: format!("{op}: link {name} vanished after it was created"),
            source: rtnetlink::Error::RequestFailed,
        })
    }

    /// Sends a request to create the link `message` describes.
    async fn create(&self, message: LinkMessage, op: &str) -> Result<(), LinkError> {
        let request = self.handle.link().add(message).execute();
        request.await.map_err(|source| LinkError {
            op: op.to_owned(),
            source,
        })
    }

    /// Creates a vcan link, down, and returns its index.
    pub async fn add_vcan(&self, name: &IfName) -> Result<u32, LinkError> {
        let op = format!("creating vcan {name}");
        self.create(LinkVcan::new(name.as_str()).build(), &op)
            .await?;
        self.must_index(name, &op).await
    }

    /// Creates a vxcan pair, both ends down, and returns their indexes (`name`, `peer`).
    pub async fn add_vxcan(&self, name: &IfName, peer: &IfName) -> Result<(u32, u32), LinkError> {
        let op = format!("creating vxcan pair {name} <-> {peer}");
        self.create(LinkVxcan::new(name.as_str(), peer.as_str()).build(), &op)
            .await?;
        Ok((
            self.must_index(name, &op).await?,
            self.must_index(peer, &op).await?,
        ))
    }

    /// Sends a request to change link settings (RTM_SETLINK).
    async fn set(&self, message: LinkMessage, op: String) -> Result<(), LinkError> {
        let request = self.handle.link().set(message).execute();
        request.await.map_err(|source| LinkError { op, source })
    }

    /// Brings link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        self.set(message, format!("bringing link {index} up")).await
    }

    /// Brings link `index` down.
    pub async fn set_down(&self, index: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).down().build();
        self.set(message, format!("bringing link {index} down"))
            .await
    }

    /// Sets link `index`'s MTU ([`CAN_MTU`] or [`CANFD_MTU`] for a CAN interface).
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.set(message, format!("setting link {index}'s MTU to {mtu}"))
            .await
    }

    /// Sets link `index`'s transmit queue length.
    pub async fn set_txqueuelen(&self, index: u32, len: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).txqueuelen(len).build();
        self.set(
            message,
            format!("setting link {index}'s txqueuelen to {len}"),
        )
        .await
    }

    /// Sets the bit timing of CAN controller `index`, which must be down (the kernel refuses
    /// with EBUSY otherwise). An RTM_NEWLINK with kind `can` on an existing link, as
    /// `ip link set DEV type can ...` sends.
    pub async fn set_can_timing(&self, index: u32, timing: CanTiming) -> Result<(), LinkError> {
        use rtnetlink::packet_route::link::{CanBitTiming, CanCtrlModeFlags};
        let mut builder =
            LinkMessageBuilder::<LinkCan>::new_with_info_kind(InfoKind::Can).index(index);
        if let Some(bitrate) = timing.bitrate {
            builder = builder.bit_timing(CanBitTiming::new(bitrate));
        }
        if let Some(bitrate) = timing.data_bitrate {
            builder = builder.data_bit_timing(CanBitTiming::new(bitrate));
        }
        if let Some(fd) = timing.fd {
            let flags = if fd {
                CanCtrlModeFlags::Fd
            } else {
                CanCtrlModeFlags::empty()
            };
            builder = builder.ctrl_mode(CanCtrlModeFlags::Fd, flags);
        }
        let request = self.handle.link().change(builder.build()).execute();
        request.await.map_err(|source| LinkError {
            op: format!("setting `{timing}` on link {index}"),
            source,
        })
    }

    /// Deletes link `index` (for a vxcan end, the kernel deletes its peer too). A link that is
    /// already gone is not an error: deleting is how cleanup ends either way.
    pub async fn delete(&self, index: u32) -> Result<(), LinkError> {
        let request = self.handle.link().del(index).execute();
        match request.await {
            Ok(()) => Ok(()),
            Err(source) => {
                let error = LinkError {
                    op: format!("deleting link {index}"),
                    source,
                };
                if error.errno() == Some(ENODEV) {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }
}
