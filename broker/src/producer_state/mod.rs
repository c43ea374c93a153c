//! Sans-IO core of idempotent and transactional produce on a partition:
//! per producer id, what the partition has appended, so a retried batch is
//! answered with its original offset instead of being written twice, and a
//! batch out of order is refused; and per producer, its ongoing
//! transaction, so the partition knows its last stable offset and the
//! aborted transactions a `read_committed` consumer must skip (KIP-98).
//!
//! # The contract
//!
//! One [`ProducerStateManager`] per partition replica. It never reads a disk
//! or a clock: the driver (`server/partition.rs`) hands it batch headers and
//! `now_ms`.
//!
//! - **Leader, data** (a producer's batch, `producer_id >= 0`): call
//!   [`ProducerStateManager::check_append`] first. [`AppendCheck::Append`]:
//!   append the batch to the log, then call
//!   [`ProducerStateManager::record_append`] with the offsets it got.
//!   [`AppendCheck::Duplicate`]: append nothing and answer success with the
//!   offsets of the original. An error: append nothing and answer the error
//!   ([`crate::error_codes`] maps each to Kafka's code).
//! - **Leader, marker** (a control batch ending a transaction, written for
//!   the transaction coordinator): [`ProducerStateManager::check_marker`]
//!   first; if `Ok`, append the marker and call
//!   [`ProducerStateManager::record_marker`] with its offset.
//! - **Follower** (batches copied from the leader) and **recovery**:
//!   [`ProducerStateManager::apply_replicated`] for each data batch and
//!   [`ProducerStateManager::apply_replicated_marker`] for each marker, in
//!   log order. They check nothing (the leader did) and never refuse: the
//!   log is the truth. [`ProducerStateManager::rebuild`] is that fold over
//!   a whole log's batches ([`LoggedBatch`]: a header, and for a control
//!   batch its decoded marker).
//! - **Outputs**: [`ProducerStateManager::last_stable_offset`] (offsets
//!   below it are decided: no open transaction holds them) and
//!   [`ProducerStateManager::aborted_overlapping`] (the aborted
//!   transactions a read_committed fetch of a range reports). The aborted
//!   transactions are kept in memory, derived from the log like the rest of
//!   the state (Kafka keeps them in a `.txnindex` file per segment; here
//!   opening a partition folds its markers instead, so the list grows by
//!   one entry per abort until retention moves the log start past it).
//! - **The state is a function of the log.** Rebuilding from the log's
//!   batches at or after the log start gives the state the live replica has
//!   (the property tests check it), so the driver may drop the state at any
//!   time (after a truncation, a storage error, compaction) and rebuild it.
//!   (One exception: a log start moved into the middle of a transaction
//!   leaves the live state with the transaction's first offset below the
//!   log start, where a rebuild starts it at its first batch still in the
//!   log. The partition never reports a last stable offset below the log
//!   start either way.)
//!   When the log start moves forward (retention, DeleteRecords), call
//!   [`ProducerStateManager::truncate_head`]. Expiration ([`tick`]) uses the
//!   batches' own `maxTimestamp`, as Kafka's `lastTimestamp` does, so it too
//!   depends only on the log and `now_ms`.
//!
//! [`tick`]: ProducerStateManager::tick
//!
//! # Rules (Kafka's `ProducerStateManager` / `ProducerAppendInfo`)
//!
//! Checked in this order for a producer's batch `(pid, epoch, first_seq,
//! last_seq)`:
//!
//! 1. `epoch` below the producer's current epoch: [`ProducerStateError::InvalidProducerEpoch`]
//!    (KIP-588: a zombie of an older incarnation).
//! 2. Same epoch and `(first_seq, last_seq)` equal to one of the last
//!    [`BATCHES_RETAINED`] (5) batches: [`AppendCheck::Duplicate`] with that
//!    batch's offsets. Five is the most batches a producer has in flight
//!    per partition (`max.in.flight.requests.per.connection <= 5`).
//! 3. Unknown pid: `first_seq` must be 0, else
//!    [`ProducerStateError::UnknownProducerId`] (the producer's state
//!    expired or was deleted with the log; the client resets its id or
//!    bumps its epoch, KIP-360).
//! 4. A newer `epoch`: `first_seq` must be 0, else
//!    [`ProducerStateError::OutOfOrderSequence`].
//! 5. Same epoch: `first_seq` must follow the last batch's `last_seq` (or
//!    be 0 if the producer has no batch of this epoch: a marker bumped it),
//!    else [`ProducerStateError::OutOfOrderSequence`] (a gap, or a retry
//!    older than the last five).
//! 6. A batch without the transactional bit while the producer has a
//!    transaction open: [`ProducerStateError::InvalidTxnState`].
//!
//! A transactional batch (attribute bit 4) opens a transaction at its base
//! offset if its producer has none open. A newer epoch does not close an
//! open transaction (as in Kafka: the coordinator always ends a
//! transaction with a marker before it bumps the epoch, so only a marker
//! closes one). A marker `(pid, epoch, commit, coordinator_epoch)` is
//! checked as Kafka's `ProducerAppendInfo.appendEndTxnMarker` does:
//!
//! 1. `epoch` below the producer's current epoch: [`ProducerStateError::InvalidProducerEpoch`].
//! 2. `coordinator_epoch` below the last one seen for this producer:
//!    [`ProducerStateError::TransactionCoordinatorFenced`] (a coordinator
//!    that lost its transaction log partition).
//!
//! It then closes the producer's open transaction (if any), takes the
//! marker's epoch (a newer one forgets the batches of the old) and
//! coordinator epoch. An abort that closed a transaction records an
//! [`AbortedTxn`]: the transaction's first offset, the marker's offset as
//! last offset, and the last stable offset just after (the first offset of
//! another producer's open transaction, else the marker's offset + 1). A
//! marker with no open transaction changes no offsets a consumer sees.
//!
//! Forgetting: a producer whose last batch or marker is older (by batch
//! timestamps) than `producer.id.expiration.ms` and that has no open
//! transaction is forgotten by [`ProducerStateManager::tick`]; one that
//! appends again after such a silence starts over as a new producer even if
//! no scan ran in between, so the state stays a function of the log.
//!
//! Sequences wrap: after `i32::MAX` comes 0 ([`next_sequence`]), and a
//! batch's last sequence wraps the same way ([`last_sequence`]).
//!
//! # Invariants (asserted)
//!
//! Per producer id: at most [`BATCHES_RETAINED`] batches (none after a
//! marker started a new epoch), oldest first,
//! offsets strictly increasing, sequences contiguous (each batch's
//! `first_seq` follows the previous `last_seq`), all of the entry's epoch;
//! while a producer is known, a leader's appends never lower its epoch
//! (once it expired, a leader takes it anew at any epoch, as Kafka does);
//! an open transaction starts at or before the producer's last offset;
//! aborted transactions are kept in marker order.
//!
//! # Not covered
//!
//! The `.txnindex` files (see above), transaction timeouts (the
//! coordinator's), KIP-890 verification of a transactional batch against
//! the coordinator, snapshots (recovery folds over every batch header of
//! the log, so opening a long log reads all its headers once), and the
//! check on an
//! `InitProducerId` epoch bump of an existing id (a non-transactional
//! `InitProducerId` always gets a fresh id, as in Kafka).

