//! The broker: topics and partition logs behind the Kafka wire protocol.
//!
//! [`Broker`] owns the state (topics, their partition logs) and answers
//! decoded requests; [`serve`] is the thin async driver that accepts
//! connections, reads frames, and writes responses in request order.
//!
//! Topic metadata is one file per topic, `<data_dir>/<topic>.topic`, JSON
//! `{"partitions": N, "configs": {...}}`, written to a temporary name,
//! fsynced, renamed into place and made durable with a directory fsync, so a
//! crash leaves either no topic or the whole topic. Partition `p` of topic
//! `t` keeps its log in `<data_dir>/t-p/`; in cluster mode that directory
//! also holds `partition.metadata`, the id of the topic incarnation the log
//! belongs to, so a deleted and re-created topic never serves the old
//! incarnation's records (format and rules in the `topics` module docs).
//!
//! DeleteTopics: in cluster mode each topic is deleted through the quorum,
//! and brokers close (and, once provably safe, remove) the partitions of
//! topics that left their view or changed id; in standalone mode the topic's
//! metadata file is removed (the commit point), then its partitions' files.

pub mod cluster;
mod cluster_handlers;
mod groups;
mod handlers;
mod internal_log;
mod partition;
pub mod producer_ids;
mod replica_driver;
mod topics;
mod txn;

use crate::error_codes::KafkaErrorCode;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::disk::Disk;
use crate::wire::{self, DecodeError};

pub use partition::{Partition, PartitionError};
pub use topics::{TopicError, TopicMeta};
pub use groups::OFFSETS_TOPIC;
pub use txn::TXN_STATE_TOPIC;

/// A hook that sees every request frame received and every response frame
/// sent, in order; the simulation hashes them to prove determinism.
pub type TraceHook = Arc<dyn Fn(TraceDirection, &[u8]) + Send + Sync>;

/// Which way a traced frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceDirection {
    /// A request arrived.
    Request,
    /// A response left.
    Response,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Listing or reading the data directory failed.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A topic's metadata or log could not be loaded.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The settings are inconsistent.
    #[error("configuration: {0}")]
    Config(String),
}

/// One broker node's state.
pub struct Broker {
    pub(crate) config: BrokerConfig,
    pub(crate) disk: Arc<dyn Disk>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) topics: Mutex<BTreeMap<String, Arc<topics::Topic>>>,
    /// Woken after every successful append, so long-polling fetches return.
    pub(crate) appended: Notify,
    /// Set in cluster mode: the link to the controller quorum.
    pub(crate) cluster: Option<cluster::ClusterLink>,
    /// Cluster mode: acks=all waits, follower fetchers.
    pub(crate) replication: replica_driver::ReplicaDriver,
    /// Every log found at start had been closed cleanly (told to the
    /// controllers at registration: after an unclean shutdown this broker
    /// may have lost records it had acknowledged as a follower).
    pub(crate) clean_shutdown: bool,
    /// Hands out producer ids for InitProducerId (see `producer_ids`).
    pub(crate) producer_ids: Mutex<producer_ids::ProducerIdAllocator>,
    /// The group coordinator (see `groups`).
    pub(crate) groups: groups::GroupDriver,
    /// The transaction coordinator (see `txn`).
    pub(crate) txns: txn::TxnDriver,
    /// This broker itself, for the tasks it starts (fetchers, AlterPartition).
    self_ref: std::sync::Weak<Broker>,
    trace: Option<TraceHook>,
}

impl Broker {
    /// Opens the broker on `config.data_dir`, recovering every topic found.
    pub fn open(config: BrokerConfig, disk: Arc<dyn Disk>, clock: Arc<dyn Clock>) -> Result<Arc<Self>, BrokerError> {
        Self::open_with(config, disk, clock, None)
    }

    /// Same as [`Broker::open`], with a hook that sees every frame.
    pub fn open_traced(
        config: BrokerConfig,
        disk: Arc<dyn Disk>,
        clock: Arc<dyn Clock>,
        trace: TraceHook,
    ) -> Result<Arc<Self>, BrokerError> {
        Self::open_with(config, disk, clock, Some(trace))
    }

