//! One controller process: the async driver of a Raft node whose state
//! machine is the metadata image.
//!
//! The loop takes one input at a time (a tick, a peer's message, a broker's
//! request), feeds it to the sans-IO node, then drains every `Ready` in the
//! order the core's contract demands: persist and sync, then send, then
//! apply, then answer reads, then `advance`. A storage error stops the
//! process (fail-stop); whoever supervises it restarts it from disk.

use crate::error_codes::KafkaErrorCode;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot};

use super::protocol::{read_json, write_json, ClusterView, ControllerRequest, ControllerResponse};
use crate::clock::Clock;
use crate::controller::{ApplyOutcome, ControllerConfig, MetadataError, MetadataImage, MetadataRecord};
use crate::disk::Disk;
use crate::raft::storage::{RaftStorage, StorageOptions};
use crate::raft::{EntryKind, LogIndex, Message, NodeId, RaftConfig, RaftNode, Term};

/// Messages queued per peer before new ones are dropped (Raft tolerates loss).
const OUTBOX_MESSAGES_MAX: usize = 1024;
/// Broker requests queued before new ones wait.
const API_QUEUE_MAX: usize = 256;
/// Take a state-machine snapshot after this many applied entries.
const SNAPSHOT_EVERY_ENTRIES: u64 = 1_000;

/// How to run one controller.
#[derive(Debug, Clone)]
pub struct ControllerNodeConfig {
    /// This controller's Raft id.
    pub node_id: NodeId,
    /// Every voter's Raft address (`host:port`), this one included.
    pub raft_peers: BTreeMap<NodeId, String>,
    /// Where to accept Raft messages.
    pub raft_listen: SocketAddr,
    /// Where to accept broker requests.
    pub api_listen: SocketAddr,
    /// Where the Raft log lives.
    pub data_dir: PathBuf,
    /// Raft settings (election and heartbeat ticks, teaching knobs).
    pub raft: RaftConfig,
    /// Sync the Raft log before answering (false: the `raft.fsync=false` knob).
    pub fsync: bool,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Metadata settings (broker session timeout, unclean election).
    pub metadata: ControllerConfig,
    /// Seed for election timeouts.
    pub seed: u64,
}

/// Counters a controller exposes (shared with whoever started it).
#[derive(Debug, Default)]
pub struct ControllerStats {
    /// Elections this node started (as candidate), across restarts.
    pub elections_started: AtomicU64,
    /// Times this node became leader.
    pub leaderships: AtomicU64,
    /// Whether this node believes it is the leader right now (stale once the
    /// process is gone: whoever crashed it knows that).
    pub is_leader: AtomicBool,
    /// What this node applied, when recording is on (the simulation turns
    /// it on; a production controller keeps no such ledger, as it grows
    /// with the log). See [`check_ledgers`].
    pub ledger: Option<Mutex<AppliedLedger>>,
}

/// The term of the entry a node applied at each log index, as first
/// applied, across restarts. Raft's state machine safety says no two nodes
/// (and no node twice) apply different entries at one index; comparing
/// ledgers checks that from outside the nodes.
#[derive(Debug, Default)]
pub struct AppliedLedger {
    /// Log index → term of the entry first applied there.
    pub terms: BTreeMap<LogIndex, Term>,
    /// Indexes applied again (after a restart) with a different term:
    /// `(index, first term, later term)`.
    pub reapplied_differently: Vec<(LogIndex, Term, Term)>,
}

impl ControllerStats {
    /// Counters plus an applied-entries ledger (for simulation and tests).
    pub fn with_ledger() -> Self {
        Self {
            ledger: Some(Mutex::new(AppliedLedger::default())),
            ..Self::default()
        }
    }

    fn record_applied(&self, index: LogIndex, term: Term) {
        let Some(ledger) = &self.ledger else { return };
        let mut ledger = ledger.lock().expect("ledger lock");
        let first = *ledger.terms.entry(index).or_insert(term);
        if first != term && !ledger.reapplied_differently.contains(&(index, first, term)) {
            ledger.reapplied_differently.push((index, first, term));
        }
    }
}

