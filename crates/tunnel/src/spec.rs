//! What a bus's tunnel is asked to be: transport, listening address, peers, batching delay.
//! Validated here, once ([`TunnelSpec`] exists only valid); the daemon's option parser names
//! the `-o` option each [`SpecError`] is about.
//!
//! Owns: the rules for these values. Must not touch sockets.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

/// How frames cross to the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// cannelloni's UDP datagrams: one socket, datagrams to and from the configured peers only.
    #[default]
    Udp,
    /// cannelloni's TCP stream: a server for any number of clients on the listening address,
    /// and a client of each peer, reconnecting with backoff.
    Tcp,
}

impl FromStr for Transport {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            _ => Err(SpecError::Transport),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// What a far end added to a running tunnel is: another vxbus host, or a plain cannelloni end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarEnd {
    Peer,
    Leaf,
}

/// The longest batching delay: cannelloni's own default timeout.
pub const MAX_BATCH_DELAY: Duration = Duration::from_millis(100);

/// A tunnel as asked for, valid: a UDP tunnel has a listening address; a TCP one listens, or
/// has somewhere to connect to; no address twice and none the listening address itself.
///
/// Two kinds of far end, because cannelloni's format says nothing of where a frame came from:
/// - *peers* are other vxbus hosts of the same bus. They form a full mesh: a frame from one
///   peer is never sent on to another (each has it already), so nothing is duplicated or loops.
/// - *leaves* are plain cannelloni endpoints. A frame from a leaf goes to everything else, and
///   every frame goes to every leaf: two leaves talk through vxbus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    transport: Transport,
    listen: Option<SocketAddr>,
    peers: Vec<SocketAddr>,
    leaves: Vec<SocketAddr>,
    batch_delay: Duration,
    /// The pre-shared key's file, as the daemon sees it (see [`crate::seal`]).
    key_file: Option<PathBuf>,
    /// TCP: the addresses plain cannelloni clients may connect from (`tunnel.clients`); none
    /// given: any, unless the tunnel has a key, then none (vxbus hosts with the key only).
    clients: Option<Vec<IpAddr>>,
    /// `tunnel.peers=swarm`: the peers are the Swarm's other nodes at the listening port,
    /// given to the running tunnel by the daemon as Docker reports them; `peers` is empty.
    follows_swarm: bool,
}

/// `tunnel.peers`'s value that makes the Swarm's nodes the peers.
pub const SWARM_PEERS: &str = "swarm";

/// A refused value, named by what it is about; the daemon adds the option's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("udp or tcp")]
    Transport,
    #[error("an IP address and a port other than 0, such as 0.0.0.0:20000 or [::]:20000")]
    Address,
    #[error("{0} is given twice (among tunnel.peers and tunnel.leaves)")]
    PeerTwice(SocketAddr),
    #[error("{0} is the tunnel's own listening address")]
    PeerIsListen(SocketAddr),
    #[error("a delay such as 0, 500us or 2ms, at most 100ms")]
    BatchDelay,
    #[error("a udp tunnel needs tunnel.listen, the address its peers send to")]
    UdpNeedsListen,
    #[error("a tcp tunnel needs tunnel.listen, or tunnel.peers or tunnel.leaves to connect to")]
    TcpNeedsEnd,
    #[error(
        "an absolute path of a file of 64 hex digits, under the state directory /var/lib/vxbus"
    )]
    KeyPath,
    #[error("tunnel.peers=swarm needs tunnel.listen: the Swarm's nodes are peers at its port")]
    SwarmNeedsListen,
    #[error("IP addresses, comma-separated, such as 10.0.0.7,fd00::7")]
    ClientAddress,
    #[error("plain clients connect to a tcp tunnel's listening address: it needs tunnel.transport=tcp and tunnel.listen")]
    ClientsNeedTcpListen,
}

/// An `IP:PORT` address, port not 0.
pub fn parse_address(text: &str) -> Result<SocketAddr, SpecError> {
    match text.trim().parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 => Ok(addr),
        _ => Err(SpecError::Address),
    }
}

/// A comma-separated list of IP addresses (`tunnel.clients`).
pub fn parse_clients(text: &str) -> Result<Vec<IpAddr>, SpecError> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            part.trim()
                .parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| SpecError::ClientAddress)
        })
        .collect()
}

/// A comma-separated list of `IP:PORT` peers, none twice (an empty list is none).
pub fn parse_peers(text: &str) -> Result<Vec<SocketAddr>, SpecError> {
    let mut peers = Vec::new();
    for part in text.split(',').filter(|part| !part.trim().is_empty()) {
        let peer = parse_address(part)?;
        if peers.contains(&peer) {
            return Err(SpecError::PeerTwice(peer));
        }
        peers.push(peer);
    }
    Ok(peers)
}

