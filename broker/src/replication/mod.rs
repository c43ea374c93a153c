//! Sans-IO core of partition replication: Kafka's ISR protocol as in KRaft,
//! with epoch-based truncation (KIP-101, KIP-279, KIP-320).
//!
//! # Why sans-IO
//!
//! As with [`crate::raft`], the protocol decisions live in plain state
//! machines with no I/O, no clock and no randomness, so property tests can
//! drive replicas through lost, reordered and duplicated fetches, crashes
//! and leader changes (see `broker/tests/replication_core.rs`). The core
//! never holds records: it tracks offsets and the leader-epoch cache
//! ([`LocalLog`]) and tells the driver what to read, append or truncate.
//!
//! # Roles and inputs
//!
//! One partition replica is either a [`LeaderState`], a [`FollowerState`]
//! or neither (offline). A role change consumes the old state and builds the
//! new one from its [`LocalLog`] ([`LeaderState::resign`],
//! [`FollowerState::into_local_log`]). Time comes in as `now_ms`.
//!
//! Leader inputs: [`LeaderState::on_local_append`] (after appending a batch
//! of its epoch), [`LeaderState::try_append_acks_all`] (after that, for
//! acks=all), [`LeaderState::on_follower_fetch`], [`LeaderState::tick`],
//! [`LeaderState::on_isr_committed`] / [`LeaderState::on_metadata`] /
//! [`LeaderState::on_alter_partition_failed`] (the controller's answers).
//! Its outputs are [`LeaderEffect`]s taken with
//! [`LeaderState::drain_effects`]: `ProposeIsr` (send AlterPartition),
//! `HighWatermarkAdvanced`, `CompleteProduce`.
//!
//! Follower inputs: [`FollowerState::fetch_request`] (what to send) and
//! [`FollowerState::on_fetch_response`], answering a [`FollowerDecision`]:
//! append the batches, truncate, or ignore a stale response.
//!
//! # Rules, and where they come from
//!
//! - **ISR shrink** (Kafka `getOutOfSyncReplicas`): a follower not at the
//!   leader's log end whose `last_caught_up_time_ms` is older than
//!   `replica_lag_time_max_ms`. Caught-up time follows
//!   `Replica.updateFetchState`: a fetch at or past the leader's current
//!   log end is caught up now; one at or past the leader's log end as of the
//!   previous fetch was caught up at the previous fetch's time.
//! - **ISR expand** (`canAddReplicaToIsr`): the follower's log end is at
//!   least the high watermark and at least the leader-epoch start offset
//!   (it fetched in this epoch, so it truncated any divergent suffix).
//! - One AlterPartition in flight at a time, based on the current
//!   partition epoch; the controller accepts only if that epoch matches.
//! - **High watermark** = least log end over the *maximal* ISR, leader
//!   included (KIP-497's `maximalIsr`): during a pending expansion the
//!   replica being added counts (its log end is already at least the high
//!   watermark, so it cannot hold it back much, and once the controller
//!   accepts it may become leader, so it must have everything committed);
//!   during a pending shrink the committed, larger ISR counts, since the
//!   removal is not in effect yet. A member that has not fetched in this
//!   leader epoch holds the high watermark still (Kafka resets follower
//!   state on becoming leader). It never decreases.
//! - **acks=all** completes once the high watermark reaches the batch end;
//!   with NOT_ENOUGH_REPLICAS_AFTER_APPEND if the maximal ISR is then
//!   smaller than min.insync.replicas (`checkEnoughReplicasReachOffset`);
//!   with a timeout at its deadline; with NOT_LEADER_OR_FOLLOWER when the
//!   leader resigns. [`LeaderState::check_enough_replicas`] is the check
//!   *before* appending, against the committed ISR (NOT_ENOUGH_REPLICAS).
//! - **Truncation** (KIP-101/279/320): a new follower keeps its log. Its
//!   fetch names the epoch of its last record; if that epoch ends earlier in
//!   the leader's log than the fetch offset (or the leader lacks it), the
//!   leader answers a diverging epoch `(epoch, end_offset)` computed with
//!   [`LeaderEpochCache::end_offset_for`] and the follower truncates as
//!   Kafka's `getOffsetTruncationState` does (see `follower.rs` for why
//!   `min(end_offset, log end)` alone would be wrong). A diverging fetch
//!   acknowledges nothing.
//! - [`ReplicationConfig::truncate_to_high_watermark`] is a TEACHING KNOB
//!   reproducing pre-KIP-101 behaviour: truncate to the local high watermark
//!   on becoming follower and fetch without epochs. The tests show it losing
//!   acknowledged records and leaving logs diverged.
//! - Requests carry a leader epoch, checked by [`check_leader_epoch`].
//!
//! # The driver contract
//!
//! 1. Apply a [`FollowerDecision`] (append or truncate the log, including
//!    the epoch checkpoint) before sending the next fetch: the fetch offset
//!    claims the log holds exactly the offsets below it.
//! 2. Persist the epoch cache whenever it changes; it need not be synced
//!    before the records, because [`LocalLog::recover`] reconciles the
//!    checkpoints with the recovered log end, as Kafka's recovery does.
//!    The high-watermark checkpoint is written lazily on
//!    `HighWatermarkAdvanced`; recovery clamps it to the log end.
//! 3. As in Kafka, a follower's fetch offset acknowledges records that may
//!    not be fsynced. Safety then rests on the controller removing a
//!    crashed (fenced) broker from every ISR before it can rejoin, on
//!    electing leaders only from the ISR, and on not every ISR member losing
//!    unsynced records at once. The last ISR member of a partition crashing
//!    uncleanly can lose committed records (KIP-966 addresses that; not
//!    modelled here).
//! 4. Hand every `ProposeIsr` to the controller; report its outcome with
//!    `on_isr_committed` / `on_metadata`, or `on_alter_partition_failed` if
//!    it was refused without a newer state (otherwise the leader waits).
//! 5. On metadata naming another leader or a newer leader epoch
//!    ([`MetadataVerdict::Resign`]) resign, answer the returned effects and
//!    build a [`FollowerState`].
//!
//! # Not covered
//!
//! Broker epochs in fetches and AlterPartition (KIP-903: a restarted
//! follower's stale in-flight fetch could make the leader add it to the ISR;
//! the tests drop a crashed replica's connections instead), fetching past
//! the log start after deletion (the leader answers `OffsetOutOfRange`; the
//! follower side of it is not here), unclean leader election, ELR (KIP-966).
//!
//! # Tests
//!
//! Unit tests in `tests.rs`; the property tests in
//! `broker/tests/replication_core.rs` (`cargo test -p dlog-broker --test
//! replication_core`). For a longer search:
//! `PROPTEST_CASES=5000 cargo test -p dlog-broker --test replication_core`.

mod epoch_cache;
mod fencing;
mod follower;
mod leader;
mod log;
mod types;

pub use epoch_cache::{EpochEntry, LeaderEpochCache};
pub use fencing::check_leader_epoch;
pub use follower::{FollowerDecision, FollowerState};
pub use leader::{FollowerProgress, LeaderState, MetadataVerdict, PendingIsrChange};
pub use log::LocalLog;
pub use types::{
    BatchInfo, EpochEndOffset, FetchAnswer, FetchResponse, FollowerFetch, LeaderEffect, LeaderEpoch, Offset,
    PartitionEpoch, PartitionMetadata, ProduceOutcome, ReplicaId, ReplicationConfig, ReplicationError,
    UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};

#[cfg(test)]
mod tests;
