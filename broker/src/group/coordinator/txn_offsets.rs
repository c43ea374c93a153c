//! Offsets committed inside a producer's transaction (TxnOffsetCommit).
//!
//! A transactional commit is validated like a commit (the group's
//! coordinator, and for v3+ the member and generation), then written to the
//! group's `__consumer_offsets` partition as a *transactional* batch of the
//! producer: attribute bit 4 set, the producer id and epoch in the header
//! ([`crate::storage::build_transactional_batch`]). Once durable its
//! offsets are **pending**, per (group, producer id): OffsetFetch does not
//! return them (with `require_stable` it answers UNSTABLE_OFFSET_COMMIT for
//! the partitions concerned) until the producer's transaction marker lands
//! on that `__consumer_offsets` partition
//! ([`GroupCoordinator::txn_marker_written`]):
//!
//! ```text
//!   TxnOffsetCommit ──► appended ──► pending(group, producer id)
//!                                       │ COMMIT marker     │ ABORT marker
//!                                       ▼                   ▼
//!                               committed offsets        dropped
//! ```
//!
//! Loading a partition replays the same: offset records of transactional
//! batches become pending ([`GroupCoordinator::load_txn_record`]), and each
//! control batch resolves its producer's pending offsets in every group of
//! the partition. A transaction still open at the end of the log stays
//! pending.
//!
//! That the group was added to the producer's transaction is checked by
//! the transaction coordinator when it answers AddOffsetsToTxn, not here:
//! this coordinator trusts a producer id that sends TxnOffsetCommit.
//!
//! Epochs: a commit from an epoch older than the newest this coordinator
//! saw for the producer id on the group's partition is refused
//! (INVALID_PRODUCER_EPOCH), as the log's producer state would refuse it
//! in Kafka.
//!
//! A transactional commit and a plain commit of the same partition: as in
//! Kafka, a commit marker does not replace a plain commit appended after
//! the transaction's offset record (the coordinator counts its offset
//! appends, and loading counts offset records in log order).

use std::collections::BTreeSet;

use super::{check_member, GroupCoordinator, Group};
use crate::group::records::OffsetsRecord;
use crate::group::types::*;

impl GroupCoordinator {
    /// TxnOffsetCommit, first step: validates and says what to append (as
    /// a transactional batch of `request.producer_id`). Nothing is pending
    /// until [`Self::txn_commit_appended`].
    pub fn prepare_txn_commit(&mut self, now_ms: u64, request: TxnCommitRequest) -> TxnCommitPlan {
        let verdict = self.validate_txn_commit(now_ms, &request);
        let (producer_id, producer_epoch) = (request.producer_id, request.producer_epoch);
        let plan = self.plan_commit(now_ms, request.group_id, request.offsets, verdict);
        TxnCommitPlan {
            group_id: plan.group_id,
            producer_id,
            producer_epoch,
            results: plan.results,
            accepted: plan.accepted,
            records: plan.records,
            append_seq: plan.append_seq,
        }
    }

