//! Plain data shared by the leader and follower sides, and the errors.

use std::collections::BTreeSet;

/// A broker id, as Kafka spells it.
pub type ReplicaId = i32;
/// A record offset.
pub type Offset = i64;
/// A leader epoch (bumped by the controller on every leader change).
pub type LeaderEpoch = i32;
/// A partition epoch (bumped by the controller on every partition change,
/// ISR changes included).
pub type PartitionEpoch = i32;

/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: LeaderEpoch = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: Offset = -1;

/// An answer to "where does epoch N end?" (OffsetForLeaderEpoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    /// The largest known epoch `<=` the requested one, or `UNDEFINED_EPOCH`.
    pub epoch: LeaderEpoch,
    /// The first offset after that epoch, or `UNDEFINED_EPOCH_OFFSET`.
    pub end_offset: Offset,
}

impl EpochEndOffset {
    /// The "don't know" answer.
    pub const UNDEFINED: Self = Self { epoch: UNDEFINED_EPOCH, end_offset: UNDEFINED_EPOCH_OFFSET };
}

/// Metadata of one record batch: what the core needs, not the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// First offset in the batch.
    pub base_offset: Offset,
    /// Last offset in the batch (inclusive).
    pub last_offset: Offset,
    /// The batch's `partitionLeaderEpoch`.
    pub leader_epoch: LeaderEpoch,
}

/// A replica fetch as the leader sees it (Fetch v12+ fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    /// Which follower is fetching.
    pub replica_id: ReplicaId,
    /// The follower's log end offset: everything below it is acknowledged.
    pub fetch_offset: Offset,
    /// Epoch of the follower's last record (`None` if its log is empty, or
    /// in the pre-KIP-101 mode that does not validate).
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// The leader epoch the follower believes current (KIP-320 fencing).
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// What the leader tells the driver to answer to a [`FollowerFetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchAnswer {
    /// Send the records from `fetch_offset` up to `log_end_offset`.
    Records { fetch_offset: Offset, log_end_offset: Offset, high_watermark: Offset },
    /// The follower's log diverges: send no records, only this epoch end so
    /// the follower truncates (KIP-320 `DivergingEpoch`).
    Diverging { diverging_epoch: EpochEndOffset, high_watermark: Offset },
}

/// A fetch response as the follower sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Leader epoch the request was sent in (responses of other epochs are stale).
    pub leader_epoch: LeaderEpoch,
    /// The fetch offset of the request this answers.
    pub fetch_offset: Offset,
    /// The leader's high watermark.
    pub high_watermark: Offset,
    /// Set when the leader found the follower's log diverging.
    pub diverging_epoch: Option<EpochEndOffset>,
    /// The batches sent, in order, starting at `fetch_offset`.
    pub batches: Vec<BatchInfo>,
}

/// The controller's view of a partition, as it arrives in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Current leader, `None` if offline.
    pub leader: Option<ReplicaId>,
    pub leader_epoch: LeaderEpoch,
    pub partition_epoch: PartitionEpoch,
    pub isr: BTreeSet<ReplicaId>,
}

/// Why a produce or a fetch was refused or failed. Another module maps these
/// to Kafka error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    #[error("not the leader or a follower of this partition")]
    NotLeaderOrFollower,
    #[error("request leader epoch {request} is older than the current {current}")]
    FencedLeaderEpoch { request: LeaderEpoch, current: LeaderEpoch },
    #[error("request leader epoch {request} is newer than the current {current}")]
    UnknownLeaderEpoch { request: LeaderEpoch, current: LeaderEpoch },
    #[error("ISR has {isr_size} replicas, below min.insync.replicas {min_insync_replicas}")]
    NotEnoughReplicas { isr_size: usize, min_insync_replicas: usize },
    #[error("appended, but ISR has {isr_size} replicas, below min.insync.replicas {min_insync_replicas}")]
    NotEnoughReplicasAfterAppend { isr_size: usize, min_insync_replicas: usize },
    #[error("replication did not reach the required offset in time")]
    RequestTimedOut,
    #[error("too many acks=all produce requests waiting ({max})")]
    DelayedProduceQueueFull { max: usize },
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: Offset, log_start_offset: Offset, log_end_offset: Offset },
    #[error("replica {0} is not assigned to this partition")]
    UnknownReplica(ReplicaId),
    #[error("recovered state is inconsistent: {0}")]
    InvalidRecoveredState(String),
}

/// How an acks=all produce ended.
pub type ProduceOutcome = Result<(), ReplicationError>;

/// What a leader asks the driver to do. Drained with `LeaderState::drain_effects`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderEffect {
    /// Send AlterPartition to the controller. `partition_epoch` is the epoch
    /// the change is based on; the controller accepts only if it matches.
    ProposeIsr { new_isr: BTreeSet<ReplicaId>, partition_epoch: PartitionEpoch },
    /// The high watermark moved up: checkpoint it lazily, wake consumers.
    HighWatermarkAdvanced(Offset),
    /// Answer this acks=all produce request.
    CompleteProduce { request_id: u64, result: ProduceOutcome },
}

/// Replication knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this
    /// long is removed from the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Most acks=all requests waiting at once.
    pub delayed_produce_max: usize,
    /// TEACHING KNOB, never enable in production: a new follower truncates
    /// to its local high watermark and fetches without a last fetched epoch,
    /// as before KIP-101. Loses acknowledged records and lets logs diverge.
    pub truncate_to_high_watermark: bool,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self { replica_lag_time_max_ms: 30_000, delayed_produce_max: 1024, truncate_to_high_watermark: false }
    }
}
