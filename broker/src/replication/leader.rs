//! The leader side of one partition: follower progress, ISR changes, the
//! high watermark and acks=all produce requests waiting for it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::fencing::check_leader_epoch;
use super::log::LocalLog;
use super::types::{
    FetchAnswer, FollowerFetch, LeaderEffect, LeaderEpoch, Offset, PartitionEpoch, PartitionMetadata,
    ReplicaId, ReplicationConfig, ReplicationError,
};

/// What the leader knows of one follower (Kafka's `Replica.ReplicaState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's last fetch offset in this leader epoch; `None` until it
    /// fetched (unknown, as Kafka's `UnknownOffset` after a leader change).
    pub log_end_offset: Option<Offset>,
    /// Last time the follower was caught up with the leader's log end.
    pub last_caught_up_time_ms: u64,
    /// The leader's log end at the follower's previous fetch.
    pub last_fetch_leader_log_end_offset: Option<Offset>,
    /// Time of the follower's previous fetch.
    pub last_fetch_time_ms: u64,
}

/// An AlterPartition in flight. Kafka allows one per partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsrChange {
    pub new_isr: BTreeSet<ReplicaId>,
    /// The partition epoch the proposal is based on.
    pub base_partition_epoch: PartitionEpoch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DelayedProduce {
    request_id: u64,
    required_offset: Offset,
    min_insync_replicas: usize,
    deadline_ms: u64,
}

/// Whether the leader may keep leading after a metadata update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataVerdict {
    /// Same leader epoch and still this replica: keep going.
    StillLeader,
    /// The metadata names another leader or a newer epoch: call
    /// [`LeaderState::resign`] and become a follower.
    Resign,
    /// Older than what the leader knows: ignored.
    Stale,
}

/// See the [module docs](crate::replication).
#[derive(Debug, Clone)]
pub struct LeaderState {
    config: ReplicationConfig,
    replica_id: ReplicaId,
    replicas: BTreeSet<ReplicaId>,
    leader_epoch: LeaderEpoch,
    partition_epoch: PartitionEpoch,
    /// The ISR the controller committed.
    isr: BTreeSet<ReplicaId>,
    pending_isr: Option<PendingIsrChange>,
    /// The log end offset when this replica became leader of this epoch.
    leader_epoch_start_offset: Offset,
    followers: BTreeMap<ReplicaId, FollowerProgress>,
    local: LocalLog,
    delayed_produce: VecDeque<DelayedProduce>,
    effects: Vec<LeaderEffect>,
}

impl LeaderState {
    /// Becomes leader of `leader_epoch` over `local` (Kafka's `makeLeader`).
    /// The leader epoch starts at the current log end: the epoch cache gets
    /// that entry, and a follower can only join the ISR once it reaches it.
    /// The high watermark starts at the local one and never goes down.
    pub fn new(
        config: ReplicationConfig,
        replica_id: ReplicaId,
        replicas: BTreeSet<ReplicaId>,
        metadata: &PartitionMetadata,
        mut local: LocalLog,
        now_ms: u64,
    ) -> Self {
        assert_eq!(metadata.leader, Some(replica_id), "becoming leader of metadata naming another leader");
        assert!(replicas.contains(&replica_id), "leader {replica_id} not among replicas {replicas:?}");
        assert!(metadata.isr.contains(&replica_id), "leader {replica_id} not in ISR {:?}", metadata.isr);
        assert!(metadata.isr.is_subset(&replicas), "ISR {:?} not within replicas {replicas:?}", metadata.isr);
        let leader_epoch_start_offset = local.log_end_offset();
        local.epoch_cache_mut().assign(metadata.leader_epoch, leader_epoch_start_offset);
        let followers = replicas
            .iter()
            .filter(|&&id| id != replica_id)
            .map(|&id| {
                // Kafka's resetReplicaState: ISR members get a fresh grace
                // period, others none, so they do not hold anything back.
                let in_sync = metadata.isr.contains(&id);
                let progress = FollowerProgress {
                    log_end_offset: None,
                    last_caught_up_time_ms: if in_sync { now_ms } else { 0 },
                    last_fetch_leader_log_end_offset: None,
                    last_fetch_time_ms: 0,
                };
                (id, progress)
            })
            .collect();
        let leader = Self {
            config,
            replica_id,
            replicas,
            leader_epoch: metadata.leader_epoch,
            partition_epoch: metadata.partition_epoch,
            isr: metadata.isr.clone(),
            pending_isr: None,
            leader_epoch_start_offset,
            followers,
            local,
            delayed_produce: VecDeque::new(),
            effects: Vec::new(),
        };
        // Kafka's makeLeader ends with maybeIncrementLeaderHW: with no other
        // ISR member to wait for (an ISR of one), the whole log is committed.
        let mut leader = leader;
        leader.maybe_advance_high_watermark();
        leader.check_invariants();
        leader
    }

