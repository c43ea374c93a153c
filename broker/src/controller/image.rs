//! The metadata image: the state obtained by applying every committed
//! metadata record in log order, and the rules that decide each record.
//!
//! `apply` is a pure function of (image, offset, controller epoch, record):
//! no clock (time arrives inside records, stamped by the controller leader),
//! no randomness, ordered maps only. Every replica applying the same log
//! ends with byte-identical images, including the same rejections.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::records::{BrokerEpoch, BrokerId, MetadataRecord, PartitionIndex, TopicId};

/// Cluster-wide settings the records are judged by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker with no heartbeat for this long
    /// is fenced (default 9000, as in Kafka).
    pub broker_session_timeout_ms: i64,
    /// `unclean.leader.election.enable` (default false): when no ISR member
    /// is alive, elect a live out-of-sync replica, losing committed data,
    /// rather than leave the partition offline.
    pub unclean_leader_election_enable: bool,
    /// `min.insync.replicas` (default 1): a replica removed from an ISR that
    /// drops below this size becomes an eligible leader replica (KIP-966).
    #[serde(default = "default_min_insync_replicas")]
    pub min_insync_replicas: usize,
}

fn default_min_insync_replicas() -> usize {
    1
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self { broker_session_timeout_ms: 9000, unclean_leader_election_enable: false, min_insync_replicas: 1 }
    }
}

/// Why a record was rejected (the image is unchanged), or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The payload is not a metadata record.
    #[error("undecodable metadata record: {0}")]
    Decode(String),
    /// The snapshot is not a metadata image.
    #[error("undecodable metadata snapshot: {0}")]
    BadSnapshot(String),
    /// Another live process holds this broker id.
    #[error("broker {0} is registered by another live incarnation")]
    DuplicateBrokerRegistration(BrokerId),
    /// No such broker.
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    /// The broker epoch is not the current registration's.
    #[error("broker {broker_id}: epoch {given} is stale (current {current})")]
    StaleBrokerEpoch {
        /// Broker.
        broker_id: BrokerId,
        /// Epoch in the record.
        given: BrokerEpoch,
        /// Current epoch.
        current: BrokerEpoch,
    },
    /// The broker is fenced and may not change partitions.
    #[error("broker {0} is fenced")]
    BrokerFenced(BrokerId),
    /// A fence decision was overtaken by a heartbeat.
    #[error("broker {0} heartbeated within the session timeout")]
    SessionNotExpired(BrokerId),
    /// Bad topic name.
    #[error("invalid topic name {0:?}")]
    InvalidTopicName(String),
    /// Topic exists.
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    /// The name was deleted and some broker has not seen that yet.
    #[error("topic {0:?} is marked for deletion: it can be created again once every broker has seen the deletion")]
    TopicMarkedForDeletion(String),
    /// Bad partition count.
    #[error("invalid partition count {0}")]
    InvalidPartitions(u32),
    /// Not enough live brokers, or zero.
    #[error("replication factor {requested} with {live_brokers} live brokers")]
    InvalidReplicationFactor {
        /// Asked for.
        requested: u16,
        /// Available.
        live_brokers: usize,
    },
    /// No topic of that name.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The topic of that name is a different (re-created) one.
    #[error("topic {name:?} has id {current}, not {given}")]
    TopicIdMismatch {
        /// Name.
        name: String,
        /// Id in the record.
        given: TopicId,
        /// Current id.
        current: TopicId,
    },
    /// No topic with that id.
    #[error("unknown topic id {0}")]
    UnknownTopicId(TopicId),
    /// No such partition.
    #[error("unknown partition {topic_id}-{partition}")]
    UnknownPartition {
        /// Topic.
        topic_id: TopicId,
        /// Partition.
        partition: PartitionIndex,
    },
    /// Only the partition leader may alter the partition.
    #[error("broker {0} is not the partition leader")]
    NotLeader(BrokerId),
    /// The requester's leader epoch is not current.
    #[error("leader epoch {given} is fenced (current {current})")]
    FencedLeaderEpoch {
        /// In the record.
        given: u32,
        /// Current.
        current: u32,
    },
    /// The requester's partition epoch is not current (Kafka's
    /// INVALID_UPDATE_VERSION).
    #[error("partition epoch {given} is stale (current {current})")]
    InvalidUpdateVersion {
        /// In the record.
        given: u32,
        /// Current.
        current: u32,
    },
    /// The proposed ISR is not acceptable.
    #[error("invalid ISR: {0}")]
    InvalidIsr(String),
}

