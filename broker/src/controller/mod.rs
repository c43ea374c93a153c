//! The cluster-metadata state machine, replicated by the Raft controller.
//!
//! # Why this shape
//!
//! Kafka's KRaft keeps cluster metadata (brokers, topics, partition leaders
//! and ISRs) as a log of records applied to an in-memory image. We do the
//! same: each committed Raft entry carries one [`MetadataRecord`], and every
//! controller replica applies it to its [`MetadataImage`] with
//! [`MetadataImage::apply`]. Apply is pure and deterministic (ordered maps,
//! no clock, no randomness), so replicas agree byte for byte and the image
//! can be snapshotted into a Raft snapshot ([`MetadataImage::snapshot`] /
//! [`MetadataImage::restore`]).
//!
//! # Time
//!
//! Session expiry needs time, and apply may not read a clock. The controller
//! leader stamps its clock into `RegisterBroker`, `BrokerHeartbeat` and
//! `FenceBroker` records (`now_ms`); apply only compares stamped values. The
//! leader finds expired sessions with [`MetadataImage::expired_sessions`] and
//! proposes the resulting `FenceBroker` records.
//!
//! # Fencing
//!
//! A record is judged against the image at its own log position, so a
//! request built from a stale view fails the same way everywhere:
//!
//! - brokers: `broker_epoch` is the offset of the broker's registration
//!   record; heartbeats and AlterPartition from an older registration are
//!   rejected, and a re-registration with a new incarnation fences the old
//!   one (moving its leaderships away);
//! - partition leaders: AlterPartition must carry the current `leader_epoch`
//!   and `partition_epoch`;
//! - the controller: a `FenceBroker` decided by a controller whose view was
//!   stale (a heartbeat committed in between) is rejected at apply; a
//!   `DeleteTopic` names the topic id so it cannot delete a re-created topic;
//!   and the Raft term of each entry is the `controller_epoch`, tracked by
//!   the image for brokers to fence stale controllers' pushes;
//! - stale broker views: a deleted name is held back ([`PendingDeletion`])
//!   until every broker that held one of its replicas has said, in a
//!   heartbeat's `metadata_offset`, that it acted on metadata at or past
//!   the deletion (or registered after it, or was fenced); a create before
//!   then is `TopicMarkedForDeletion`. Otherwise a broker still serving the
//!   old topic could take records meant for the new one.
//!
//! # Encodings
//!
//! Records and snapshots are JSON (serde) of [`MetadataRecord`] and
//! [`MetadataImage`]. Fields added later carry `#[serde(default)]`, so
//! records and snapshots written before them still decode (the heartbeat's
//! `metadata_offset` reads as 0, the held-back names as none).
//!
//! # Driver contract (for the async controller)
//!
//! - On the Raft leader, turn a request into a record (reading the image for
//!   ids and epochs), `propose(record.encode())`, and answer the request
//!   when the entry commits: with the `ApplyOutcome` or the `MetadataError`
//!   `apply` returned for it.
//! - On every replica, for each committed `Normal` entry, in order:
//!   `apply(entry.index, entry.term, &MetadataRecord::decode(&entry.data)?)`.
//!   A decode error is a bug in the proposer; skip the entry on all replicas.
//! - Snapshot with `image.snapshot()` at `image.last_applied_offset()` and
//!   hand it to `RaftNode::compact`; on `restore_snapshot`, replace the image
//!   with `MetadataImage::restore(&snapshot.data)`.
//! - Every `broker.heartbeat.interval.ms` or so, the leader proposes
//!   `expired_sessions(now_ms)`.
//!
//! Not yet modelled: KRaft's ELR, partition reassignment, preferred leader
//! election, topic configs beyond the cluster-wide unclean flag.

mod image;
mod records;

pub use image::{
    ApplyOutcome, BrokerRegistration, ControllerConfig, MetadataError, MetadataImage, PartitionState, PendingDeletion, TopicState,
};
pub use records::{BrokerEpoch, BrokerId, MetadataRecord, PartitionIndex, TopicId};