    fn validate_txn_commit(&mut self, now_ms: u64, request: &TxnCommitRequest) -> Result<(), GroupError> {
        if request.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if request.producer_id < 0 || request.producer_epoch < 0 {
            return Err(GroupError::InvalidRequest);
        }
        self.check_coordinator(&request.group_id)?;
        let partition = self.partition_of(&request.group_id);
        if let Some(&newest) = self.txn_producer_epochs.get(&(partition, request.producer_id)) {
            if request.producer_epoch < newest {
                return Err(GroupError::InvalidProducerEpoch);
            }
        }
        // Kafka's rule: with no member information (v0–2, or a producer
        // that does not speak for a member) the commit is accepted whatever
        // the group's state; otherwise the member must be in the group's
        // current generation. A rebalance in progress does not refuse it.
        let speaks_for_member = request.generation_id >= 0 || !request.member_id.is_empty() || request.group_instance_id.is_some();
        if self.consumer.contains(&request.group_id) {
            if speaks_for_member && self.config.fence_generations {
                self.consumer.validate_member_epoch(&request.group_id, &request.member_id, request.generation_id, false)?;
            }
        } else if let Some(group) = self.groups.get(&request.group_id) {
            if speaks_for_member && self.config.fence_generations {
                if group.state == GroupState::Dead {
                    return Err(GroupError::CoordinatorNotAvailable);
                }
                check_member(group, &request.member_id, request.group_instance_id.as_deref())?;
                if request.generation_id != group.generation_id {
                    return Err(GroupError::IllegalGeneration);
                }
            }
        } else if speaks_for_member && self.config.fence_generations {
            return Err(GroupError::IllegalGeneration);
        }
        self.groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(partition, now_ms));
        Ok(())
    }

    /// TxnOffsetCommit, second step: the plan's transactional batch is
    /// durable, so its offsets are pending for the producer (see the
    /// module docs). A plan whose append failed is dropped instead.
    pub fn txn_commit_appended(&mut self, plan: TxnCommitPlan) {
        let partition = self.partition_of(&plan.group_id);
        let epoch = self.txn_producer_epochs.entry((partition, plan.producer_id)).or_insert(plan.producer_epoch);
        *epoch = (*epoch).max(plan.producer_epoch);
        let Some(group) = self.groups.get_mut(&plan.group_id) else { return };
        let pending = group.pending_txn_offsets.entry(plan.producer_id).or_default();
        for (tp, offset) in plan.accepted {
            pending.insert(tp, (offset, plan.append_seq));
        }
    }

    /// Loading: an offset record from a transactional batch of
    /// `producer_id` (other records of such a batch apply as usual).
    pub fn load_txn_record(&mut self, partition: i32, producer_id: i64, producer_epoch: i16, record: OffsetsRecord, now_ms: u64) {
        match record {
            OffsetsRecord::Offset { group_id, partition: tp, value: Some(offset) } => {
                let epoch = self.txn_producer_epochs.entry((partition, producer_id)).or_insert(producer_epoch);
                *epoch = (*epoch).max(producer_epoch);
                self.append_seq += 1;
                let group = self.groups.entry(group_id).or_insert_with(|| Group::new(partition, now_ms));
                debug_assert_eq!(group.partition, partition, "a group's records live on its partition");
                group.pending_txn_offsets.entry(producer_id).or_default().insert(tp, (offset, self.append_seq));
            }
            other => self.load_record(partition, other, now_ms),
        }
    }

    /// The transaction marker of `producer_id` is durable on `partition`
    /// of `__consumer_offsets` (written there, or read while loading it):
    /// every group of the partition applies (`commit`) or drops the
    /// producer's pending offsets. Returns the groups that had some.
    pub fn txn_marker_written(&mut self, partition: i32, producer_id: i64, commit: bool) -> Vec<String> {
        let mut resolved = Vec::new();
        for (group_id, group) in self.groups.iter_mut().filter(|(_, g)| g.partition == partition) {
            let Some(pending) = group.pending_txn_offsets.remove(&producer_id) else { continue };
            if commit {
                crate::mark!("group.txn_offsets.committed");
                for (tp, (offset, appended_at)) in pending {
                    // A plain commit appended later stays.
                    if group.offset_appended_at.get(&tp).is_some_and(|&plain| plain > appended_at) {
                        continue;
                    }
                    group.offset_appended_at.insert(tp.clone(), appended_at);
                    group.offsets.insert(tp, offset);
                }
            } else {
                crate::mark!("group.txn_offsets.aborted");
            }
            resolved.push(group_id.clone());
            debug_assert!(!group.pending_txn_offsets.contains_key(&producer_id), "resolved once");
        }
        resolved
    }

    /// The partitions of `group_id` with transactional offsets still
    /// pending (OffsetFetch with `require_stable` answers
    /// UNSTABLE_OFFSET_COMMIT for them).
    pub fn unstable_partitions(&self, group_id: &str) -> BTreeSet<TopicPartition> {
        self.groups.get(group_id).map(|g| g.pending_txn_offsets.values().flat_map(|p| p.keys().cloned()).collect()).unwrap_or_default()
    }

    /// The pending transactional offsets of `group_id` per producer id, for
    /// tests and the checker's ledgers.
    pub fn pending_txn_offsets(&self, group_id: &str) -> std::collections::BTreeMap<i64, std::collections::BTreeMap<TopicPartition, CommittedOffset>> {
        let Some(group) = self.groups.get(group_id) else { return Default::default() };
        group.pending_txn_offsets.iter().map(|(&producer_id, pending)| (producer_id, pending.iter().map(|(tp, (offset, _))| (tp.clone(), offset.clone())).collect())).collect()
    }
}
