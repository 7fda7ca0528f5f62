//! vcan links and vxcan pairs over rtnetlink (the rtnetlink crate's builders; nothing hand-written).
//!
//! Owns: creating, bringing up, finding and deleting links in the daemon's network namespace
//! (the host's: the managed plugin runs with host networking). Must not touch: can-gw rules,
//! or links it is not named.

use futures_util::TryStreamExt;
use rtnetlink::{packet_route::link::LinkMessage, Handle, LinkUnspec, LinkVcan, LinkVxcan};

use crate::ifname::IfName;

/// ENODEV: the kernel's answer when a link does not exist.
const ENODEV: i32 = 19;

/// A link request the kernel refused, or that could not reach it.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct LinkError {
    op: String,
    #[source]
    source: rtnetlink::Error,
}

impl LinkError {
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
        let found = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(link) => Ok(link.map(|link| link.header.index)),
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

    /// Brings link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<(), LinkError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        let request = self.handle.link().set(message).execute();
        let op = || format!("bringing link {index} up");
        request
            .await
            .map_err(|source| LinkError { op: op(), source })
    }

    /// Deletes link `index` (for a vxcan end, the kernel deletes its peer too).
    pub async fn delete(&self, index: u32) -> Result<(), LinkError> {
        let request = self.handle.link().del(index).execute();
        let op = || format!("deleting link {index}");
        request
            .await
            .map_err(|source| LinkError { op: op(), source })
    }
}