    // ----- observers -------------------------------------------------------

    pub fn replica_id(&self) -> ReplicaId {
        self.replica_id
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }
    pub fn partition_epoch(&self) -> PartitionEpoch {
        self.partition_epoch
    }
    /// The committed ISR.
    pub fn isr(&self) -> &BTreeSet<ReplicaId> {
        &self.isr
    }
    pub fn pending_isr(&self) -> Option<&PendingIsrChange> {
        self.pending_isr.as_ref()
    }
    /// The ISR used for the high watermark and acks=all: the committed ISR
    /// plus a replica being added (KIP-497's maximal ISR). During a pending
    /// shrink it is the committed, larger ISR: the removal is not safe to
    /// act on before the controller accepts it.
    pub fn maximal_isr(&self) -> BTreeSet<ReplicaId> {
        match &self.pending_isr {
            Some(pending) => self.isr.union(&pending.new_isr).copied().collect(),
            None => self.isr.clone(),
        }
    }
    pub fn high_watermark(&self) -> Offset {
        self.local.high_watermark()
    }
    pub fn log_end_offset(&self) -> Offset {
        self.local.log_end_offset()
    }
    pub fn leader_epoch_start_offset(&self) -> Offset {
        self.leader_epoch_start_offset
    }
    pub fn local_log(&self) -> &LocalLog {
        &self.local
    }
    pub fn follower(&self, replica_id: ReplicaId) -> Option<&FollowerProgress> {
        self.followers.get(&replica_id)
    }
    pub fn delayed_produce_len(&self) -> usize {
        self.delayed_produce.len()
    }

    /// Takes the effects produced so far, oldest first.
    pub fn drain_effects(&mut self) -> Vec<LeaderEffect> {
        std::mem::take(&mut self.effects)
    }

    // ----- inputs ----------------------------------------------------------

    /// Checks a request's leader epoch against this leader's.
    pub fn validate_leader_epoch(&self, request_epoch: Option<LeaderEpoch>) -> Result<(), ReplicationError> {
        check_leader_epoch(Some(self.leader_epoch), request_epoch)
    }

    /// Before appending an acks=all batch: refuse if the committed ISR is
    /// smaller than `min_insync_replicas` (Kafka checks the committed ISR,
    /// not the maximal one, so a pending expansion does not count).
    pub fn check_enough_replicas(&self, min_insync_replicas: usize) -> Result<(), ReplicationError> {
        if self.isr.len() < min_insync_replicas {
            return Err(ReplicationError::NotEnoughReplicas { isr_size: self.isr.len(), min_insync_replicas });
        }
        Ok(())
    }

    /// The leader appended records of its epoch; the log now ends at
    /// `new_log_end_offset`.
    pub fn on_local_append(&mut self, new_log_end_offset: Offset) {
        let end = self.local.log_end_offset();
        assert!(new_log_end_offset > end, "append must grow the log: {end} -> {new_log_end_offset}");
        self.local.append(super::types::BatchInfo {
            base_offset: end,
            last_offset: new_log_end_offset - 1,
            leader_epoch: self.leader_epoch,
        });
        // A single-replica ISR commits on append.
        self.maybe_advance_high_watermark();
        self.check_invariants();
    }