    fn open_with(
        config: BrokerConfig,
        disk: Arc<dyn Disk>,
        clock: Arc<dyn Clock>,
        trace: Option<TraceHook>,
    ) -> Result<Arc<Self>, BrokerError> {
        let topics = topics::load_all(&config, &disk, &clock)?;
        let clean_shutdown = topics.values().flat_map(|t| &t.partitions).all(|p| {
            let partition = p.lock().unwrap_or_else(|e| e.into_inner());
            partition.log.recovery_report().clean_shutdown
        });
        let cluster = match &config.controller_quorum_voters {
            Some(voters) => Some(cluster::ClusterLink::new(voters, config.controller_request_timeout_ms).map_err(BrokerError::Config)?),
            None => None,
        };
        // Standalone: one namespace of ids; cluster mode: this broker's
        // node id namespaces them (interim, see `producer_ids`).
        let namespace = if cluster.is_some() { i64::from(config.node_id) } else { 0 };
        let producer_ids = producer_ids::ProducerIdAllocator::new(disk.clone(), &config.data_dir, namespace)
            .map_err(|error| BrokerError::Config(format!("node.id: {error}")))?;
        tracing::info!(node_id = config.node_id, topics = topics.len(), cluster_mode = cluster.is_some(), "broker opened");
        Ok(Arc::new_cyclic(|self_ref| Self {
            config,
            disk,
            clock,
            topics: Mutex::new(topics),
            appended: Notify::new(),
            cluster,
            replication: replica_driver::ReplicaDriver::default(),
            clean_shutdown,
            producer_ids: Mutex::new(producer_ids),
            groups: groups::GroupDriver::default(),
            txns: txn::TxnDriver::default(),
            self_ref: self_ref.clone(),
            trace,
        }))
    }

    /// The broker's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Flushes every partition log (used on clean shutdown and by the
    /// interval flush policy).
    pub fn flush_all(&self) {
        for topic in self.topics_snapshot() {
            for partition in &topic.partitions {
                let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(error) = partition.log.flush() {
                    tracing::warn!(topic = %topic.name, %error, "flush failed");
                }
            }
        }
    }

    /// Before the process exits: flushes every log and marks it cleanly
    /// closed, so the next start validates only each log's tail rather
    /// than recovering it as after a crash. The logs refuse writes from
    /// then on (a request still in flight gets KAFKA_STORAGE_ERROR).
    pub fn shutdown(&self) {
        for topic in self.topics_snapshot() {
            for partition in &topic.partitions {
                let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
                let log = &mut partition.log;
                if log.is_offline() {
                    continue;
                }
                if let Err(error) = log.close_in_place() {
                    tracing::warn!(topic = %topic.name, %error, "closing a log at shutdown failed; it recovers as after a crash");
                }
            }
        }
    }

    pub(crate) fn topics_snapshot(&self) -> Vec<Arc<topics::Topic>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub(crate) fn topic(&self, name: &str) -> Option<Arc<topics::Topic>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// A partition of a topic this broker holds, or the Kafka error code
    /// that says why not. Whether this broker may serve a request for it
    /// (leader, epoch) is the partition's own check. In cluster mode the
    /// partition must be assigned to this broker in the last view read from
    /// the quorum; its topic is opened (and the topic's local metadata
    /// written) on first use, only for the topic incarnation (topic id) the
    /// view names: data of an older incarnation of the same name is removed
    /// first (see `topics`). A topic opened here gets its roles from that
    /// view at once.
    pub(crate) fn partition(&self, name: &str, partition: i32) -> Result<Arc<Mutex<Partition>>, i16> {
        use kafka_protocol::ResponseError;
        let index = usize::try_from(partition).map_err(|_| ResponseError::UnknownTopicOrPartition.code())?;
        if let Some(link) = &self.cluster {
            let view = link.cached_view().ok_or(ResponseError::LeaderNotAvailable.code())?;
            let topic = view
                .topics
                .iter()
                .find(|t| t.name == name)
                .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
            let state = topic.partitions.get(index).ok_or(ResponseError::UnknownTopicOrPartition.code())?;
            if !state.replicas.contains(&self.config.node_id) {
                return Err(ResponseError::NotLeaderOrFollower.code());
            }
            let local = self.topic(name);
            if local.as_ref().is_none_or(|t| t.topic_id != Some(topic.topic_id)) {
                let opened = self.open_incarnation(topic, index, view.metadata_offset)?;
                self.apply_topic_view(topic);
                return Ok(opened);
            }
            if local.as_ref().is_some_and(|t| t.partitions.len() < topic.partitions.len()) {
                self.grow_local_topic(topic)?;
                self.apply_topic_view(topic);
            }
            // Fall through: the open topic is the view's incarnation.
        }
        self.topic(name)
            .and_then(|t| t.partitions.get(index).cloned())
            .ok_or(ResponseError::UnknownTopicOrPartition.code())
    }

