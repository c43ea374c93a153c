//! What the replication core knows about the local log: offsets and the
//! epoch cache, never the records themselves. Handed from a `LeaderState` to
//! a `FollowerState` and back as the role changes.

use super::epoch_cache::{EpochEntry, LeaderEpochCache};
use super::types::{BatchInfo, Offset, ReplicationError};

/// See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLog {
    log_start_offset: Offset,
    log_end_offset: Offset,
    high_watermark: Offset,
    epoch_cache: LeaderEpochCache,
}

impl Default for LocalLog {
    fn default() -> Self {
        Self::empty()
    }
}

impl LocalLog {
    /// A brand-new, empty log.
    pub fn empty() -> Self {
        Self { log_start_offset: 0, log_end_offset: 0, high_watermark: 0, epoch_cache: LeaderEpochCache::new() }
    }

    /// The state after a restart: what the segments hold, the checkpointed
    /// high watermark and epoch cache. Like Kafka's log recovery, the epoch
    /// cache is truncated to the recovered log end and the high watermark
    /// clamped into the log, so the driver may write the checkpoints lazily.
    pub fn recover(
        log_start_offset: Offset,
        log_end_offset: Offset,
        high_watermark_checkpoint: Offset,
        epoch_entries: Vec<EpochEntry>,
    ) -> Result<Self, ReplicationError> {
        if log_start_offset < 0 || log_end_offset < log_start_offset {
            return Err(ReplicationError::InvalidRecoveredState(format!(
                "log start {log_start_offset}, log end {log_end_offset}"
            )));
        }
        let mut epoch_cache = LeaderEpochCache::from_entries(epoch_entries)
            .ok_or_else(|| ReplicationError::InvalidRecoveredState("epoch cache not monotonic".into()))?;
        epoch_cache.truncate_from_end(log_end_offset);
        let high_watermark = high_watermark_checkpoint.clamp(log_start_offset, log_end_offset);
        Ok(Self { log_start_offset, log_end_offset, high_watermark, epoch_cache })
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }
    pub fn epoch_cache(&self) -> &LeaderEpochCache {
        &self.epoch_cache
    }

    pub(crate) fn epoch_cache_mut(&mut self) -> &mut LeaderEpochCache {
        &mut self.epoch_cache
    }

    /// Appends one batch, which must start at the log end.
    pub(crate) fn append(&mut self, batch: BatchInfo) {
        assert_eq!(batch.base_offset, self.log_end_offset, "non-contiguous append {batch:?}");
        assert!(batch.last_offset >= batch.base_offset, "empty batch {batch:?}");
        self.epoch_cache.assign(batch.leader_epoch, batch.base_offset);
        self.log_end_offset = batch.last_offset + 1;
        self.check();
    }

    /// Cuts the log so it ends at `offset` (no-op if already shorter).
    pub(crate) fn truncate_to(&mut self, offset: Offset) {
        assert!(offset >= self.log_start_offset, "truncate below log start: {offset} < {}", self.log_start_offset);
        if offset >= self.log_end_offset {
            // As Kafka: still drop epoch entries at the log end. A replica that
            // became leader and appended nothing left one there, and keeping
            // it would make it name that epoch in every fetch, forever.
            self.epoch_cache.truncate_from_end(self.log_end_offset);
            return;
        }
        self.log_end_offset = offset;
        self.epoch_cache.truncate_from_end(offset);
        self.high_watermark = self.high_watermark.min(offset);
        self.check();
    }

    /// Sets the high watermark; callers enforce their own monotonicity.
    pub(crate) fn set_high_watermark(&mut self, high_watermark: Offset) {
        self.high_watermark = high_watermark;
        self.check();
    }

    fn check(&self) {
        assert!(
            self.log_start_offset <= self.high_watermark && self.high_watermark <= self.log_end_offset,
            "log offsets out of order: start {} hw {} end {}",
            self.log_start_offset,
            self.high_watermark,
            self.log_end_offset
        );
        if let Some(last) = self.epoch_cache.entries().last() {
            assert!(last.start_offset <= self.log_end_offset, "epoch {last:?} starts past log end {}", self.log_end_offset);
        }
    }
}
