//! Clusters of named nodes on madsim.
//!
//! | node          | ip          | runs                                  |
//! |---------------|-------------|---------------------------------------|
//! | `broker-N`    | 10.0.0.N    | a broker on port 9092, faulty disk    |
//! | `client-K`    | 10.0.1.K+1  | one workload process (spawned by it)  |
//!
//! Each broker's [`FaultyDisk`] and [`SimClock`] live outside the node, so
//! they survive a crash: `crash` kills the node's tasks, then drops the
//! disk's unsynced data; `restart` runs the node's init again, which
//! recovers the broker from what the disk kept.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use broker::config::BrokerConfig;
use broker::server::{serve, Broker, TraceDirection, TraceHook};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;

use crate::clock::SimClock;
use crate::disk::FaultyDisk;
use crate::trace::TraceHash;

/// The port every simulated broker listens on.
pub const BROKER_PORT: u16 = 9092;

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
                        move || broker_main(name.clone(), broker_config.clone(), disk.clone(), clock.clone(), trace.clone())
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
            clients: Vec::new(),
            trace,
        }
    }

    /// Creates a client node; workloads spawn their process on it.
    pub fn add_client(&mut self, index: usize) -> NodeHandle {
        let name = format!("client-{index}");
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 1, (index + 1) as u8));
        let node = self.handle.create_node().name(&name).ip(ip).build();
        self.clients.push((name, node.clone()));
        node
    }

    fn broker(&self, name: &str) -> &SimBroker {
        self.brokers.iter().find(|b| b.name == name).unwrap_or_else(|| panic!("no broker named {name}"))
    }

    fn node_id(&self, name: &str) -> NodeId {
        if let Some(broker) = self.brokers.iter().find(|b| b.name == name) {
            return broker.node.id();
        }
        self.clients
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node.id())
            .unwrap_or_else(|| panic!("no node named {name}"))
    }

    /// Kills a broker and drops its disk's unsynced data.
    pub fn crash(&self, name: &str) {
        let broker = self.broker(name);
        self.trace.record("crash", name.as_bytes());
        self.handle.kill(broker.node.id());
        broker.disk.crash();
    }

    /// Restarts a crashed broker (its init recovers from the disk).
    pub fn restart(&self, name: &str) {
        self.trace.record("restart", name.as_bytes());
        self.handle.restart(self.broker(name).node.id());
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