/// Checks Raft's state machine safety across nodes from their ledgers
/// (`(name, stats)` pairs): every violation in plain words, empty if none.
pub fn check_ledgers<'a>(nodes: impl IntoIterator<Item = (&'a str, &'a ControllerStats)>) -> Vec<String> {
    let mut violations = Vec::new();
    let mut first_seen: BTreeMap<LogIndex, (Term, &str)> = BTreeMap::new();
    for (name, stats) in nodes {
        let Some(ledger) = &stats.ledger else { continue };
        let ledger = ledger.lock().expect("ledger lock");
        for &(index, first, later) in &ledger.reapplied_differently {
            violations.push(format!(
                "{name} applied an entry of term {first} at index {index}, then after a restart one of term {later}"
            ));
        }
        for (&index, &term) in &ledger.terms {
            match first_seen.get(&index) {
                Some(&(other_term, other)) if other_term != term => violations.push(format!(
                    "{other} applied an entry of term {other_term} at index {index} but {name} applied one of term {term}"
                )),
                Some(_) => {}
                None => {
                    first_seen.insert(index, (term, name));
                }
            }
        }
    }
    violations
}

/// Why a controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The Raft log could not be read or written.
    #[error("raft storage: {0}")]
    Storage(#[from] crate::raft::storage::StorageError),
    /// The recovered state or configuration was refused by the core.
    #[error("raft: {0}")]
    Raft(#[from] crate::raft::RaftError),
    /// The snapshot did not decode.
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
    /// A listener could not bind.
    #[error("bind {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

type Reply = oneshot::Sender<ControllerResponse>;

/// Stops the helper tasks when dropped: aborts the listeners' and
/// outboxes' tasks and tells every connection task to end, so the ports are
/// free again once they have run.
struct TaskGuard {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn outcome_response(outcome: Result<ApplyOutcome, MetadataError>) -> ControllerResponse {
    match outcome {
        Ok(ApplyOutcome::BrokerRegistered { broker_epoch }) => ControllerResponse::Registered { broker_epoch },
        Ok(ApplyOutcome::Heartbeat { .. }) => ControllerResponse::HeartbeatAccepted,
        Ok(ApplyOutcome::TopicCreated { topic_id }) => ControllerResponse::TopicCreated { topic_id },
        Ok(ApplyOutcome::TopicDeleted) => ControllerResponse::TopicDeleted,
        Ok(ApplyOutcome::PartitionsCreated { count }) => ControllerResponse::PartitionsCreated { count },
        Ok(ApplyOutcome::PartitionAltered { partition_epoch }) => ControllerResponse::PartitionAltered { partition_epoch },
        Ok(other) => ControllerResponse::Rejected {
            code: -1,
            message: format!("unexpected outcome {other:?}"),
        },
        Err(error) => ControllerResponse::Rejected {
            code: error.kafka_error_code(),
            message: error.to_string(),
        },
    }
}

fn cluster_view(node_id: NodeId, image: &MetadataImage) -> ClusterView {
    ClusterView {
        controller_id: node_id,
        controller_epoch: image.controller_epoch(),
        brokers: image.brokers().values().cloned().collect(),
        topics: image.topics().cloned().collect(),
        metadata_offset: image.last_applied_offset(),
    }
}

/// Everything the loop owns.
struct Controller {
    config: ControllerNodeConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<ControllerStats>,
    node: RaftNode,
    storage: RaftStorage,
    image: MetadataImage,
    applied_index: LogIndex,
    snapshot_index: LogIndex,
    outboxes: BTreeMap<NodeId, mpsc::Sender<Message>>,
    /// Proposals waiting to commit: index → (term proposed in, reply).
    proposals: BTreeMap<LogIndex, (Term, Reply)>,
    /// Reads waiting for a quorum: read id → reply.
    reads: BTreeMap<u64, Reply>,
    /// Reads confirmed, waiting for the state machine: (index, reply).
    confirmed_reads: Vec<(LogIndex, Reply)>,
    next_read_id: u64,
    /// When this node last became leader (virtual ms), for fencing delays.
    leader_since_ms: Option<i64>,
    /// Fence records proposed and not yet applied (broker id → epoch).
    fences_in_flight: BTreeMap<i32, u64>,
    was_leader: bool,
    elections_seen: u64,
}

/// Runs one controller until its storage fails or the task is dropped.
pub async fn run_controller(
    config: ControllerNodeConfig,
    disk: Arc<dyn Disk>,
    clock: Arc<dyn Clock>,
    stats: Arc<ControllerStats>,
) -> Result<(), ControllerError> {
    let (storage, recovered) = RaftStorage::open(disk, &config.data_dir, StorageOptions { fsync: config.fsync })?;
    let (image, snapshot_index) = match &recovered.snapshot {
        Some(snapshot) => (MetadataImage::restore(&snapshot.data)?, snapshot.meta.last_index),
        None => (MetadataImage::new(config.metadata.clone()), 0),
    };
    let node = RaftNode::new(config.raft.clone(), recovered, ChaCha8Rng::seed_from_u64(config.seed))?;

    let raft_listener = tokio::net::TcpListener::bind(config.raft_listen)
        .await
        .map_err(|source| ControllerError::Bind { addr: config.raft_listen, source })?;
    let api_listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .map_err(|source| ControllerError::Bind { addr: config.api_listen, source })?;
    let (inbound_tx, mut inbound_rx) = mpsc::channel::<Message>(OUTBOX_MESSAGES_MAX);
    let (api_tx, mut api_rx) = mpsc::channel::<(ControllerRequest, Reply)>(API_QUEUE_MAX);
    // Helper tasks end with this function, so a supervisor can run it
    // again in the same process (the listeners are released).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = TaskGuard {
        tasks: vec![
            tokio::spawn(accept_raft(raft_listener, inbound_tx, stopped.clone())),
            tokio::spawn(accept_api(api_listener, api_tx, stopped)),
        ],
        stop,
    };
    let mut outboxes = BTreeMap::new();
    for (&peer, addr) in &config.raft_peers {
        if peer != config.node_id {
            let (tx, rx) = mpsc::channel(OUTBOX_MESSAGES_MAX);
            tasks.tasks.push(tokio::spawn(send_to_peer(addr.clone(), rx)));
            outboxes.insert(peer, tx);
        }
    }
    let tick = Duration::from_millis(config.tick_ms);
    let mut controller = Controller {
        config,
        clock,
        stats,
        elections_seen: node.elections_started(),
        node,
        storage,
        image,
        applied_index: snapshot_index,
        snapshot_index,
        outboxes,
        proposals: BTreeMap::new(),
        reads: BTreeMap::new(),
        confirmed_reads: Vec::new(),
        next_read_id: 0,
        leader_since_ms: None,
        fences_in_flight: BTreeMap::new(),
        was_leader: false,
    };
    let mut ticker = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                controller.node.tick();
                controller.leader_duties();
            }
            Some(message) = inbound_rx.recv() => controller.node.step(message),
            Some((request, reply)) = api_rx.recv() => controller.handle_request(request, reply),
        }
        if controller.node.has_ready() && crate::buggify!("quorum.ready.slow") { tokio::time::sleep(Duration::from_millis(50)).await; }
        controller.drain_ready()?;
    }
}