    /// Cluster mode: opens incarnation `topic_id` of topic `name` (with
    /// `partitions` partitions) and returns partition `index`'s log. An open
    /// older incarnation is retired and its files removed; an open newer one
    /// means the view is stale, and the answer is LEADER_NOT_AVAILABLE (the
    /// client refreshes its metadata and retries).
    fn open_incarnation(&self, topic: &crate::controller::TopicState, index: usize, view_offset: u64) -> Result<Arc<Mutex<Partition>>, i16> {
        use kafka_protocol::ResponseError;
        let (name, topic_id, partitions) = (topic.name.as_str(), topic.topic_id, topic.partitions.len());
        let mut guard = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        // A view older than one this broker already acted on (and told the
        // quorum about) may name a topic since deleted: opening it would let
        // a record into a dead incarnation. The client retries with fresh
        // metadata.
        let acted_on = self.cluster.as_ref().map_or(0, |link| link.acted_on_offset.load(std::sync::atomic::Ordering::SeqCst));
        if view_offset < acted_on {
            return Err(ResponseError::LeaderNotAvailable.code());
        }
        match guard.get(name).map(|open| open.topic_id) {
            None => {}
            Some(Some(id)) if id == topic_id => {
                // Opened by a concurrent request meanwhile.
                return guard
                    .get(name)
                    .and_then(|open| open.partitions.get(index).cloned())
                    .ok_or(ResponseError::UnknownTopicOrPartition.code());
            }
            Some(Some(id)) if id > topic_id => return Err(ResponseError::LeaderNotAvailable.code()),
            Some(older) => {
                // An open older incarnation goes with its data; one of
                // unknown id (written before ids, or half-claimed) keeps its
                // data for the per-partition check in `topics::create`.
                let known_older = older.is_some();
                if let Some(open) = guard.remove(name) {
                    topics::retire(&open, !known_older);
                    if known_older {
                        if let Err(error) = topics::delete(&self.config, self.disk.as_ref(), &open) {
                            tracing::warn!(topic = name, %error, "removing an older incarnation failed");
                            return Err(ResponseError::KafkaStorageError.code());
                        }
                    }
                }
            }
        }
        let meta = TopicMeta {
            partitions: i32::try_from(partitions).map_err(|_| ResponseError::UnknownTopicOrPartition.code())?,
            configs: topic.configs.clone(),
        };
        let created = topics::create(&self.config, &self.disk, &self.clock, name, meta, Some(topic_id)).map_err(|error| {
            if !matches!(error, TopicError::StaleTopicId { .. }) {
                tracing::warn!(topic = name, %error, "opening a led partition failed");
            }
            error.kafka_error_code()
        })?;
        debug_assert_eq!(created.topic_id, Some(topic_id));
        let log = created.partitions.get(index).cloned().ok_or(ResponseError::UnknownTopicOrPartition.code());
        guard.insert(name.to_string(), Arc::new(created));
        log
    }

    /// Grows the open topic `name` to `partitions` partitions (standalone
    /// CreatePartitions, or a cluster view naming more partitions than are
    /// open here). `Err` is the Kafka error code.
    pub(crate) fn grow_topic(&self, name: &str, topic_id: Option<crate::controller::TopicId>, partitions: i32) -> Result<(), i16> {
        use kafka_protocol::ResponseError;
        let mut guard = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let open = guard.get(name).cloned().ok_or(ResponseError::UnknownTopicOrPartition.code())?;
        if topic_id.is_some() && open.topic_id != topic_id {
            return Err(ResponseError::LeaderNotAvailable.code());
        }
        if open.meta.partitions >= partitions && topic_id.is_some() {
            // Grown by a concurrent request meanwhile.
            return Ok(());
        }
        let grown = topics::grow(&self.config, &self.disk, &self.clock, &open, partitions).map_err(|error| {
            tracing::warn!(topic = name, %error, "growing a topic failed");
            error.kafka_error_code()
        })?;
        tracing::info!(topic = name, partitions, "topic grown");
        guard.insert(name.to_string(), Arc::new(grown));
        Ok(())
    }

