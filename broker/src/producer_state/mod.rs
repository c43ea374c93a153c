//! Sans-IO core of idempotent produce: per producer id, what the partition
//! has appended, so a retried batch is answered with its original offset
//! instead of being written twice, and a batch out of order is refused.
//!
//! # The contract
//!
//! One [`ProducerStateManager`] per partition replica. It never reads a disk
//! or a clock: the driver (`server/partition.rs`) hands it batch headers and
//! `now_ms`.
//!
//! - **Leader** (a producer's batch, `producer_id >= 0`): call
//!   [`ProducerStateManager::check_append`] first. [`AppendCheck::Append`]:
//!   append the batch to the log, then call
//!   [`ProducerStateManager::record_append`] with the offsets it got.
//!   [`AppendCheck::Duplicate`]: append nothing and answer success with the
//!   offsets of the original. An error: append nothing and answer the error
//!   ([`crate::error_codes`] maps each to Kafka's code).
//! - **Follower** (batches copied from the leader) and **recovery**:
//!   [`ProducerStateManager::apply_replicated`] for each batch in log order.
//!   It checks nothing (the leader did) and never refuses: the log is the
//!   truth. [`ProducerStateManager::rebuild`] is that fold over the batch
//!   headers of a whole log.
//! - **The state is a function of the log.** Rebuilding from the log's
//!   batches at or after the log start gives the state the live replica has
//!   (the property tests check it), so the driver may drop the state at any
//!   time (after a truncation, a storage error, compaction) and rebuild it.
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
//! 5. Same epoch: `first_seq` must follow the last batch's `last_seq`, else
//!    [`ProducerStateError::OutOfOrderSequence`] (a gap, or a retry older
//!    than the last five).
//!
//! Sequences wrap: after `i32::MAX` comes 0 ([`next_sequence`]), and a
//! batch's last sequence wraps the same way ([`last_sequence`]).
//!
//! # Invariants (asserted)
//!
//! Per producer id: at most [`BATCHES_RETAINED`] batches, oldest first,
//! offsets strictly increasing, sequences contiguous (each batch's
//! `first_seq` follows the previous `last_seq`), all of the entry's epoch;
//! while a producer is known, a leader's appends never lower its epoch
//! (once it expired, a leader takes it anew at any epoch, as Kafka does).
//!
//! # Not covered
//!
//! Transactions (control batches are skipped; no transactional state),
//! snapshots (recovery folds over every batch header of the log, so opening
//! a long log reads all its headers once), and the check on an
//! `InitProducerId` epoch bump of an existing id (a non-transactional
//! `InitProducerId` always gets a fresh id, as in Kafka).

use std::collections::{BTreeMap, VecDeque};

use crate::storage::BatchHeader;

/// A producer id, as Kafka spells it.
pub type ProducerId = i64;
/// A producer epoch.
pub type ProducerEpoch = i16;

/// `producerId` of a batch from a producer that is not idempotent.
pub const NO_PRODUCER_ID: ProducerId = -1;
/// Batches remembered per producer for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`).
pub const BATCHES_RETAINED: usize = 5;
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
        })
    }

    fn metadata(&self) -> BatchMetadata {
        BatchMetadata { first_seq: self.first_seq, last_seq: self.last_seq, base_offset: self.base_offset, last_offset: self.last_offset }
    }
}

/// What one producer id has appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: ProducerEpoch,
    /// The last batches of this epoch, oldest first, at most [`BATCHES_RETAINED`].
    batches: VecDeque<BatchMetadata>,
    /// `maxTimestamp` of the last batch.
    pub last_timestamp_ms: i64,
}

impl ProducerEntry {
    /// The remembered batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// The last sequence appended in this epoch.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().expect("an entry holds at least one batch").last_seq
    }

    fn starting_with(batch: &ProducerBatch) -> ProducerEntry {
        ProducerEntry { epoch: batch.producer_epoch, batches: VecDeque::from([batch.metadata()]), last_timestamp_ms: batch.max_timestamp_ms }
    }

    fn push(&mut self, batch: &ProducerBatch) {
        if self.batches.len() == BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.batches.push_back(batch.metadata());
        self.last_timestamp_ms = batch.max_timestamp_ms;
    }

    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<&BatchMetadata> {
        self.batches.iter().find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    }

    fn check_invariants(&self) {
        assert!(!self.batches.is_empty() && self.batches.len() <= BATCHES_RETAINED, "1..=5 batches per producer");
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
}

/// The producer state of one partition replica. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    config: ProducerStateConfig,
    producers: BTreeMap<ProducerId, ProducerEntry>,
    /// [`Self::tick`] scans again at or after this time.
    next_expiration_check_ms: u64,
}

