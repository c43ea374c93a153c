//! Metadata records: the payloads of the controller's Raft entries.
//!
//! Modelled on Kafka KRaft's metadata records, reduced to what this broker
//! needs. A record says what a request *asked for*; whether it takes effect is
//! decided when it is applied, against the image at that log position, so a
//! record proposed from a stale view is rejected identically on every
//! replica instead of corrupting the image.

use serde::{Deserialize, Serialize};

use super::image::MetadataError;

/// Kafka broker id.
pub type BrokerId = i32;
/// Identifies one registration of a broker: the log offset of its
/// `RegisterBroker` record (unique and increasing, as in KRaft).
pub type BrokerEpoch = u64;
/// Identifies a topic across delete and re-create: the log offset of its
/// `CreateTopic` record.
pub type TopicId = u64;
/// Partition number within a topic.
pub type PartitionIndex = u32;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A broker process starts (or restarts) and registers. Registers it
    /// fenced; the first heartbeat with the new epoch unfences it.
    RegisterBroker {
        /// The broker id from its configuration.
        broker_id: BrokerId,
        /// Random per process start: tells a retry of the same process from
        /// a new process reusing the id.
        incarnation_id: u64,
        /// Where clients reach it.
        listener: String,
        /// Rack, if configured.
        rack: Option<String>,
        /// Controller leader's clock when it accepted the request.
        now_ms: i64,
        /// The broker's logs were all closed cleanly before this start
        /// (absent in old records: taken as unclean, the safe side).
        #[serde(default)]
        clean_shutdown: bool,
    },
    /// A broker's periodic heartbeat.
    BrokerHeartbeat {
        /// Who.
        broker_id: BrokerId,
        /// Its registration; a stale epoch is rejected.
        broker_epoch: BrokerEpoch,
        /// Controller leader's clock when it accepted the heartbeat.
        now_ms: i64,
        /// The newest metadata offset the broker has acted on (0 from
        /// brokers that do not say).
        #[serde(default)]
        metadata_offset: u64,
    },
    /// The controller leader saw no heartbeat for the session timeout.
    /// Re-checked at apply time: rejected if a heartbeat or re-registration
    /// got in first.
    FenceBroker {
        /// Who.
        broker_id: BrokerId,
        /// The registration being fenced.
        broker_epoch: BrokerEpoch,
        /// Controller leader's clock when it decided.
        now_ms: i64,
    },
    /// CreateTopics, one topic. Replicas are assigned at apply time,
    /// round-robin over the brokers live at that point.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Number of partitions.
        partitions: u32,
        /// Replicas per partition.
        replication_factor: u16,
        /// Topic configs, validated by the broker that forwarded the
        /// request; every replica's log is opened with them.
        #[serde(default)]
        configs: std::collections::BTreeMap<String, String>,
    },
    /// DeleteTopics, one topic. The id fences a delete aimed at an earlier
    /// topic of the same name.
    DeleteTopic {
        /// Topic name.
        name: String,
        /// The topic id the requester saw.
        topic_id: TopicId,
    },
    /// CreatePartitions: grow a topic to `count` partitions. The id fences a
    /// request aimed at an earlier topic of the same name. New partitions
    /// are assigned at apply time, round-robin over the live brokers, with
    /// the topic's replication factor.
    CreatePartitions {
        /// Topic name.
        name: String,
        /// The topic id the requester saw.
        topic_id: TopicId,
        /// The new partition count (more than today's).
        count: u32,
    },
    /// A partition leader changes the ISR. Applied only if the broker epoch,
    /// leader epoch and partition epoch are all current.
    AlterPartition {
        /// Topic.
        topic_id: TopicId,
        /// Partition.
        partition: PartitionIndex,
        /// The requesting leader.
        broker_id: BrokerId,
        /// Its registration.
        broker_epoch: BrokerEpoch,
        /// Leader epoch the leader believes current.
        leader_epoch: u32,
        /// Partition epoch the leader believes current.
        partition_epoch: u32,
        /// Proposed ISR.
        new_isr: Vec<BrokerId>,
    },
    /// Cluster-wide `unclean.leader.election.enable`.
    SetUncleanLeaderElection {
        /// New value.
        enabled: bool,
    },
}

impl MetadataRecord {
    /// Serializes for use as a Raft entry payload (JSON, one record).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata records always serialize")
    }

    /// Parses a Raft entry payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        serde_json::from_slice(bytes).map_err(|e| MetadataError::Decode(e.to_string()))
    }
}
