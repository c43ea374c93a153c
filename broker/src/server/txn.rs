//! The transaction coordinator's driver: connects the sans-IO core
//! ([`crate::txn::TxnCoordinator`]) to the `__transaction_state` logs, the
//! clock, the requests waiting for their record to be durable, and the
//! partitions that receive markers.
//!
//! - **Where ids live.** `__transaction_state` is a compacted topic with
//!   `transaction.state.log.num.partitions` partitions, created on first
//!   need (the first FindCoordinator of key type 1 or transactional
//!   request), with `transaction.state.log.replication.factor` capped by
//!   the live brokers and `min.insync.replicas` =
//!   `transaction.state.log.min.isr` capped by that factor. An id's
//!   records go to `partition_for_transactional_id(id)` (Java's
//!   `String.hashCode`, as Kafka chooses).
//! - **Who coordinates.** As for groups (`server::groups`): standalone,
//!   this broker; in cluster mode the leader of the id's partition, which
//!   loads the partition the first time it serves an id of it (loading
//!   reads the local log synchronously) with the partition's leader epoch
//!   as *coordinator epoch*, and unloads it once it stops leading
//!   (checked on every request and every tick).
//! - **Durability.** Every transition's record is appended with
//!   [`Broker::append_internal_records`] (durable: in cluster mode once the
//!   high watermark passes it); the core is told the outcome, and only
//!   then answers. The wait happens in a task, not under the core's lock.
//! - **Markers.** For each "send markers" of the core a task groups the
//!   transaction's partitions by leader and sends WriteTxnMarkers: to
//!   itself by calling the handler directly, to another broker over a
//!   [`Connection`]. Partitions that answer an error are retried with
//!   backoff (`MARKER_BACKOFF_MS_MIN` doubling up to
//!   `MARKER_BACKOFF_MS_MAX`) until all succeeded, or the coordinator no
//!   longer serves the transaction at that coordinator epoch; partitions
//!   of a topic that no longer exists are dropped, as Kafka does. Then
//!   the core hears [`crate::txn::TxnCoordinator::markers_written`].
//! - **Time.** A ticker (every 100 ms of the broker's clock) drives
//!   ownership and the core's timeouts.
//!
//! Lock order: the core's lock, then a partition's lock, then the producer
//! id allocator's; nothing takes them the other way round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest};
use kafka_protocol::ResponseError;

use crate::error_codes::KafkaErrorCode;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use crate::client::Connection;
use crate::server::internal_log::{InternalLogError, Replayed, ReplicationWait};
use crate::server::Broker;
use crate::txn::records::TxnRecord;
use crate::txn::{Answer, MarkerRequest, Reply, TopicPartition, TxnCoordinator, TxnError, TxnOutput, Waiter};

/// The internal topic holding transactional ids' state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

/// How often the coordinator's clock ticks.
const TICK_MS: u64 = 100;

/// First wait before markers are sent again to partitions that failed.
const MARKER_BACKOFF_MS_MIN: u64 = 50;
/// Longest wait between marker attempts.
const MARKER_BACKOFF_MS_MAX: u64 = 2_000;

/// The WriteTxnMarkers version sent (the only one Kafka has).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// The transaction coordinator's state on one broker.
#[derive(Default)]
pub(crate) struct TxnDriver {
    /// The core; created on first use.
    core: Mutex<Option<TxnCoordinator>>,
    /// Requests waiting for their transition to be durable.
    waiters: Mutex<BTreeMap<Waiter, oneshot::Sender<Answer>>>,
    next_waiter: AtomicU64,
    ticking: AtomicBool,
}

impl TxnDriver {
    fn park(&self) -> (Waiter, oneshot::Receiver<Answer>) {
        let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).insert(waiter, sender);
        (waiter, receiver)
    }

    fn unpark(&self, waiter: Waiter) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&waiter);
    }

    fn complete(&self, waiter: Waiter, answer: Answer) {
        let sender = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&waiter);
        if let Some(sender) = sender {
            // The client may have gone; nothing to do then.
            let _ = sender.send(answer);
        }
    }
}

fn txn_error(error: InternalLogError) -> TxnError {
    match error {
        InternalLogError::NotLeader => TxnError::NotCoordinator,
        InternalLogError::Unavailable => TxnError::CoordinatorNotAvailable,
    }
}