    /// Registers an acks=all produce whose batch ends at `required_offset`
    /// (last offset + 1); it completes through a `CompleteProduce` effect,
    /// possibly right away.
    pub fn try_append_acks_all(
        &mut self,
        request_id: u64,
        required_offset: Offset,
        min_insync_replicas: usize,
        deadline_ms: u64,
    ) -> Result<(), ReplicationError> {
        assert!(
            required_offset <= self.local.log_end_offset(),
            "waiting for offset {required_offset} that was never appended (log end {})",
            self.local.log_end_offset()
        );
        if self.delayed_produce.len() >= self.config.delayed_produce_max {
            return Err(ReplicationError::DelayedProduceQueueFull { max: self.config.delayed_produce_max });
        }
        self.delayed_produce.push_back(DelayedProduce { request_id, required_offset, min_insync_replicas, deadline_ms });
        self.complete_delayed_produce();
        Ok(())
    }

    /// A follower fetch (Kafka's `Partition.fetchRecords` for a replica).
    pub fn on_follower_fetch(&mut self, fetch: &FollowerFetch, now_ms: u64) -> Result<FetchAnswer, ReplicationError> {
        self.validate_leader_epoch(fetch.current_leader_epoch)?;
        if !self.followers.contains_key(&fetch.replica_id) {
            return Err(ReplicationError::UnknownReplica(fetch.replica_id));
        }
        let log_end_offset = self.local.log_end_offset();
        // KIP-320: if the follower's last epoch ends earlier here than its
        // fetch offset, or this log does not have that epoch, it diverged.
        // Its fetch offset then acknowledges nothing: leave its state alone.
        if let Some(last_fetched_epoch) = fetch.last_fetched_epoch {
            let epoch_end = self.local.epoch_cache().end_offset_for(last_fetched_epoch, log_end_offset);
            if epoch_end.end_offset < fetch.fetch_offset || epoch_end.epoch < last_fetched_epoch {
                crate::mark!("replication.leader.diverging_epoch");
                return Ok(FetchAnswer::Diverging {
                    diverging_epoch: epoch_end,
                    high_watermark: self.local.high_watermark(),
                });
            }
        }
        if fetch.fetch_offset < self.local.log_start_offset() || fetch.fetch_offset > log_end_offset {
            return Err(ReplicationError::OffsetOutOfRange {
                offset: fetch.fetch_offset,
                log_start_offset: self.local.log_start_offset(),
                log_end_offset,
            });
        }
        self.update_follower_fetch_state(fetch.replica_id, fetch.fetch_offset, now_ms);
        self.maybe_expand_isr(fetch.replica_id);
        self.maybe_advance_high_watermark();
        self.check_invariants();
        Ok(FetchAnswer::Records {
            fetch_offset: fetch.fetch_offset,
            log_end_offset,
            high_watermark: self.local.high_watermark(),
        })
    }

    /// Time passed: shrink the ISR of followers that lag too long, time out
    /// waiting produce requests.
    pub fn tick(&mut self, now_ms: u64) {
        self.maybe_shrink_isr(now_ms);
        let mut index = 0;
        while index < self.delayed_produce.len() {
            if self.delayed_produce[index].deadline_ms <= now_ms {
                crate::mark!("replication.produce.timed_out");
                let request = self.delayed_produce.remove(index).expect("index in range");
                self.effects.push(LeaderEffect::CompleteProduce {
                    request_id: request.request_id,
                    result: Err(ReplicationError::RequestTimedOut),
                });
            } else {
                index += 1;
            }
        }
        self.check_invariants();
    }

    /// The controller accepted our AlterPartition (or any ISR change within
    /// this leader epoch): adopt it.
    pub fn on_isr_committed(&mut self, new_isr: BTreeSet<ReplicaId>, partition_epoch: PartitionEpoch) {
        assert!(
            partition_epoch > self.partition_epoch,
            "ISR commit with partition epoch {partition_epoch} not above {}",
            self.partition_epoch
        );
        assert!(new_isr.contains(&self.replica_id), "committed ISR {new_isr:?} lacks its leader");
        assert!(new_isr.is_subset(&self.replicas), "committed ISR {new_isr:?} outside replicas");
        self.isr = new_isr;
        self.partition_epoch = partition_epoch;
        self.pending_isr = None;
        self.maybe_advance_high_watermark();
        self.complete_delayed_produce();
        self.check_invariants();
    }