impl ProducerStateManager {
    /// An empty state.
    pub fn new(config: ProducerStateConfig) -> Self {
        Self { config, producers: BTreeMap::new(), next_expiration_check_ms: 0 }
    }

    /// The state of a log: folds [`Self::apply_replicated`] over its batch
    /// headers in log order, skipping those wholly below `log_start_offset`.
    pub fn rebuild<'a>(config: ProducerStateConfig, headers: impl IntoIterator<Item = &'a BatchHeader>, log_start_offset: i64) -> Self {
        let mut state = Self::new(config);
        for header in headers {
            if header.last_offset() < log_start_offset {
                continue;
            }
            if let Some(batch) = ProducerBatch::from_header(header) {
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

    // ------------------------------------------------------------ inputs

    /// Decides what to do with a producer's batch before it is appended
    /// (see the rules in the module docs). Changes nothing.
    pub fn check_append(&self, producer_id: ProducerId, epoch: ProducerEpoch, first_seq: i32, last_seq: i32) -> Result<AppendCheck, ProducerStateError> {
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
            return if first_seq == 0 {
                Ok(AppendCheck::Append)
            } else {
                Err(ProducerStateError::OutOfOrderSequence { producer_id, epoch, first_seq, expected_seq: 0 })
            };
        }
        if let Some(original) = entry.find_duplicate(first_seq, last_seq) {
            return Ok(AppendCheck::Duplicate { base_offset: original.base_offset, last_offset: original.last_offset });
        }
        let expected_seq = next_sequence(entry.last_seq());
        if first_seq == expected_seq {
            Ok(AppendCheck::Append)
        } else {
            Err(ProducerStateError::OutOfOrderSequence { producer_id, epoch, first_seq, expected_seq })
        }
    }

    /// Records a batch the leader appended after [`Self::check_append`]
    /// answered [`AppendCheck::Append`] for it.
    pub fn record_append(&mut self, batch: &ProducerBatch) {
        assert_eq!(
            self.check_append(batch.producer_id, batch.producer_epoch, batch.first_seq, batch.last_seq),
            Ok(AppendCheck::Append),
            "record_append only after check_append said Append"
        );
        assert!(batch.base_offset <= batch.last_offset);
        match self.producers.get_mut(&batch.producer_id) {
            Some(entry) if entry.epoch == batch.producer_epoch => {
                assert!(entry.batches.back().is_some_and(|last| last.last_offset < batch.base_offset), "offsets increase");
                entry.push(batch);
            }
            Some(entry) => {
                assert!(entry.epoch < batch.producer_epoch, "a producer's epoch never goes back");
                *entry = ProducerEntry::starting_with(batch);
            }
            None => {
                self.producers.insert(batch.producer_id, ProducerEntry::starting_with(batch));
            }
        }
        self.producers[&batch.producer_id].check_invariants();
    }

    /// Records a batch as found in the log (a follower's append, or
    /// recovery): no checks, since the leader made them. Another epoch, or
    /// a sequence that does not follow, starts the producer's batches anew:
    /// compaction removes batches, and once a producer's state expired the
    /// leader took any epoch and sequence 0 from it again. (Kafka's
    /// replication path also takes an older epoch, with a warning.)
    pub fn apply_replicated(&mut self, batch: &ProducerBatch) {
        debug_assert!(batch.producer_id >= 0 && batch.base_offset <= batch.last_offset);
        match self.producers.get_mut(&batch.producer_id) {
            Some(entry) => {
                let last_offset = entry.batches.back().map_or(i64::MIN, |b| b.last_offset);
                if last_offset >= batch.base_offset {
                    // Offsets only grow in a log; the driver drops the state
                    // on truncation. Start over rather than keep a lie.
                    debug_assert!(false, "replicated batch at {} not after {last_offset}", batch.base_offset);
                    *entry = ProducerEntry::starting_with(batch);
                } else if entry.epoch == batch.producer_epoch && next_sequence(entry.last_seq()) == batch.first_seq {
                    entry.push(batch);
                } else {
                    *entry = ProducerEntry::starting_with(batch);
                }
            }
            None => {
                self.producers.insert(batch.producer_id, ProducerEntry::starting_with(batch));
            }
        }
        self.producers[&batch.producer_id].check_invariants();
    }

    /// The log start moved to `log_start_offset` (retention, DeleteRecords):
    /// forget batches wholly below it, and producers left with none.
    pub fn truncate_head(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, entry| {
            while entry.batches.front().is_some_and(|b| b.last_offset < log_start_offset) {
                entry.batches.pop_front();
            }
            !entry.batches.is_empty()
        });
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
        self.producers.retain(|_, entry| now - i128::from(entry.last_timestamp_ms) < expiration);
        before - self.producers.len()
    }
}

#[cfg(test)]
mod tests;