/// One broker's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// Id.
    pub broker_id: BrokerId,
    /// Process incarnation.
    pub incarnation_id: u64,
    /// Epoch of this registration.
    pub broker_epoch: BrokerEpoch,
    /// Listener address.
    pub listener: String,
    /// Rack.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are not in any ISR (unless last).
    pub fenced: bool,
    /// Controller time of the last heartbeat (or registration).
    pub last_heartbeat_ms: i64,
    /// The newest metadata offset this broker says it has acted on (its
    /// cached view is at least this new and its local topics match it):
    /// the highest `metadata_offset` its heartbeats carried.
    #[serde(default)]
    pub metadata_offset: u64,
}

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas. Never empty: when the last member fails it stays
    /// in the ISR (it holds the committed data) and the leader becomes none.
    pub isr: Vec<BrokerId>,
    /// Current leader, `None` if offline.
    pub leader: Option<BrokerId>,
    /// Bumped on every leader change; fences requests from old leaders.
    pub leader_epoch: u32,
    /// Bumped on every change (leader or ISR); fences stale AlterPartition.
    pub partition_epoch: u32,
    /// Eligible leader replicas (KIP-966): replicas that left the ISR when
    /// it fell below `min.insync.replicas`. No acks=all write can be
    /// acknowledged with so small an ISR, so each holds every acknowledged
    /// record, and one may lead when no ISR member can. Emptied when the
    /// ISR is back to `min.insync.replicas`; a broker that restarts after an
    /// unclean shutdown leaves it (it may have lost unsynced records).
    #[serde(default)]
    pub elr: Vec<BrokerId>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicState {
    /// Id.
    pub topic_id: TopicId,
    /// Name.
    pub name: String,
    /// Partitions, indexed by partition number.
    pub partitions: Vec<PartitionState>,
    /// Topic configs (`retention.ms`, `min.insync.replicas`...).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// What an accepted record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Registered (or an idempotent retry of the same incarnation).
    BrokerRegistered {
        /// The registration's epoch.
        broker_epoch: BrokerEpoch,
    },
    /// Heartbeat recorded; `unfenced` if this heartbeat unfenced it.
    Heartbeat {
        /// Whether the broker was unfenced.
        unfenced: bool,
    },
    /// Broker fenced (or already was).
    BrokerFenced,
    /// Topic created.
    TopicCreated {
        /// Its id.
        topic_id: TopicId,
    },
    /// Topic deleted.
    TopicDeleted,
    /// A topic grew; it now has this many partitions.
    PartitionsCreated {
        /// The partition count.
        count: u32,
    },
    /// ISR changed.
    PartitionAltered {
        /// New partition epoch.
        partition_epoch: u32,
    },
    /// Setting changed.
    ConfigChanged,
}

/// The whole cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    config: ControllerConfig,
    /// Offset of the last applied record (0 before any).
    last_applied_offset: u64,
    /// Highest Raft term (controller epoch) among applied records.
    controller_epoch: u64,
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    topics: BTreeMap<TopicId, TopicState>,
    topic_ids: BTreeMap<String, TopicId>,
    /// Deleted topic names that may not be created again yet (see
    /// [`PendingDeletion`]).
    #[serde(default)]
    pending_deletions: BTreeMap<String, PendingDeletion>,
}