    /// The controller refused or lost our AlterPartition without a newer
    /// partition state to show: forget it so a new proposal can be made.
    pub fn on_alter_partition_failed(&mut self) {
        self.pending_isr = None;
        self.check_invariants();
    }

    /// Partition metadata arrived.
    pub fn on_metadata(&mut self, metadata: &PartitionMetadata) -> MetadataVerdict {
        if metadata.leader_epoch < self.leader_epoch {
            crate::mark!("replication.leader.stale_metadata");
            return MetadataVerdict::Stale;
        }
        if metadata.leader_epoch > self.leader_epoch || metadata.leader != Some(self.replica_id) {
            return MetadataVerdict::Resign;
        }
        if metadata.partition_epoch > self.partition_epoch {
            self.on_isr_committed(metadata.isr.clone(), metadata.partition_epoch);
        } else if metadata.partition_epoch < self.partition_epoch {
            crate::mark!("replication.leader.stale_metadata");
            return MetadataVerdict::Stale;
        }
        MetadataVerdict::StillLeader
    }

    /// Stops leading: every waiting produce fails with NOT_LEADER_OR_FOLLOWER
    /// (they may or may not be committed later; the client retries).
    /// Returns the local log for the next role and the final effects.
    pub fn resign(mut self) -> (LocalLog, Vec<LeaderEffect>) {
        for request in std::mem::take(&mut self.delayed_produce) {
            self.effects.push(LeaderEffect::CompleteProduce {
                request_id: request.request_id,
                result: Err(ReplicationError::NotLeaderOrFollower),
            });
        }
        (self.local, self.effects)
    }

    // ----- internals -------------------------------------------------------

    /// Kafka's `Replica.updateFetchStateOrThrow`: a fetch at or past the
    /// leader's current log end is caught up now; a fetch at or past the log
    /// end as of the previous fetch was caught up at that previous fetch.
    fn update_follower_fetch_state(&mut self, replica_id: ReplicaId, fetch_offset: Offset, now_ms: u64) {
        let leader_log_end_offset = self.local.log_end_offset();
        let progress = self.followers.get_mut(&replica_id).expect("checked by caller");
        if fetch_offset >= leader_log_end_offset {
            progress.last_caught_up_time_ms = progress.last_caught_up_time_ms.max(now_ms);
        } else if progress.last_fetch_leader_log_end_offset.is_some_and(|end| fetch_offset >= end) {
            progress.last_caught_up_time_ms = progress.last_caught_up_time_ms.max(progress.last_fetch_time_ms);
        }
        // The offset may go down (a follower that restarted having lost
        // unflushed records). That is the world's doing, not a bug: it is
        // not caught up, so it leaves the ISR after the lag time; the high
        // watermark stays where it is. The controller fencing a restarted
        // broker out of the ISR (KRaft) closes that window sooner.
        progress.log_end_offset = Some(fetch_offset);
        progress.last_fetch_leader_log_end_offset = Some(leader_log_end_offset);
        progress.last_fetch_time_ms = now_ms;
    }

    /// Kafka's `canAddReplicaToIsr`: caught up to the high watermark and
    /// fetched something of this leader epoch.
    fn maybe_expand_isr(&mut self, replica_id: ReplicaId) {
        if self.pending_isr.is_some() || self.isr.contains(&replica_id) {
            return;
        }
        let Some(log_end_offset) = self.followers[&replica_id].log_end_offset else { return };
        if log_end_offset >= self.local.high_watermark() && log_end_offset >= self.leader_epoch_start_offset {
            crate::mark!("replication.isr.expand");
            let mut new_isr = self.isr.clone();
            new_isr.insert(replica_id);
            self.propose_isr(new_isr);
        }
    }