use std::collections::{BTreeMap, VecDeque};

use crate::storage::{BatchHeader, ControlMarker};

/// A producer id, as Kafka spells it.
pub type ProducerId = i64;
/// A producer epoch.
pub type ProducerEpoch = i16;

/// `producerId` of a batch from a producer that is not idempotent.
pub const NO_PRODUCER_ID: ProducerId = -1;
/// Batches remembered per producer for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`).
pub const BATCHES_RETAINED: usize = 5;
/// Coordinator epoch of a producer no marker has been seen for.
pub const NO_COORDINATOR_EPOCH: i32 = -1;
/// Kafka's default `producer.id.expiration.ms` (one day).
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: u64 = 86_400_000;
/// Kafka's default `producer.id.expiration.check.interval.ms` (ten minutes).
pub const DEFAULT_EXPIRATION_CHECK_INTERVAL_MS: u64 = 600_000;

/// Knobs of the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStateConfig {
    /// A producer whose last batch's timestamp is this much older than now
    /// is forgotten (`producer.id.expiration.ms`).
    pub producer_id_expiration_ms: u64,
    /// [`ProducerStateManager::tick`] scans for expired producers at most
    /// this often.
    pub expiration_check_interval_ms: u64,
}

impl Default for ProducerStateConfig {
    fn default() -> Self {
        Self {
            producer_id_expiration_ms: DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            expiration_check_interval_ms: DEFAULT_EXPIRATION_CHECK_INTERVAL_MS,
        }
    }
}

