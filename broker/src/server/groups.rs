//! The group coordinator's driver: connects the sans-IO core
//! ([`crate::group::GroupCoordinator`]) to the `__consumer_offsets` logs,
//! the clock and the requests that wait for the rest of their group.
//!
//! - **Where groups live.** `__consumer_offsets` is a compacted topic with
//!   `offsets.topic.num.partitions` partitions, created on first need (the
//!   first FindCoordinator or group request). A group's records go to
//!   partition `partition_for_group(group_id)` (Java's `String.hashCode`,
//!   as Kafka chooses).
//! - **Who coordinates.** Standalone, this broker coordinates every group.
//!   In cluster mode the coordinator of a group is the leader of its
//!   partition: FindCoordinator names that broker, and a broker loads a
//!   partition's groups the first time it serves a group of it as leader
//!   (COORDINATOR_LOAD_IN_PROGRESS is never seen by a client: loading reads
//!   the local log synchronously). A broker that stops leading the
//!   partition unloads its groups (checked on every request and every
//!   tick), answering waiting requests NOT_COORDINATOR, so clients look the
//!   coordinator up again.
//! - **Durability.** A commit's records are appended as the partition's
//!   leader; in cluster mode the commit is answered only once the high
//!   watermark passes them (acks=all with `min.insync.replicas`), so an
//!   acknowledged commit survives a coordinator failover. Only then does
//!   OffsetFetch see the new offsets ([`GroupCoordinator::commit_appended`]).
//!   Group metadata records (a new generation) are appended the same way
//!   but not waited for: a lost one only costs members a rejoin.
//! - **Waiting requests.** JoinGroup and SyncGroup may wait for the rest of
//!   the group: the driver hands the core a waiter id and parks the request
//!   on a oneshot channel, completed when the core emits the answer.
//! - **KIP-848 groups** (`group::consumer_protocol`) share the core, its
//!   lock and its partition ownership: ConsumerGroupHeartbeat is answered
//!   at once (nothing waits), with every topic's partition count from the
//!   broker's topics. Their membership is not written to the log: a
//!   coordinator that unloads a partition, restarts or fails over forgets
//!   the members, which get UNKNOWN_MEMBER_ID and rejoin with epoch 0.
//!   Their commits take the path above and are as durable.
//! - **Transactions.** TxnOffsetCommit appends its records as a
//!   transactional batch of the producer (no sequence check: the
//!   coordinator's own batch) and the core keeps them pending; the
//!   partition side reports each transaction marker written to a
//!   `__consumer_offsets` partition through
//!   [`Broker::groups_txn_marker_written`]. Loading replays both:
//!   transactional batches become pending offsets, control batches resolve
//!   them.
//! - **Time.** A ticker (every 100 ms of the broker's clock, started with
//!   the coordinator) drives session timeouts (of both protocols), join
//!   deadlines and offset expiry.
//!
//! Lock order: the core's lock, then a partition's lock; nothing takes a
//! partition's lock and then the core's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::oneshot;

use crate::group::records::OffsetsRecord;
use crate::group::{GroupCoordinator, GroupError, GroupOutput, JoinResponse, Reply, SyncResponse, Waiter};
use crate::replication::ProduceOutcome;
use crate::server::internal_log::{InternalLogError, Replayed, ReplicationWait};
use crate::server::Broker;

#[cfg(test)]
#[path = "groups_txn_tests.rs"]
mod txn_tests;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often the coordinator's clock ticks.
const TICK_MS: u64 = 100;

/// A delayed JoinGroup or SyncGroup answer.
pub(crate) enum Delayed {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// The coordinator's state on one broker.
#[derive(Default)]
pub(crate) struct GroupDriver {
    /// The core; created on first use.
    core: Mutex<Option<GroupCoordinator>>,
    /// Requests waiting for their group.
    waiters: Mutex<BTreeMap<Waiter, oneshot::Sender<Delayed>>>,
    next_waiter: AtomicU64,
    ticking: AtomicBool,
}

impl GroupDriver {
    /// A waiter id and the channel its answer arrives on.
    pub(crate) fn park(&self) -> (Waiter, oneshot::Receiver<Delayed>) {
        let waiter = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).insert(waiter, sender);
        (waiter, receiver)
    }

