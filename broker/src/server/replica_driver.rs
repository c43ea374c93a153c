//! The thin async driver of partition replication in cluster mode: it feeds
//! the controller's metadata, follower fetches, ticks and AlterPartition
//! answers into each [`Partition`](super::Partition), and carries out what
//! comes back (the core's [`LeaderEffect`]s).
//!
//! - Metadata: every view read from the quorum is applied to the partitions
//!   assigned here ([`Broker::apply_view`]): become leader, follower, or
//!   stop. A new follower gets a fetcher task.
//! - Fetchers: one task per followed partition and leader epoch. It sends
//!   Kafka Fetch v12 with this broker's id as `replica_id` (and the last
//!   fetched epoch, so the leader can name a diverging epoch), and applies
//!   the answer under the partition's lock before it sends the next one (the
//!   core's driver contract). It ends when the partition stops following
//!   in that epoch.
//! - Ticks: every `replica.lag.time.max.ms / 4` (at most 500 ms) each leader
//!   checks for lagging followers (ISR shrink) and times out acks=all waits.
//! - Effects: `CompleteProduce` answers a waiting produce request,
//!   `HighWatermarkAdvanced` wakes long-polling consumers, `ProposeIsr`
//!   sends AlterPartition to the quorum (one in flight per partition, the
//!   core's rule); a refused proposal is forgotten after a pause and the
//!   view is read again, so the next proposal is based on the newest state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic},
    BrokerId, FetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::partition::Transition;
use super::Broker;
use crate::client::Connection;
use crate::controller::TopicState;
use crate::quorum::{ClusterView, ControllerRequest, ControllerResponse};
use crate::replication::{EpochEndOffset, LeaderEffect, LeaderEpoch, ProduceOutcome, ReplicaId, ReplicationConfig};

/// Fetch version followers speak: v12 carries `last_fetched_epoch` and the
/// leader's `diverging_epoch` (KIP-320).
const REPLICA_FETCH_VERSION: i16 = 12;
/// Most record bytes a follower asks for per fetch.
const REPLICA_FETCH_BYTES_MAX: i32 = 1024 * 1024;
/// Pause before a refused AlterPartition may be proposed again.
const ALTER_PARTITION_RETRY_MS: u64 = 500;
/// Longest pause between leader ticks.
const TICK_MS_MAX: u64 = 500;

/// Shared state of the driver.
#[derive(Default)]
pub(crate) struct ReplicaDriver {
    /// acks=all produce requests waiting for replication, by request id.
    waiters: Mutex<BTreeMap<u64, oneshot::Sender<ProduceOutcome>>>,
    next_request_id: AtomicU64,
    /// Running fetchers: (topic, partition) -> the leader epoch they follow.
    fetchers: Mutex<BTreeMap<(String, i32), LeaderEpoch>>,
}

impl ReplicaDriver {
    /// A request id for an acks=all produce and the receiver of its outcome.
    pub(crate) fn register_produce(&self) -> (u64, oneshot::Receiver<ProduceOutcome>) {
        let request_id = self.next_request_id.fetch_add(1, Ordering::SeqCst);
        let (sender, receiver) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).insert(request_id, sender);
        (request_id, receiver)
    }

    /// Drops a wait that was never registered with the core.
    pub(crate) fn forget_produce(&self, request_id: u64) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&request_id);
    }

    fn complete_produce(&self, request_id: u64, result: ProduceOutcome) {
        if let Some(sender) = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&request_id) {
            // The request may have given up (timed out) already.
            let _ = sender.send(result);
        }
    }
}