/// A deleted topic whose name is held back. A broker acts on metadata it
/// reads from the quorum, which can lag: one that has not yet seen the
/// deletion still serves the old topic's partitions and would take a
/// record meant for a new topic of the same name into the old incarnation's
/// log, acknowledged and then lost. So a name may be created again only
/// once every broker that held a replica has reported (in a heartbeat) a
/// metadata offset at or past the deletion, registered after it, or been
/// fenced or removed (a fenced broker leads nothing in a new topic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDeletion {
    /// Offset of the DeleteTopic record.
    pub deleted_at: u64,
    /// Brokers that held a replica of the deleted topic.
    pub replicas: Vec<BrokerId>,
}

const MAX_TOPIC_NAME_LEN: usize = 249;

impl MetadataImage {
    /// An empty image.
    pub fn new(config: ControllerConfig) -> Self {
        Self {
            config,
            last_applied_offset: 0,
            controller_epoch: 0,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_ids: BTreeMap::new(),
            pending_deletions: BTreeMap::new(),
        }
    }

    // ----- reads ----------------------------------------------------------

    /// Settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }
    /// Offset of the last applied record.
    pub fn last_applied_offset(&self) -> u64 {
        self.last_applied_offset
    }
    /// Highest controller epoch applied.
    pub fn controller_epoch(&self) -> u64 {
        self.controller_epoch
    }
    /// A broker's registration.
    pub fn broker(&self, broker_id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }
    /// All registrations by id.
    pub fn brokers(&self) -> &BTreeMap<BrokerId, BrokerRegistration> {
        &self.brokers
    }
    /// Registered, unfenced broker ids, ascending.
    pub fn live_brokers(&self) -> Vec<BrokerId> {
        self.brokers.values().filter(|b| !b.fenced).map(|b| b.broker_id).collect()
    }
    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }
    /// A topic by id.
    pub fn topic_by_id(&self, topic_id: TopicId) -> Option<&TopicState> {
        self.topics.get(&topic_id)
    }
    /// Every topic, in topic-id order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicState> {
        self.topics.values()
    }

    /// A partition.
    pub fn partition(&self, name: &str, partition: PartitionIndex) -> Option<&PartitionState> {
        self.topic(name).and_then(|t| t.partitions.get(partition as usize))
    }

    // ----- what the controller leader proposes ------------------------------

    /// Controller-leader side: `FenceBroker` records for every unfenced
    /// broker whose session expired at `now_ms`. Pure; the leader proposes
    /// them and they are re-checked when applied.
    ///
    /// A newly elected controller should wait one session timeout before
    /// calling this (as KRaft does), since heartbeats sent to the previous
    /// leader may not have been committed.
    pub fn expired_sessions(&self, now_ms: i64) -> Vec<MetadataRecord> {
        self.brokers
            .values()
            .filter(|b| !b.fenced && now_ms - b.last_heartbeat_ms >= self.config.broker_session_timeout_ms)
            .map(|b| MetadataRecord::FenceBroker { broker_id: b.broker_id, broker_epoch: b.broker_epoch, now_ms })
            .collect()
    }

    // ----- apply ----------------------------------------------------------------

    /// Applies the record committed at `offset` by a controller of
    /// `controller_epoch` (the Raft entry's index and term). A rejected
    /// record leaves the image unchanged apart from `last_applied_offset`.
    pub fn apply(
        &mut self,
        offset: u64,
        controller_epoch: u64,
        record: &MetadataRecord,
    ) -> Result<ApplyOutcome, MetadataError> {
        assert!(
            offset > self.last_applied_offset,
            "metadata: offset {offset} applied after {}",
            self.last_applied_offset
        );
        debug_assert!(controller_epoch >= self.controller_epoch, "metadata: controller epoch went backwards");
        self.last_applied_offset = offset;
        self.controller_epoch = self.controller_epoch.max(controller_epoch);
        let before = cfg!(debug_assertions).then(|| self.epochs());
        let outcome = match record {
            MetadataRecord::RegisterBroker { broker_id, incarnation_id, listener, rack, now_ms, clean_shutdown } => {
                self.register_broker(offset, *broker_id, *incarnation_id, listener, rack, *now_ms, *clean_shutdown)
            }
            MetadataRecord::BrokerHeartbeat { broker_id, broker_epoch, now_ms, metadata_offset } => {
                self.heartbeat(*broker_id, *broker_epoch, *now_ms, *metadata_offset)
            }
            MetadataRecord::FenceBroker { broker_id, broker_epoch, now_ms } => {
                self.fence_broker(*broker_id, *broker_epoch, *now_ms)
            }
            MetadataRecord::CreateTopic { name, partitions, replication_factor, configs } => {
                self.create_topic(offset, name, *partitions, *replication_factor, configs)
            }
            MetadataRecord::DeleteTopic { name, topic_id } => self.delete_topic(offset, name, *topic_id),
            MetadataRecord::CreatePartitions { name, topic_id, count } => self.create_partitions(offset, name, *topic_id, *count),
            MetadataRecord::AlterPartition {
                topic_id,
                partition,
                broker_id,
                broker_epoch,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => self.alter_partition(
                *topic_id,
                *partition,
                *broker_id,
                *broker_epoch,
                *leader_epoch,
                *partition_epoch,
                new_isr,
            ),
            MetadataRecord::SetUncleanLeaderElection { enabled } => {
                self.config.unclean_leader_election_enable = *enabled;
                self.elect_offline_partitions();
                Ok(ApplyOutcome::ConfigChanged)
            }
        };
        if let Some(before) = before {
            self.check_invariants(&before);
        }
        outcome
    }

    fn register_broker(
        &mut self,
        offset: u64,
        broker_id: BrokerId,
        incarnation_id: u64,
        listener: &str,
        rack: &Option<String>,
        now_ms: i64,
        clean_shutdown: bool,
    ) -> Result<ApplyOutcome, MetadataError> {
        if let Some(existing) = self.brokers.get(&broker_id) {
            if existing.incarnation_id == incarnation_id {
                // A retry of a registration that already took effect.
                return Ok(ApplyOutcome::BrokerRegistered { broker_epoch: existing.broker_epoch });
            }
            let alive = !existing.fenced && now_ms - existing.last_heartbeat_ms < self.config.broker_session_timeout_ms;
            if alive {
                return Err(MetadataError::DuplicateBrokerRegistration(broker_id));
            }
            // The old incarnation is gone: whatever it led must move now.
            self.fence(broker_id);
        }
        if !clean_shutdown {
            self.forget_unclean_replica(broker_id);
        }
        self.brokers.insert(
            broker_id,
            BrokerRegistration {
                broker_id,
                incarnation_id,
                broker_epoch: offset,
                listener: listener.to_string(),
                rack: rack.clone(),
                fenced: true,
                last_heartbeat_ms: now_ms,
                metadata_offset: 0,
            },
        );
        Ok(ApplyOutcome::BrokerRegistered { broker_epoch: offset })
    }

    fn current_registration(
        &self,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    ) -> Result<&BrokerRegistration, MetadataError> {
        let broker = self.brokers.get(&broker_id).ok_or(MetadataError::UnknownBroker(broker_id))?;
        if broker.broker_epoch != broker_epoch {
            crate::mark!("controller.stale_broker_epoch");
            return Err(MetadataError::StaleBrokerEpoch { broker_id, given: broker_epoch, current: broker.broker_epoch });
        }
        Ok(broker)
    }

    fn heartbeat(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        now_ms: i64,
        metadata_offset: u64,
    ) -> Result<ApplyOutcome, MetadataError> {
        let was_fenced = self.current_registration(broker_id, broker_epoch)?.fenced;
        let broker = self.brokers.get_mut(&broker_id).expect("checked above");
        broker.last_heartbeat_ms = broker.last_heartbeat_ms.max(now_ms);
        broker.metadata_offset = broker.metadata_offset.max(metadata_offset);
        broker.fenced = false;
        // Names every broker has seen deleted need no holding back.
        let held: Vec<String> = self
            .pending_deletions
            .iter()
            .filter(|(_, pending)| !self.deletion_seen_everywhere(pending))
            .map(|(name, _)| name.clone())
            .collect();
        self.pending_deletions.retain(|name, _| held.contains(name));
        if was_fenced {
            self.elect_offline_partitions();
        }
        Ok(ApplyOutcome::Heartbeat { unfenced: was_fenced })
    }

    fn fence_broker(&mut self, broker_id: BrokerId, broker_epoch: BrokerEpoch, now_ms: i64) -> Result<ApplyOutcome, MetadataError> {
        let broker = self.current_registration(broker_id, broker_epoch)?;
        if broker.fenced {
            return Ok(ApplyOutcome::BrokerFenced);
        }
        if now_ms - broker.last_heartbeat_ms < self.config.broker_session_timeout_ms {
            return Err(MetadataError::SessionNotExpired(broker_id));
        }
        crate::mark!("controller.broker.fenced");
        self.fence(broker_id);
        Ok(ApplyOutcome::BrokerFenced)
    }

    /// A broker restarted after an unclean shutdown: it may have lost
    /// records it had acknowledged as a follower, so it is no longer an
    /// eligible leader replica. Where it is the last ISR member of a
    /// partition without a leader and eligible replicas exist, those take
    /// its place: they hold every acknowledged record, it may not.
    fn forget_unclean_replica(&mut self, broker_id: BrokerId) {
        let min_isr = self.config.min_insync_replicas;
        for topic in self.topics.values_mut() {
            for partition in &mut topic.partitions {
                let mut changed = false;
                if partition.elr.contains(&broker_id) {
                    partition.elr.retain(|&b| b != broker_id);
                    changed = true;
                }
                if partition.leader.is_none() && partition.isr == [broker_id] && !partition.elr.is_empty() {
                    let eligible = std::mem::take(&mut partition.elr);
                    set_isr(partition, eligible, min_isr);
                    partition.elr.retain(|&b| b != broker_id);
                    changed = true;
                }
                if changed {
                    partition.partition_epoch += 1;
                }
            }
        }
    }

    /// Marks the broker fenced, removes it from every ISR it is not the last
    /// member of, and moves leadership off it.
    fn fence(&mut self, broker_id: BrokerId) {
        if let Some(broker) = self.brokers.get_mut(&broker_id) {
            broker.fenced = true;
        }
        let live = self.live_brokers();
        let unclean = self.config.unclean_leader_election_enable;
        let min_isr = self.config.min_insync_replicas;
        for topic in self.topics.values_mut() {
            for partition in &mut topic.partitions {
                if !partition.replicas.contains(&broker_id) {
                    continue;
                }
                let mut changed = false;
                if partition.isr.len() > 1 && partition.isr.contains(&broker_id) {
                    let new_isr = partition.isr.iter().copied().filter(|&b| b != broker_id).collect();
                    set_isr(partition, new_isr, min_isr);
                    changed = true;
                }
                if partition.leader == Some(broker_id) {
                    crate::mark!("controller.partition.leader_moved");
                    elect_leader(partition, &live, unclean, min_isr);
                    changed = true;
                }
                if changed {
                    partition.partition_epoch += 1;
                }
            }
        }
    }

    /// Gives a leader to every leaderless partition that can have one.
    fn elect_offline_partitions(&mut self) {
        let live = self.live_brokers();
        let unclean = self.config.unclean_leader_election_enable;
        let min_isr = self.config.min_insync_replicas;
        for topic in self.topics.values_mut() {
            for partition in &mut topic.partitions {
                if partition.leader.is_none() && elect_leader(partition, &live, unclean, min_isr) {
                    partition.partition_epoch += 1;
                }
            }
        }
    }

    fn create_topic(
        &mut self,
        offset: u64,
        name: &str,
        partitions: u32,
        replication_factor: u16,
        configs: &BTreeMap<String, String>,
    ) -> Result<ApplyOutcome, MetadataError> {
        let valid_name = !name.is_empty()
            && name.len() <= MAX_TOPIC_NAME_LEN
            && name != "."
            && name != ".."
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
        if !valid_name {
            return Err(MetadataError::InvalidTopicName(name.to_string()));
        }
        if self.topic_ids.contains_key(name) {
            return Err(MetadataError::TopicAlreadyExists(name.to_string()));
        }
        if let Some(pending) = self.pending_deletions.get(name) {
            if !self.deletion_seen_everywhere(pending) {
                return Err(MetadataError::TopicMarkedForDeletion(name.to_string()));
            }
        }
        if partitions == 0 {
            return Err(MetadataError::InvalidPartitions(partitions));
        }
        let live = self.live_brokers();
        if replication_factor == 0 || usize::from(replication_factor) > live.len() {
            return Err(MetadataError::InvalidReplicationFactor { requested: replication_factor, live_brokers: live.len() });
        }
        self.pending_deletions.remove(name);
        let topic_id = offset;
        let partitions = new_partitions(&live, topic_id, 0..partitions as usize, usize::from(replication_factor));
        self.topics.insert(topic_id, TopicState { topic_id, name: name.to_string(), partitions, configs: configs.clone() });
        self.topic_ids.insert(name.to_string(), topic_id);
        Ok(ApplyOutcome::TopicCreated { topic_id })
    }

    /// Checks that `name` is the topic `topic_id` (a request aimed at an
    /// earlier incarnation of the name is refused).
    fn check_topic_id(&self, name: &str, topic_id: TopicId) -> Result<(), MetadataError> {
        let current = *self.topic_ids.get(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        if current != topic_id {
            return Err(MetadataError::TopicIdMismatch { name: name.to_string(), given: topic_id, current });
        }
        Ok(())
    }

    fn create_partitions(&mut self, offset: u64, name: &str, topic_id: TopicId, count: u32) -> Result<ApplyOutcome, MetadataError> {
        self.check_topic_id(name, topic_id)?;
        let live = self.live_brokers();
        let topic = self.topics.get_mut(&topic_id).expect("named topics exist");
        let existing = topic.partitions.len();
        if count as usize <= existing {
            return Err(MetadataError::InvalidPartitions(count));
        }
        let replication_factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
        if replication_factor > live.len() {
            return Err(MetadataError::InvalidReplicationFactor { requested: replication_factor as u16, live_brokers: live.len() });
        }
        topic.partitions.extend(new_partitions(&live, offset, existing..count as usize, replication_factor));
        Ok(ApplyOutcome::PartitionsCreated { count })
    }

    fn delete_topic(&mut self, offset: u64, name: &str, topic_id: TopicId) -> Result<ApplyOutcome, MetadataError> {
        self.check_topic_id(name, topic_id)?;
        self.topic_ids.remove(name);
        let topic = self.topics.remove(&topic_id).expect("topic_ids and topics agree");
        let mut replicas: Vec<BrokerId> = topic.partitions.iter().flat_map(|p| p.replicas.iter().copied()).collect();
        replicas.sort_unstable();
        replicas.dedup();
        self.pending_deletions.insert(name.to_string(), PendingDeletion { deleted_at: offset, replicas });
        Ok(ApplyOutcome::TopicDeleted)
    }

    /// Whether every broker that held a replica of a deleted topic is past
    /// its deletion (see [`PendingDeletion`]).
    fn deletion_seen_everywhere(&self, pending: &PendingDeletion) -> bool {
        pending.replicas.iter().all(|id| match self.brokers.get(id) {
            None => true,
            Some(broker) => {
                broker.fenced || broker.broker_epoch > pending.deleted_at || broker.metadata_offset >= pending.deleted_at
            }
        })
    }

    /// Deleted names still held back, with the brokers that have not seen
    /// the deletion yet.
    pub fn pending_deletions(&self) -> impl Iterator<Item = (&String, &PendingDeletion)> {
        self.pending_deletions.iter()
    }

    #[allow(clippy::too_many_arguments)]
    fn alter_partition(
        &mut self,
        topic_id: TopicId,
        partition_index: PartitionIndex,
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        leader_epoch: u32,
        partition_epoch: u32,
        new_isr: &[BrokerId],
    ) -> Result<ApplyOutcome, MetadataError> {
        if self.current_registration(broker_id, broker_epoch)?.fenced {
            return Err(MetadataError::BrokerFenced(broker_id));
        }
        let live = self.live_brokers();
        let topic = self.topics.get_mut(&topic_id).ok_or(MetadataError::UnknownTopicId(topic_id))?;
        let partition = topic
            .partitions
            .get_mut(partition_index as usize)
            .ok_or(MetadataError::UnknownPartition { topic_id, partition: partition_index })?;
        if partition.leader != Some(broker_id) {
            return Err(MetadataError::NotLeader(broker_id));
        }
        if leader_epoch != partition.leader_epoch {
            crate::mark!("controller.alter_partition.fenced_leader_epoch");
            return Err(MetadataError::FencedLeaderEpoch { given: leader_epoch, current: partition.leader_epoch });
        }
        if partition_epoch != partition.partition_epoch {
            crate::mark!("controller.alter_partition.stale_partition_epoch");
            return Err(MetadataError::InvalidUpdateVersion { given: partition_epoch, current: partition.partition_epoch });
        }
        if !new_isr.contains(&broker_id) {
            return Err(MetadataError::InvalidIsr("must contain the leader".into()));
        }
        let mut sorted = new_isr.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != new_isr.len() {
            return Err(MetadataError::InvalidIsr("duplicate member".into()));
        }
        if let Some(b) = new_isr.iter().find(|b| !partition.replicas.contains(b)) {
            return Err(MetadataError::InvalidIsr(format!("{b} is not a replica")));
        }
        if let Some(b) = new_isr.iter().find(|b| !live.contains(b)) {
            return Err(MetadataError::InvalidIsr(format!("{b} is fenced or unregistered")));
        }
        set_isr(partition, new_isr.to_vec(), self.config.min_insync_replicas);
        partition.partition_epoch += 1;
        Ok(ApplyOutcome::PartitionAltered { partition_epoch: partition.partition_epoch })
    }

    // ----- snapshots -------------------------------------------------------------

    /// The whole image as bytes (a Raft snapshot's data).
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata image always serializes")
    }

    /// Rebuilds an image from [`MetadataImage::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, MetadataError> {
        serde_json::from_slice(bytes).map_err(|e| MetadataError::BadSnapshot(e.to_string()))
    }

    // ----- invariants ---------------------------------------------------------------

    /// (topic, partition) -> (leader_epoch, partition_epoch)
    fn epochs(&self) -> BTreeMap<(TopicId, usize), (u32, u32)> {
        self.topics
            .values()
            .flat_map(|t| {
                t.partitions.iter().enumerate().map(move |(i, p)| ((t.topic_id, i), (p.leader_epoch, p.partition_epoch)))
            })
            .collect()
    }

    fn check_invariants(&self, before: &BTreeMap<(TopicId, usize), (u32, u32)>) {
        for topic in self.topics.values() {
            for partition in &topic.partitions {
                assert!(!partition.isr.is_empty(), "metadata: empty ISR in {}", topic.name);
                assert!(partition.isr.iter().all(|b| partition.replicas.contains(b)), "metadata: ISR outside replicas");
                assert!(partition.elr.iter().all(|b| partition.replicas.contains(b)), "metadata: ELR outside replicas");
                assert!(partition.elr.iter().all(|b| !partition.isr.contains(b)), "metadata: a replica in both ISR and ELR");
                if let Some(leader) = partition.leader {
                    assert!(partition.isr.contains(&leader), "metadata: leader {leader} not in ISR");
                    assert!(
                        self.brokers.get(&leader).is_some_and(|b| !b.fenced),
                        "metadata: fenced broker {leader} leads a partition"
                    );
                }
            }
        }
        for (key, (leader_epoch, partition_epoch)) in self.epochs() {
            if let Some(&(old_leader_epoch, old_partition_epoch)) = before.get(&key) {
                assert!(leader_epoch >= old_leader_epoch && partition_epoch >= old_partition_epoch, "metadata: epoch went backwards");
                assert!(
                    leader_epoch == old_leader_epoch || partition_epoch > old_partition_epoch,
                    "metadata: leader changed without a partition epoch bump"
                );
            }
        }
    }
}