impl Broker {
    /// Runs `f` on the coordinator core, after making sure the partition of
    /// `transactional_id` is loaded here if this broker leads it (or
    /// unloaded if it no longer does); then carries out what the core
    /// asked for.
    pub(crate) fn with_txn_coordinator<T>(&self, transactional_id: Option<&str>, f: impl FnOnce(&mut TxnCoordinator, u64) -> T) -> Result<T, TxnError> {
        if self.topic(TXN_STATE_TOPIC).is_none() && self.cluster.is_none() {
            self.create_internal_topic_standalone(TXN_STATE_TOPIC, self.config.transaction_state_log_num_partitions).map_err(txn_error)?;
        }
        self.start_txn_ticker();
        let now_ms = self.now_ms();
        let mut guard = self.txns.core.lock().unwrap_or_else(|e| e.into_inner());
        let core = guard.get_or_insert_with(|| {
            TxnCoordinator::new(self.config.txn.clone(), self.config.transaction_state_log_num_partitions, self.config.offsets_topic_num_partitions)
        });
        if let Some(id) = transactional_id {
            let partition = core.partition_of(id);
            self.sync_txn_partition_ownership(core, partition, now_ms);
        }
        let value = f(core, now_ms);
        let outputs = core.take_outputs();
        self.carry_out_txn(core, outputs);
        Ok(value)
    }

    /// Runs `f` on the core once every `__transaction_state` partition this
    /// broker leads is loaded (ListTransactions lists them all).
    pub(crate) fn with_txn_led_partitions_loaded<T>(&self, f: impl FnOnce(&TxnCoordinator, u64) -> T) -> Result<T, TxnError> {
        self.with_txn_coordinator(None, |core, now_ms| {
            for partition in 0..self.config.transaction_state_log_num_partitions.max(1) {
                self.sync_txn_partition_ownership(core, partition, now_ms);
            }
            f(core, now_ms)
        })
    }

    /// A request that changes a transactional id: `call` gets a parked
    /// waiter; the answer is the one given now, or the one that arrives
    /// once the transition's record is durable (or failed).
    pub(crate) async fn txn_request(&self, transactional_id: &str, call: impl FnOnce(&mut TxnCoordinator, u64, Waiter) -> Reply) -> Answer {
        let (waiter, receiver) = self.txns.park();
        match self.with_txn_coordinator(Some(transactional_id), |core, now_ms| call(core, now_ms, waiter)) {
            Ok(Reply::Now(answer)) => {
                self.txns.unpark(waiter);
                answer
            }
            Err(error) => {
                self.txns.unpark(waiter);
                Err(error)
            }
            // The coordinator went away without answering.
            Ok(Reply::Later) => receiver.await.unwrap_or(Err(TxnError::CoordinatorNotAvailable)),
        }
    }

