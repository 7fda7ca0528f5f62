//! The smallest vxbus plugin: it logs every bus it is told to serve. Build it with
//! `cargo build -p vxbus-sdk --example hello`; to run it under vxbus, put the program in
//! `/usr/lib/vxbus/plugins/hello/` beside a `plugin.json` naming it (PROTOCOL.md), or add a
//! folder under `plugins/` as the bundled ones are.

use vxbus_sdk::{Bus, BusPlugin, Host, PluginInfo, Schema};

struct Hello;

impl BusPlugin for Hello {
    async fn start(&self, _host: &Host, bus: Bus) -> Result<(), String> {
        eprintln!(
            "serving {} (CAN socket on {})",
            bus.network_id, bus.host_interface
        );
        Ok(())
    }
    async fn stop(&self, _host: &Host, bus: Bus) -> Result<(), String> {
        eprintln!("no longer serving {}", bus.network_id);
        Ok(())
    }
}

// One thread is enough for a plugin, and the fastest: calls from the daemon wake tasks on
// the thread that reads the pipe (make bench-chunk: about twice the round trips of tokio's
// multi-threaded runtime at 64 calls in flight).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let info = PluginInfo {
        name: "hello".into(),
        version: "1.0".into(),
        kind: "bus".into(),
        interface: vxbus_sdk::INTERFACE_VERSION.into(),
        config: Schema::default(),
        settings: Schema::default(),
    };
    vxbus_sdk::run(info, Hello).await
}
