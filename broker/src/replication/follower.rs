//! The follower side of one partition: what to fetch next, and what to do
//! with a fetch response (append, truncate, or ignore it as stale).

use super::fencing::check_leader_epoch;
use super::log::LocalLog;
use super::types::{
    EpochEndOffset, FetchResponse, FollowerFetch, LeaderEpoch, Offset, ReplicaId, ReplicationConfig,
    ReplicationError, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};

/// What the driver must do with a fetch response. The core has already
/// updated its own view; the driver makes the log match before it sends the
/// next fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerDecision {
    /// Append every batch of the response to the log.
    Append { new_log_end_offset: Offset },
    /// Delete every record at or above `offset` (and the epoch checkpoint
    /// entries starting there), then fetch again.
    TruncateTo { offset: Offset },
    /// Nothing to do: an empty response, or one that is stale (another
    /// leader epoch, or not answering the current fetch offset; reordered
    /// or duplicated on the way).
    Ignore,
}

/// See the [module docs](crate::replication).
#[derive(Debug, Clone)]
pub struct FollowerState {
    config: ReplicationConfig,
    replica_id: ReplicaId,
    leader_id: ReplicaId,
    leader_epoch: LeaderEpoch,
    local: LocalLog,
    /// Whether a response of this leader epoch confirmed our log as a
    /// prefix of the leader's (no divergence left).
    truncation_complete: bool,
}

impl FollowerState {
    /// Becomes a follower of `leader_id` in `leader_epoch` (Kafka's
    /// `makeFollower`). Since KIP-101 nothing is truncated here: the first
    /// fetch carries the last fetched epoch and the leader's diverging-epoch
    /// answer decides. With the `truncate_to_high_watermark` teaching knob the
    /// log is cut to the local high watermark instead; the returned offset,
    /// if any, is that truncation, which the driver applies first.
    pub fn new(
        config: ReplicationConfig,
        replica_id: ReplicaId,
        leader_id: ReplicaId,
        leader_epoch: LeaderEpoch,
        mut local: LocalLog,
    ) -> (Self, Option<Offset>) {
        assert_ne!(replica_id, leader_id, "a replica cannot follow itself");
        let mut truncated = None;
        if config.truncate_to_high_watermark && local.high_watermark() < local.log_end_offset() {
            let offset = local.high_watermark();
            local.truncate_to(offset);
            truncated = Some(offset);
        }
        let follower = Self { config, replica_id, leader_id, leader_epoch, local, truncation_complete: false };
        (follower, truncated)
    }

    pub fn replica_id(&self) -> ReplicaId {
        self.replica_id
    }
    pub fn leader_id(&self) -> ReplicaId {
        self.leader_id
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }
    pub fn local_log(&self) -> &LocalLog {
        &self.local
    }
    pub fn high_watermark(&self) -> Offset {
        self.local.high_watermark()
    }
    pub fn log_end_offset(&self) -> Offset {
        self.local.log_end_offset()
    }
    /// Whether the leader confirmed, in this epoch, that our log is a prefix
    /// of its own.
    pub fn truncation_complete(&self) -> bool {
        self.truncation_complete
    }

    /// Checks a request's leader epoch (e.g. a consumer fetching from this
    /// follower, KIP-392) against the epoch we follow.
    pub fn validate_leader_epoch(&self, request_epoch: Option<LeaderEpoch>) -> Result<(), ReplicationError> {
        check_leader_epoch(Some(self.leader_epoch), request_epoch)
    }

    /// The next fetch to send: from our log end, naming the epoch of our last
    /// record so the leader can detect divergence.
    pub fn fetch_request(&self) -> FollowerFetch {
        let last_fetched_epoch =
            if self.config.truncate_to_high_watermark { None } else { self.local.epoch_cache().latest_epoch() };
        FollowerFetch {
            replica_id: self.replica_id,
            fetch_offset: self.local.log_end_offset(),
            last_fetched_epoch,
            current_leader_epoch: Some(self.leader_epoch),
        }
    }

    /// Handles a fetch response from the leader.
    pub fn on_fetch_response(&mut self, response: &FetchResponse) -> FollowerDecision {
        if response.leader_epoch != self.leader_epoch || response.fetch_offset != self.local.log_end_offset() {
            return FollowerDecision::Ignore;
        }
        if let Some(diverging) = response.diverging_epoch {
            let offset = self.truncation_offset(diverging);
            if offset < self.local.log_end_offset() { crate::mark!("replication.follower.truncate_by_epoch"); }
            assert!(offset <= self.local.log_end_offset());
            self.local.truncate_to(offset.max(self.local.log_start_offset()));
            return FollowerDecision::TruncateTo { offset: self.local.log_end_offset() };
        }
        let mut expected = response.fetch_offset;
        for batch in &response.batches {
            // A malformed response is the world's fault: drop it whole, the
            // next fetch asks again from the same offset.
            // (`partitionLeaderEpoch` is not under the batch CRC, so a
            // flipped bit there is only caught by its range.)
            if batch.base_offset != expected
                || batch.last_offset < batch.base_offset
                || batch.leader_epoch > self.leader_epoch
                || batch.leader_epoch < 0
            {
                return FollowerDecision::Ignore;
            }
            expected = batch.last_offset + 1;
        }
        // The leader accepted our fetch offset and last epoch: our log is a
        // prefix of its log.
        self.truncation_complete = true;
        for batch in &response.batches {
            self.local.append(*batch);
        }
        // Follower high watermark = min(leader's, own log end); it only moves
        // up here (truncation above may lower it).
        let high_watermark = response.high_watermark.min(self.local.log_end_offset());
        if high_watermark > self.local.high_watermark() {
            self.local.set_high_watermark(high_watermark);
        }
        if response.batches.is_empty() {
            FollowerDecision::Ignore
        } else {
            FollowerDecision::Append { new_log_end_offset: self.local.log_end_offset() }
        }
    }

    /// Kafka's `AbstractFetcherThread.getOffsetTruncationState`. Truncating
    /// to `min(diverging.end_offset, log end)` alone is not enough: if we
    /// never had the leader's epoch, our records below its end offset may be
    /// from another epoch. So look up the leader's epoch in our own cache
    /// and cut at the end of the largest epoch we share; if that is not the
    /// leader's epoch, the next fetch names an older epoch and the leader
    /// answers again (several round trips, each one epoch back).
    fn truncation_offset(&self, diverging: EpochEndOffset) -> Offset {
        let log_end_offset = self.local.log_end_offset();
        if diverging.end_offset == UNDEFINED_EPOCH_OFFSET {
            // The leader knows nothing of our epochs: keep only what is
            // known committed.
            return self.local.high_watermark();
        }
        if diverging.epoch == UNDEFINED_EPOCH {
            return diverging.end_offset.min(log_end_offset);
        }
        let ours = self.local.epoch_cache().end_offset_for(diverging.epoch, log_end_offset);
        if ours.end_offset == UNDEFINED_EPOCH_OFFSET {
            // We know no epoch at or below the leader's: trust its offset.
            return diverging.end_offset.min(log_end_offset);
        }
        if ours.epoch != diverging.epoch {
            ours.end_offset.min(log_end_offset)
        } else {
            ours.end_offset.min(diverging.end_offset).min(log_end_offset)
        }
    }

    /// Stops following; returns the local log for the next role.
    pub fn into_local_log(self) -> LocalLog {
        self.local
    }
}
