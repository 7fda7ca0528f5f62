//! Starting a child plugin's process in its sandbox: chunk pipes on fds 3 and 4, stdout and
//! stderr piped into the daemon's log, its own unprivileged uid and gid with no supplementary
//! groups (chosen by `identity`), only the capabilities it declared (kept across the change of
//! user as ambient ones; every other one dropped from all sets), `no_new_privs`, and SIGKILL
//! when the daemon dies.
//!
//! Owns: what happens between fork and exec, and the child's log lines. Must not touch: the
//! child's status, restarts or connection (the supervisor's).

use std::{
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::process::CommandExt as _,
    },
    path::Path,
    process::Stdio,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    net::unix::pipe,
    process::Child,
};
use vxbus_sdk::{ENV_CHUNK_FDS, ENV_DATA_DIR, ENV_PLUGIN_ID};

use super::identity::Ids;

/// A child process, running, with the daemon's ends of its chunk pipes.
pub struct Spawned {
    pub process: Child,
    /// Chunks from the child (its fd 4).
    pub reader: pipe::Receiver,
    /// Chunks to the child (its fd 3).
    pub writer: pipe::Sender,
}

/// What to run, and as whom.
pub struct Program<'a> {
    pub path: &'a Path,
    /// Its working directory (the plugin's directory).
    pub dir: &'a Path,
    pub id: &'a str,
    /// The directory it may write (`VXBUS_PLUGIN_DATA_DIR`), already made (identity.rs).
    pub data_dir: &'a Path,
    /// The user and group it runs as; `None`: the daemon's own (the daemon is not root).
    pub ids: Option<Ids>,
    /// The capabilities it keeps, by name (`CAP_NET_RAW`).
    pub capabilities: &'a [String],
}

/// Starts `program` in its sandbox. Its stdout and stderr are forwarded to the log, line by
/// line, tagged with its id.
pub fn spawn(program: &Program) -> Result<Spawned, String> {
    let keep = capabilities(program.capabilities)?;
    let kept = CapMask::of(&keep);
    let ids = program.ids;
    if ids.is_some() {
        let permitted = caps::read(None, caps::CapSet::Permitted).map_err(|e| e.to_string())?;
        if let Some(missing) = keep.iter().find(|c| !permitted.contains(c)) {
            return Err(format!(
                "plugin.json asks for {missing}, which the daemon itself does not have"
            ));
        }
    }
    // Two pipes: the child reads chunks on fd 3 and writes them on fd 4; its stdout and
    // stderr are only for logs.
    let (to_child_r, to_child_w) = pipe_pair()?;
    let (from_child_r, from_child_w) = pipe_pair()?;
    let (to_child_r, from_child_w) = (above_four(to_child_r)?, above_four(from_child_w)?);
    let (child_r, child_w) = (to_child_r.as_raw_fd(), from_child_w.as_raw_fd());
    let drop_caps = drop_list(&keep)?;
    let parent = std::process::id() as i32;
    let mut command = tokio::process::Command::new(program.path);
    command
        .current_dir(program.dir)
        .env(ENV_CHUNK_FDS, "3,4")
        .env(ENV_PLUGIN_ID, program.id)
        .env(ENV_DATA_DIR, program.data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (dup2, prctl, setgroups, setresgid, setresuid,
    // capset) between fork and exec; the lists they use were built before the fork.
    unsafe {
        command
            .as_std_mut()
            .pre_exec(move || child_setup(child_r, child_w, &drop_caps, ids, &kept, parent));
    }
    // ETXTBSY: a program just written (an upgrade, a test) is still open for writing in a
    // process forked elsewhere in the daemon that has not reached its exec yet; that passes
    // within moments.
    let mut tries = 0;
    let mut process = loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 10 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => {
                break other.map_err(|e| format!("cannot run {}: {e}", program.path.display()))?
            }
        }
    };
    drop((to_child_r, from_child_w));
    let reader = pipe::Receiver::from_owned_fd(from_child_r).map_err(|e| e.to_string())?;
    let writer = pipe::Sender::from_owned_fd(to_child_w).map_err(|e| e.to_string())?;
    for (stream, name) in [
        (
            process
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            "stderr",
        ),
        (
            process
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            "stdout",
        ),
    ] {
        if let Some(stream) = stream {
            tokio::spawn(forward_lines(program.id.to_owned(), name, stream));
        }
    }
    Ok(Spawned {
        process,
        reader,
        writer,
    })
}

/// The longest line of a child's output that is logged whole; the rest of a longer one is cut.
pub const MAX_LOG_LINE: usize = 4096;

async fn forward_lines(id: String, stream_name: &'static str, stream: impl AsyncRead + Unpin) {
    read_lines(stream, |line| {
        tracing::info!(target: "vxbus::plugin", plugin = %id, stream = stream_name, "{line}");
    })
    .await;
}

/// Calls `each` with every line of `stream` until its end: bytes that are not UTF-8 are
/// replaced (a child's output is not trusted to be text), and a line longer than
/// [`MAX_LOG_LINE`] bytes is cut there and says so, so that memory does not grow with it. The
/// stream is read to its end whatever it holds: a child never blocks on a full pipe.
async fn read_lines(stream: impl AsyncRead + Unpin, mut each: impl FnMut(String)) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut cut = false;
    let mut emit = |line: &mut Vec<u8>, cut: &mut bool| {
        let text = String::from_utf8_lossy(line);
        each(if *cut {
            format!("{text} [cut at {MAX_LOG_LINE} bytes]")
        } else {
            text.into_owned()
        });
        line.clear();
        *cut = false;
    };
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (take, ends) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (at, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LOG_LINE - line.len();
        line.extend_from_slice(&chunk[..take.min(room)]);
        cut |= take > room;
        reader.consume(take + usize::from(ends));
        if ends {
            emit(&mut line, &mut cut);
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut cut);
    }
}