    pub(crate) fn grow_local_topic(&self, topic: &crate::controller::TopicState) -> Result<(), i16> {
        let partitions = i32::try_from(topic.partitions.len()).map_err(|_| kafka_protocol::ResponseError::InvalidPartitions.code())?;
        self.grow_topic(&topic.name, Some(topic.topic_id), partitions)
    }

    /// Cluster mode: brings the open topics in line with a view just read
    /// from the quorum. A topic whose id changed is retired and its data
    /// removed (the view proves the old incarnation is gone: ids only
    /// grow); one missing from the view is retired, and its data removed
    /// only if the view provably postdates the topic's creation (it holds a
    /// topic id or broker epoch, both Raft offsets, above the topic's id).
    /// Views may arrive out of order, so an absent topic in an older view
    /// must not cost its data; its handle is dropped all the same and the
    /// next request reopens it from disk. Topics of unknown id are left.
    pub(crate) fn reconcile_topics(&self, view: &crate::quorum::ClusterView) {
        let view_offset_floor = view
            .topics
            .iter()
            .map(|t| t.topic_id)
            .chain(view.brokers.iter().map(|b| b.broker_epoch))
            .max()
            .unwrap_or(0);
        let mut guard = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<String> = guard.keys().cloned().collect();
        for name in names {
            let Some(local_id) = guard.get(&name).and_then(|t| t.topic_id) else { continue };
            let delete_data = match view.topics.iter().find(|t| t.name == name) {
                Some(current) if current.topic_id <= local_id => continue,
                Some(_) => true,
                None => view_offset_floor > local_id,
            };
            let Some(open) = guard.remove(&name) else { continue };
            tracing::info!(topic = %name, topic_id = local_id, delete_data, "topic deleted or replaced: closing its partitions");
            topics::retire(&open, !delete_data);
            if delete_data {
                if let Err(error) = topics::delete(&self.config, self.disk.as_ref(), &open) {
                    tracing::warn!(topic = %name, %error, "removing a deleted topic's data failed");
                }
            }
        }
        // Every open topic now matches `view`; the cached view is at least
        // as new (it was remembered first). Said while holding the lock, so
        // no open of an older view's topic can slip in after it.
        if let Some(link) = &self.cluster {
            link.acted_on_offset.fetch_max(view.metadata_offset, std::sync::atomic::Ordering::SeqCst);
        }
        drop(guard);
        // Then each assigned partition takes the role the view gives it.
        self.apply_view(view);
    }

    /// Standalone mode: deletes a local topic, its metadata file and its
    /// partitions' logs. `Err` is the Kafka error code: UNKNOWN_TOPIC_OR_PARTITION
    /// for a topic that does not exist, KAFKA_STORAGE_ERROR if the metadata
    /// file could not be removed durably. Removing the metadata file is the
    /// commit point: if it fails the topic stays as it was; if removing the
    /// partitions' files fails afterwards the topic is deleted all the same
    /// and the next create of the name removes the leftovers.
    pub(crate) fn delete_local_topic(&self, name: &str) -> Result<(), i16> {
        use kafka_protocol::ResponseError;
        debug_assert!(self.cluster.is_none(), "cluster topics are deleted through the quorum");
        let mut guard = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let open = guard.get(name).cloned().ok_or(ResponseError::UnknownTopicOrPartition.code())?;
        let committed = topics::delete_meta(&self.config, self.disk.as_ref(), name);
        if let Err(error) = &committed {
            tracing::warn!(topic = name, %error, "removing a topic's metadata file failed");
            if self.disk.exists(&topics::meta_path(&self.config.data_dir, name)) {
                return Err(ResponseError::KafkaStorageError.code());
            }
            // Removed but not known to be durable: gone for this process.
        }
        guard.remove(name);
        topics::retire(&open, false);
        if let Err(error) = topics::wipe_partitions(self.disk.as_ref(), &self.config.data_dir, &open) {
            tracing::warn!(topic = name, %error, "removing a deleted topic's partitions failed; the next create removes them");
        }
        committed.map_err(|_| ResponseError::KafkaStorageError.code())
    }

    fn trace(&self, direction: TraceDirection, frame: &[u8]) {
        if let Some(hook) = &self.trace {
            hook(direction, frame);
        }
    }