/// New partitions `indexes`, each with `replication_factor` replicas
/// assigned round-robin over `live` from a start drawn from `offset` (the
/// record's log offset, so every controller assigns alike); the first
/// replica leads and all are in sync.
fn new_partitions(live: &[BrokerId], offset: u64, indexes: std::ops::Range<usize>, replication_factor: usize) -> Vec<PartitionState> {
    let start = (offset % live.len() as u64) as usize;
    indexes
        .map(|p| {
            let replicas: Vec<BrokerId> = (0..replication_factor).map(|r| live[(start + p + r) % live.len()]).collect();
            PartitionState { leader: Some(replicas[0]), isr: replicas.clone(), replicas, leader_epoch: 0, partition_epoch: 0, elr: Vec::new() }
        })
        .collect()
}

/// Sets a partition's ISR, keeping the eligible leader replicas (KIP-966):
/// members that leave an ISR now smaller than `min_isr` become eligible; an
/// ISR of at least `min_isr` empties the set (records can be acknowledged
/// without them from then on); ISR members are never also eligible.
fn set_isr(partition: &mut PartitionState, new_isr: Vec<BrokerId>, min_isr: usize) {
    if new_isr.len() < min_isr {
        for &b in &partition.isr {
            if !new_isr.contains(&b) && !partition.elr.contains(&b) {
                partition.elr.push(b);
            }
        }
    } else {
        partition.elr.clear();
    }
    partition.elr.retain(|b| !new_isr.contains(b));
    partition.isr = new_isr;
}