/// The sequence after `seq` (Kafka wraps `i32::MAX` to 0).
pub fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch starting at `first_seq` with
/// `last_offset_delta` more records (Kafka's `incrementSequence`).
pub fn last_sequence(first_seq: i32, last_offset_delta: i32) -> i32 {
    debug_assert!(first_seq >= 0 && last_offset_delta >= 0);
    if first_seq > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - first_seq) - 1
    } else {
        first_seq + last_offset_delta
    }
}

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// A producer's batch as the state needs it: identity, sequences, offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's `maxTimestamp`: when the producer was last active.
    pub max_timestamp_ms: i64,
    /// Attribute bit 4: the batch belongs to a transaction.
    pub transactional: bool,
}

impl ProducerBatch {
    /// The idempotent-producer view of a stored batch header: `None` for a
    /// batch without a producer id, a control batch, or one whose epoch or
    /// sequence is negative (none of which a leader here appends as
    /// idempotent).
    pub fn from_header(header: &BatchHeader) -> Option<ProducerBatch> {
        if header.producer_id < 0 || header.is_control() || header.producer_epoch < 0 || header.base_sequence < 0 || header.last_offset_delta < 0 {
            return None;
        }
        Some(ProducerBatch {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            first_seq: header.base_sequence,
            last_seq: last_sequence(header.base_sequence, header.last_offset_delta),
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp_ms: header.max_timestamp,
            transactional: header.is_transactional(),
        })
    }

    fn metadata(&self) -> BatchMetadata {
        BatchMetadata { first_seq: self.first_seq, last_seq: self.last_seq, base_offset: self.base_offset, last_offset: self.last_offset }
    }
}

/// An end-transaction marker as the state needs it: whose, which outcome,
/// from which coordinator, at which offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub commit: bool,
    pub coordinator_epoch: i32,
    /// The marker's offset in the log.
    pub offset: i64,
    /// The control batch's `maxTimestamp`.
    pub timestamp_ms: i64,
}

impl TxnMarker {
    /// The marker of a stored control batch, from its header and decoded
    /// record; `None` if the header names no producer.
    pub fn from_header(header: &BatchHeader, marker: ControlMarker) -> Option<TxnMarker> {
        if header.producer_id < 0 || header.producer_epoch < 0 || !header.is_control() {
            return None;
        }
        Some(TxnMarker {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            commit: marker.commit,
            coordinator_epoch: marker.coordinator_epoch,
            offset: header.base_offset,
            timestamp_ms: header.max_timestamp,
        })
    }
}

/// One batch of a log, for [`ProducerStateManager::rebuild`]: its header
/// and, for a control batch, its decoded marker (`None` if it did not
/// decode; such a batch is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedBatch {
    pub header: BatchHeader,
    pub marker: Option<ControlMarker>,
}

/// A transaction a marker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: ProducerId,
    /// Its first batch's base offset.
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub commit: bool,
}

/// An aborted transaction, as Kafka's `.txnindex` entry holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: ProducerId,
    /// Its first batch's base offset.
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
    /// The partition's last stable offset right after the marker.
    pub last_stable_offset: i64,
}

/// What one producer id has appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: ProducerEpoch,
    /// The last batches of this epoch, oldest first, at most [`BATCHES_RETAINED`].
    batches: VecDeque<BatchMetadata>,
    /// `maxTimestamp` of the last batch or marker.
    pub last_timestamp_ms: i64,
    /// Base offset of the first batch of its open transaction.
    pub current_txn_first_offset: Option<i64>,
    /// Coordinator epoch of its last marker ([`NO_COORDINATOR_EPOCH`] if none).
    pub coordinator_epoch: i32,
    /// Offset of the marker that set `coordinator_epoch` (-1 if none).
    coordinator_epoch_offset: i64,
    /// Last offset of its last batch or marker.
    pub last_offset: i64,
}