/// A pipe whose ends are closed on exec (the child gets its copies by dup2).
fn pipe_pair() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))
}

/// `fd` moved to a number of at least 10, so that the child's dup2 to 3 and 4 cannot clobber it.
fn above_four(fd: OwnedFd) -> Result<OwnedFd, String> {
    use std::os::fd::FromRawFd;
    let high = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
        .map_err(|e| format!("moving a pipe end: {e}"))?;
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

fn capabilities(names: &[String]) -> Result<Vec<caps::Capability>, String> {
    names
        .iter()
        .map(|name| {
            name.parse::<caps::Capability>()
                .map_err(|_| format!("plugin.json names an unknown capability `{name}`"))
        })
        .collect()
}

/// The capabilities to drop from the child's bounding set: every one it did not declare, when
/// this process may drop them; none when it has none to pass on (unprivileged tests).
fn drop_list(keep: &[caps::Capability]) -> Result<Vec<u32>, String> {
    let permitted = caps::read(None, caps::CapSet::Permitted).map_err(|e| e.to_string())?;
    let can_drop = caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .unwrap_or(false);
    let extra = permitted.iter().any(|c| !keep.contains(c));
    if !can_drop {
        return if extra && nix::unistd::geteuid().is_root() {
            Err(
                "cannot drop the capabilities the plugin did not declare: CAP_SETPCAP is missing"
                    .into(),
            )
        } else {
            Ok(Vec::new())
        };
    }
    Ok(caps::all()
        .into_iter()
        .filter(|c| !keep.contains(c))
        .map(|c| u32::from(c.index()))
        .collect())
}

/// Capabilities as the kernel's capset takes them: a bit per capability, in two words.
#[derive(Clone, Copy)]
struct CapMask {
    words: [u32; 2],
    /// Each capability's number (for the ambient set, one call each), and how many.
    numbers: [u8; 64],
    count: usize,
}

impl CapMask {
    fn of(caps: &[caps::Capability]) -> CapMask {
        let mut mask = CapMask {
            words: [0; 2],
            numbers: [0; 64],
            count: 0,
        };
        for cap in caps {
            let n = cap.index();
            if n < 64 && mask.words[usize::from(n / 32)] & (1 << (n % 32)) == 0 {
                mask.words[usize::from(n / 32)] |= 1 << (n % 32);
                mask.numbers[mask.count] = n;
                mask.count += 1;
            }
        }
        mask
    }
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` (linux/capability.h); the
/// libc crate does not declare them.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Runs in the child between fork and exec.
fn child_setup(
    read_fd: i32,
    write_fd: i32,
    drop_caps: &[u32],
    ids: Option<Ids>,
    kept: &CapMask,
    parent: i32,
) -> std::io::Result<()> {
    use nix::libc;
    let check = |ret: libc::c_int| {
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain syscalls on descriptors and this process's own attributes.
    unsafe {
        // Both sources are above 4 (above_four), so neither dup2 overwrites the other's source.
        check(libc::dup2(read_fd, 3))?;
        check(libc::dup2(write_fd, 4))?;
        for &cap in drop_caps {
            // EINVAL: a capability this kernel does not have; nothing to drop.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        check(libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ))?;
        if let Some(ids) = ids {
            // No supplementary group (root's would give access by group), then the group,
            // then the user: keeping the permitted set across it only to narrow it next.
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(ids.gid, ids.gid, ids.gid))?;
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
            check(libc::setresuid(ids.uid, ids.uid, ids.uid))?;
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0))?;
        }
        if ids.is_some() {
            // Exactly the declared capabilities, in every set; a program that is not root
            // keeps them through exec only as ambient ones, which must be permitted and
            // inheritable first.
            let header = CapHeader {
                version: CAPABILITY_VERSION_3,
                pid: 0,
            };
            let data = [0, 1].map(|word| CapData {
                effective: kept.words[word],
                permitted: kept.words[word],
                inheritable: kept.words[word],
            });
            check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int)?;
            for &cap in &kept.numbers[..kept.count] {
                check(libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                ))?;
            }
        }
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        // Last: a change of user clears the parent-death signal. A daemon that died before
        // this point is no longer our parent: then do not run at all.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
        if libc::getppid() != parent {
            return Err(std::io::Error::other(
                "the daemon exited while the plugin started",
            ));
        }
    }
    if ids.is_none() {
        // Inheritable capabilities would survive exec; clear them.
        caps::clear(None, caps::CapSet::Inheritable)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        read_lines(bytes, |line| lines.push(line)).await;
        lines
    }

    /// A child's output went unlogged from its first byte that was not UTF-8 on (and the
    /// pipe then filled, blocking the child); a line without end grew the daemon's memory.
    #[tokio::test]
    async fn output_is_logged_lossily_line_by_line_and_long_lines_are_cut() {
        assert_eq!(
            lines_of(b"one\ntw\xffo\nthree").await,
            ["one", "tw\u{fffd}o", "three"]
        );
        let mut long = vec![b'x'; MAX_LOG_LINE * 3];
        long.extend_from_slice(b"\nafter\n");
        let lines = lines_of(&long).await;
        assert_eq!(
            lines.len(),
            2,
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(
            lines[0],
            format!("{} [cut at {MAX_LOG_LINE} bytes]", "x".repeat(MAX_LOG_LINE))
        );
        assert_eq!(lines[1], "after");
        assert!(lines_of(b"").await.is_empty());
    }
}