impl Controller {
    fn leader_hint(&self) -> Option<NodeId> {
        self.node.leader_id()
    }

    fn handle_request(&mut self, request: ControllerRequest, reply: Reply) {
        if !self.node.is_leader() {
            let _ = reply.send(ControllerResponse::NotLeader { leader_hint: self.leader_hint() });
            return;
        }
        let now_ms = self.clock.now_ms();
        let record = match request {
            ControllerRequest::DescribeCluster => {
                let read_id = self.next_read_id;
                self.next_read_id += 1;
                match self.node.read_index(read_id.to_le_bytes().to_vec()) {
                    Ok(()) => {
                        self.reads.insert(read_id, reply);
                    }
                    Err(_) => {
                        let _ = reply.send(ControllerResponse::NotLeader { leader_hint: self.leader_hint() });
                    }
                }
                return;
            }
            ControllerRequest::RegisterBroker {
                broker_id,
                incarnation_id,
                listener,
                clean_shutdown,
            } => MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                listener,
                rack: None,
                now_ms,
                clean_shutdown,
            },
            ControllerRequest::BrokerHeartbeat { broker_id, broker_epoch, metadata_offset } => MetadataRecord::BrokerHeartbeat {
                broker_id,
                broker_epoch,
                now_ms,
                metadata_offset,
            },
            ControllerRequest::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            } => MetadataRecord::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
            },
            ControllerRequest::AlterPartition {
                topic_id,
                partition,
                broker_id,
                broker_epoch,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => MetadataRecord::AlterPartition {
                topic_id,
                partition,
                broker_id,
                broker_epoch,
                leader_epoch,
                partition_epoch,
                new_isr,
            },
            ControllerRequest::CreatePartitions { name, count } => match self.image.topic(&name) {
                Some(topic) => MetadataRecord::CreatePartitions { topic_id: topic.topic_id, name, count },
                None => {
                    let error = MetadataError::UnknownTopic(name);
                    let _ = reply.send(ControllerResponse::Rejected { code: error.kafka_error_code(), message: error.to_string() });
                    return;
                }
            },
            ControllerRequest::DeleteTopic { name } => match self.image.topic(&name) {
                Some(topic) => MetadataRecord::DeleteTopic {
                    topic_id: topic.topic_id,
                    name,
                },
                None => {
                    let error = MetadataError::UnknownTopic(name);
                    let _ = reply.send(ControllerResponse::Rejected {
                        code: error.kafka_error_code(),
                        message: error.to_string(),
                    });
                    return;
                }
            },
        };
        match self.node.propose(record.encode()) {
            Ok(entry) => {
                self.proposals.insert(entry.index, (entry.term, reply));
            }
            Err(_) => {
                let _ = reply.send(ControllerResponse::NotLeader { leader_hint: self.leader_hint() });
            }
        }
    }

    /// The leader fences brokers whose sessions expired, but only after it
    /// has led for a whole session timeout: heartbeats sent to the previous
    /// leader may not have reached the log.
    fn leader_duties(&mut self) {
        let now_ms = self.clock.now_ms();
        if !self.node.is_leader() {
            self.leader_since_ms = None;
            return;
        }
        let since = *self.leader_since_ms.get_or_insert(now_ms);
        if now_ms - since < self.image.config().broker_session_timeout_ms {
            return;
        }
        for record in self.image.expired_sessions(now_ms) {
            if let MetadataRecord::FenceBroker { broker_id, broker_epoch, .. } = &record {
                if self.fences_in_flight.get(broker_id) == Some(broker_epoch) {
                    continue;
                }
                if self.node.propose(record.encode()).is_ok() {
                    self.fences_in_flight.insert(*broker_id, *broker_epoch);
                }
            }
        }
    }

    fn drain_ready(&mut self) -> Result<(), ControllerError> {
        while self.node.has_ready() {
            let Some(ready) = self.node.ready() else { break };
            // 1-4: persist and sync before anything leaves the node.
            self.storage.persist_ready(&ready)?;
            // 5: send.
            for message in ready.messages {
                if let Some(outbox) = self.outboxes.get(&message.to) {
                    let _ = outbox.try_send(message);
                }
            }
            // 6: restore, then apply.
            if ready.restore_snapshot {
                if let Some(snapshot) = &ready.snapshot {
                    self.image = MetadataImage::restore(&snapshot.data)?;
                    self.applied_index = snapshot.meta.last_index;
                    self.snapshot_index = snapshot.meta.last_index;
                }
            }
            for entry in ready.committed_entries {
                if entry.index <= self.applied_index {
                    continue;
                }
                assert_eq!(entry.index, self.applied_index + 1, "committed entries are applied in order, without gaps");
                self.applied_index = entry.index;
                self.stats.record_applied(entry.index, entry.term);
                let outcome = match entry.kind {
                    EntryKind::Noop => None,
                    _ => Some(match MetadataRecord::decode(&entry.data) {
                        Ok(record) => {
                            if let MetadataRecord::FenceBroker { broker_id, .. } = &record {
                                self.fences_in_flight.remove(broker_id);
                            }
                            self.image.apply(entry.index, entry.term, &record)
                        }
                        Err(error) => Err(error),
                    }),
                };
                if let Some((term, reply)) = self.proposals.remove(&entry.index) {
                    let response = match (term == entry.term, outcome) {
                        (true, Some(outcome)) => outcome_response(outcome),
                        // Another entry won this index: ours never commits.
                        _ => ControllerResponse::NotLeader { leader_hint: self.node.leader_id() },
                    };
                    let _ = reply.send(response);
                }
            }
            // 7: reads confirmed by a quorum, served once applied.
            for read in ready.read_states {
                let Ok(id_bytes) = <[u8; 8]>::try_from(read.ctx.as_slice()) else { continue };
                if let Some(reply) = self.reads.remove(&u64::from_le_bytes(id_bytes)) {
                    self.confirmed_reads.push((read.index, reply));
                }
            }
            for ctx in ready.dropped_reads {
                let Ok(id_bytes) = <[u8; 8]>::try_from(ctx.as_slice()) else { continue };
                if let Some(reply) = self.reads.remove(&u64::from_le_bytes(id_bytes)) {
                    let _ = reply.send(ControllerResponse::NotLeader { leader_hint: None });
                }
            }
            self.node.advance();
        }
        let applied = self.applied_index;
        let (ready_reads, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed_reads)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed_reads = waiting;
        for (_, reply) in ready_reads {
            let _ = reply.send(ControllerResponse::Cluster(cluster_view(self.config.node_id, &self.image)));
        }
        self.after_role_change();
        if self.applied_index >= self.snapshot_index + SNAPSHOT_EVERY_ENTRIES {
            if self.node.compact(self.applied_index, self.image.snapshot()).unwrap_or(false) {
                self.snapshot_index = self.applied_index;
            }
        }
        Ok(())
    }

    /// Keeps counters and fails what a lost leadership cannot finish.
    fn after_role_change(&mut self) {
        let elections = self.node.elections_started();
        if elections > self.elections_seen {
            self.stats.elections_started.fetch_add(elections - self.elections_seen, Ordering::Relaxed);
            self.elections_seen = elections;
        }
        let leader = self.node.is_leader();
        if leader && !self.was_leader {
            self.stats.leaderships.fetch_add(1, Ordering::Relaxed);
            tracing::info!(node = self.config.node_id, term = self.node.term(), "controller became leader");
        }
        if !leader && self.was_leader {
            tracing::info!(node = self.config.node_id, term = self.node.term(), "controller lost leadership");
        }
        if !leader && self.was_leader {
            for (_, (_, reply)) in std::mem::take(&mut self.proposals) {
                let _ = reply.send(ControllerResponse::Unknown {
                    reason: "leadership lost before the proposal was known to commit".into(),
                });
            }
            for (_, reply) in std::mem::take(&mut self.reads) {
                let _ = reply.send(ControllerResponse::NotLeader { leader_hint: self.node.leader_id() });
            }
            for (_, reply) in std::mem::take(&mut self.confirmed_reads) {
                let _ = reply.send(ControllerResponse::NotLeader { leader_hint: self.node.leader_id() });
            }
            self.fences_in_flight.clear();
        }
        self.was_leader = leader;
        self.stats.is_leader.store(leader, Ordering::Relaxed);
    }
}

