//! External plugins: programs that bind a Unix socket named by their plugin id in the plugin
//! socket directory and speak the start/stop JSON API of seed 000, as its vendor ships it today
//! (one connection per message; `{"version": 1, "action": ..., "bus": {...}}` in, one line of
//! `{"success": true}` or `{"success": false, "error": "..."}` out).
//!
//! Owns: that exchange and its timeout. Must not touch: child processes or bus state.

use std::{path::Path, time::Duration};

use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use vxbus_sdk::Lifecycle;

#[derive(Deserialize)]
struct Answer {
    success: bool,
    #[serde(default)]
    error: Option<String>,
}

/// Sends `message` to the plugin on `socket` and waits up to `timeout` for its answer; `Err`
/// carries the plugin's error or what went wrong reaching it.
pub async fn send(
    socket: &Path,
    id: &str,
    message: &Lifecycle,
    timeout: Duration,
) -> Result<(), String> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        let mut body = serde_json::to_vec(message).expect("a lifecycle message serializes");
        body.push(b'\n');
        stream
            .write_all(&body)
            .await
            .map_err(|e| format!("writing to {}: {e}", socket.display()))?;
        // End of the request: plugins that read to end-of-stream and those that read a line
        // both have all of it.
        stream
            .shutdown()
            .await
            .map_err(|e| format!("writing to {}: {e}", socket.display()))?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading from {}: {e}", socket.display()))?;
        if line.trim().is_empty() {
            return Err(format!(
                "{}: external plugin {id} closed the connection without an answer",
                message.action
            ));
        }
        let answer: Answer = serde_json::from_str(line.trim())
            .map_err(|e| format!("answered `{}`, not {{\"success\": ...}}: {e}", line.trim()))?;
        match answer {
            Answer { success: true, .. } => Ok(()),
            Answer { error, .. } => {
                Err(error.unwrap_or_else(|| "failed without an error message".into()))
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{}: no answer from external plugin {id} within {} ms",
            message.action,
            timeout.as_millis()
        )),
    }
}