/// `0`, `NNNus` or `NNNms`, at most [`MAX_BATCH_DELAY`].
pub fn parse_batch_delay(text: &str) -> Result<Duration, SpecError> {
    let delay = if text == "0" {
        Duration::ZERO
    } else if let Some(us) = text.strip_suffix("us") {
        Duration::from_micros(us.parse().map_err(|_| SpecError::BatchDelay)?)
    } else if let Some(ms) = text.strip_suffix("ms") {
        Duration::from_millis(ms.parse().map_err(|_| SpecError::BatchDelay)?)
    } else {
        return Err(SpecError::BatchDelay);
    };
    if delay > MAX_BATCH_DELAY {
        return Err(SpecError::BatchDelay);
    }
    Ok(delay)
}

impl TunnelSpec {
    pub fn new(
        transport: Transport,
        listen: Option<SocketAddr>,
        peers: Vec<SocketAddr>,
        leaves: Vec<SocketAddr>,
        batch_delay: Duration,
    ) -> Result<TunnelSpec, SpecError> {
        match (transport, &listen) {
            (Transport::Udp, None) => return Err(SpecError::UdpNeedsListen),
            (Transport::Tcp, None) if peers.is_empty() && leaves.is_empty() => {
                return Err(SpecError::TcpNeedsEnd)
            }
            _ => {}
        }
        let all: Vec<SocketAddr> = peers.iter().chain(&leaves).copied().collect();
        for (i, peer) in all.iter().enumerate() {
            if all[..i].contains(peer) {
                return Err(SpecError::PeerTwice(*peer));
            }
            if Some(*peer) == listen {
                return Err(SpecError::PeerIsListen(*peer));
            }
        }
        if batch_delay > MAX_BATCH_DELAY {
            return Err(SpecError::BatchDelay);
        }
        Ok(TunnelSpec {
            transport,
            listen,
            peers,
            leaves,
            batch_delay,
            key_file: None,
            clients: None,
            follows_swarm: false,
        })
    }

    /// The same TCP tunnel, taking plain cannelloni clients only from `clients`.
    pub fn with_clients(mut self, clients: Vec<IpAddr>) -> Result<TunnelSpec, SpecError> {
        if self.transport != Transport::Tcp || self.listen.is_none() {
            return Err(SpecError::ClientsNeedTcpListen);
        }
        self.clients = Some(clients);
        Ok(self)
    }

    /// Whether a client connecting from `ip` that says it is no vxbus host may stay.
    pub fn takes_plain_client(&self, ip: IpAddr) -> bool {
        match &self.clients {
            Some(clients) => clients.contains(&ip.to_canonical()),
            None => self.key_file.is_none(),
        }
    }

    /// The same tunnel, its peers the Swarm's other nodes (`tunnel.peers=swarm`) rather than a
    /// list: it needs a listening address, whose port the nodes' tunnels share, and no listed
    /// peers.
    pub fn following_swarm(mut self) -> Result<TunnelSpec, SpecError> {
        if self.listen.is_none() {
            return Err(SpecError::SwarmNeedsListen);
        }
        self.peers.clear();
        self.follows_swarm = true;
        Ok(self)
    }

    /// Whether the peers are the Swarm's nodes, found at run time (`tunnel.peers=swarm`).
    pub fn follows_swarm(&self) -> bool {
        self.follows_swarm
    }

    /// The same tunnel, what goes between it and other vxbus hosts sealed with the key in
    /// `path` (UDP datagrams, TCP streams).
    pub fn with_key_file(mut self, path: &str) -> Result<TunnelSpec, SpecError> {
        let path = Path::new(path);
        if !path.is_absolute() || path.file_name().is_none() {
            return Err(SpecError::KeyPath);
        }
        self.key_file = Some(path.to_owned());
        Ok(self)
    }

