//! A bus's host device: a vcan vxbus creates, or an existing CAN interface it bridges (a
//! physical controller gets the bus's bit rates and queue length).
//!
//! Owns: preparing that link for a bus, and undoing its own changes when that fails. Must not
//! touch the state file or rules (the driver's calls record and route).

use vxbus_dataplane::{
    ifname::IfName,
    links::{CanTiming, Link, CANFD_MTU, CAN_MTU},
};

use super::{BusError, Inner};
use crate::{bus::BusSpec, state::HostDevice};

impl Inner {
    /// Makes `name` ready to be the bus's host device: found (a CAN interface, configured if it is
    /// a controller) or created (a vcan). Undoes its own changes on failure.
    pub(super) async fn prepare_host_device(
        &mut self,
        name: &IfName,
        spec: &BusSpec,
    ) -> Result<HostDevice, BusError> {
        let refuse = |reason: String| BusError::HostDevice {
            name: name.clone(),
            reason,
        };
        let Some(link) = self.links.get(name).await? else {
            let index = self
                .links
                .add_vcan(name)
                .await
                .map_err(|err| err.or_missing::<BusError>("vcan"))?;
            let mtu = if spec.fd { CANFD_MTU } else { CAN_MTU };
            let configured = async {
                self.links.set_mtu(index, mtu).await?;
                self.links.set_up(index).await
            }
            .await;
            if let Err(err) = configured {
                self.delete_link_named(name).await;
                return Err(err.into());
            }
            return Ok(HostDevice {
                name: name.clone(),
                created: true,
            });
        };
        if !link.is_can {
            return Err(refuse(format!(
                "exists and is not a CAN interface (kind {}): name a CAN interface, or a name \
                 that does not exist yet for vxbus to create a vcan",
                link.kind.as_deref().unwrap_or("unknown")
            )));
        }
        if link.is_can_controller() {
            self.configure_controller(&link, spec)
                .await
                .map_err(|err| {
                    refuse(format!(
                        "is a CAN controller that refused its settings: {err:#}"
                    ))
                })?;
        } else if !link.up {
            self.links.set_up(link.index).await?;
            tracing::info!(
                "brought the existing {} {name} up",
                link.kind.as_deref().unwrap_or("CAN interface")
            );
        }
        Ok(HostDevice {
            name: name.clone(),
            created: false,
        })
    }

    /// Applies the bus's bit rates and queue length to a CAN controller, which takes them only
    /// while down; it is brought up again (or, if setting them failed, back to how it was).
    async fn configure_controller(&self, link: &Link, spec: &BusSpec) -> anyhow::Result<()> {
        let timing = CanTiming {
            bitrate: spec.bitrate.map(|rate| rate.get()),
            data_bitrate: spec.data_bitrate.map(|rate| rate.get()),
            fd: spec.data_bitrate.map(|_| true),
        };
        let changes = timing.bitrate.is_some() || timing.data_bitrate.is_some();
        if !changes && spec.txqueuelen.is_none() {
            if !link.up {
                self.links.set_up(link.index).await?;
            }
            return Ok(());
        }
        if link.up {
            self.links.set_down(link.index).await?;
        }
        let applied = async {
            if changes {
                self.links.set_can_timing(link.index, timing).await?;
            }
            if let Some(len) = spec.txqueuelen {
                self.links.set_txqueuelen(link.index, len).await?;
            }
            self.links.set_up(link.index).await
        }
        .await;
        if applied.is_err() {
            // The kernel applies a CAN change item by item, so a refused one can leave an
            // earlier one applied (a bit rate before a refused FD mode): put back what was.
            if let (Some(bitrate), true) = (link.can_bitrate.filter(|&rate| rate > 0), changes) {
                let before = CanTiming {
                    bitrate: Some(bitrate),
                    data_bitrate: None,
                    fd: None,
                };
                let _ = self.links.set_can_timing(link.index, before).await;
            }
            if link.up {
                let _ = self.links.set_up(link.index).await;
            }
        }
        applied?;
        let queue = spec
            .txqueuelen
            .map(|len| format!(" txqueuelen {len}"))
            .unwrap_or_default();
        tracing::info!("configured CAN controller {}: {timing}{queue}", link.name);
        Ok(())
    }
}
