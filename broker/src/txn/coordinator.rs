//! The transaction coordinator state machine (see the module docs of `txn`).

use std::collections::{BTreeMap, BTreeSet};

use super::records::{TxnRecord, TxnValue};
use super::types::*;

/// Kafka's epoch limit: a producer whose epoch reached this gets a new
/// producer id at its next InitProducerId instead of a bump (the fencing
/// abort of a timed-out transaction still needs one more epoch).
pub const PRODUCER_EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// The `__transaction_state` partition of a transactional id, as Kafka
/// chooses it (the same hash as a group's `__consumer_offsets` partition).
pub fn partition_for_transactional_id(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::partition_for_group(transactional_id, partitions)
}

/// A `__transaction_state` partition this coordinator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owned {
    /// The partition's leader epoch when it was loaded: markers carry it,
    /// so a partition can refuse markers of a deposed coordinator.
    coordinator_epoch: i32,
    loaded: bool,
}

/// A transition whose record is being appended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    append_id: u64,
    /// The id's metadata once the record is durable; None: a tombstone.
    target: Option<TxnMetadata>,
    /// The request answered once the record is durable, with its answer.
    reply: Option<(Waiter, Answer)>,
    /// An open transaction being aborted by InitProducerId (the id is in
    /// PrepareEpochFence meanwhile).
    fencing: bool,
}

#[derive(Debug, Clone)]
struct Txn {
    partition: i32,
    /// None while a new id's first record is pending.
    meta: Option<TxnMetadata>,
    pending: Option<Pending>,
    /// Loaded prepared: its record is written again, and its markers sent
    /// once that is durable (see [`TxnCoordinator::finish_load`]).
    resume: bool,
}

/// InitProducerId with a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The transaction timeout the producer asks for.
    pub transaction_timeout_ms: i32,
    /// v3+ (KIP-360): the producer id and epoch the producer holds, -1 if
    /// none; a producer re-initialising after an error names them.
    pub producer_id: i64,
    /// See `producer_id`.
    pub producer_epoch: i16,
}

/// The transaction coordinator of one broker: the transactional ids of the
/// `__transaction_state` partitions it leads.
pub struct TxnCoordinator {
    config: TxnConfig,
    state_partitions: i32,
    offsets_partitions: i32,
    owned: BTreeMap<i32, Owned>,
    txns: BTreeMap<String, Txn>,
    /// Pending appends: append id → transactional id.
    appends: BTreeMap<u64, String>,
    outputs: Vec<TxnOutput>,
    next_append_id: u64,
    next_cleanup_ms: u64,
}

impl TxnCoordinator {
    /// A coordinator owning no partition yet; `state_partitions` is the
    /// partition count of `__transaction_state`, `offsets_partitions` that
    /// of `__consumer_offsets` (AddOffsetsToTxn adds a group's partition).
    pub fn new(config: TxnConfig, state_partitions: i32, offsets_partitions: i32) -> Self {
        Self {
            next_cleanup_ms: config.abort_timed_out_cleanup_interval_ms,
            config,
            state_partitions: state_partitions.max(1),
            offsets_partitions: offsets_partitions.max(1),
            owned: BTreeMap::new(),
            txns: BTreeMap::new(),
            appends: BTreeMap::new(),
            outputs: Vec::new(),
            next_append_id: 0,
        }
    }

    // ----- getters -----

