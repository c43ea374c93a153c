//! Clusters of named nodes on madsim.
//!
//! | node          | ip          | runs                                  |
//! |---------------|-------------|---------------------------------------|
//! | `broker-N`    | 10.0.0.N    | a broker on port 9092, faulty disk    |
//! | `controller-N`| 10.0.2.N    | a Raft controller: raft 9093, api 9094 |
//! | `client-K`    | 10.0.1.K+1  | one workload process (spawned by it)  |
//!
//! Each broker's [`FaultyDisk`] and [`SimClock`] live outside the node, so
//! they survive a crash: `crash` kills the node's tasks, then drops the
//! disk's unsynced data; `restart` runs the node's init again, which
//! recovers the broker from what the disk kept.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use broker::config::BrokerConfig;
use broker::controller::ControllerConfig;
use broker::quorum::{run_controller, ControllerNodeConfig, ControllerStats};
use broker::raft::RaftConfig;
use broker::server::{serve, Broker, TraceDirection, TraceHook};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;

use crate::clock::SimClock;
use crate::disk::FaultyDisk;
use crate::trace::TraceHash;

/// The port every simulated broker listens on.
pub const BROKER_PORT: u16 = 9092;
/// The port controllers exchange Raft messages on.
pub const RAFT_PORT: u16 = 9093;
/// The port controllers take broker requests on.
pub const CONTROLLER_API_PORT: u16 = 9094;

/// How the controllers of a simulated cluster run.
#[derive(Debug, Clone)]
pub struct QuorumSettings {
    /// How many controllers (3 or 5).
    pub controllers: usize,
    /// Raft settings shared by every controller (ids and voters are filled in).
    pub raft: RaftConfig,
    /// Sync the Raft log (false: the `raft.fsync=false` knob).
    pub fsync: bool,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Metadata settings.
    pub metadata: ControllerConfig,
}

/// One simulated controller.
pub struct SimController {
    /// Its node name.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
    /// The madsim node.
    pub node: NodeHandle,
    /// Its disk, kept across crashes.
    pub disk: FaultyDisk,
    /// Its wall clock.
    pub clock: SimClock,
    /// Its counters, kept across crashes.
    pub stats: Arc<ControllerStats>,
}

/// One simulated broker.
pub struct SimBroker {
    /// Its node name.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
    /// The madsim node.
    pub node: NodeHandle,
    /// Its disk, kept across crashes.
    pub disk: FaultyDisk,
    /// Its wall clock.
    pub clock: SimClock,
}

impl SimBroker {
    /// `ip:port` clients connect to.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, BROKER_PORT)
    }
}

/// A simulated cluster.
pub struct SimCluster {
    handle: Handle,
    /// The brokers, in `broker-1..` order.
    pub brokers: Vec<SimBroker>,
    /// The controllers, in `controller-1..` order (empty for a standalone broker).
    pub controllers: Vec<SimController>,
    clients: Vec<(String, NodeHandle)>,
    /// Hash of every frame and fault of the run.
    pub trace: TraceHash,
}