    /// A fresh producer id for the core (a new transactional id, or an
    /// exhausted epoch).
    pub(crate) fn allocate_producer_id(&self) -> Result<i64, TxnError> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.allocate().map_err(|error| {
            tracing::warn!(%error, "no producer id for a transactional id");
            TxnError::ProducerIdUnavailable
        })
    }

    /// Loads or unloads `partition` so the core's ownership matches this
    /// broker's leadership (and its coordinator epoch the leader epoch).
    fn sync_txn_partition_ownership(&self, core: &mut TxnCoordinator, partition: i32, now_ms: u64) {
        let leads = self.leads_internal_partition(TXN_STATE_TOPIC, partition);
        let epoch = self.internal_leader_epoch(TXN_STATE_TOPIC, partition);
        match (leads, core.coordinator_epoch(partition)) {
            (true, None) => self.load_txn_partition(core, partition, epoch, now_ms),
            // Led again in a later epoch (a failover and back): reload.
            (true, Some(loaded)) if loaded != epoch => self.load_txn_partition(core, partition, epoch, now_ms),
            (false, Some(_)) => {
                tracing::info!(partition, "no longer leading this {TXN_STATE_TOPIC} partition: its transactional ids are unloaded");
                crate::mark!("txn.coordinator.unloaded");
                core.unload(partition);
            }
            _ => {}
        }
    }

    /// Replays `partition` of `__transaction_state` into the core.
    fn load_txn_partition(&self, core: &mut TxnCoordinator, partition: i32, coordinator_epoch: i32, now_ms: u64) {
        core.begin_load(partition, coordinator_epoch);
        let mut skipped = 0u64;
        let replayed = self.replay_internal_partition(TXN_STATE_TOPIC, partition, |item| {
            let Replayed::Record { key, value, .. } = item else { return };
            match TxnRecord::decode(key, value) {
                Ok(record) => core.load_record(partition, record),
                Err(error) => {
                    skipped += 1;
                    tracing::warn!(partition, %error, "a {TXN_STATE_TOPIC} record did not decode; skipped");
                }
            }
        });
        match replayed {
            Ok(records) => {
                core.finish_load(partition, now_ms);
                if records > 0 {
                    crate::mark!("txn.coordinator.loaded_ids");
                }
                tracing::info!(partition, coordinator_epoch, records, skipped, "loaded the transactional ids of a {TXN_STATE_TOPIC} partition");
            }
            // Unserved until the next request tries again.
            Err(_) => core.unload(partition),
        }
    }

    /// Appends records, answers requests and starts marker tasks, as the
    /// core asks, until it asks for nothing more.
    fn carry_out_txn(&self, core: &mut TxnCoordinator, outputs: Vec<TxnOutput>) {
        let mut outputs = outputs;
        while !outputs.is_empty() {
            for output in outputs {
                match output {
                    TxnOutput::Answer { waiter, answer } => self.txns.complete(waiter, answer),
                    TxnOutput::Append { partition, append_id, record } => {
                        match self.append_internal_records(TXN_STATE_TOPIC, partition, vec![record.encode()], true) {
                            Ok(None) => core.append_done(self.now_ms(), append_id, Ok(())),
                            Ok(Some(wait)) => self.await_txn_append(append_id, Some(wait)),
                            Err(error) => {
                                tracing::warn!(transactional_id = %record.transactional_id, %error, "appending a transaction record failed");
                                core.append_done(self.now_ms(), append_id, Err(txn_error(error)));
                            }
                        }
                    }
                    TxnOutput::SendMarkers(markers) => self.start_marker_task(markers),
                }
            }
            outputs = core.take_outputs();
        }
    }

    /// Tells the core whether append `append_id` became durable.
    fn await_txn_append(&self, append_id: u64, wait: ReplicationWait) {
        let Some(broker) = self.self_ref.upgrade() else { return };
        tokio::spawn(async move {
            let outcome = Broker::await_internal_replication(wait).await.map_err(txn_error);
            let now_ms = broker.now_ms();
            let mut guard = broker.txns.core.lock().unwrap_or_else(|e| e.into_inner());
            let Some(core) = guard.as_mut() else { return };
            core.append_done(now_ms, append_id, outcome);
            let outputs = core.take_outputs();
            broker.carry_out_txn(core, outputs);
        });
    }

    /// Whether the core still waits for these markers (same transaction,
    /// same coordinator epoch).
    fn markers_still_wanted(&self, markers: &MarkerRequest) -> bool {
        let guard = self.txns.core.lock().unwrap_or_else(|e| e.into_inner());
        let Some(core) = guard.as_ref() else { return false };
        let partition = core.partition_of(&markers.transactional_id);
        core.coordinator_epoch(partition) == Some(markers.coordinator_epoch)
            && core.transaction(&markers.transactional_id).is_some_and(|m| {
                m.state.is_prepared() && m.producer_id == markers.producer_id && m.producer_epoch == markers.producer_epoch
            })
    }

    fn start_marker_task(&self, markers: MarkerRequest) {
        let Some(broker) = self.self_ref.upgrade() else { return };
        tokio::spawn(async move {
            let weak = Arc::downgrade(&broker);
            drop(broker);
            send_markers(weak, markers).await;
        });
    }

    /// Where `topic`/`partition` is led: Some(true) here, Some(false)
    /// elsewhere (with the leader's address), None: the partition no
    /// longer exists. `Err(())`: no leader known now (retry).
    fn marker_destination(&self, tp: &TopicPartition) -> Result<Option<Option<String>>, ()> {
        let Some(link) = &self.cluster else {
            let exists = self.topic(&tp.0).is_some_and(|t| usize::try_from(tp.1).is_ok_and(|i| i < t.partitions.len()));
            return Ok(exists.then_some(None));
        };
        let view = link.cached_view().ok_or(())?;
        let Some(topic) = view.topics.iter().find(|t| t.name == tp.0) else { return Ok(None) };
        let Some(state) = usize::try_from(tp.1).ok().and_then(|i| topic.partitions.get(i)) else { return Ok(None) };
        let leader = state.leader.ok_or(())?;
        if leader == self.config.node_id {
            return Ok(Some(None));
        }
        let broker = view.brokers.iter().find(|b| b.broker_id == leader && !b.fenced).ok_or(())?;
        Ok(Some(Some(broker.listener.clone())))
    }

    /// Starts the coordinator's clock once.
    fn start_txn_ticker(&self) {
        self.start_coordinator_ticker(&self.txns.ticking, TICK_MS, Broker::tick_txns);
    }

    /// One tick: ownership follows leadership, then timeouts and expiry.
    fn tick_txns(&self) {
        let now_ms = self.now_ms();
        let mut guard = self.txns.core.lock().unwrap_or_else(|e| e.into_inner());
        let Some(core) = guard.as_mut() else { return };
        for partition in core.owned_partitions() {
            self.sync_txn_partition_ownership(core, partition, now_ms);
        }
        core.tick(now_ms);
        let outputs = core.take_outputs();
        self.carry_out_txn(core, outputs);
    }
}