    /// Handles one request frame; `Ok(None)` means "send nothing" (acks=0),
    /// `Err` means "close the connection".
    pub async fn handle_frame(&self, frame: &Bytes) -> Result<Option<Bytes>, DecodeError> {
        self.trace(TraceDirection::Request, frame);
        let response = match wire::decode_request(frame) {
            Ok((header, request)) => handlers::handle(self, &header, request).await,
            Err(DecodeError::UnsupportedVersion {
                api_key,
                correlation_id,
                ..
            }) if api_key == ApiKey::ApiVersions as i16 => Ok(Some(handlers::api_versions_unsupported(correlation_id))),
            Err(error) => Err(error),
        };
        if let Ok(Some(bytes)) = &response {
            self.trace(TraceDirection::Response, bytes);
        }
        response
    }

    /// Runs the background duties until the task is dropped: interval
    /// flushes, and log maintenance (retention, compaction) every
    /// `log.retention.check.interval.ms`.
    pub async fn run_background(self: Arc<Self>) {
        let maintenance_ms = self.config.log_retention_check_interval_ms.max(1);
        let flush_ms = match self.config.log_flush {
            crate::config::FlushPolicy::Interval { interval_ms } => Some(interval_ms.max(1)),
            _ => None,
        };
        let tick_ms = flush_ms.map_or(maintenance_ms, |f| f.min(maintenance_ms));
        let (mut since_flush_ms, mut since_maintenance_ms) = (0, 0);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(tick_ms)).await;
            since_flush_ms += tick_ms;
            since_maintenance_ms += tick_ms;
            if flush_ms.is_some_and(|f| since_flush_ms >= f) {
                since_flush_ms = 0;
                self.flush_all();
            }
            if since_maintenance_ms >= maintenance_ms {
                since_maintenance_ms = 0;
                self.maintain_logs();
            }
        }
    }

    /// Retention and compaction of every partition, one at a time. A
    /// partition is locked while it is maintained; appends to other
    /// partitions go on.
    pub fn maintain_logs(&self) {
        for topic in self.topics_snapshot() {
            for partition in &topic.partitions {
                let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
                // Only committed records may be compacted: a follower may
                // still truncate above the high watermark. And only decided
                // ones: an open transaction may still abort.
                let mut max_compactable = partition.high_watermark();
                if partition.log.config().cleanup_policy.compacts() {
                    match partition.compaction_bounds() {
                        Ok((last_stable, aborted)) => {
                            max_compactable = max_compactable.min(last_stable);
                            partition.log.set_aborted_ranges(aborted);
                        }
                        Err(error) => {
                            tracing::warn!(topic = %topic.name, %error, "producer state unavailable; compaction skipped");
                            max_compactable = partition.log.log_start_offset();
                        }
                    }
                }
                let log = &mut partition.log;
                log.set_max_compactable_offset(max_compactable);
                match log.enforce_retention() {
                    Ok(outcome) if outcome.deleted_segments > 0 => partition.on_log_start_advanced(),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(topic = %topic.name, %error, "retention failed"),
                }
                match partition.log.compact_if_needed() {
                    // Compaction may remove a producer's batches.
                    Ok(Some(_)) => partition.forget_producer_state(),
                    Ok(None) => {}
                    Err(error) => {
                        partition.forget_producer_state();
                        tracing::warn!(topic = %topic.name, %error, "compaction failed");
                    }
                }
            }
        }
    }
}

/// Accepts connections on `listener` and serves each until it closes.
pub async fn serve(broker: Arc<Broker>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    tokio::spawn(broker.clone().run_background());
    if broker.cluster.is_some() {
        tokio::spawn(cluster::run_membership(broker.clone()));
        tokio::spawn(replica_driver::run_ticks(broker.clone()));
    }
    loop {
        // A failed accept (a peer that reset first, a descriptor limit) must
        // not stop the broker from serving everyone else.
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_connection(&broker, stream).await {
                tracing::debug!(%peer, %error, "connection closed");
            }
        });
    }
}

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Framing or socket failure.
    #[error(transparent)]
    Frame(#[from] wire::FrameError),
    /// The request could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

async fn serve_connection(broker: &Broker, mut stream: tokio::net::TcpStream) -> Result<(), ConnectionError> {
    let frame_bytes_max = broker.config.request_frame_bytes_max;
    while let Some(frame) = wire::read_frame(&mut stream, frame_bytes_max).await? {
        if let Some(response) = broker.handle_frame(&frame).await? {
            wire::write_frame(&mut stream, &response).await?;
        }
    }
    Ok(())
}