async fn accept_raft(listener: tokio::net::TcpListener, inbound: mpsc::Sender<Message>, stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        let Some(mut stream) = accept_next(&listener).await else { continue };
        let inbound = inbound.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    read = read_json::<_, Message>(&mut stream) => match read {
                        Ok(Some(message)) => message,
                        _ => return,
                    },
                    _ = stopped.changed() => return,
                };
                if inbound.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn accept_api(
    listener: tokio::net::TcpListener,
    requests: mpsc::Sender<(ControllerRequest, Reply)>,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Some(mut stream) = accept_next(&listener).await else { continue };
        let requests = requests.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    read = read_json::<_, ControllerRequest>(&mut stream) => match read {
                        Ok(Some(request)) => request,
                        _ => return,
                    },
                    _ = stopped.changed() => return,
                };
                let (reply_tx, reply_rx) = oneshot::channel();
                if requests.send((request, reply_tx)).await.is_err() {
                    return;
                }
                let response = reply_rx.await.unwrap_or(ControllerResponse::Unknown {
                    reason: "controller stopped".into(),
                });
                if write_json(&mut stream, &response).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Accepts one connection; a failed accept (a peer that reset before we
/// took it, a descriptor limit) must not close the listener.
async fn accept_next(listener: &tokio::net::TcpListener) -> Option<tokio::net::TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => Some(stream),
        Err(error) => {
            tracing::debug!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
            None
        }
    }
}

/// Keeps a connection to one peer and writes its queued messages; on any
/// error the connection is dropped and re-made after a pause. Messages that
/// arrive while it is down are lost, as on a real network.
async fn send_to_peer(addr: String, mut outbox: mpsc::Receiver<Message>) {
    let mut stream: Option<tokio::net::TcpStream> = None;
    while let Some(message) = outbox.recv().await {
        if stream.is_none() {
            let connect = tokio::net::TcpStream::connect(addr.clone());
            match tokio::time::timeout(Duration::from_millis(500), connect).await {
                Ok(Ok(connected)) => stream = Some(connected),
                _ => continue,
            }
        }
        let Some(connected) = stream.as_mut() else { continue };
        let write = write_json(connected, &message);
        if !matches!(tokio::time::timeout(Duration::from_millis(1_000), write).await, Ok(Ok(()))) {
            stream = None;
        }
    }
}