/// One WriteTxnMarkers request carrying `markers` for `partitions`.
fn marker_request(markers: &MarkerRequest, partitions: &[TopicPartition]) -> WriteTxnMarkersRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic.as_str()).or_default().push(*partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, indexes)| WritableTxnMarkerTopic::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_indexes(indexes))
        .collect();
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(markers.producer_id))
        .with_producer_epoch(markers.producer_epoch)
        .with_transaction_result(markers.commit)
        .with_topics(topics)
        .with_coordinator_epoch(markers.coordinator_epoch);
    WriteTxnMarkersRequest::default().with_markers(vec![marker])
}

/// The partitions a WriteTxnMarkers response says were written.
fn written(response: &kafka_protocol::messages::WriteTxnMarkersResponse) -> BTreeSet<TopicPartition> {
    let mut done = BTreeSet::new();
    for marker in &response.markers {
        for topic in &marker.topics {
            for partition in &topic.partitions {
                if partition.error_code == 0 {
                    done.insert((topic.name.0.to_string(), partition.partition_index));
                }
            }
        }
    }
    done
}

/// Writes `markers` to every partition of the transaction, retrying the
/// ones that fail, until all succeeded (then tells the core) or the core
/// no longer waits for them.
async fn send_markers(weak: std::sync::Weak<Broker>, markers: MarkerRequest) {
    let mut remaining: BTreeSet<TopicPartition> = markers.partitions.clone();
    let mut backoff_ms = MARKER_BACKOFF_MS_MIN;
    let mut connections: BTreeMap<String, Connection> = BTreeMap::new();
    loop {
        let Some(broker) = weak.upgrade() else { return };
        if !broker.markers_still_wanted(&markers) {
            tracing::debug!(transactional_id = %markers.transactional_id, "markers no longer wanted: the coordinator moved");
            return;
        }
        // Group what is left by where it is led.
        let mut local: Vec<TopicPartition> = Vec::new();
        let mut remote: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
        for tp in remaining.clone() {
            match broker.marker_destination(&tp) {
                Ok(None) => {
                    tracing::info!(topic = %tp.0, partition = tp.1, "markers for a partition that no longer exists are dropped");
                    remaining.remove(&tp);
                }
                Ok(Some(None)) => local.push(tp),
                Ok(Some(Some(addr))) => remote.entry(addr).or_default().push(tp),
                Err(()) => {}
            }
        }
        if !local.is_empty() {
            let response = crate::server::handlers::write_txn_markers::write_txn_markers(&broker, marker_request(&markers, &local)).await;
            for tp in written(&response) {
                remaining.remove(&tp);
            }
        }
        let timeout_ms = broker.config.controller_request_timeout_ms.max(1);
        let client_id = format!("txn-coordinator-{}", broker.config.node_id);
        for (addr, partitions) in remote {
            if !connections.contains_key(&addr) {
                match Connection::connect(&addr, &client_id, timeout_ms).await {
                    Ok(connection) => {
                        connections.insert(addr.clone(), connection);
                    }
                    Err(error) => {
                        tracing::debug!(%addr, %error, "cannot reach a partition leader for markers");
                        continue;
                    }
                }
            }
            let Some(connection) = connections.get_mut(&addr) else { continue };
            match connection.request(&marker_request(&markers, &partitions), WRITE_TXN_MARKERS_VERSION, timeout_ms).await {
                Ok(response) => {
                    for tp in written(&response) {
                        remaining.remove(&tp);
                    }
                }
                Err(error) => {
                    tracing::debug!(%addr, %error, "WriteTxnMarkers failed");
                    connections.remove(&addr);
                }
            }
        }
        if remaining.is_empty() {
            let now_ms = broker.now_ms();
            let mut guard = broker.txns.core.lock().unwrap_or_else(|e| e.into_inner());
            let Some(core) = guard.as_mut() else { return };
            core.markers_written(now_ms, &markers);
            let outputs = core.take_outputs();
            broker.carry_out_txn(core, outputs);
            return;
        }
        crate::mark!("txn.coordinator.markers_retried");
        drop(broker);
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(MARKER_BACKOFF_MS_MAX);
    }
}