impl ProducerEntry {
    /// The remembered batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// The last sequence appended in this epoch (`None` if a marker started
    /// the epoch and no batch followed).
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// The sequence the next batch of this epoch must start with.
    fn expected_seq(&self) -> i32 {
        self.last_seq().map_or(0, next_sequence)
    }

    fn empty(epoch: ProducerEpoch) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            last_timestamp_ms: i64::MIN,
            current_txn_first_offset: None,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            coordinator_epoch_offset: -1,
            last_offset: -1,
        }
    }

    /// Silent for the expiration time (by timestamps) with no open
    /// transaction: the producer may have been forgotten by a scan, so it
    /// is forgotten here too, whether or not the scan ran.
    fn silent_since(&self, timestamp_ms: i64, expiration_ms: u64) -> bool {
        self.current_txn_first_offset.is_none() && i128::from(timestamp_ms) - i128::from(self.last_timestamp_ms) >= i128::from(expiration_ms)
    }

    /// A batch of another epoch, or one whose sequence does not follow:
    /// the batches start over (the transaction and coordinator epoch stay).
    fn restart_batches(&mut self, batch: &ProducerBatch) {
        self.epoch = batch.producer_epoch;
        self.batches.clear();
        self.push(batch);
    }

    fn push(&mut self, batch: &ProducerBatch) {
        if self.batches.len() == BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.batches.push_back(batch.metadata());
        self.last_timestamp_ms = batch.max_timestamp_ms;
        self.last_offset = batch.last_offset;
        if batch.transactional && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(batch.base_offset);
        }
    }

    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<&BatchMetadata> {
        self.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    }

    fn check_invariants(&self) {
        assert!(self.batches.len() <= BATCHES_RETAINED, "at most 5 batches per producer");
        assert!(self.batches.back().is_none_or(|b| b.last_offset <= self.last_offset), "the last offset covers the batches");
        assert!(self.current_txn_first_offset.is_none_or(|first| first <= self.last_offset), "an open transaction starts at or before the last offset");
        assert!(self.coordinator_epoch_offset <= self.last_offset);
        for (older, newer) in self.batches.iter().zip(self.batches.iter().skip(1)) {
            assert!(older.last_offset < newer.base_offset, "a producer's offsets increase");
            assert_eq!(next_sequence(older.last_seq), newer.first_seq, "a producer's sequences are contiguous");
        }
        for b in &self.batches {
            assert!(b.base_offset <= b.last_offset && b.first_seq >= 0 && b.last_seq >= 0);
        }
    }
}

/// A new batch is fine to append, or is a retry of one already appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendCheck {
    /// In order: append it, then [`ProducerStateManager::record_append`].
    Append,
    /// A retry of a batch among the last five: do not append; answer with
    /// the original's offsets.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// Why a producer's batch is refused. Mapped to Kafka codes in
/// [`crate::error_codes`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    /// The sequence does not follow the last one appended (a gap, a retry
    /// older than the last five, or a new epoch not starting at 0).
    #[error("producer {producer_id} epoch {epoch}: sequence {first_seq} out of order (expected {expected_seq})")]
    OutOfOrderSequence { producer_id: ProducerId, epoch: ProducerEpoch, first_seq: i32, expected_seq: i32 },
    /// The batch's epoch is older than the producer's current one.
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current_epoch}")]
    InvalidProducerEpoch { producer_id: ProducerId, epoch: ProducerEpoch, current_epoch: ProducerEpoch },
    /// No state for this producer and the batch does not start a sequence.
    #[error("no state for producer {producer_id} and its batch starts at sequence {first_seq}, not 0")]
    UnknownProducerId { producer_id: ProducerId, first_seq: i32 },
    /// The batch carries a producer id but a negative epoch or sequence, or
    /// it shares its record set with other batches.
    #[error("invalid idempotent batch: {0}")]
    InvalidBatch(String),
    /// A batch without the transactional bit from a producer whose
    /// transaction is open.
    #[error("producer {producer_id} has a transaction open since offset {first_offset}; its batch is not transactional")]
    InvalidTxnState { producer_id: ProducerId, first_offset: i64 },
    /// A marker from a coordinator older than the last one seen for this
    /// producer.
    #[error("producer {producer_id}: coordinator epoch {coordinator_epoch} is older than the last seen {current_coordinator_epoch}")]
    TransactionCoordinatorFenced { producer_id: ProducerId, coordinator_epoch: i32, current_coordinator_epoch: i32 },
}

