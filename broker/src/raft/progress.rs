//! What a leader knows about each follower's log.

use super::types::LogIndex;

/// How the leader is currently feeding a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationState {
    /// The follower's match point is unknown: send one append (or a
    /// snapshot) at a time and wait for the answer or the next heartbeat
    /// response before sending another.
    Probe,
    /// The follower accepted an append: stream new entries optimistically.
    Replicate,
}

/// The leader's view of one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub match_index: LogIndex,
    /// Next index to send.
    pub next_index: LogIndex,
    /// Probe or replicate.
    pub state: ReplicationState,
    /// In `Probe`: an append or snapshot is outstanding.
    pub probe_sent: bool,
    /// Heard from since the last check-quorum.
    pub recent_active: bool,
    /// Highest heartbeat round this follower acknowledged in the leader's
    /// term (confirms ReadIndex requests).
    pub acked_round: u64,
}

impl Progress {
    /// The starting point for a new leader whose last index is `last_index`.
    pub fn new(last_index: LogIndex) -> Self {
        Self {
            match_index: 0,
            next_index: last_index + 1,
            state: ReplicationState::Probe,
            probe_sent: false,
            recent_active: false,
            acked_round: 0,
        }
    }

    /// The follower acknowledged a match up to `index`; returns whether that
    /// is news.
    pub fn on_match(&mut self, index: LogIndex) -> bool {
        self.probe_sent = false;
        if index > self.match_index {
            self.match_index = index;
            self.next_index = self.next_index.max(index + 1);
            self.state = ReplicationState::Replicate;
            true
        } else {
            false
        }
    }
}