impl Broker {
    /// KIP-890 part 1: whether `topic`/`partition` is in the ongoing
    /// transaction of `producer_id` at `producer_epoch`, as the coordinator
    /// of `transactional_id` says (this broker's core when it coordinates
    /// the id, else AddPartitionsToTxn v4 with `verify_only` to the leader
    /// of the id's `__transaction_state` partition). `Err` is the error
    /// code the produce gets: INVALID_TXN_STATE when the coordinator says
    /// no, a retriable code when it cannot be asked.
    pub(crate) async fn verify_transaction_partition(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16, topic: &str, partition: i32) -> Result<(), i16> {
        let tp: TopicPartition = (topic.to_string(), partition);
        let local = self.with_txn_coordinator(Some(transactional_id), |core, _| core.verify_partitions(transactional_id, producer_id, producer_epoch, std::slice::from_ref(&tp)));
        let refused = |error: TxnError| match error {
            TxnError::NotCoordinator | TxnError::CoordinatorNotAvailable | TxnError::CoordinatorLoadInProgress | TxnError::ConcurrentTransactions => error.kafka_error_code(),
            _ => ResponseError::InvalidTxnState.code(),
        };
        match local.and_then(|verified| verified) {
            Ok(results) => return results.into_iter().find(|(found, _)| *found == tp).map_or(Err(ResponseError::InvalidTxnState.code()), |(_, r)| r.map_err(refused)),
            Err(TxnError::NotCoordinator) if self.cluster.is_some() => {}
            Err(error) => return Err(refused(error)),
        }
        let state_partition = crate::txn::partition_for_transactional_id(transactional_id, self.config.transaction_state_log_num_partitions);
        let Ok(Some(Some(addr))) = self.marker_destination(&(TXN_STATE_TOPIC.to_string(), state_partition)) else {
            return Err(ResponseError::NotCoordinator.code());
        };
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partitions(vec![partition])])]);
        let timeout_ms = self.config.controller_request_timeout_ms.max(1);
        let client_id = format!("partition-leader-{}", self.config.node_id);
        let mut connection = Connection::connect(&addr, &client_id, timeout_ms).await.map_err(|_| ResponseError::NotCoordinator.code())?;
        let response = connection.request(&request, VERIFY_ONLY_VERSION, timeout_ms).await.map_err(|_| ResponseError::NotCoordinator.code())?;
        if response.error_code != 0 {
            return Err(response.error_code);
        }
        let code = response
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .next()
            .unwrap_or(ResponseError::InvalidTxnState.code());
        match code {
            0 => Ok(()),
            c if c == ResponseError::NotCoordinator.code() || c == ResponseError::CoordinatorNotAvailable.code() || c == ResponseError::ConcurrentTransactions.code() => Err(c),
            _ => Err(ResponseError::InvalidTxnState.code()),
        }
    }
}

/// AddPartitionsToTxn version of a partition leader's verify-only request.
const VERIFY_ONLY_VERSION: i16 = 4;