impl Broker {
    /// The broker's clock as the replication core takes it.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms().max(0) as u64
    }

    /// The replication core's settings.
    pub(crate) fn replication_config(&self) -> ReplicationConfig {
        ReplicationConfig {
            replica_lag_time_max_ms: self.config.replica_lag_time_max_ms,
            delayed_produce_max: self.config.delayed_produce_max.max(1),
            truncate_to_high_watermark: self.config.replication_truncate_to_high_watermark,
        }
    }

    /// Carries out a partition's leader effects.
    pub(crate) fn dispatch_effects(&self, topic: &str, partition: i32, effects: Vec<LeaderEffect>) {
        for effect in effects {
            match effect {
                LeaderEffect::CompleteProduce { request_id, result } => self.replication.complete_produce(request_id, result),
                LeaderEffect::HighWatermarkAdvanced(_) => self.appended.notify_waiters(),
                LeaderEffect::ProposeIsr { new_isr, partition_epoch } => self.propose_isr(topic, partition, new_isr.into_iter().collect(), partition_epoch),
            }
        }
    }

    /// Applies a view to every partition assigned to this broker, opening
    /// topics it has not opened yet.
    pub(crate) fn apply_view(&self, view: &ClusterView) {
        let me = self.config.node_id;
        if !self.registered_in(view) {
            // Not registered yet (a restart), or fenced: the view's roles
            // are not for this process. A restarted broker that took its
            // old leadership from a view would serve a log that lost its
            // unsynced tail; a fenced one has been replaced. Stop acting.
            self.stop_all_roles();
            return;
        }
        for topic in &view.topics {
            if !topic.partitions.iter().any(|p| p.replicas.contains(&me)) {
                continue;
            }
            let local = self.topic(&topic.name).filter(|t| t.topic_id == Some(topic.topic_id));
            match local {
                None => {
                    if let Err(code) = self.open_incarnation(topic, 0, view.metadata_offset) {
                        tracing::debug!(topic = %topic.name, code, "cannot open an assigned topic yet");
                        continue;
                    }
                }
                Some(local) if local.partitions.len() < topic.partitions.len() => {
                    if let Err(code) = self.grow_local_topic(topic) {
                        tracing::debug!(topic = %topic.name, code, "cannot grow a topic yet");
                        continue;
                    }
                }
                Some(_) => {}
            }
            self.apply_topic_view(topic);
        }
    }

    /// Whether `view` shows this process's registration, unfenced.
    fn registered_in(&self, view: &ClusterView) -> bool {
        let Some(link) = &self.cluster else { return false };
        let broker_epoch = link.broker_epoch.load(Ordering::SeqCst);
        broker_epoch != 0
            && view
                .brokers
                .iter()
                .any(|b| b.broker_id == self.config.node_id && b.broker_epoch == broker_epoch && !b.fenced)
    }

    /// Every partition leaves its role (a fenced or unregistered broker).
    fn stop_all_roles(&self) {
        for topic in self.topics_snapshot() {
            for (index, partition) in topic.partitions.iter().enumerate() {
                let mut effects = Vec::new();
                let stopped = partition.lock().unwrap_or_else(|e| e.into_inner()).stop_replicating(&mut effects);
                if stopped {
                    tracing::info!(topic = %topic.name, partition = index, "stopped replicating: this broker is not registered or is fenced");
                }
                self.dispatch_effects(&topic.name, index as i32, effects);
            }
        }
    }

    /// Applies the controller's state of `topic` to its open partitions.
    pub(crate) fn apply_topic_view(&self, topic: &TopicState) {
        let Some(local) = self.topic(&topic.name).filter(|t| t.topic_id == Some(topic.topic_id)) else { return };
        let config = self.replication_config();
        let me = self.config.node_id;
        for (index, state) in topic.partitions.iter().enumerate() {
            let Some(partition) = local.partitions.get(index) else { continue };
            let mut effects = Vec::new();
            let outcome = {
                let mut partition = partition.lock().unwrap_or_else(|e| e.into_inner());
                partition.apply_metadata(&config, me, state, self.now_ms(), &mut effects)
            };
            let index = index as i32;
            self.dispatch_effects(&topic.name, index, effects);
            match outcome {
                Ok(Transition::BecameFollower { leader_id, leader_epoch }) => {
                    tracing::info!(topic = %topic.name, partition = index, leader_id, leader_epoch, "following");
                    self.start_fetcher(&topic.name, index, leader_id, leader_epoch);
                }
                Ok(Transition::BecameLeader { leader_epoch }) => {
                    tracing::info!(topic = %topic.name, partition = index, leader_epoch, "leading");
                }
                Ok(Transition::Stopped) => tracing::info!(topic = %topic.name, partition = index, "stopped replicating"),
                Ok(Transition::Unchanged) => {}
                Err(error) => tracing::warn!(topic = %topic.name, partition = index, %error, "role change failed; retried with the next view"),
            }
        }
    }

    fn start_fetcher(&self, topic: &str, partition: i32, leader_id: ReplicaId, leader_epoch: LeaderEpoch) {
        let Some(broker) = self.self_ref.upgrade() else { return };
        let key = (topic.to_string(), partition);
        {
            let mut fetchers = self.replication.fetchers.lock().unwrap_or_else(|e| e.into_inner());
            if fetchers.get(&key) == Some(&leader_epoch) {
                return;
            }
            fetchers.insert(key, leader_epoch);
        }
        tokio::spawn(run_fetcher(broker, topic.to_string(), partition, leader_id, leader_epoch));
    }

    fn propose_isr(&self, topic: &str, partition: i32, new_isr: Vec<ReplicaId>, partition_epoch: i32) {
        let (Some(broker), Some(link)) = (self.self_ref.upgrade(), self.cluster.as_ref()) else { return };
        let Some(local) = self.topic(topic) else { return };
        let (Some(topic_id), Some(handle)) = (local.topic_id, local.partitions.get(partition as usize).cloned()) else { return };
        let Some((leader_epoch, _)) = handle.lock().unwrap_or_else(|e| e.into_inner()).leader_view() else { return };
        let request = ControllerRequest::AlterPartition {
            topic_id,
            partition: partition as u32,
            broker_id: self.config.node_id,
            broker_epoch: link.broker_epoch.load(Ordering::SeqCst),
            leader_epoch: leader_epoch as u32,
            partition_epoch: partition_epoch as u32,
            new_isr: new_isr.clone(),
        };
        let topic = topic.to_string();
        tracing::info!(%topic, partition, ?new_isr, partition_epoch, "proposing an ISR change");
        tokio::spawn(async move {
            let Some(link) = broker.cluster.as_ref() else { return };
            let outcome = match link.call(&request).await {
                Ok(ControllerResponse::PartitionAltered { partition_epoch }) => Some((new_isr.into_iter().collect(), partition_epoch as i32)),
                other => {
                    tracing::debug!(%topic, partition, ?other, "AlterPartition not accepted");
                    tokio::time::sleep(Duration::from_millis(ALTER_PARTITION_RETRY_MS)).await;
                    if let Ok(view) = link.describe().await {
                        broker.reconcile_topics(&view);
                    }
                    None
                }
            };
            let effects = handle.lock().unwrap_or_else(|e| e.into_inner()).on_alter_partition(leader_epoch, outcome);
            broker.dispatch_effects(&topic, partition, effects);
        });
    }
}

