//! The values that cross the core's boundary: log entries, hard state,
//! snapshots, messages and the [`Ready`] bundle.
//!
//! Everything here is plain data (`Clone`, `PartialEq`, serde) so a driver can
//! put it on the wire or on disk however it likes; the on-disk format used by
//! [`super::storage`] is documented there.

use serde::{Deserialize, Serialize};

/// Identifies a Raft node. Any value is allowed, including 0.
pub type NodeId = u64;
/// A Raft term (election epoch). Starts at 0, never decreases.
pub type Term = u64;
/// A position in the replicated log. The first entry has index 1; index 0 is
/// the empty prefix (term 0).
pub type LogIndex = u64;

/// What an entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// An application command proposed through `RaftNode::propose`.
    Normal,
    /// The empty entry a new leader appends so it can commit something from
    /// its own term (§5.4.2, and the precondition of ReadIndex). The state
    /// machine skips it.
    Noop,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// Normal command or leader no-op.
    pub kind: EntryKind,
    /// The command bytes (empty for a no-op).
    pub data: Vec<u8>,
}

/// Where an entry was placed by `propose`: a driver waiting for the entry to
/// commit compares this against the committed entries it applies (same index
/// but different term means the proposal was lost in a leader change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryId {
    /// Term of the proposing leader.
    pub term: Term,
    /// Index the entry was appended at.
    pub index: LogIndex,
}

/// The state a node must persist (and sync) before sending any message of
/// the same [`Ready`]: the current term and who it voted for in that term.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Current term.
    pub term: Term,
    /// Candidate voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
}

/// Describes the log prefix a snapshot replaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry folded into the snapshot.
    pub last_index: LogIndex,
    /// Term of that entry.
    pub last_term: Term,
}

/// A state-machine snapshot: the application's serialized state after
/// applying every entry up to `meta.last_index`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Which prefix of the log it replaces.
    pub meta: SnapshotMeta,
    /// Opaque application state.
    pub data: Vec<u8>,
}

/// A message between two Raft nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// Sender's term (for a pre-vote request: the term the sender *would*
    /// campaign in; for a granted pre-vote response: that same term).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// Why an append was refused, with enough information for the leader to skip
/// a whole term of conflicting entries in one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectHint {
    /// The `prev_log_index` of the append being refused (lets the leader
    /// discard stale rejections).
    pub rejected_prev_index: LogIndex,
    /// The term the follower has at `rejected_prev_index`, if it has an entry
    /// there at all.
    pub conflict_term: Option<Term>,
    /// With `conflict_term`: the follower's first index of that term.
    /// Without: the follower's last index + 1.
    pub conflict_index: LogIndex,
}

/// The message kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// "Would you vote for me in term `term`?" Does not change anyone's term.
    PreVoteRequest {
        /// Candidate's last log index.
        last_log_index: LogIndex,
        /// Candidate's last log term.
        last_log_term: Term,
    },
    /// Answer to a [`MessageBody::PreVoteRequest`].
    PreVoteResponse {
        /// Whether the pre-vote was granted.
        granted: bool,
    },
    /// RequestVote.
    VoteRequest {
        /// Candidate's last log index.
        last_log_index: LogIndex,
        /// Candidate's last log term.
        last_log_term: Term,
    },
    /// Answer to a [`MessageBody::VoteRequest`].
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries (an empty one just carries the commit index).
    AppendEntries {
        /// Index of the entry preceding `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// Entries to append, contiguous from `prev_log_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: LogIndex,
    },
    /// Answer to [`MessageBody::AppendEntries`] or [`MessageBody::InstallSnapshot`].
    AppendEntriesResponse {
        /// `Ok(match_index)`: the follower's log now matches the leader's up
        /// to `match_index`. `Err(hint)`: the consistency check failed.
        result: Result<LogIndex, RejectHint>,
    },
    /// Leader liveness, commit propagation and ReadIndex confirmation.
    Heartbeat {
        /// `min(leader commit, follower's match index)`: never more than the
        /// follower is known to share with the leader.
        commit: LogIndex,
        /// Heartbeat round number, echoed back so reads can be confirmed.
        round: u64,
    },
    /// Answer to a [`MessageBody::Heartbeat`]. Also sent, carrying the
    /// receiver's higher term, in reply to any leader message from a stale
    /// term, so a deposed leader learns it quickly.
    HeartbeatResponse {
        /// The round being acknowledged.
        round: u64,
    },
    /// The leader's latest snapshot, for a follower whose next entry was
    /// already compacted away. Sent whole (no chunking yet).
    InstallSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
}

/// A linearizable read that may now be served: once the local state machine
/// has applied `index`, reading it reflects every write committed before
/// `read_index` was called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    /// The caller's context passed to `read_index`.
    pub ctx: Vec<u8>,
    /// The commit index to wait for before serving the read.
    pub index: LogIndex,
}

/// Everything the core needs from the driver, in one bundle. See the module
/// docs of [`crate::raft`] for the order in which it must be handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    /// Persist first (if present). If `restore_snapshot`, discard every
    /// stored log entry; otherwise discard stored entries with index
    /// `<= snapshot.meta.last_index`.
    pub snapshot: Option<Snapshot>,
    /// True when `snapshot` came from the leader: the state machine must be
    /// reset to `snapshot.data` (before applying `committed_entries`). False
    /// when it is the driver's own compaction (state machine already there).
    pub restore_snapshot: bool,
    /// Persist if present (term or vote changed).
    pub hard_state: Option<HardState>,
    /// Append to the stored log, first deleting any stored entry whose index
    /// is `>= entries[0].index` (a follower's conflicting suffix).
    pub entries: Vec<Entry>,
    /// Send only after the above is durable.
    pub messages: Vec<Message>,
    /// Apply to the state machine, in order.
    pub committed_entries: Vec<Entry>,
    /// Reads confirmed by a quorum.
    pub read_states: Vec<ReadState>,
    /// Contexts of reads abandoned because this node stopped being leader;
    /// the driver should fail or retry them.
    pub dropped_reads: Vec<Vec<u8>>,
}

impl Ready {
    /// Whether nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
            && self.dropped_reads.is_empty()
    }
}

/// What a node recovered from durable storage; input to `RaftNode::new`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredState {
    /// Last persisted term and vote.
    pub hard_state: HardState,
    /// Last persisted snapshot, if any. The driver restores its state
    /// machine from it before feeding committed entries.
    pub snapshot: Option<Snapshot>,
    /// Persisted entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}
