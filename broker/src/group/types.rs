//! Inputs and outputs of the group coordinator core.

use bytes::Bytes;

/// A request the driver is holding open until the core answers it
/// (JoinGroup and SyncGroup wait for the rest of the group).
pub type Waiter = u64;

/// Settings of the group coordinator (Kafka's names in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// How long a new group waits for more members before its first
    /// generation (`group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`).
    pub min_session_timeout_ms: i32,
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub max_session_timeout_ms: i32,
    /// How long the offsets of an empty group are kept (`offsets.retention.minutes`, in ms).
    pub offsets_retention_ms: u64,
    /// How often expired offsets are looked for (`offsets.retention.check.interval.ms`).
    pub offsets_retention_check_interval_ms: u64,
    /// Refuse commits from members not in the current generation
    /// (`group.fence.generations`). A teaching knob: false lets a zombie
    /// member move a committed offset back.
    pub fence_generations: bool,
    /// KIP-848 groups: a member that does not heartbeat for this long is
    /// removed (`group.consumer.session.timeout.ms`).
    pub consumer_session_timeout_ms: i32,
    /// KIP-848 groups: the heartbeat interval handed to members
    /// (`group.consumer.heartbeat.interval.ms`).
    pub consumer_heartbeat_interval_ms: i32,
    /// KIP-848 groups: most members a group may have (`group.consumer.max.size`).
    pub consumer_max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            fence_generations: true,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: i32::MAX as usize,
        }
    }
}

/// Why the coordinator refused a request; each maps to Kafka's error code
/// in [`crate::error_codes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The member id is not a member of the group (UNKNOWN_MEMBER_ID).
    #[error("unknown member id")]
    UnknownMemberId,
    /// The generation is not the group's current one (ILLEGAL_GENERATION).
    #[error("illegal generation")]
    IllegalGeneration,
    /// The group is rebalancing; rejoin (REBALANCE_IN_PROGRESS).
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// First join without a member id: rejoin with the id given (MEMBER_ID_REQUIRED).
    #[error("member id required")]
    MemberIdRequired,
    /// No protocol common to every member, or a different protocol type
    /// (INCONSISTENT_GROUP_PROTOCOL).
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// The session timeout is outside the broker's bounds (INVALID_SESSION_TIMEOUT).
    #[error("invalid session timeout")]
    InvalidSessionTimeout,
    /// An empty group id (INVALID_GROUP_ID).
    #[error("invalid group id")]
    InvalidGroupId,
    /// The group does not exist (GROUP_ID_NOT_FOUND).
    #[error("group id not found")]
    GroupIdNotFound,
    /// The group still has members (NON_EMPTY_GROUP).
    #[error("group is not empty")]
    NonEmptyGroup,
    /// Another member took over this static instance id (FENCED_INSTANCE_ID).
    #[error("fenced instance id")]
    FencedInstanceId,
    /// This broker is not the group's coordinator (NOT_COORDINATOR).
    #[error("not coordinator")]
    NotCoordinator,
    /// The group's partition is still being loaded (COORDINATOR_LOAD_IN_PROGRESS).
    #[error("coordinator load in progress")]
    CoordinatorLoadInProgress,
    /// The coordinator cannot serve now, e.g. its log refused a write
    /// (COORDINATOR_NOT_AVAILABLE).
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// An offset metadata string over the limit (OFFSET_METADATA_TOO_LARGE).
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    /// KIP-848: the member epoch is behind the member's current one; retry
    /// after the next heartbeat (STALE_MEMBER_EPOCH).
    #[error("stale member epoch")]
    StaleMemberEpoch,
    /// KIP-848: the member epoch is not one the coordinator gave this
    /// member; it must drop its partitions and rejoin with epoch 0
    /// (FENCED_MEMBER_EPOCH).
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// KIP-848: the static instance id is held by another live member
    /// (UNRELEASED_INSTANCE_ID).
    #[error("unreleased instance id")]
    UnreleasedInstanceId,
    /// KIP-848: a server assignor this coordinator does not have (UNSUPPORTED_ASSIGNOR).
    #[error("unsupported assignor")]
    UnsupportedAssignor,
    /// The group has `group.consumer.max.size` members already (GROUP_MAX_SIZE_REACHED).
    #[error("group max size reached")]
    GroupMaxSizeReached,
    /// KIP-848: a subscription regex that does not compile (INVALID_REGULAR_EXPRESSION).
    #[error("invalid regular expression")]
    InvalidRegularExpression,
    /// A field is missing or out of range for this request (INVALID_REQUEST).
    #[error("invalid request")]
    InvalidRequest,
    /// An API version this group's protocol does not accept, e.g. an
    /// OffsetCommit below v9 from a KIP-848 member (UNSUPPORTED_VERSION).
    #[error("unsupported version")]
    UnsupportedVersion,
    /// TxnOffsetCommit from a producer epoch older than one this
    /// coordinator already saw for the producer id (INVALID_PRODUCER_EPOCH).
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
}

/// One protocol a member supports, with its subscription metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    /// The assignor's name, e.g. `range`.
    pub name: String,
    /// Opaque to the coordinator: the member's subscription.
    pub metadata: Bytes,
}

/// JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The group.
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client's id (the prefix of a new member id).
    pub client_id: String,
    /// The client's address, for DescribeGroups.
    pub client_host: String,
    /// The member's session timeout.
    pub session_timeout_ms: i32,
    /// How long the member may take to rejoin during a rebalance.
    pub rebalance_timeout_ms: i32,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// The protocols the member supports, most preferred first.
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: an unknown member must first get an id (KIP-394).
    pub require_known_member_id: bool,
}

/// One member as the leader's JoinGroup response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member's id.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// Its subscription for the chosen protocol.
    pub metadata: Bytes,
}

/// JoinGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// `None` on success.
    pub error: Option<GroupError>,
    /// The new generation (-1 on error).
    pub generation_id: i32,
    /// The protocol type (JoinGroup v7+).
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// This member's id (also set with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with its subscription, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub(crate) fn error(error: GroupError, member_id: &str) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// The group.
    pub group_id: String,
    /// The member's generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+: must match the group's.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+: must match the group's.
    pub protocol_name: Option<String>,
    /// From the leader: every member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// SyncGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// `None` on success.
    pub error: Option<GroupError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The group's protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncResponse {
    pub(crate) fn error(error: GroupError) -> Self {
        Self { error: Some(error), protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// A member leaving (LeaveGroup; batched from v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    /// The member id (may be empty for a static member named by instance id).
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
}

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// An offset a group committed for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record (-1 unknown).
    pub leader_epoch: i32,
    /// Client metadata.
    pub metadata: String,
    /// When it was committed (broker time).
    pub commit_timestamp_ms: i64,
}

/// OffsetCommit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    /// The group.
    pub group_id: String,
    /// -1 for a commit outside any generation (only while the group has no members).
    pub generation_id: i32,
    /// Empty for a commit outside any generation.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// OffsetCommit v9+: for a KIP-848 group, `generation_id` is the
    /// member epoch; older versions are refused for such groups.
    pub member_epoch: bool,
    /// What to commit.
    pub offsets: Vec<(TopicPartition, CommittedOffset)>,
}

/// A validated commit: the records to append to `__consumer_offsets`, and
/// what to apply once they are durable ([`super::GroupCoordinator::commit_appended`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPlan {
    /// The group.
    pub group_id: String,
    /// Per partition: accepted, or why not (the whole request shares one
    /// answer in the classic protocol, except per-partition metadata size).
    pub results: Vec<(TopicPartition, Result<(), GroupError>)>,
    /// The accepted offsets.
    pub accepted: Vec<(TopicPartition, CommittedOffset)>,
    /// Their records.
    pub records: Vec<super::records::OffsetsRecord>,
    /// Where the records fall among this coordinator's offset appends (a
    /// transaction's marker does not undo a plain commit appended after
    /// the transaction's offsets).
    pub append_seq: u64,
}

/// TxnOffsetCommit: offsets committed inside a producer's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCommitRequest {
    /// The producer's transactional id (for logs; the transaction
    /// coordinator, through AddOffsetsToTxn, is what ties the group to the
    /// transaction).
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The group.
    pub group_id: String,
    /// v3+: the member's generation (-1 when the producer does not speak for a member).
    pub generation_id: i32,
    /// v3+: the member id (empty when none).
    pub member_id: String,
    /// v3+: its static instance id.
    pub group_instance_id: Option<String>,
    /// What to commit.
    pub offsets: Vec<(TopicPartition, CommittedOffset)>,
}

/// A validated transactional commit: the records to append to
/// `__consumer_offsets` as a transactional batch of the producer, and what
/// becomes pending once they are durable
/// ([`super::GroupCoordinator::txn_commit_appended`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCommitPlan {
    /// The group.
    pub group_id: String,
    /// The producer id the batch is written for.
    pub producer_id: i64,
    /// The producer epoch the batch is written for.
    pub producer_epoch: i16,
    /// Per partition: accepted, or why not.
    pub results: Vec<(TopicPartition, Result<(), GroupError>)>,
    /// The accepted offsets.
    pub accepted: Vec<(TopicPartition, CommittedOffset)>,
    /// Their records.
    pub records: Vec<super::records::OffsetsRecord>,
    /// Where the records fall among this coordinator's offset appends.
    pub append_seq: u64,
}

/// A group's state, as DescribeGroups and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Removed.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Its subscription for the group's protocol.
    pub metadata: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// The protocol type.
    pub protocol_type: String,
    /// The chosen protocol.
    pub protocol_name: String,
    /// The current generation.
    pub generation_id: i32,
    /// The members.
    pub members: Vec<MemberDescription>,
}

/// A delayed answer, for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOutput {
    /// A JoinGroup that waited for the join phase to end.
    Join {
        /// The request.
        waiter: Waiter,
        /// Its answer.
        response: JoinResponse,
    },
    /// A SyncGroup that waited for the leader's assignment.
    Sync {
        /// The request.
        waiter: Waiter,
        /// Its answer.
        response: SyncResponse,
    },
    /// Records to append to the group's `__consumer_offsets` partition
    /// (group metadata after a generation, tombstones of expired or
    /// deleted offsets).
    Append {
        /// The group (its partition follows from the id).
        group_id: String,
        /// The records.
        records: Vec<super::records::OffsetsRecord>,
    },
}

/// What a join or sync call did right away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    /// The answer.
    Now(T),
    /// Answered later through a [`GroupOutput`] carrying the waiter.
    Later,
}