    pub fn key_file(&self) -> Option<&Path> {
        self.key_file.as_deref()
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn listen(&self) -> Option<SocketAddr> {
        self.listen
    }

    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    pub fn leaves(&self) -> &[SocketAddr] {
        &self.leaves
    }

    pub fn batch_delay(&self) -> Duration {
        self.batch_delay
    }
}

impl fmt::Display for TunnelSpec {
    /// In the options' own names: `tunnel.transport=udp tunnel.listen=0.0.0.0:20000 ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tunnel.transport={}", self.transport)?;
        if let Some(listen) = self.listen {
            write!(f, " tunnel.listen={listen}")?;
        }
        if self.follows_swarm {
            write!(f, " tunnel.peers={SWARM_PEERS}")?;
        }
        for (name, list) in [("peers", &self.peers), ("leaves", &self.leaves)] {
            if !list.is_empty() {
                let list: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(f, " tunnel.{name}={}", list.join(","))?;
            }
        }
        write!(f, " tunnel.batch_delay={}us", self.batch_delay.as_micros())?;
        if let Some(key) = &self.key_file {
            write!(f, " tunnel.key={}", key.display())?;
        }
        if let Some(clients) = &self.clients {
            let list: Vec<String> = clients.iter().map(ToString::to_string).collect();
            write!(f, " tunnel.clients={}", list.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_none_twice() {
        let peers = parse_peers("10.0.0.2:20000, [fd00::7]:20001").unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(parse_peers("").unwrap(), vec![]);
        assert_eq!(
            parse_peers("10.0.0.2:20000,10.0.0.2:20000"),
            Err(SpecError::PeerTwice("10.0.0.2:20000".parse().unwrap()))
        );
        for bad in [
            "10.0.0.2",
            "host:20000",
            "10.0.0.2:0",
            "10.0.0.2:70000",
            "1.2.3.4:5,x",
        ] {
            assert_eq!(parse_peers(bad), Err(SpecError::Address), "{bad}");
        }
    }

    #[test]
    fn batch_delays_have_units_and_a_ceiling() {
        assert_eq!(parse_batch_delay("0"), Ok(Duration::ZERO));
        assert_eq!(parse_batch_delay("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_batch_delay("100ms"), Ok(MAX_BATCH_DELAY));
        for bad in ["101ms", "5", "1s", "-1ms", "ms"] {
            assert_eq!(parse_batch_delay(bad), Err(SpecError::BatchDelay), "{bad}");
        }
    }

    #[test]
    fn a_spec_has_what_its_transport_needs() {
        let addr: SocketAddr = "0.0.0.0:20000".parse().unwrap();
        let peer: SocketAddr = "10.0.0.2:20000".parse().unwrap();
        let spec = |t, l, p| TunnelSpec::new(t, l, p, vec![], Duration::ZERO);
        assert_eq!(
            spec(Transport::Udp, None, vec![peer]),
            Err(SpecError::UdpNeedsListen)
        );
        assert_eq!(
            spec(Transport::Tcp, None, vec![]),
            Err(SpecError::TcpNeedsEnd)
        );
        assert!(spec(Transport::Tcp, None, vec![peer]).is_ok());
        assert!(spec(Transport::Udp, Some(addr), vec![]).is_ok());
        assert_eq!(
            spec(Transport::Udp, Some(peer), vec![peer]),
            Err(SpecError::PeerIsListen(peer))
        );
        let both = TunnelSpec::new(
            Transport::Udp,
            Some(addr),
            vec![peer],
            vec![peer],
            Duration::ZERO,
        );
        assert_eq!(both, Err(SpecError::PeerTwice(peer)));
        let leaves = TunnelSpec::new(Transport::Tcp, None, vec![], vec![peer], Duration::ZERO);
        assert!(leaves.is_ok());
    }

    #[test]
    fn plain_clients_come_from_the_listed_addresses_or_anywhere_without_a_key() {
        let listen: SocketAddr = "0.0.0.0:20100".parse().unwrap();
        let tcp =
            TunnelSpec::new(Transport::Tcp, Some(listen), vec![], vec![], Duration::ZERO).unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(tcp.takes_plain_client(ip("10.0.0.9")));
        let sealed = tcp.clone().with_key_file("/var/lib/vxbus/k").unwrap();
        assert!(!sealed.takes_plain_client(ip("10.0.0.9")));
        let listed = sealed
            .with_clients(parse_clients("10.0.0.7, fd00::7").unwrap())
            .unwrap();
        assert!(listed.takes_plain_client(ip("10.0.0.7")));
        assert!(listed.takes_plain_client(ip("::ffff:10.0.0.7")));
        assert!(!listed.takes_plain_client(ip("10.0.0.9")));
        assert_eq!(parse_clients("10.0.0.7:1"), Err(SpecError::ClientAddress));
        let udp = TunnelSpec::new(Transport::Udp, Some(listen), vec![], vec![], Duration::ZERO);
        assert_eq!(
            udp.unwrap().with_clients(vec![]),
            Err(SpecError::ClientsNeedTcpListen)
        );
    }

    #[test]
    fn a_spec_following_the_swarm_listens_and_lists_no_peers() {
        let addr: SocketAddr = "0.0.0.0:20400".parse().unwrap();
        let peer: SocketAddr = "10.0.0.2:20400".parse().unwrap();
        let swarm = TunnelSpec::new(
            Transport::Udp,
            Some(addr),
            vec![peer],
            vec![],
            Duration::ZERO,
        )
        .unwrap()
        .following_swarm()
        .unwrap();
        assert!(swarm.follows_swarm());
        assert!(swarm.peers().is_empty());
        assert_eq!(
            swarm.to_string(),
            "tunnel.transport=udp tunnel.listen=0.0.0.0:20400 tunnel.peers=swarm tunnel.batch_delay=0us"
        );
        let no_listen = TunnelSpec::new(Transport::Tcp, None, vec![peer], vec![], Duration::ZERO);
        assert_eq!(
            no_listen.unwrap().following_swarm(),
            Err(SpecError::SwarmNeedsListen)
        );
    }
}