    /// Forgets a waiter answered at once (it was never parked in the core).
    pub(crate) fn unpark(&self, waiter: Waiter) {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&waiter);
    }

    fn complete(&self, waiter: Waiter, answer: Delayed) {
        let sender = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&waiter);
        if let Some(sender) = sender {
            // The client may have gone; nothing to do then.
            let _ = sender.send(answer);
        }
    }
}

impl Broker {
    /// Runs `f` on the coordinator core, after making sure `group_id`'s
    /// partition is loaded here if this broker leads it (or unloaded if it
    /// no longer does); then carries out what the core asked for. The core
    /// itself answers NOT_COORDINATOR for groups of partitions not loaded.
    pub(crate) fn with_group_coordinator<T>(&self, group_id: Option<&str>, f: impl FnOnce(&mut GroupCoordinator, u64) -> T) -> Result<T, GroupError> {
        if self.topic(OFFSETS_TOPIC).is_none() && self.cluster.is_none() {
            self.create_internal_topic_standalone(OFFSETS_TOPIC, self.config.offsets_topic_num_partitions)
                .map_err(|_| GroupError::CoordinatorNotAvailable)?;
        }
        self.start_group_ticker();
        let now_ms = self.now_ms();
        let mut guard = self.groups.core.lock().unwrap_or_else(|e| e.into_inner());
        let core = guard.get_or_insert_with(|| self.new_group_coordinator());
        if let Some(group_id) = group_id {
            let partition = core.partition_of(group_id);
            self.sync_partition_ownership(core, partition, now_ms);
        }
        let value = f(core, now_ms);
        let outputs = core.take_outputs();
        self.carry_out(core, outputs);
        Ok(value)
    }

    /// A request that may wait for the rest of its group (JoinGroup,
    /// SyncGroup): `call` gets a parked waiter; the answer is the one given
    /// now, or the delayed one `take` picks from what arrives for the
    /// waiter; `error` makes an answer of a refusal.
    pub(crate) async fn group_reply<T>(
        &self,
        group_id: &str,
        call: impl FnOnce(&mut GroupCoordinator, u64, Waiter) -> Reply<T>,
        take: impl FnOnce(Delayed) -> Option<T>,
        error: impl FnOnce(GroupError) -> T,
    ) -> T {
        let (waiter, receiver) = self.groups.park();
        match self.with_group_coordinator(Some(group_id), |core, now_ms| call(core, now_ms, waiter)) {
            Ok(Reply::Now(answer)) => {
                self.groups.unpark(waiter);
                answer
            }
            Err(refusal) => {
                self.groups.unpark(waiter);
                error(refusal)
            }
            Ok(Reply::Later) => match receiver.await.ok().and_then(take) {
                Some(answer) => answer,
                // The coordinator went away without answering.
                None => error(GroupError::CoordinatorNotAvailable),
            },
        }
    }

