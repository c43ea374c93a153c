//! The controller API: what brokers ask the quorum, and what it answers.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::controller::{BrokerRegistration, TopicState};
use crate::raft::NodeId;
use crate::wire::{self, FrameError};

/// Largest controller frame accepted, in bytes.
pub const QUORUM_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A request to the controller leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A broker (re)starts: register it and hand out a broker epoch.
    RegisterBroker {
        /// The broker's id.
        broker_id: i32,
        /// Unique per process start.
        incarnation_id: u64,
        /// `host:port` clients use.
        listener: String,
        /// Every log was closed cleanly before this start.
        #[serde(default)]
        clean_shutdown: bool,
    },
    /// A broker is alive.
    BrokerHeartbeat {
        /// The broker's id.
        broker_id: i32,
        /// Its registration epoch.
        broker_epoch: u64,
        /// The newest view (its `metadata_offset`) the broker has acted on.
        #[serde(default)]
        metadata_offset: u64,
    },
    /// Create a topic.
    CreateTopic {
        /// Name.
        name: String,
        /// Partition count.
        partitions: u32,
        /// Replicas per partition.
        replication_factor: u16,
        /// Topic configs.
        #[serde(default)]
        configs: std::collections::BTreeMap<String, String>,
    },
    /// Delete a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Grow a topic to `count` partitions.
    CreatePartitions {
        /// Name.
        name: String,
        /// The new partition count.
        count: u32,
    },
    /// A linearizable read of the whole metadata image (Raft ReadIndex).
    DescribeCluster,
    /// A partition leader changes the ISR (Kafka's AlterPartition), fenced
    /// by its broker epoch, leader epoch and partition epoch.
    AlterPartition {
        /// The partition's topic id.
        topic_id: u64,
        /// The partition.
        partition: u32,
        /// The requesting leader.
        broker_id: i32,
        /// Its registration epoch.
        broker_epoch: u64,
        /// The leader epoch it leads in.
        leader_epoch: u32,
        /// The partition epoch the change is based on.
        partition_epoch: u32,
        /// The proposed ISR.
        new_isr: Vec<i32>,
    },
}

impl ControllerRequest {
    /// Whether retrying after an unknown outcome could apply it twice.
    pub fn is_read(&self) -> bool {
        matches!(self, ControllerRequest::DescribeCluster)
    }
}

/// The metadata a linearizable read returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The controller that served the read.
    pub controller_id: NodeId,
    /// The highest controller epoch (Raft term) applied.
    pub controller_epoch: u64,
    /// Registered brokers.
    pub brokers: Vec<BrokerRegistration>,
    /// Topics, by name.
    pub topics: Vec<TopicState>,
    /// Offset of the last metadata record applied to this view: views of
    /// one cluster are ordered by it.
    #[serde(default)]
    pub metadata_offset: u64,
}

/// The controller's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    /// The broker is registered with this epoch.
    Registered {
        /// The registration's epoch.
        broker_epoch: u64,
    },
    /// The heartbeat was recorded.
    HeartbeatAccepted,
    /// The topic exists now.
    TopicCreated {
        /// Its id.
        topic_id: u64,
    },
    /// The topic is gone.
    TopicDeleted,
    /// The topic has this many partitions now.
    PartitionsCreated {
        /// The partition count.
        count: u32,
    },
    /// The ISR change took effect; the partition is now at this epoch.
    PartitionAltered {
        /// The new partition epoch.
        partition_epoch: u32,
    },
    /// A linearizable view of the metadata.
    Cluster(ClusterView),
    /// Committed and applied, but the state machine refused it (e.g. the
    /// topic exists): certainly no effect.
    Rejected {
        /// The Kafka error code.
        code: i16,
        /// Why.
        message: String,
    },
    /// This controller is not the leader; nothing was proposed.
    NotLeader {
        /// Who the leader may be.
        leader_hint: Option<NodeId>,
    },
    /// The request was proposed but leadership changed before it was known
    /// to commit: it may or may not take effect.
    Unknown {
        /// Why the outcome is unknown.
        reason: String,
    },
}

/// Why a JSON frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonFrameError {
    /// Framing or socket error.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The payload is not the expected JSON.
    #[error("bad frame payload: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes one JSON frame.
pub async fn write_json<W: AsyncWrite + Unpin, T: Serialize>(writer: &mut W, value: &T) -> Result<(), JsonFrameError> {
    let payload = serde_json::to_vec(value)?;
    wire::write_frame(writer, &payload).await?;
    Ok(())
}

/// Reads one JSON frame; `Ok(None)` at a clean end of stream.
pub async fn read_json<R: AsyncRead + Unpin, T: DeserializeOwned>(reader: &mut R) -> Result<Option<T>, JsonFrameError> {
    match wire::read_frame(reader, QUORUM_FRAME_BYTES_MAX).await? {
        None => Ok(None),
        Some(payload) => Ok(Some(serde_json::from_slice(&payload)?)),
    }
}