    /// The settings.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for_transactional_id(transactional_id, self.state_partitions)
    }

    /// The durable metadata of `transactional_id` (what its last durable
    /// record says), if this coordinator serves it.
    pub fn transaction(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id).and_then(|t| t.meta.as_ref())
    }

    /// The state of `transactional_id` as DescribeTransactions shows it:
    /// PrepareEpochFence while a fencing abort is being written.
    pub fn visible_state(&self, transactional_id: &str) -> Option<TxnState> {
        let txn = self.txns.get(transactional_id)?;
        let meta = txn.meta.as_ref()?;
        if txn.pending.as_ref().is_some_and(|p| p.fencing) {
            return Some(TxnState::PrepareEpochFence);
        }
        Some(meta.state)
    }

    /// Every transactional id served here, with its metadata (ListTransactions).
    pub fn transactions(&self) -> impl Iterator<Item = (&str, &TxnMetadata)> {
        self.txns
            .iter()
            .filter(|(_, t)| self.owned.get(&t.partition).is_some_and(|o| o.loaded))
            .filter_map(|(id, t)| t.meta.as_ref().map(|m| (id.as_str(), m)))
    }

    /// Whether `partition` is loaded or loading here.
    pub fn owns(&self, partition: i32) -> bool {
        self.owned.contains_key(&partition)
    }

    /// The partitions loaded or loading here.
    pub fn owned_partitions(&self) -> Vec<i32> {
        self.owned.keys().copied().collect()
    }

    /// The coordinator epoch `partition` was loaded with.
    pub fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        self.owned.get(&partition).map(|o| o.coordinator_epoch)
    }

    /// Whether this coordinator serves `transactional_id` now.
    pub fn check_coordinator(&self, transactional_id: &str) -> Result<(), TxnError> {
        match self.owned.get(&self.partition_of(transactional_id)) {
            Some(Owned { loaded: true, .. }) => Ok(()),
            Some(Owned { loaded: false, .. }) => Err(TxnError::CoordinatorLoadInProgress),
            None => Err(TxnError::NotCoordinator),
        }
    }

    // ----- outputs -----

    /// Appends to make, answers to send and markers to write, in order.
    /// The driver carries them out in this order: an answer never
    /// precedes the append it depends on (answers come from
    /// [`Self::append_done`], after durability).
    pub fn take_outputs(&mut self) -> Vec<TxnOutput> {
        std::mem::take(&mut self.outputs)
    }

    // ----- ownership of `__transaction_state` partitions -----

    /// This broker now leads `partition` at leader epoch
    /// `coordinator_epoch`: its records are replayed with
    /// [`Self::load_record`], then [`Self::finish_load`].
    pub fn begin_load(&mut self, partition: i32, coordinator_epoch: i32) {
        self.unload(partition);
        self.owned.insert(partition, Owned { coordinator_epoch, loaded: false });
    }

    /// Replays one record of a partition being loaded (in log order; the
    /// last record of an id wins). The log is not checked against the
    /// transition rules: a record whose append was reported failed may
    /// still be in it, and the coordinator that wrote it acted on none
    /// but durable ones.
    pub fn load_record(&mut self, partition: i32, record: TxnRecord) {
        assert!(self.owned.get(&partition).is_some_and(|o| !o.loaded), "records are replayed only into a loading partition");
        let Some(value) = record.value else {
            self.txns.remove(&record.transactional_id);
            return;
        };
        let state = match value.state {
            TxnState::Dead => {
                self.txns.remove(&record.transactional_id);
                return;
            }
            // Never written by Kafka; an open transaction is what it was.
            TxnState::PrepareEpochFence => TxnState::Ongoing,
            state => state,
        };
        let meta = TxnMetadata {
            producer_id: value.producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: -1,
            timeout_ms: value.transaction_timeout_ms,
            state,
            partitions: value.partitions,
            start_timestamp_ms: value.start_timestamp_ms,
            last_update_timestamp_ms: value.last_update_timestamp_ms,
        };
        self.txns.insert(record.transactional_id, Txn { partition, meta: Some(meta), pending: None, resume: false });
    }

    /// The partition's records are replayed: its ids are served, and every
    /// transaction found prepared has its markers sent again (with this
    /// coordinator's epoch): the coordinator that decided may have died
    /// before writing them all.
    ///
    /// Not at once: the prepared record may be in the log's tail that was
    /// never durable (the new leader had it, no majority did), and markers
    /// sent for a record that a later failover loses would contradict the
    /// next coordinator's decision. So the record is written again first,
    /// and the markers follow once that append (hence everything before
    /// it) is durable; a failed rewrite is retried on the next tick.
    pub fn finish_load(&mut self, partition: i32, now_ms: u64) {
        let owned = self.owned.get_mut(&partition).expect("finish_load follows begin_load");
        owned.loaded = true;
        let _ = now_ms;
        for txn in self.txns.values_mut().filter(|t| t.partition == partition) {
            txn.resume = txn.meta.as_ref().is_some_and(|m| m.state.is_prepared());
        }
        self.resume_prepared();
    }

    /// Writes again the record of every loaded prepared transaction not
    /// yet resumed (see [`Self::finish_load`]).
    fn resume_prepared(&mut self) {
        let resuming: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| t.resume && t.pending.is_none() && self.owned.get(&t.partition).is_some_and(|o| o.loaded))
            .map(|(id, _)| id.clone())
            .collect();
        for id in resuming {
            crate::mark!("txn.coordinator.resumed_prepared");
            let current = self.transaction(&id).expect("a resumed transaction has metadata").clone();
            self.propose(&id, Some(current), None, false);
        }
    }

    /// This broker no longer leads `partition`: its ids are dropped and
    /// their waiting requests answered NOT_COORDINATOR (clients look the
    /// coordinator up again); appends still pending are forgotten.
    pub fn unload(&mut self, partition: i32) {
        if self.owned.remove(&partition).is_none() {
            return;
        }
        let ids: Vec<String> = self.txns.iter().filter(|(_, t)| t.partition == partition).map(|(id, _)| id.clone()).collect();
        for id in ids {
            let txn = self.txns.remove(&id).expect("listed");
            if let Some(pending) = txn.pending {
                self.appends.remove(&pending.append_id);
                if let Some((waiter, _)) = pending.reply {
                    self.outputs.push(TxnOutput::Answer { waiter, answer: Err(TxnError::NotCoordinator) });
                }
            }
        }
    }

    // ----- requests -----

    /// InitProducerId with a transactional id. `allocate` hands out a fresh
    /// producer id (for a new id, or when the epoch is exhausted).
    pub fn init_producer_id(
        &mut self,
        now_ms: u64,
        waiter: Waiter,
        request: InitProducerIdRequest,
        allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
    ) -> Reply {
        match self.prepare_init(now_ms, waiter, request, allocate) {
            Ok(reply) => reply,
            Err(error) => Reply::Now(Err(error)),
        }
    }

    fn prepare_init(
        &mut self,
        now_ms: u64,
        waiter: Waiter,
        request: InitProducerIdRequest,
        allocate: &mut dyn FnMut() -> Result<i64, TxnError>,
    ) -> Result<Reply, TxnError> {
        let id = request.transactional_id.as_str();
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        self.check_coordinator(id)?;
        if request.transaction_timeout_ms <= 0 || request.transaction_timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let now = now_ms as i64;
        let Some(txn) = self.txns.get(id) else {
            let producer_id = allocate()?;
            let meta = TxnMetadata {
                producer_id,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms: request.transaction_timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_timestamp_ms: -1,
                last_update_timestamp_ms: now,
            };
            self.txns.insert(id.to_string(), Txn { partition: self.partition_of(id), meta: None, pending: None, resume: false });
            self.propose(id, Some(meta), Some((waiter, Ok((producer_id, 0)))), false);
            return Ok(Reply::Later);
        };
        if txn.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        let meta = txn.meta.clone().expect("an id without a pending first record has metadata");
        // KIP-360: a producer naming its producer id must name the id's
        // (its epoch is checked below, as Kafka does).
        let given = (request.producer_id >= 0).then_some((request.producer_id, request.producer_epoch));
        if given.is_some_and(|(producer_id, _)| producer_id != meta.producer_id) {
            return Err(TxnError::ProducerFenced);
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence | TxnState::Dead => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence: abort the open transaction with a bumped epoch, so
                // its producer (now a zombie) can neither add to it nor end
                // it; the client retries until the abort is complete.
                let mut target = meta.clone();
                if self.config.fence_zombies && meta.producer_epoch < PRODUCER_EPOCH_EXHAUSTED {
                    target.producer_epoch = meta.producer_epoch + 1;
                }
                // As Kafka's fence: no retry of an earlier epoch is honoured.
                target.last_producer_epoch = -1;
                target.state = TxnState::PrepareAbort;
                target.timeout_ms = request.transaction_timeout_ms;
                target.last_update_timestamp_ms = now;
                crate::mark!("txn.coordinator.fence_ongoing");
                self.propose(id, Some(target), Some((waiter, Err(TxnError::ConcurrentTransactions))), true);
                Ok(Reply::Later)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                // KIP-360 with an epoch: the current one is bumped; the one
                // before the last bump is a retry of it (its answer was
                // lost), answered with the current epoch; any other is fenced.
                match given {
                    Some((_, epoch)) if epoch == meta.producer_epoch => {}
                    Some((_, epoch)) if epoch >= 0 && epoch == meta.last_producer_epoch => {
                        return Ok(Reply::Now(Ok((meta.producer_id, meta.producer_epoch))));
                    }
                    Some(_) => return Err(TxnError::ProducerFenced),
                    None => {}
                }
                let mut target = meta.clone();
                if !self.config.fence_zombies {
                    // The teaching knob: the previous instance keeps a valid epoch.
                } else if meta.producer_epoch >= PRODUCER_EPOCH_EXHAUSTED {
                    target.producer_id = allocate()?;
                    target.producer_epoch = 0;
                    target.last_producer_epoch = -1;
                } else {
                    // Kafka remembers the epoch before a bump only when the
                    // producer named it.
                    target.last_producer_epoch = if given.is_some() { meta.producer_epoch } else { -1 };
                    target.producer_epoch = meta.producer_epoch + 1;
                }
                target.state = TxnState::Empty;
                target.partitions.clear();
                target.start_timestamp_ms = -1;
                target.timeout_ms = request.transaction_timeout_ms;
                target.last_update_timestamp_ms = now;
                let answer = Ok((target.producer_id, target.producer_epoch));
                self.propose(id, Some(target), Some((waiter, answer)), false);
                Ok(Reply::Later)
            }
        }
    }

    /// The id's metadata if `producer_id`/`producer_epoch` hold it and no
    /// transition is pending (the checks of AddPartitionsToTxn and EndTxn,
    /// in Kafka's order).
    fn check_producer(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16) -> Result<&TxnMetadata, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        self.check_coordinator(transactional_id)?;
        let txn = self.txns.get(transactional_id).ok_or(TxnError::InvalidProducerIdMapping)?;
        let meta = txn.meta.as_ref().ok_or(TxnError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id || meta.state == TxnState::Dead {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if txn.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn: `partitions` join the producer's transaction
    /// (opening one if none is open), once the record is durable.
    pub fn add_partitions(
        &mut self,
        now_ms: u64,
        waiter: Waiter,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Reply {
        let meta = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(meta) => meta,
            Err(error) => return Reply::Now(Err(error)),
        };
        let answer = (meta.producer_id, meta.producer_epoch);
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => Reply::Now(Err(TxnError::ConcurrentTransactions)),
            TxnState::Dead => Reply::Now(Err(TxnError::InvalidProducerIdMapping)),
            _ if partitions.is_empty() => Reply::Now(Ok(answer)),
            TxnState::Ongoing if partitions.iter().all(|p| meta.partitions.contains(p)) => Reply::Now(Ok(answer)),
            TxnState::Ongoing | TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut target = meta.clone();
                if target.state != TxnState::Ongoing {
                    target.partitions.clear();
                    target.start_timestamp_ms = now_ms as i64;
                }
                target.state = TxnState::Ongoing;
                target.partitions.extend(partitions.iter().cloned());
                target.last_update_timestamp_ms = now_ms as i64;
                self.propose(transactional_id, Some(target), Some((waiter, Ok(answer))), false);
                Reply::Later
            }
        }
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
    /// transaction (TxnOffsetCommit then writes there).
    pub fn add_offsets(&mut self, now_ms: u64, waiter: Waiter, transactional_id: &str, producer_id: i64, producer_epoch: i16, group_id: &str) -> Reply {
        let partition = crate::group::partition_for_group(group_id, self.offsets_partitions);
        let offsets = (crate::server::OFFSETS_TOPIC.to_string(), partition);
        self.add_partitions(now_ms, waiter, transactional_id, producer_id, producer_epoch, &[offsets])
    }

    /// AddPartitionsToTxn v4+ with `verify_only` (KIP-890 part 1): whether
    /// each partition is in the producer's open transaction; a partition
    /// that is not gets INVALID_TXN_STATE. Changes nothing.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Result<(), TxnError>)>, TxnError> {
        let meta = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        let ongoing = meta.state == TxnState::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| (p.clone(), if ongoing && meta.partitions.contains(p) { Ok(()) } else { Err(TxnError::InvalidTxnState) }))
            .collect())
    }

    /// EndTxn: commit or abort the open transaction. Answered once the
    /// decision (PrepareCommit/PrepareAbort) is durable; markers follow.
    pub fn end_txn(&mut self, now_ms: u64, waiter: Waiter, transactional_id: &str, producer_id: i64, producer_epoch: i16, commit: bool) -> Reply {
        let meta = match self.check_producer(transactional_id, producer_id, producer_epoch) {
            Ok(meta) => meta,
            Err(error) => return Reply::Now(Err(error)),
        };
        let answer = (meta.producer_id, meta.producer_epoch);
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut target = meta.clone();
                target.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                target.last_update_timestamp_ms = now_ms as i64;
                self.propose(transactional_id, Some(target), Some((waiter, Ok(answer))), false);
                Reply::Later
            }
            // A retry of an EndTxn already carried out.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Reply::Now(Ok(answer)),
            // A retry while the markers are being written: retry again.
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Reply::Now(Err(TxnError::ConcurrentTransactions)),
            // The other decision, or nothing to end.
            _ => Reply::Now(Err(TxnError::InvalidTxnState)),
        }
    }

    // ----- what the driver reports -----

    /// The append `append_id` is durable (`Ok`), or failed (`Err`: the
    /// error the waiting request gets, NOT_COORDINATOR or
    /// COORDINATOR_NOT_AVAILABLE). A failed transition is dropped: the
    /// id keeps its durable state.
    pub fn append_done(&mut self, now_ms: u64, append_id: u64, result: Result<(), TxnError>) {
        let _ = now_ms;
        let Some(id) = self.appends.remove(&append_id) else { return };
        let txn = self.txns.get_mut(&id).expect("a pending append's id is known");
        let pending = txn.pending.take().expect("a pending append has its transition");
        assert_eq!(pending.append_id, append_id, "one transition pending per id");
        match result {
            Ok(()) => match pending.target {
                None => {
                    self.txns.remove(&id);
                }
                Some(target) => {
                    if txn.resume {
                        assert_eq!(Some(&target), txn.meta.as_ref(), "a rewrite changes nothing");
                        txn.resume = false;
                    } else {
                        check_transition(txn.meta.as_ref(), &target);
                    }
                    txn.meta = Some(target);
                    if txn.meta.as_ref().is_some_and(|m| m.state.is_prepared()) {
                        self.send_markers(&id);
                    }
                }
            },
            Err(error) => {
                crate::mark!("txn.coordinator.append_failed");
                match &txn.meta {
                    None => {
                        self.txns.remove(&id);
                    }
                    // A failed rewrite of a loaded prepared transaction:
                    // retried on the next tick.
                    Some(_) if txn.resume => {}
                    // A failed completion: the markers are written again
                    // (idempotent), and the completion retried after them.
                    Some(meta) if meta.state.is_prepared() => self.send_markers(&id),
                    Some(_) => {}
                }
                if let Some((waiter, _)) = pending.reply {
                    let error = if error == TxnError::NotCoordinator { error } else { TxnError::CoordinatorNotAvailable };
                    self.outputs.push(TxnOutput::Answer { waiter, answer: Err(error) });
                }
                return;
            }
        }
        if let Some((waiter, answer)) = pending.reply {
            self.outputs.push(TxnOutput::Answer { waiter, answer });
        }
    }

    /// Every partition of `markers` answered success: the transaction is
    /// complete once that record is durable. Stale reports (another
    /// coordinator epoch, another epoch, an id no longer prepared) are
    /// ignored.
    pub fn markers_written(&mut self, now_ms: u64, markers: &MarkerRequest) {
        let Some(txn) = self.txns.get(&markers.transactional_id) else { return };
        if self.owned.get(&txn.partition).map(|o| o.coordinator_epoch) != Some(markers.coordinator_epoch) || txn.pending.is_some() || txn.resume {
            return;
        }
        let Some(meta) = &txn.meta else { return };
        let expected = if markers.commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        if meta.state != expected || meta.producer_id != markers.producer_id || meta.producer_epoch != markers.producer_epoch {
            return;
        }
        let mut target = meta.clone();
        target.state = if markers.commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        target.partitions.clear();
        target.last_update_timestamp_ms = now_ms as i64;
        self.propose(&markers.transactional_id, Some(target), None, false);
    }

    /// Time passes: every `transaction.abort.timed.out.transaction.cleanup.interval.ms`,
    /// open transactions older than their timeout are aborted with a bumped
    /// epoch (their producer is fenced, as Kafka's
    /// `abortTimedOutTransactions`), and ids complete and unused for
    /// `transactional.id.expiration.ms` are removed (a tombstone).
    pub fn tick(&mut self, now_ms: u64) {
        self.resume_prepared();
        if now_ms < self.next_cleanup_ms {
            return;
        }
        self.next_cleanup_ms = now_ms.saturating_add(self.config.abort_timed_out_cleanup_interval_ms.max(1));
        let now = now_ms as i64;
        let mut aborts = Vec::new();
        let mut expired = Vec::new();
        for (id, txn) in &self.txns {
            if !self.owned.get(&txn.partition).is_some_and(|o| o.loaded) || txn.pending.is_some() || txn.resume {
                continue;
            }
            let Some(meta) = &txn.meta else { continue };
            if meta.state == TxnState::Ongoing && meta.start_timestamp_ms.saturating_add(i64::from(meta.timeout_ms)) <= now {
                aborts.push(id.clone());
            } else if meta.state.is_complete()
                && meta.last_update_timestamp_ms.saturating_add(i64::try_from(self.config.transactional_id_expiration_ms).unwrap_or(i64::MAX)) <= now
            {
                expired.push(id.clone());
            }
        }
        for id in aborts {
            let meta = self.transaction(&id).expect("listed").clone();
            let mut target = meta.clone();
            if meta.producer_epoch < PRODUCER_EPOCH_EXHAUSTED {
                target.producer_epoch = meta.producer_epoch + 1;
            }
            target.last_producer_epoch = -1;
            target.state = TxnState::PrepareAbort;
            target.last_update_timestamp_ms = now;
            tracing::info!(transactional_id = %id, producer_id = meta.producer_id, epoch = meta.producer_epoch, "transaction timed out: aborting it");
            crate::mark!("txn.coordinator.timed_out");
            self.propose(&id, Some(target), None, false);
        }
        for id in expired {
            crate::mark!("txn.coordinator.expired_id");
            self.propose(&id, None, None, false);
        }
    }

    // ----- internals -----

    /// Starts a transition: its record goes out to be appended; it takes
    /// effect in [`Self::append_done`].
    fn propose(&mut self, transactional_id: &str, target: Option<TxnMetadata>, reply: Option<(Waiter, Answer)>, fencing: bool) {
        let txn = self.txns.get_mut(transactional_id).expect("a transition of a known id");
        assert!(txn.pending.is_none(), "one transition at a time per id ({transactional_id})");
        if txn.resume {
            assert_eq!(target.as_ref(), txn.meta.as_ref(), "a resumed transaction's record is written again unchanged");
        } else if let Some(target) = &target {
            check_transition(txn.meta.as_ref(), target);
        } else {
            assert!(txn.meta.as_ref().is_some_and(|m| m.state.is_complete()), "only a complete id expires");
        }
        let append_id = self.next_append_id;
        self.next_append_id += 1;
        let record = TxnRecord { transactional_id: transactional_id.to_string(), value: target.as_ref().map(TxnValue::of) };
        txn.pending = Some(Pending { append_id, target, reply, fencing });
        self.appends.insert(append_id, transactional_id.to_string());
        self.outputs.push(TxnOutput::Append { partition: txn.partition, append_id, record });
    }

    fn send_markers(&mut self, transactional_id: &str) {
        let txn = &self.txns[transactional_id];
        let meta = txn.meta.as_ref().expect("markers of a known transaction");
        assert!(meta.state.is_prepared(), "markers are only sent from PrepareCommit or PrepareAbort, not {:?}", meta.state);
        assert!(!txn.resume, "markers of a loaded transaction only once its record is durable again");
        assert!(!meta.partitions.is_empty(), "a prepared transaction has partitions");
        let coordinator_epoch = self.owned.get(&txn.partition).expect("markers only from a served partition").coordinator_epoch;
        self.outputs.push(TxnOutput::SendMarkers(MarkerRequest {
            transactional_id: transactional_id.to_string(),
            producer_id: meta.producer_id,
            producer_epoch: meta.producer_epoch,
            coordinator_epoch,
            commit: meta.state == TxnState::PrepareCommit,
            partitions: meta.partitions.clone(),
        }));
    }
}