    /// Kafka's `getOutOfSyncReplicas`: not at the leader's log end and not
    /// caught up for longer than `replica_lag_time_max_ms`.
    fn maybe_shrink_isr(&mut self, now_ms: u64) {
        if self.pending_isr.is_some() {
            return;
        }
        let leader_log_end_offset = self.local.log_end_offset();
        let lag_max = self.config.replica_lag_time_max_ms;
        let out_of_sync: BTreeSet<ReplicaId> = self
            .isr
            .iter()
            .filter(|&&id| id != self.replica_id)
            .filter(|&&id| {
                let progress = &self.followers[&id];
                progress.log_end_offset != Some(leader_log_end_offset)
                    && now_ms.saturating_sub(progress.last_caught_up_time_ms) > lag_max
            })
            .copied()
            .collect();
        if !out_of_sync.is_empty() {
            crate::mark!("replication.isr.shrink");
            let new_isr = self.isr.difference(&out_of_sync).copied().collect();
            self.propose_isr(new_isr);
        }
    }

    fn propose_isr(&mut self, new_isr: BTreeSet<ReplicaId>) {
        debug_assert!(self.pending_isr.is_none());
        self.effects
            .push(LeaderEffect::ProposeIsr { new_isr: new_isr.clone(), partition_epoch: self.partition_epoch });
        self.pending_isr = Some(PendingIsrChange { new_isr, base_partition_epoch: self.partition_epoch });
    }

    /// High watermark = least log end over the maximal ISR (leader
    /// included). A member that has not fetched in this epoch holds it back
    /// entirely (its log end is unknown). It never moves down: a new leader
    /// starts from its local high watermark, which is at most the previous
    /// leader's.
    fn maybe_advance_high_watermark(&mut self) {
        let mut candidate = self.local.log_end_offset();
        for id in self.maximal_isr() {
            if id == self.replica_id {
                continue;
            }
            match self.followers[&id].log_end_offset {
                Some(end) => candidate = candidate.min(end),
                None => return,
            }
        }
        if candidate > self.local.high_watermark() {
            debug_assert!(self
                .maximal_isr()
                .iter()
                .all(|id| *id == self.replica_id || self.followers[id].log_end_offset >= Some(candidate)));
            self.local.set_high_watermark(candidate);
            self.effects.push(LeaderEffect::HighWatermarkAdvanced(candidate));
            self.complete_delayed_produce();
        }
    }

    /// Kafka's `checkEnoughReplicasReachOffset`, over the maximal ISR.
    fn complete_delayed_produce(&mut self) {
        let high_watermark = self.local.high_watermark();
        let isr_size = self.maximal_isr().len();
        let mut index = 0;
        while index < self.delayed_produce.len() {
            if self.delayed_produce[index].required_offset <= high_watermark {
                let request = self.delayed_produce.remove(index).expect("index in range");
                let result = if isr_size >= request.min_insync_replicas {
                    Ok(())
                } else {
                    Err(ReplicationError::NotEnoughReplicasAfterAppend {
                        isr_size,
                        min_insync_replicas: request.min_insync_replicas,
                    })
                };
                self.effects.push(LeaderEffect::CompleteProduce { request_id: request.request_id, result });
            } else {
                index += 1;
            }
        }
    }

    fn check_invariants(&self) {
        assert!(self.isr.contains(&self.replica_id), "leader {} fell out of its ISR {:?}", self.replica_id, self.isr);
        assert!(self.isr.is_subset(&self.replicas));
        let high_watermark = self.local.high_watermark();
        assert!(high_watermark <= self.local.log_end_offset());
        assert!(self.delayed_produce.len() <= self.config.delayed_produce_max);
        if let Some(pending) = &self.pending_isr {
            assert!(pending.new_isr.contains(&self.replica_id), "proposed ISR {:?} drops the leader", pending.new_isr);
            assert_eq!(pending.base_partition_epoch, self.partition_epoch);
        }
        assert_eq!(self.local.epoch_cache().latest_epoch(), Some(self.leader_epoch), "leader epoch not latest in cache");
        debug_assert!(
            self.delayed_produce.iter().all(|r| r.required_offset > high_watermark),
            "a produce request waits for an offset already below the high watermark"
        );
    }
}