impl SimCluster {
    /// Starts `count` brokers with `config` (node ids and advertised
    /// addresses are filled in per broker); disks draw faults from `seed`.
    pub fn start(count: usize, config: &BrokerConfig, seed: u64) -> Self {
        let handle = Handle::current();
        let trace = TraceHash::new();
        let brokers = (1..=count)
            .map(|n| {
                let name = format!("broker-{n}");
                let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, n as u8));
                let disk = FaultyDisk::new(seed.wrapping_mul(31).wrapping_add(n as u64));
                let clock = SimClock::new();
                let mut broker_config = config.clone();
                broker_config.node_id = n as i32;
                broker_config.advertised_host = ip.to_string();
                broker_config.advertised_port = i32::from(BROKER_PORT);
                broker_config.data_dir = format!("/data/{name}").into();
                broker_config.seed = seed ^ n as u64;
                let node = handle
                    .create_node()
                    .name(&name)
                    .ip(ip)
                    .init({
                        let (disk, clock, trace, name) = (disk.clone(), clock.clone(), trace.clone(), name.clone());
                        // Production seeds each process start from the OS,
                        // so a restarted broker is a new incarnation (a new
                        // registration with the controllers); the same here,
                        // deterministically: one seed per start.
                        let starts = Arc::new(std::sync::atomic::AtomicU64::new(0));
                        move || {
                            let start = starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let mut config = broker_config.clone();
                            config.seed = broker_config.seed ^ start.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                            broker_main(name.clone(), config, disk.clone(), clock.clone(), trace.clone())
                        }
                    })
                    .build();
                SimBroker {
                    name,
                    ip,
                    node,
                    disk,
                    clock,
                }
            })
            .collect();
        Self {
            handle,
            brokers,
            controllers: Vec::new(),
            clients: Vec::new(),
            trace,
        }
    }

    /// The `controller.quorum.voters` value for `count` simulated controllers.
    pub fn quorum_voters(count: usize) -> String {
        (1..=count)
            .map(|n| format!("{n}@10.0.2.{n}:{CONTROLLER_API_PORT}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts a controller quorum first, then `brokers` brokers in cluster
    /// mode pointed at it.
    pub fn start_with_quorum(brokers: usize, config: &BrokerConfig, quorum: &QuorumSettings, seed: u64) -> Self {
        let handle = Handle::current();
        let voters: Vec<u64> = (1..=quorum.controllers as u64).collect();
        let raft_peers: BTreeMap<u64, String> =
            voters.iter().map(|&n| (n, format!("10.0.2.{n}:{RAFT_PORT}"))).collect();
        let controllers = voters
            .iter()
            .map(|&n| {
                let name = format!("controller-{n}");
                let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 2, n as u8));
                let disk = FaultyDisk::new(seed.wrapping_mul(131).wrapping_add(1000 + n));
                let clock = SimClock::new();
                let stats = Arc::new(ControllerStats::with_ledger());
                let mut raft = quorum.raft.clone();
                raft.id = n;
                raft.voters = voters.clone();
                let node_config = ControllerNodeConfig {
                    node_id: n,
                    raft_peers: raft_peers.clone(),
                    raft_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), RAFT_PORT),
                    api_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), CONTROLLER_API_PORT),
                    data_dir: format!("/data/{name}").into(),
                    raft,
                    fsync: quorum.fsync,
                    tick_ms: quorum.tick_ms,
                    metadata: quorum.metadata.clone(),
                    seed: seed ^ (n << 32),
                };
                let node = handle
                    .create_node()
                    .name(&name)
                    .ip(ip)
                    .init({
                        let (disk, clock, stats, name) = (disk.clone(), clock.clone(), stats.clone(), name.clone());
                        move || controller_main(name.clone(), node_config.clone(), disk.clone(), clock.clone(), stats.clone())
                    })
                    .build();
                SimController {
                    name,
                    ip,
                    node,
                    disk,
                    clock,
                    stats,
                }
            })
            .collect();
        let mut broker_config = config.clone();
        broker_config.controller_quorum_voters = Some(Self::quorum_voters(quorum.controllers));
        let mut cluster = Self::start(brokers, &broker_config, seed);
        cluster.controllers = controllers;
        cluster
    }

    /// Elections started across all controllers so far.
    pub fn elections(&self) -> u64 {
        self.controllers
            .iter()
            .map(|c| c.stats.elections_started.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Raft's state machine safety, checked across the controllers' ledgers
    /// of applied entries: every violation in plain words (empty: none).
    pub fn state_machine_safety_violations(&self) -> Vec<String> {
        broker::quorum::check_ledgers(self.controllers.iter().map(|c| (c.name.as_str(), &*c.stats)))
    }

    /// The controller (index into `controllers`) that believes it leads,
    /// among those for which `up` holds; with several (an old leader that
    /// has not heard of a newer term yet), the last in order.
    pub fn controller_leader(&self, up: impl Fn(usize) -> bool) -> Option<usize> {
        (0..self.controllers.len())
            .filter(|&i| up(i))
            .filter(|&i| self.controllers[i].stats.is_leader.load(std::sync::atomic::Ordering::Relaxed))
            .last()
    }

    /// Names of every server node (brokers and controllers).
    pub fn server_names(&self) -> Vec<String> {
        self.brokers
            .iter()
            .map(|b| b.name.clone())
            .chain(self.controllers.iter().map(|c| c.name.clone()))
            .collect()
    }

    /// The disk and clock of a server node, by name.
    pub fn server_disk_clock(&self, name: &str) -> Option<(&FaultyDisk, &SimClock)> {
        self.brokers
            .iter()
            .find(|b| b.name == name)
            .map(|b| (&b.disk, &b.clock))
            .or_else(|| self.controllers.iter().find(|c| c.name == name).map(|c| (&c.disk, &c.clock)))
    }

    /// Creates a client node; workloads spawn their process on it.
    pub fn add_client(&mut self, index: usize) -> NodeHandle {
        let name = format!("client-{index}");
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 1, (index + 1) as u8));
        let node = self.handle.create_node().name(&name).ip(ip).build();
        self.clients.push((name, node.clone()));
        node
    }

    fn node_id(&self, name: &str) -> NodeId {
        if let Some(broker) = self.brokers.iter().find(|b| b.name == name) {
            return broker.node.id();
        }
        if let Some(controller) = self.controllers.iter().find(|c| c.name == name) {
            return controller.node.id();
        }
        self.clients
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node.id())
            .unwrap_or_else(|| panic!("no node named {name}"))
    }

    /// Kills a server node and drops its disk's unsynced data.
    pub fn crash(&self, name: &str) {
        self.trace.record("crash", name.as_bytes());
        self.handle.kill(self.node_id(name));
        if let Some((disk, _)) = self.server_disk_clock(name) {
            disk.crash();
        }
        if let Some(controller) = self.controllers.iter().find(|c| c.name == name) {
            // A dead process leads nothing.
            controller.stats.is_leader.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Restarts a crashed server node (its init recovers from the disk).
    pub fn restart(&self, name: &str) {
        self.trace.record("restart", name.as_bytes());
        self.handle.restart(self.node_id(name));
    }

    /// Cuts every link between `name` and every other node.
    pub fn isolate(&self, name: &str) {
        self.trace.record("isolate", name.as_bytes());
        self.set_links_of(name, true);
    }

    /// Restores every link of `name`.
    pub fn rejoin(&self, name: &str) {
        self.trace.record("rejoin", name.as_bytes());
        self.set_links_of(name, false);
    }

    /// Clogs (or unclogs) both directions between `name` and every other node.
    fn set_links_of(&self, name: &str, clogged: bool) {
        let net = NetSim::current();
        let id = self.node_id(name);
        let others = self.server_names().into_iter().chain(self.clients.iter().map(|(n, _)| n.clone()));
        for other in others.filter(|n| n != name) {
            let other = self.node_id(&other);
            if clogged {
                net.clog_link(id, other);
                net.clog_link(other, id);
            } else {
                net.unclog_link(id, other);
                net.unclog_link(other, id);
            }
        }
    }

    /// Freezes a node's tasks.
    pub fn pause(&self, name: &str) {
        self.trace.record("pause", name.as_bytes());
        self.handle.pause(self.node_id(name));
    }

    /// Lets a paused node run again.
    pub fn resume(&self, name: &str) {
        self.trace.record("resume", name.as_bytes());
        self.handle.resume(self.node_id(name));
    }

    /// Cuts both directions of the link between two nodes.
    pub fn cut(&self, a: &str, b: &str) {
        self.trace.record("cut", format!("{a}|{b}").as_bytes());
        let (a, b) = (self.node_id(a), self.node_id(b));
        let net = NetSim::current();
        net.clog_link(a, b);
        net.clog_link(b, a);
    }

    /// Restores both directions of the link between two nodes.
    pub fn heal(&self, a: &str, b: &str) {
        self.trace.record("heal", format!("{a}|{b}").as_bytes());
        let (a, b) = (self.node_id(a), self.node_id(b));
        let net = NetSim::current();
        net.unclog_link(a, b);
        net.unclog_link(b, a);
    }

    /// The final trace hash, with every disk's operation hash folded in.
    pub fn trace_hash(&self) -> u64 {
        for broker in &self.brokers {
            self.trace.record("disk", &broker.disk.trace_hash().to_le_bytes());
        }
        for controller in &self.controllers {
            self.trace.record("disk", &controller.disk.trace_hash().to_le_bytes());
        }
        self.trace.value()
    }
}

/// What a broker node runs: open (recover) the broker, then serve.
async fn broker_main(name: String, config: BrokerConfig, disk: FaultyDisk, clock: SimClock, trace: TraceHash) {
    let hook: TraceHook = {
        let trace = trace.clone();
        Arc::new(move |direction, frame| {
            let tag = match direction {
                TraceDirection::Request => "request",
                TraceDirection::Response => "response",
            };
            trace.record(tag, frame);
        })
    };
    let broker = match Broker::open_traced(config, Arc::new(disk), Arc::new(clock), hook) {
        Ok(broker) => broker,
        Err(error) => {
            trace.record("open-failed", name.as_bytes());
            tracing::error!(%name, %error, "broker failed to open");
            return;
        }
    };
    let listener = match madsim::net::TcpListener::bind(("0.0.0.0", BROKER_PORT)).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%name, %error, "bind failed");
            return;
        }
    };
    if let Err(error) = serve(broker, listener).await {
        tracing::error!(%name, %error, "serve failed");
    }
}

/// How long a supervisor waits before restarting a controller that stopped.
const CONTROLLER_RESTART_MS: u64 = 1_000;

/// What a controller node runs. A controller stops on a storage error
/// (fail-stop, as a process that exits); like a process supervisor, this
/// runs it again from its disk after a pause. The disk keeps what it had: a
/// process exit loses no page cache.
async fn controller_main(name: String, config: ControllerNodeConfig, disk: FaultyDisk, clock: SimClock, stats: Arc<ControllerStats>) {
    loop {
        match run_controller(config.clone(), Arc::new(disk.clone()), Arc::new(clock.clone()), stats.clone()).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%name, %error, "controller stopped; restarting it from disk");
                tokio::time::sleep(Duration::from_millis(CONTROLLER_RESTART_MS)).await;
            }
        }
    }
}
