//! Sans-IO Raft core for the cluster controller.
//!
//! # Why sans-IO
//!
//! The same broker code runs under madsim and on tokio, and Raft bugs hide in
//! rare interleavings. So the protocol lives in [`RaftNode`], a deterministic
//! state machine with no I/O, no clock and no global randomness: it is driven
//! by logical ticks, incoming messages and local requests, and draws election
//! timeouts from a `ChaCha8Rng` the caller seeds. Property tests can then
//! explore message loss, reordering, duplication, partitions and crashes by
//! calling it directly (see `broker/tests/raft_cluster.rs`), and the async
//! driver is a thin loop around it.
//!
//! # Inputs
//!
//! - [`RaftNode::tick`]: one unit of logical time (the driver calls it from a
//!   `tokio::time::interval`, e.g. every 100 ms). Elections time out after a
//!   random `[election_tick, 2 * election_tick)` ticks; a leader heartbeats
//!   every `heartbeat_tick` ticks.
//! - [`RaftNode::step`]: a [`Message`] from a peer. Stale, duplicated,
//!   misaddressed or malformed messages are ignored, never a panic.
//! - [`RaftNode::propose`]: append a command (leader only).
//! - [`RaftNode::read_index`]: start a linearizable read (leader only).
//! - [`RaftNode::compact`]: the driver took a state-machine snapshot at an
//!   applied index; the log prefix is replaced by it.
//! - [`RaftNode::campaign`]: start an election now (tests, manual failover).
//!
//! # Output and the driver contract
//!
//! Inputs only change memory. When [`RaftNode::has_ready`] is true, the
//! driver calls [`RaftNode::ready`] and gets one [`Ready`] bundle, which it
//! must handle **in this order**:
//!
//! 1. `snapshot`: if present, write it durably. If `restore_snapshot`, delete
//!    every stored log entry; otherwise delete stored entries up to the
//!    snapshot's `last_index` (this is the driver's own compaction).
//! 2. `hard_state`: if present, write it durably (term and vote).
//! 3. `entries`: delete every stored entry with index `>= entries[0].index`,
//!    then append `entries`.
//! 4. **Sync** all of the above (with [`storage::RaftStorage::persist_ready`]
//!    this is one call). Only now may anything leave the node: a vote,
//!    an append acknowledgement or a leader's own entries counted toward a
//!    quorum all promise that this state survives a crash.
//! 5. `messages`: send them (best effort; Raft tolerates loss, delay,
//!    duplication and reordering).
//! 6. If `restore_snapshot`, reset the state machine to `snapshot.data`.
//!    Then apply `committed_entries` in order, skipping `EntryKind::Noop`.
//! 7. `read_states`: each read may be served once the state machine has
//!    applied `index`. `dropped_reads` lost their leader: fail or retry them.
//! 8. Call [`RaftNode::advance`]. No input method may be called between
//!    `ready` and `advance` (the node asserts this), and there is at most one
//!    `Ready` outstanding.
//!
//! What the node assumes after `advance`: everything in the bundle is durable
//! (so a leader counts its own entries toward a quorum only from then on) and
//! the committed entries are applied (so [`RaftNode::compact`] may use
//! them). On restart the driver loads [`RecoveredState`] from storage,
//! restores its state machine from the recovered snapshot (if any), and
//! builds a new node with [`RaftNode::new`]; committed entries after the
//! snapshot are delivered again through `Ready` once the commit index is
//! re-learned from the leader, so applying must start from the snapshot.
//!
//! If persisting fails (`StorageError`), the driver must not send the
//! messages nor call `advance`: it drops the node (fail-stop) and rebuilds
//! it from storage, because the node's memory now claims durability the disk
//! may not have. Proposals are matched to outcomes by [`EntryId`]: an entry
//! committed at the proposal's index with a different term means the
//! proposal was lost in a leader change and may be retried.
//!
//! A sketch of the async driver loop (one task per node; the disk seam is
//! synchronous, so steps 1-8 run without awaiting):
//!
//! ```text
//! loop {
//!     select! {
//!         _ = ticker.tick()          => node.tick(),
//!         msg = transport.recv()     => node.step(msg),
//!         req = requests.recv()      => node.propose(req.data) / node.read_index(req.ctx),
//!     }
//!     while let Some(ready) = node.ready() {
//!         storage.persist_ready(&ready)?;              // 1-4, synced
//!         transport.send_all(ready.messages);          // 5, fire and forget
//!         state_machine.apply(&ready);                 // 6-7
//!         node.advance();                              // 8
//!     }
//! }
//! ```
//!
//! Skipping the sync (the `raft.fsync=false` teaching knob of
//! [`storage::StorageOptions`]) breaks step 4: a crash can then forget a
//! vote or an acknowledged entry, and the property tests show the damage.
//!
//! # Protocol features
//!
//! - Leader election with randomized timeouts; PreVote (thesis §9.6), so a
//!   node rejoining from a partition does not bump the term and depose a
//!   healthy leader; check-quorum: a leader that did not hear from a
//!   majority within an election timeout steps down, and a follower that
//!   heard from its leader within the timeout ignores vote requests.
//! - Log replication with fast backtracking: a rejection names the
//!   conflicting term and its first index, so the leader skips a whole term
//!   per round trip.
//! - Commitment only by counting replicas of an entry of the leader's current
//!   term (§5.4.2). `RaftConfig::commit_old_term_entries_by_count` turns that
//!   off to reproduce the Figure 8 bug, for teaching. The no-op below hides
//!   the bug when a leader ships its backlog in one message: the no-op of
//!   its term commits with the old entries. With `max_entries_per_append`
//!   of 1 an old entry travels alone and can be counted alone, which the
//!   simulation's `controller-leader-kill` scenario uses.
//! - A new leader appends a no-op entry so it can commit in its term.
//! - Snapshots and log compaction driven by the application; a lagging
//!   follower gets the leader's snapshot (`InstallSnapshot`, sent whole).
//! - Linearizable reads with ReadIndex: the leader records its commit index,
//!   confirms it is still leader with a heartbeat round acknowledged by a
//!   quorum, and only answers once it has committed an entry of its term.
//!   Followers answer `NotLeader`; the driver forwards to the leader.
//!
//! # Invariants and tests
//!
//! After every input the node asserts that its term and commit index did not
//! decrease, that it holds no entry from a future term, and role invariants
//! (a leader voted for itself and its last entry is from its term). The log
//! asserts contiguity, non-decreasing terms, and that a committed entry is
//! never truncated; a leader never truncates its own log. Messages from the
//! network are validated first and ignored if stale or malformed, so none of
//! these fire on bad input (a proptest throws arbitrary messages at nodes).
//!
//! `cargo test -p dlog-broker raft` runs the unit tests here, the storage
//! tests and `broker/tests/raft_cluster.rs`: a randomized cluster (3 or 5
//! nodes, message drop/duplication/reordering, partitions, crashes that lose
//! unacknowledged state, compaction, reads) checking election safety, log
//! matching, leader completeness, state machine safety and ReadIndex
//! linearizability after every step, then liveness once faults stop; plus
//! the scripted Figure 8, prevote and fsync demonstrations. For a longer
//! search: `PROPTEST_CASES=4000 cargo test -p dlog-broker --test raft_cluster
//! raft_random` (about 4-5 minutes in debug).
//!
//! Membership is static ([`RaftConfig::voters`]). Membership changes (joint
//! consensus or single-server changes), learners, leadership transfer and
//! snapshot chunking come later.

mod config;
mod log;
mod node;
mod progress;
pub mod storage;
mod types;

pub use config::{RaftConfig, RaftError};
pub use log::RaftLog;
pub use node::{RaftNode, Role};
pub use progress::{Progress, ReplicationState};
pub use types::{
    Entry, EntryId, EntryKind, HardState, LogIndex, Message, MessageBody, NodeId, ReadState, Ready,
    RecoveredState, RejectHint, Snapshot, SnapshotMeta, Term,
};

#[cfg(test)]
mod tests;
