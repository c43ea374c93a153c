//! The leader-epoch cache: which leader epoch wrote which offsets.
//!
//! A list of `(epoch, start_offset)` with both strictly increasing, as
//! Kafka's `LeaderEpochFileCache` (the `leader-epoch-checkpoint` file). It
//! answers OffsetForLeaderEpoch, which is how a follower finds where its log
//! stops agreeing with the leader's (KIP-101, KIP-279).

use super::types::{EpochEndOffset, LeaderEpoch, Offset, UNDEFINED_EPOCH};

/// One cache entry: `epoch` wrote the offsets from `start_offset` up to the
/// next entry's start (or the log end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

/// See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache from recovered entries; `None` if they are not strictly
    /// increasing in both epoch and start offset, or negative.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Option<Self> {
        let valid = entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0)
            && entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        valid.then_some(Self { entries })
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`).
    /// A no-op if it is already the latest entry with a start at or before
    /// `start_offset`. Otherwise entries that would break monotonicity (an
    /// epoch `>= epoch` or a start `>= start_offset`) are dropped first:
    /// they describe a suffix that was truncated away.
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) {
        assert!(epoch >= 0 && start_offset >= 0, "assign({epoch}, {start_offset})");
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && last.start_offset <= start_offset {
                return;
            }
        }
        self.entries.retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        self.check();
    }

    /// Where `requested_epoch` ends, given the log ends at `log_end_offset`,
    /// exactly as Kafka's `LeaderEpochFileCache.endOffsetFor`:
    ///
    /// - `UNDEFINED_EPOCH` asked, or nothing known at or above it: undefined.
    /// - the latest epoch asked: `(epoch, log_end_offset)`, since it is still
    ///   being written.
    /// - older than every entry: `(requested_epoch, first start offset)`; the
    ///   older data was deleted, start from what is there.
    /// - otherwise: the largest epoch `<= requested_epoch` and the start of
    ///   the first epoch after it.
    pub fn end_offset_for(&self, requested_epoch: LeaderEpoch, log_end_offset: Offset) -> EpochEndOffset {
        if requested_epoch == UNDEFINED_EPOCH {
            return EpochEndOffset::UNDEFINED;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return EpochEndOffset { epoch: requested_epoch, end_offset: log_end_offset };
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested_epoch) else {
            return EpochEndOffset::UNDEFINED;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested_epoch) {
            None => EpochEndOffset { epoch: requested_epoch, end_offset: higher.start_offset },
            Some(floor) => EpochEndOffset { epoch: floor.epoch, end_offset: higher.start_offset },
        }
    }

    /// The log was truncated to end at `end_offset`: drop the epochs that
    /// started at or after it.
    pub fn truncate_from_end(&mut self, end_offset: Offset) {
        self.entries.retain(|e| e.start_offset < end_offset);
    }

    /// The log start moved to `start_offset` (retention, DeleteRecords):
    /// drop epochs that lie wholly before it and move the start of the one
    /// containing it up to `start_offset`.
    pub fn truncate_from_start(&mut self, start_offset: Offset) {
        let removed_last = self.entries.iter().rev().find(|e| e.start_offset <= start_offset).copied();
        if let Some(last) = removed_last {
            self.entries.retain(|e| e.start_offset > start_offset);
            self.entries.insert(0, EpochEntry { epoch: last.epoch, start_offset });
        }
        self.check();
    }

    fn check(&self) {
        debug_assert!(
            self.entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset),
            "epoch cache not monotonic: {:?}",
            self.entries
        );
    }
}