    fn new_group_coordinator(&self) -> GroupCoordinator {
        // The member-id stream of this broker: its own, from the seed.
        let rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x6772_6f75_7073 ^ u64::from(self.config.node_id.unsigned_abs()));
        GroupCoordinator::new(self.config.group.clone(), self.config.offsets_topic_num_partitions, rng)
    }

    /// Loads or unloads `partition`'s groups so the core's ownership
    /// matches this broker's leadership.
    fn sync_partition_ownership(&self, core: &mut GroupCoordinator, partition: i32, now_ms: u64) {
        let leads = self.leads_internal_partition(OFFSETS_TOPIC, partition);
        let owned = core.owns(partition);
        if leads && !owned {
            self.load_offsets_partition(core, partition, now_ms);
        } else if !leads && owned {
            tracing::info!(partition, "no longer leading this {OFFSETS_TOPIC} partition: its groups are unloaded");
            crate::mark!("group.coordinator.unloaded");
            core.unload(partition);
        }
    }

    /// Replays `partition` of `__consumer_offsets` into the core.
    fn load_offsets_partition(&self, core: &mut GroupCoordinator, partition: i32, now_ms: u64) {
        core.begin_load(partition);
        let (mut records, mut skipped) = (0u64, 0u64);
        let replayed = self.replay_internal_partition(OFFSETS_TOPIC, partition, |item| match item {
            // A transaction marker resolves its producer's pending offsets.
            Replayed::Marker { producer_id, commit } => {
                core.txn_marker_written(partition, producer_id, commit);
            }
            Replayed::Record { key, value, transaction } => match OffsetsRecord::decode(key, value) {
                Ok(Some(decoded)) => {
                    match transaction {
                        Some((producer_id, producer_epoch)) => core.load_txn_record(partition, producer_id, producer_epoch, decoded, now_ms),
                        None => core.load_record(partition, decoded, now_ms),
                    }
                    records += 1;
                }
                Ok(None) => skipped += 1,
                Err(error) => {
                    skipped += 1;
                    tracing::warn!(partition, %error, "a {OFFSETS_TOPIC} record did not decode; skipped");
                }
            },
        });
        if replayed.is_err() {
            // The groups of this partition stay unserved (NOT_COORDINATOR
            // after unload); the next request tries again.
            core.unload(partition);
            return;
        }
        if records > 0 {
            crate::mark!("group.coordinator.loaded_groups");
        }
        core.finish_load(partition, now_ms);
        tracing::info!(partition, records, skipped, "loaded the groups of a {OFFSETS_TOPIC} partition");
    }

    /// Sends delayed answers and appends the records the core asked for.
    ///
    /// A new generation's record must be durable before its members learn
    /// their assignment: otherwise a coordinator that takes over (and never
    /// saw the record) could hand the same generation id to other members,
    /// and one partition would have two owners in one generation. The core
    /// holds the SyncGroup answers until told the record is stored
    /// ([`GroupCoordinator::generation_stored`]: in cluster mode once the
    /// high watermark passes it); if the append fails, the generation is
    /// void ([`GroupCoordinator::generation_not_durable`]) and its members
    /// rejoin.
    fn carry_out(&self, core: &mut GroupCoordinator, outputs: Vec<GroupOutput>) {
        let mut outputs = outputs;
        while !outputs.is_empty() {
            let now_ms = self.now_ms();
            for output in outputs {
                match output {
                    GroupOutput::Join { waiter, response } => self.groups.complete(waiter, Delayed::Join(response)),
                    GroupOutput::Sync { waiter, response } => self.groups.complete(waiter, Delayed::Sync(response)),
                    GroupOutput::Append { group_id, records } => {
                        let generation = records.iter().find_map(|r| match r {
                            OffsetsRecord::Group { value: Some(value), .. } => Some(value.generation_id),
                            _ => None,
                        });
                        let partition = core.partition_of(&group_id);
                        match (self.append_offsets_records(partition, &records, generation.is_some()), generation) {
                            (Ok(None), Some(generation)) => core.generation_stored(now_ms, &group_id, generation),
                            (Ok(Some(wait)), Some(generation)) => self.await_generation(group_id, generation, wait),
                            (Ok(_), None) => {}
                            (Err(error), generation) => {
                                tracing::warn!(group = %group_id, ?error, "appending group records failed");
                                if let Some(generation) = generation {
                                    core.generation_not_durable(now_ms, &group_id, generation);
                                }
                            }
                        }
                    }
                }
            }
            outputs = core.take_outputs();
        }
    }

    /// Tells the core whether `generation`'s record became durable.
    fn await_generation(&self, group_id: String, generation: i32, wait: oneshot::Receiver<ProduceOutcome>) {
        let Some(broker) = self.self_ref.upgrade() else { return };
        tokio::spawn(async move {
            let stored = Broker::await_replication(Some(wait)).await.is_ok();
            let now_ms = broker.now_ms();
            let mut guard = broker.groups.core.lock().unwrap_or_else(|e| e.into_inner());
            let Some(core) = guard.as_mut() else { return };
            if stored {
                core.generation_stored(now_ms, &group_id, generation);
            } else {
                tracing::info!(group = %group_id, generation, "a generation's record was not replicated: the group rebalances");
                core.generation_not_durable(now_ms, &group_id, generation);
            }
            let outputs = core.take_outputs();
            broker.carry_out(core, outputs);
        });
    }

    /// Appends `records` to `partition` of `__consumer_offsets` as its
    /// leader. With `durable`, returns the wait for the high watermark to
    /// pass them (cluster mode).
    pub(crate) fn append_offsets_records(&self, partition: i32, records: &[OffsetsRecord], durable: bool) -> Result<ReplicationWait, GroupError> {
        let encoded = records.iter().map(OffsetsRecord::encode).collect();
        self.append_internal_records(OFFSETS_TOPIC, partition, encoded, durable).map_err(group_error)
    }

    /// Appends `records` to `partition` of `__consumer_offsets` as one
    /// transactional batch of `producer_id` at `producer_epoch`
    /// (TxnOffsetCommit), durably, as [`Self::append_offsets_records`].
    pub(crate) fn append_txn_offsets_records(&self, partition: i32, records: &[OffsetsRecord], producer_id: i64, producer_epoch: i16) -> Result<ReplicationWait, GroupError> {
        let encoded = records.iter().map(OffsetsRecord::encode).collect();
        self.append_internal_batch(OFFSETS_TOPIC, partition, encoded, true, Some((producer_id, producer_epoch))).map_err(group_error)
    }

    /// Waits for a durable append (see [`Broker::append_offsets_records`]).
    pub(crate) async fn await_replication(wait: ReplicationWait) -> Result<(), GroupError> {
        // Not replicated in time, or this broker stopped leading: the
        // commit's fate is unknown, and the client retries it.
        Broker::await_internal_replication(wait).await.map_err(|_| GroupError::CoordinatorNotAvailable)
    }

    /// The partition side calls this once a transaction marker of
    /// `producer_id` is durable on `partition` of `__consumer_offsets`:
    /// the producer's pending transactional offsets in that partition's
    /// groups become committed offsets (`commit`) or are dropped. A
    /// partition not loaded here is left alone (loading it replays the
    /// marker from the log).
    pub(crate) fn groups_txn_marker_written(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut guard = self.groups.core.lock().unwrap_or_else(|e| e.into_inner());
        let Some(core) = guard.as_mut() else { return };
        if !core.owns(partition) {
            return;
        }
        let resolved = core.txn_marker_written(partition, producer_id, commit);
        tracing::debug!(partition, producer_id, commit, groups = resolved.len(), "a transaction marker resolved pending offsets");
        let outputs = core.take_outputs();
        self.carry_out(core, outputs);
    }

    /// Starts the coordinator's clock once.
    fn start_group_ticker(&self) {
        self.start_coordinator_ticker(&self.groups.ticking, TICK_MS, Broker::tick_groups);
    }

    /// One tick: ownership follows leadership, then sessions and deadlines.
    fn tick_groups(&self) {
        let now_ms = self.now_ms();
        let mut guard = self.groups.core.lock().unwrap_or_else(|e| e.into_inner());
        let Some(core) = guard.as_mut() else { return };
        for partition in core.owned_partitions() {
            if !self.leads_internal_partition(OFFSETS_TOPIC, partition) {
                tracing::info!(partition, "no longer leading this {OFFSETS_TOPIC} partition: its groups are unloaded");
                crate::mark!("group.coordinator.unloaded");
                core.unload(partition);
            }
        }
        core.tick(now_ms);
        let outputs = core.take_outputs();
        self.carry_out(core, outputs);
    }
}

fn group_error(error: InternalLogError) -> GroupError {
    match error {
        InternalLogError::NotLeader => GroupError::NotCoordinator,
        InternalLogError::Unavailable => GroupError::CoordinatorNotAvailable,
    }
}