/// The producer state of one partition replica. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    config: ProducerStateConfig,
    producers: BTreeMap<ProducerId, ProducerEntry>,
    /// Aborted transactions at or after the log start, in marker order.
    aborted: VecDeque<AbortedTxn>,
    /// [`Self::tick`] scans again at or after this time.
    next_expiration_check_ms: u64,
}

impl ProducerStateManager {
    /// An empty state.
    pub fn new(config: ProducerStateConfig) -> Self {
        Self { config, producers: BTreeMap::new(), aborted: VecDeque::new(), next_expiration_check_ms: 0 }
    }

    /// The state of a log: folds [`Self::apply_replicated`] and
    /// [`Self::apply_replicated_marker`] over its batches in log order,
    /// skipping those wholly below `log_start_offset`.
    pub fn rebuild<'a>(config: ProducerStateConfig, batches: impl IntoIterator<Item = &'a LoggedBatch>, log_start_offset: i64) -> Self {
        let mut state = Self::new(config);
        for logged in batches {
            let header = &logged.header;
            if header.last_offset() < log_start_offset {
                continue;
            }
            if header.is_control() {
                if let Some(marker) = logged.marker.and_then(|m| TxnMarker::from_header(header, m)) {
                    state.apply_replicated_marker(&marker);
                }
            } else if let Some(batch) = ProducerBatch::from_header(header) {
                state.apply_replicated(&batch);
            }
        }
        state
    }

    // ------------------------------------------------------------ getters

    /// The state of one producer.
    pub fn entry(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer's state, by id (for tests and comparisons).
    pub fn producers(&self) -> &BTreeMap<ProducerId, ProducerEntry> {
        &self.producers
    }

    /// The settings.
    pub fn config(&self) -> ProducerStateConfig {
        self.config
    }

    /// The smallest first offset of an open transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.values().filter_map(|e| e.current_txn_first_offset).min()
    }

    /// Offsets below this are decided (Kafka's last stable offset): the
    /// first unstable offset, but never above the high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset().map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Every aborted transaction remembered, in marker order.
    pub fn aborted(&self) -> impl Iterator<Item = &AbortedTxn> {
        self.aborted.iter()
    }

    /// The aborted transactions a fetch of `[fetch_offset, upper_offset)`
    /// reports (Kafka's rule: the transaction ends at or after the fetch
    /// offset and starts before the end of the data returned).
    pub fn aborted_overlapping(&self, fetch_offset: i64, upper_offset: i64) -> Vec<AbortedTxn> {
        // Marker order is last-offset order: skip those ending before.
        let from = self.aborted.partition_point(|a| a.last_offset < fetch_offset);
        self.aborted.iter().skip(from).filter(|a| a.first_offset < upper_offset).copied().collect()
    }

    // ------------------------------------------------------------ inputs

    /// Decides what to do with a producer's batch before it is appended
    /// (see the rules in the module docs). Changes nothing.
    pub fn check_append(
        &self,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        first_seq: i32,
        last_seq: i32,
        transactional: bool,
    ) -> Result<AppendCheck, ProducerStateError> {
        if producer_id < 0 || epoch < 0 || first_seq < 0 || last_seq < 0 {
            return Err(ProducerStateError::InvalidBatch(format!(
                "producer id {producer_id}, epoch {epoch}, sequences {first_seq}..={last_seq} must not be negative"
            )));
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return if first_seq == 0 { Ok(AppendCheck::Append) } else { Err(ProducerStateError::UnknownProducerId { producer_id, first_seq }) };
        };
        if epoch < entry.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch { producer_id, epoch, current_epoch: entry.epoch });
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(ProducerStateError::OutOfOrderSequence { producer_id, epoch, first_seq, expected_seq: 0 });
            }
        } else {
            if let Some(original) = entry.find_duplicate(first_seq, last_seq) {
                return Ok(AppendCheck::Duplicate { base_offset: original.base_offset, last_offset: original.last_offset });
            }
            let expected_seq = entry.expected_seq();
            if first_seq != expected_seq {
                return Err(ProducerStateError::OutOfOrderSequence { producer_id, epoch, first_seq, expected_seq });
            }
        }
        match entry.current_txn_first_offset {
            Some(first_offset) if !transactional => Err(ProducerStateError::InvalidTxnState { producer_id, first_offset }),
            _ => Ok(AppendCheck::Append),
        }
    }

    /// Decides whether a marker may be appended for the transaction
    /// coordinator (see the rules in the module docs). Changes nothing.
    pub fn check_marker(&self, producer_id: ProducerId, epoch: ProducerEpoch, coordinator_epoch: i32) -> Result<(), ProducerStateError> {
        if producer_id < 0 || epoch < 0 {
            return Err(ProducerStateError::InvalidBatch(format!("marker of producer id {producer_id}, epoch {epoch}: must not be negative")));
        }
        let Some(entry) = self.producers.get(&producer_id) else { return Ok(()) };
        if epoch < entry.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch { producer_id, epoch, current_epoch: entry.epoch });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ProducerStateError::TransactionCoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current_coordinator_epoch: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a batch the leader appended after [`Self::check_append`]
    /// answered [`AppendCheck::Append`] for it.
    pub fn record_append(&mut self, batch: &ProducerBatch) {
        assert_eq!(
            self.check_append(batch.producer_id, batch.producer_epoch, batch.first_seq, batch.last_seq, batch.transactional),
            Ok(AppendCheck::Append),
            "record_append only after check_append said Append"
        );
        assert!(batch.base_offset <= batch.last_offset);
        let entry = self.entry_for(batch.producer_id, batch.producer_epoch, batch.max_timestamp_ms);
        assert!(entry.last_offset < batch.base_offset, "offsets increase");
        if entry.epoch == batch.producer_epoch {
            entry.push(batch);
        } else {
            assert!(entry.epoch < batch.producer_epoch, "a producer's epoch never goes back");
            entry.restart_batches(batch);
        }
        self.producers[&batch.producer_id].check_invariants();
    }

    /// Records a marker the leader appended after [`Self::check_marker`]
    /// accepted it; returns the transaction it ended, if one was open.
    pub fn record_marker(&mut self, marker: &TxnMarker) -> Option<CompletedTxn> {
        assert_eq!(
            self.check_marker(marker.producer_id, marker.producer_epoch, marker.coordinator_epoch),
            Ok(()),
            "record_marker only after check_marker accepted it"
        );
        self.apply_marker(marker)
    }

    /// Records a marker as found in the log (a follower's append, or
    /// recovery): no checks. Returns the transaction it ended, if any.
    pub fn apply_replicated_marker(&mut self, marker: &TxnMarker) -> Option<CompletedTxn> {
        self.apply_marker(marker)
    }

    /// The entry of `producer_id`, a new one of `epoch` if it has none or
    /// was silent for the expiration time.
    fn entry_for(&mut self, producer_id: ProducerId, epoch: ProducerEpoch, timestamp_ms: i64) -> &mut ProducerEntry {
        let expiration_ms = self.config.producer_id_expiration_ms;
        let entry = self.producers.entry(producer_id).or_insert_with(|| ProducerEntry::empty(epoch));
        if entry.silent_since(timestamp_ms, expiration_ms) {
            let last_offset = entry.last_offset;
            *entry = ProducerEntry { last_offset, ..ProducerEntry::empty(epoch) };
        }
        entry
    }

    fn apply_marker(&mut self, marker: &TxnMarker) -> Option<CompletedTxn> {
        debug_assert!(marker.producer_id >= 0 && marker.producer_epoch >= 0);
        let entry = self.entry_for(marker.producer_id, marker.producer_epoch, marker.timestamp_ms);
        debug_assert!(entry.last_offset < marker.offset, "a marker follows its producer's batches");
        let completed = entry.current_txn_first_offset.take().map(|first_offset| CompletedTxn {
            producer_id: marker.producer_id,
            first_offset,
            last_offset: marker.offset,
            commit: marker.commit,
        });
        if entry.epoch != marker.producer_epoch {
            entry.epoch = marker.producer_epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.coordinator_epoch_offset = marker.offset;
        entry.last_timestamp_ms = marker.timestamp_ms;
        entry.last_offset = entry.last_offset.max(marker.offset);
        entry.check_invariants();
        if let Some(txn) = completed.filter(|txn| !txn.commit) {
            let last_stable_offset = self.first_unstable_offset().unwrap_or(marker.offset + 1);
            assert!(self.aborted.back().is_none_or(|a| a.last_offset < txn.last_offset), "aborts are kept in marker order");
            self.aborted.push_back(AbortedTxn { producer_id: txn.producer_id, first_offset: txn.first_offset, last_offset: txn.last_offset, last_stable_offset });
        }
        completed
    }

    /// Records a batch as found in the log (a follower's append, or
    /// recovery): no checks, since the leader made them. Another epoch, or
    /// a sequence that does not follow, starts the producer's batches anew:
    /// compaction removes batches, and once a producer's state expired the
    /// leader took any epoch and sequence 0 from it again. (Kafka's
    /// replication path also takes an older epoch, with a warning.)
    pub fn apply_replicated(&mut self, batch: &ProducerBatch) {
        debug_assert!(batch.producer_id >= 0 && batch.base_offset <= batch.last_offset);
        let entry = self.entry_for(batch.producer_id, batch.producer_epoch, batch.max_timestamp_ms);
        if entry.last_offset >= batch.base_offset {
            // Offsets only grow in a log; the driver drops the state on
            // truncation. Start over rather than keep a lie.
            debug_assert!(false, "replicated batch at {} not after {}", batch.base_offset, entry.last_offset);
            *entry = ProducerEntry::empty(batch.producer_epoch);
            entry.push(batch);
        } else if entry.epoch == batch.producer_epoch && entry.expected_seq() == batch.first_seq {
            entry.push(batch);
        } else {
            entry.restart_batches(batch);
        }
        self.producers[&batch.producer_id].check_invariants();
    }

    /// The log start moved to `log_start_offset` (retention, DeleteRecords):
    /// forget batches wholly below it, producers whose last batch or marker
    /// is below it (with their open transaction), coordinator epochs set by
    /// markers below it, and aborted transactions ended below it.
    pub fn truncate_head(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, entry| {
            while entry.batches.front().is_some_and(|b| b.last_offset < log_start_offset) {
                entry.batches.pop_front();
            }
            if entry.coordinator_epoch_offset < log_start_offset {
                entry.coordinator_epoch = NO_COORDINATOR_EPOCH;
                entry.coordinator_epoch_offset = -1;
            }
            entry.last_offset >= log_start_offset
        });
        while self.aborted.front().is_some_and(|a| a.last_offset < log_start_offset) {
            self.aborted.pop_front();
        }
    }

    /// Forgets producers idle for `producer.id.expiration.ms` (their last
    /// batch's timestamp is that much older than `now_ms`). Scans at most
    /// every `expiration_check_interval_ms`. Returns how many it forgot.
    pub fn tick(&mut self, now_ms: u64) -> usize {
        if now_ms < self.next_expiration_check_ms {
            return 0;
        }
        self.next_expiration_check_ms = now_ms.saturating_add(self.config.expiration_check_interval_ms);
        let before = self.producers.len();
        let now = i128::from(now_ms);
        let expiration = i128::from(self.config.producer_id_expiration_ms);
        // A producer in a transaction is kept until a marker ends it (its
        // transaction holds back the last stable offset until then).
        self.producers.retain(|_, entry| entry.current_txn_first_offset.is_some() || now - i128::from(entry.last_timestamp_ms) < expiration);
        before - self.producers.len()
    }
}

#[cfg(test)]
mod tests;