/// The rules every transition keeps (asserted before it is proposed and
/// again when it takes effect).
fn check_transition(current: Option<&TxnMetadata>, target: &TxnMetadata) {
    match target.state {
        TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort => {
            assert!(!target.partitions.is_empty(), "an open or prepared transaction has partitions");
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            assert!(target.partitions.is_empty(), "a complete transaction keeps no partitions");
        }
        TxnState::Dead | TxnState::PrepareEpochFence => panic!("{:?} is never written", target.state),
    }
    let Some(current) = current else {
        assert_eq!((target.state, target.producer_epoch), (TxnState::Empty, 0), "a new id starts Empty at epoch 0");
        return;
    };
    assert!(
        target.state.valid_previous().contains(&current.state),
        "no transition from {:?} to {:?}",
        current.state,
        target.state
    );
    if target.producer_id == current.producer_id {
        assert!(target.producer_epoch >= current.producer_epoch, "epochs never go back for producer id {}", target.producer_id);
    } else {
        assert!(
            target.state == TxnState::Empty && target.producer_epoch == 0 && current.state.is_complete(),
            "a new producer id only from InitProducerId, at epoch 0"
        );
    }
    if matches!(target.state, TxnState::CompleteCommit | TxnState::CompleteAbort) {
        assert_eq!(
            (target.producer_id, target.producer_epoch),
            (current.producer_id, current.producer_epoch),
            "a transaction completes with the epoch it was decided with"
        );
    }
    if current.state.is_prepared() {
        // The decision is final: a prepared commit completes as a commit.
        assert_eq!(
            target.state,
            if current.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort },
            "a decided transaction's decision never changes"
        );
    }
}
