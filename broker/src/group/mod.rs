//! Sans-IO core of consumer groups: Kafka's classic group protocol
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), the KIP-848 consumer
//! protocol (ConsumerGroupHeartbeat, ConsumerGroupDescribe: see
//! [`consumer_protocol`]) and committed offsets.
//!
//! A group id belongs to one protocol at a time: a classic JoinGroup to a
//! KIP-848 group with members gets INCONSISTENT_GROUP_PROTOCOL, a
//! ConsumerGroupHeartbeat to a classic group in use GROUP_ID_NOT_FOUND.
//! Commits of KIP-848 members (OffsetCommit v9) are checked against the
//! member epoch (STALE_MEMBER_EPOCH, FENCED_MEMBER_EPOCH,
//! UNKNOWN_MEMBER_ID) and stored like any other commit.
//!
//! # Why sans-IO
//!
//! As with [`crate::raft`] and [`crate::replication`], the decisions live in
//! a plain state machine, [`GroupCoordinator`]: requests and ticks (`now_ms`)
//! go in; answers, records to append to `__consumer_offsets` and delayed
//! answers come out. It holds no sockets, no clock and no log, so property
//! tests drive it through random joins, leaves, heartbeats, timeouts and
//! commits (`tests.rs`). The server's driver (`server::groups`) owns the
//! `__consumer_offsets` partitions, appends what the core asks for and
//! completes waiting requests.
//!
//! # The state machine (one per group)
//!
//! ```text
//!            first join                 every member joined,       leader's SyncGroup
//!   Empty ─────────────► PreparingRebalance ───────────────► CompletingRebalance ─────► Stable
//!     ▲                      ▲     │        or rebalance timeout       │                  │
//!     │ last member gone     │     │                                   │ join/leave/      │ join with new
//!     └──────────────────────┼─────┘ (no member left)                  │ session expiry   │ metadata, leave,
//!                            └─────────────────────────────────────────┴──────────────────┘ session expiry
//! ```
//!
//! - A **generation** begins when a join phase completes: the generation id
//!   grows by one, a protocol supported by every member is chosen (by
//!   vote, as Kafka does), the leader is kept if it is still a member, and
//!   every waiting JoinGroup is answered (the leader with every member's
//!   subscription). SyncGroup from the leader installs the assignment and the
//!   group becomes Stable; every waiting SyncGroup gets its member's part.
//! - **Member ids are required** on first join from v4 (KIP-394): a join
//!   without one gets MEMBER_ID_REQUIRED and a fresh id, which stays pending
//!   for one session timeout; a join phase waits for pending members too.
//! - **Static members** (`group.instance.id`, KIP-345): a join without a
//!   member id but with a known instance id replaces the old member id; the
//!   old id is fenced (FENCED_INSTANCE_ID).
//! - **Timeouts**: a member that neither heartbeats nor commits within its
//!   session timeout is removed, and the group rebalances. A join phase
//!   ends at the largest rebalance timeout of the members; members that did
//!   not rejoin are removed. A new (empty) group waits
//!   `group.initial.rebalance.delay.ms` for more members before its first
//!   generation.
//! - **Commits** are accepted from the current generation's members (in
//!   Stable and PreparingRebalance, as Kafka does) and, with generation -1
//!   and no member id, only while the group has no members (an admin or a
//!   standalone consumer). Anything else is refused with ILLEGAL_GENERATION,
//!   UNKNOWN_MEMBER_ID or REBALANCE_IN_PROGRESS, so a zombie member cannot
//!   move a committed offset back. The teaching knob
//!   `group.fence.generations=false` turns this check off.
//! - A commit is two steps: [`GroupCoordinator::prepare_commit`] validates
//!   and returns the records to append; once they are durable the driver
//!   calls [`GroupCoordinator::commit_appended`], and only then does
//!   OffsetFetch see the new offsets.
//! - **Transactional commits** (TxnOffsetCommit) are written as a
//!   transactional batch of the producer and stay pending until its
//!   transaction marker lands on the group's partition: a commit marker
//!   makes them committed offsets, an abort drops them (see
//!   `coordinator/txn_offsets.rs`).
//!
//! # Invariants (asserted)
//!
//! - Generation ids of a group only grow.
//! - In Stable, every member has synced to the current generation, and the
//!   leader is a member.
//! - No member waits for a join response outside PreparingRebalance, nor
//!   for a sync response outside CompletingRebalance.

pub mod consumer_protocol;
mod coordinator;
pub mod records;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod consumer_protocol_tests;
#[cfg(test)]
mod txn_offsets_tests;

pub use coordinator::{partition_for_group, GroupCoordinator};
pub use types::*;