/// The leader's Kafka address in the cached view.
fn leader_listener(broker: &Broker, leader_id: ReplicaId) -> Option<String> {
    let view = broker.cluster.as_ref()?.cached_view()?;
    view.brokers.iter().find(|b| b.broker_id == leader_id).map(|b| b.listener.clone())
}

/// Fetches `topic`/`partition` from `leader_id` for as long as this broker
/// follows it in `leader_epoch`.
async fn run_fetcher(broker: Arc<Broker>, topic: String, partition: i32, leader_id: ReplicaId, leader_epoch: LeaderEpoch) {
    let backoff = Duration::from_millis(broker.config.replica_fetch_backoff_ms.max(1));
    let timeout_ms = broker.config.replica_fetch_wait_max_ms + broker.config.controller_request_timeout_ms;
    let client_id = format!("replica-{}", broker.config.node_id);
    let mut connection: Option<Connection> = None;
    loop {
        let Some(handle) = broker.topic(&topic).and_then(|t| t.partitions.get(partition as usize).cloned()) else { break };
        let Some(fetch) = handle.lock().unwrap_or_else(|e| e.into_inner()).follower_fetch(leader_epoch) else { break };
        let Some(addr) = leader_listener(&broker, leader_id) else {
            tokio::time::sleep(backoff).await;
            continue;
        };
        if connection.as_ref().is_none_or(|c| c.addr() != addr) {
            connection = match Connection::connect(&addr, &client_id, broker.config.controller_request_timeout_ms).await {
                Ok(c) => Some(c),
                Err(error) => {
                    tracing::debug!(%topic, partition, %error, "cannot reach the leader");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(broker.config.node_id))
            .with_max_wait_ms(broker.config.replica_fetch_wait_max_ms as i32)
            .with_min_bytes(1)
            .with_max_bytes(REPLICA_FETCH_BYTES_MAX)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(fetch.current_leader_epoch.unwrap_or(-1))
                    .with_fetch_offset(fetch.fetch_offset)
                    .with_last_fetched_epoch(fetch.last_fetched_epoch.unwrap_or(-1))
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(REPLICA_FETCH_BYTES_MAX)])]);
        let Some(conn) = connection.as_mut() else { continue };
        let response = match conn.request(&request, REPLICA_FETCH_VERSION, timeout_ms).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%topic, partition, %error, "follower fetch failed");
                connection = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let data = response.responses.iter().flat_map(|t| &t.partitions).find(|p| p.partition_index == partition);
        let Some(data) = data.filter(|_| response.error_code == 0) else {
            tokio::time::sleep(backoff).await;
            continue;
        };
        if data.error_code != 0 {
            // NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH...: the metadata
            // will say what changed; until then, ask again after a pause.
            tracing::debug!(%topic, partition, code = data.error_code, "leader refused the follower fetch");
            tokio::time::sleep(backoff).await;
            continue;
        }
        let diverging = (data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0)
            .then_some(EpochEndOffset { epoch: data.diverging_epoch.epoch, end_offset: data.diverging_epoch.end_offset });
        let records = data.records.clone().unwrap_or_default();
        let outcome = handle.lock().unwrap_or_else(|e| e.into_inner()).on_leader_response(
            leader_epoch,
            fetch.fetch_offset,
            data.high_watermark,
            diverging,
            &records,
        );
        match outcome {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                tracing::warn!(%topic, partition, %error, "applying the leader's records failed");
                tokio::time::sleep(backoff).await;
            }
        }
    }
    let mut fetchers = broker.replication.fetchers.lock().unwrap_or_else(|e| e.into_inner());
    let key = (topic, partition);
    if fetchers.get(&key) == Some(&leader_epoch) {
        fetchers.remove(&key);
    }
}

/// The leaders' periodic duties, forever.
pub(crate) async fn run_ticks(broker: Arc<Broker>) {
    let tick_ms = (broker.config.replica_lag_time_max_ms / 4).clamp(1, TICK_MS_MAX);
    loop {
        tokio::time::sleep(Duration::from_millis(tick_ms)).await;
        let now_ms = broker.now_ms();
        for topic in broker.topics_snapshot() {
            for (index, partition) in topic.partitions.iter().enumerate() {
                let effects = partition.lock().unwrap_or_else(|e| e.into_inner()).tick(now_ms);
                broker.dispatch_effects(&topic.name, index as i32, effects);
            }
        }
    }
}