/// Picks a leader for `partition` among `live` brokers: the first ISR
/// member in replica order; failing that, the first eligible leader replica
/// (KIP-966), which becomes the ISR; failing that, with `unclean`, the first
/// live replica (which becomes the whole ISR). Bumps the leader epoch if the
/// leader changes. Returns whether anything changed.
fn elect_leader(partition: &mut PartitionState, live: &[BrokerId], unclean: bool, min_isr: usize) -> bool {
    let clean = partition.replicas.iter().copied().find(|b| partition.isr.contains(b) && live.contains(b));
    let eligible = partition.replicas.iter().copied().find(|b| partition.elr.contains(b) && live.contains(b));
    let (leader, isr) = match (clean, eligible) {
        (Some(leader), _) => (Some(leader), None),
        (None, Some(leader)) => {
            crate::mark!("controller.elect.eligible_replica");
            (Some(leader), Some(vec![leader]))
        }
        (None, None) if unclean => match partition.replicas.iter().copied().find(|b| live.contains(b)) {
            Some(leader) => {
                crate::mark!("controller.elect.unclean");
                // Whatever the eligible replicas held is given up with it.
                partition.elr.clear();
                (Some(leader), Some(vec![leader]))
            }
            None => (None, None),
        },
        (None, None) => (None, None),
    };
    let mut changed = false;
    if let Some(isr) = isr {
        set_isr(partition, isr, min_isr);
        changed = true;
    }
    if leader != partition.leader {
        partition.leader = leader;
        partition.leader_epoch += 1;
        changed = true;
    }
    changed
}
