//! Static configuration of one Raft node, and the errors the core returns.

use super::types::{LogIndex, NodeId};

/// Configuration of one node. Membership is static (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node's id; must be one of `voters`.
    pub id: NodeId,
    /// Every voting member, including `id`. Order does not matter.
    pub voters: Vec<NodeId>,
    /// Election timeout in ticks: a follower that hears nothing from a leader
    /// for a random number of ticks in `[election_tick, 2 * election_tick)`
    /// campaigns; a leader checks its quorum every `election_tick` ticks.
    pub election_tick: u32,
    /// A leader sends heartbeats every `heartbeat_tick` ticks. Must be less
    /// than `election_tick`.
    pub heartbeat_tick: u32,
    /// Run a pre-vote round before incrementing the term (Raft thesis
    /// §9.6), so a node rejoining from a partition cannot force a healthy
    /// leader to step down.
    pub prevote: bool,
    /// A leader that has not heard from a majority within an election timeout
    /// steps down; a follower that heard from a leader within the election
    /// timeout ignores vote requests (leader lease).
    pub check_quorum: bool,
    /// TEACHING KNOB, never enable in production: commit an entry as soon as
    /// a majority stores it, even if it is from an older term. This is the
    /// bug of Figure 8 of the Raft paper: such an entry can still be
    /// overwritten by a later leader, after some node applied it.
    pub commit_old_term_entries_by_count: bool,
    /// Most entries put in one AppendEntries message.
    pub max_entries_per_append: usize,
}

impl RaftConfig {
    /// A configuration with the defaults: `election_tick` 10,
    /// `heartbeat_tick` 2, prevote and check-quorum on, the Figure 8 knob off,
    /// at most 64 entries per append.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Self {
        Self {
            id,
            voters,
            election_tick: 10,
            heartbeat_tick: 2,
            prevote: true,
            check_quorum: true,
            commit_old_term_entries_by_count: false,
            max_entries_per_append: 64,
        }
    }

    /// Checks the configuration for mistakes.
    pub fn validate(&self) -> Result<(), RaftError> {
        let invalid = |why: &str| Err(RaftError::InvalidConfig(why.to_string()));
        let mut sorted = self.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.voters.len() {
            return invalid("duplicate voter id");
        }
        if !self.voters.contains(&self.id) {
            return invalid("id is not among voters");
        }
        if self.heartbeat_tick == 0 {
            return invalid("heartbeat_tick must be at least 1");
        }
        if self.election_tick <= self.heartbeat_tick {
            return invalid("election_tick must exceed heartbeat_tick");
        }
        if self.max_entries_per_append == 0 {
            return invalid("max_entries_per_append must be at least 1");
        }
        Ok(())
    }

    /// Votes (or matching replicas) needed to win an election or commit.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// Errors returned by the core. None of them means the node is broken: the
/// call was refused and the node is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// The configuration is unusable.
    #[error("invalid raft config: {0}")]
    InvalidConfig(String),
    /// Proposals and reads are only served by the leader.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node last heard from in its current term.
        leader_hint: Option<NodeId>,
    },
    /// The recovered log does not fit together.
    #[error("invalid recovered state: {0}")]
    InvalidRecoveredState(String),
    /// `compact` was asked for an index the state machine has not applied.
    #[error("cannot compact to {requested}: only applied up to {applied}")]
    CompactBeyondApplied {
        /// Index asked for.
        requested: LogIndex,
        /// Highest applied index.
        applied: LogIndex,
    },
}
