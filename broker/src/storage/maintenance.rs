//! Retention, `delete_records`, follower truncation, leader epochs and
//! producer-state snapshots: everything that moves the ends of the log or
//! lives beside it.

use bytes::Bytes;

use super::checkpoint::{self, CheckpointKind, EpochEntry};
use super::error::{Result, StorageError};
use super::log::{PartitionLog, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE, SNAPSHOT_EXT};
use super::segment::{self, Segment, INDEX_EXT, TIME_INDEX_EXT};

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes freed.
    pub deleted_bytes: u64,
    /// Log start offset afterwards.
    pub log_start_offset: i64,
}

impl PartitionLog {
    fn write_log_start_checkpoint(&self) -> Result<()> {
        let bytes = checkpoint::encode(CheckpointKind::LogStartOffset, &self.log_start_offset.to_be_bytes());
        checkpoint::write_atomic(&*self.disk, &self.dir, LOG_START_OFFSET_FILE, &bytes)
    }

    /// Deletes sealed segments (never the active one) that are entirely
    /// below the log start offset, or, when `cleanup.policy` includes
    /// `delete`, whose newest record is older than `retention.ms`, or while
    /// the log is larger than `retention.bytes`. Oldest first; stops at the
    /// first segment that must stay. The log start offset advances to the
    /// first remaining segment (checkpointed before any file is removed).
    pub fn enforce_retention(&mut self) -> Result<RetentionOutcome> {
        let now = self.clock.now_ms();
        let deletes = self.config.cleanup_policy.deletes();
        let mut total = self.size_bytes();
        let mut doomed = Vec::new();
        let active_base = *self.segments.keys().next_back().expect("non-empty");
        for (base, seg) in &self.segments {
            if *base == active_base {
                break;
            }
            let below_start = seg.next_offset <= self.log_start_offset && self.segments.range(base + 1..).next().is_some_and(|(nb, _)| *nb <= self.log_start_offset);
            let by_time = deletes && self.config.retention_ms.is_some_and(|ms| seg.max_timestamp_ms < now.saturating_sub(ms));
            let by_size = deletes && self.config.retention_bytes.is_some_and(|limit| total.saturating_sub(seg.size_bytes) >= limit);
            if below_start || by_time || by_size {
                doomed.push(*base);
                total -= seg.size_bytes;
            } else {
                break;
            }
        }
        if doomed.is_empty() {
            return Ok(RetentionOutcome { log_start_offset: self.log_start_offset, ..Default::default() });
        }
        let last_doomed = *doomed.last().expect("non-empty");
        let next_base = *self.segments.range(last_doomed + 1..).next().expect("the active segment remains").0;
        let new_start = self.log_start_offset.max(next_base);
        debug_assert!(new_start >= self.log_start_offset, "log start only advances");
        let old_start = self.log_start_offset;
        self.log_start_offset = new_start;
        // Durable before any file goes (and before anyone sees the new start).
        if let Err(e) = self.write_log_start_checkpoint() {
            self.log_start_offset = old_start;
            return Err(e);
        }
        self.first_dirty_offset = self.first_dirty_offset.max(new_start);
        let mut deleted_bytes = 0;
        for base in &doomed {
            let seg = self.segments.remove(base).expect("listed above");
            deleted_bytes += seg.size_bytes;
            self.remove_segment_files(*base)?;
        }
        self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
        self.truncate_epochs_from_start(new_start)?;
        self.check_invariants();
        tracing::debug!(dir = ?self.dir, deleted = doomed.len(), log_start = new_start, "retention deleted segments");
        Ok(RetentionOutcome { deleted_segments: doomed.len(), deleted_bytes, log_start_offset: new_start })
    }

    /// Kafka DeleteRecords: advances the log start offset to `offset`
    /// (durably, before returning) and deletes segments entirely below it.
    /// Returns the new log start offset. `offset` past the log end is
    /// `OffsetOutOfRange`; an offset below the current start is a no-op.
    pub fn delete_records(&mut self, offset: i64) -> Result<i64> {
        if offset > self.log_end_offset || offset < 0 {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        let old = self.log_start_offset;
        self.log_start_offset = offset;
        if let Err(e) = self.write_log_start_checkpoint() {
            self.log_start_offset = old;
            return Err(e);
        }
        self.first_dirty_offset = self.first_dirty_offset.max(offset);
        self.enforce_retention_below_start()?;
        self.truncate_epochs_from_start(offset)?;
        Ok(self.log_start_offset)
    }

    fn enforce_retention_below_start(&mut self) -> Result<()> {
        let active_base = *self.segments.keys().next_back().expect("non-empty");
        let mut doomed = Vec::new();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for w in bases.windows(2) {
            if w[0] != active_base && w[1] <= self.log_start_offset {
                doomed.push(w[0]);
            } else {
                break;
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        for base in &doomed {
            self.segments.remove(base);
            self.remove_segment_files(*base)?;
        }
        self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
        self.check_invariants();
        Ok(())
    }

    /// Follower truncation: removes every batch whose last offset is >=
    /// `offset`, cutting at a batch boundary (so the new end may be below
    /// `offset` if it falls inside a batch). Later segments are removed
    /// (directory synced) before the containing segment is truncated and
    /// synced, so a crash never resurrects truncated data. Returns the new
    /// log end offset.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64> {
        if offset >= self.log_end_offset {
            return Ok(self.log_end_offset);
        }
        if offset < self.log_start_offset {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset });
        }
        let keep_base = *self.segments.range(..=offset).next_back().expect("offset >= log start >= first base").0;
        let later: Vec<i64> = self.segments.range(keep_base + 1..).map(|(b, _)| *b).collect();
        for b in &later {
            self.segments.remove(b);
            self.remove_segment_files(*b)?;
        }
        // The containing segment becomes the active one; its index files
        // are stale now.
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            let p = self.dir.join(segment::file_name(keep_base, ext));
            if self.disk.exists(&p) {
                self.disk.remove_file(&p).map_err(|e| StorageError::io("remove index", &p, e))?;
            }
        }
        self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
        let seg = self.segments.get(&keep_base).expect("present");
        let cut = match seg.find_batch(offset)? {
            Some((pos, _)) => pos,
            None => seg.size_bytes,
        };
        let path = seg.log_path();
        seg.file.set_len(cut).map_err(|e| StorageError::io("truncate", &path, e))?;
        seg.file.sync().map_err(|e| StorageError::io("sync", &path, e))?;
        // Rebuild the segment's in-memory state up to the cut.
        let file = seg.file.clone();
        let created_ms = seg.created_ms;
        let interval = self.config.index_interval_bytes;
        let mut fresh = Segment::new(keep_base, &self.dir, file.clone(), created_ms);
        let out = segment::scan(&*file, &path, 0, cut, keep_base, false, &mut |pos, h| fresh.record_batch(pos, h, interval))?;
        if out.problem.is_some() {
            return Err(StorageError::Corrupt { path, position: out.valid_end, reason: "segment does not parse up to the truncation point".into() });
        }
        self.segments.insert(keep_base, fresh);
        let last = self.segments.values().next_back().expect("non-empty");
        let new_end = last.next_offset.max(last.base_offset);
        debug_assert!(new_end <= offset.max(keep_base));
        self.log_end_offset = new_end;
        // The active segment was synced at the cut and later ones removed.
        self.recovery_point = new_end;
        self.first_dirty_offset = self.first_dirty_offset.min(new_end);
        self.truncate_epochs_from_end(new_end)?;
        self.remove_snapshots_after(new_end)?;
        self.check_invariants();
        Ok(new_end)
    }

    // ---------------------------------------------------------- leader epochs

    fn write_epochs(&self) -> Result<()> {
        checkpoint::write_atomic(&*self.disk, &self.dir, LEADER_EPOCH_FILE, &checkpoint::encode_epochs(&self.epochs))
    }

    /// Records that `epoch` starts at `start_offset` (the log end when a
    /// leader is elected, or a batch's base offset on a follower). Ignored
    /// (returns false) if `epoch` is not newer than the latest epoch.
    /// Entries at or after `start_offset` conflict and are removed first.
    /// Durable before returning.
    pub fn assign_epoch_start(&mut self, epoch: i32, start_offset: i64) -> Result<bool> {
        if self.epochs.last().is_some_and(|l| epoch <= l.epoch) {
            return Ok(false);
        }
        self.epochs.retain(|e| e.start_offset < start_offset);
        self.epochs.push(EpochEntry { epoch, start_offset });
        self.write_epochs()?;
        Ok(true)
    }

    /// The leader epoch entries, oldest first.
    pub fn leader_epochs(&self) -> &[EpochEntry] {
        &self.epochs
    }

    /// The latest leader epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.last().map(|e| e.epoch)
    }

    /// OffsetForLeaderEpoch: for the largest known epoch <= `epoch`, that
    /// epoch and its end offset (the next epoch's start, or the log end for
    /// the latest). `None` if `epoch` precedes every known epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let i = self.epochs.partition_point(|e| e.epoch <= epoch);
        if i == 0 {
            return None;
        }
        let found = self.epochs[i - 1];
        let end = self.epochs.get(i).map_or(self.log_end_offset, |n| n.start_offset);
        Some((found.epoch, end))
    }

    /// Removes epoch entries starting at or after `end_offset` (after a log
    /// truncation).
    pub fn truncate_epochs_from_end(&mut self, end_offset: i64) -> Result<()> {
        let before = self.epochs.len();
        self.epochs.retain(|e| e.start_offset < end_offset);
        if self.epochs.len() != before {
            self.write_epochs()?;
        }
        Ok(())
    }

    /// Drops epoch entries wholly before `start_offset`, moving the start of
    /// the one containing it up to `start_offset` (after retention).
    pub fn truncate_epochs_from_start(&mut self, start_offset: i64) -> Result<()> {
        let i = self.epochs.partition_point(|e| e.start_offset <= start_offset);
        if i == 0 {
            return Ok(());
        }
        let mut changed = i > 1;
        self.epochs.drain(..i - 1);
        if self.epochs[0].start_offset != start_offset {
            self.epochs[0].start_offset = start_offset;
            changed = true;
        }
        if changed {
            self.write_epochs()?;
        }
        Ok(())
    }

    // ------------------------------------------------------- producer state

    fn snapshot_offsets(&self) -> Result<Vec<i64>> {
        let names = self.disk.list_dir(&self.dir).map_err(|e| StorageError::io("list dir", &self.dir, e))?;
        Ok(names.iter().filter_map(|n| segment::parse_file_name(n, SNAPSHOT_EXT)).collect())
    }

    /// Saves an opaque producer-state snapshot taken at `offset` (atomically:
    /// temp file, fsync, rename, fsync dir) and deletes older snapshots.
    pub fn save_producer_snapshot(&mut self, offset: i64, state: &[u8]) -> Result<()> {
        let mut payload = Vec::with_capacity(8 + state.len());
        payload.extend_from_slice(&offset.to_be_bytes());
        payload.extend_from_slice(state);
        let name = segment::file_name(offset, SNAPSHOT_EXT);
        checkpoint::write_atomic(&*self.disk, &self.dir, &name, &checkpoint::encode(CheckpointKind::ProducerSnapshot, &payload))?;
        let older: Vec<i64> = self.snapshot_offsets()?.into_iter().filter(|o| *o < offset).collect();
        if !older.is_empty() {
            for o in older {
                let p = self.dir.join(segment::file_name(o, SNAPSHOT_EXT));
                self.disk.remove_file(&p).map_err(|e| StorageError::io("remove snapshot", &p, e))?;
            }
            self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
        }
        Ok(())
    }

    /// The newest valid producer snapshot at or below the log end:
    /// `(offset, state)`. A damaged snapshot is skipped with a warning (the
    /// state can be rebuilt from the log).
    pub fn load_producer_snapshot(&self) -> Result<Option<(i64, Bytes)>> {
        let mut offsets = self.snapshot_offsets()?;
        offsets.reverse();
        for o in offsets {
            if o > self.log_end_offset {
                continue;
            }
            let name = segment::file_name(o, SNAPSHOT_EXT);
            match checkpoint::read_checkpoint(&*self.disk, &self.dir, &name, CheckpointKind::ProducerSnapshot) {
                Ok(Some(p)) if p.len() >= 8 && i64::from_be_bytes(p[..8].try_into().expect("8")) == o => {
                    return Ok(Some((o, Bytes::copy_from_slice(&p[8..]))));
                }
                Ok(_) => tracing::warn!(snapshot = name, "producer snapshot does not match its name; skipping"),
                Err(e) => tracing::warn!(snapshot = name, error = %e, "damaged producer snapshot; skipping"),
            }
        }
        Ok(None)
    }

    pub(crate) fn remove_snapshots_after(&mut self, end_offset: i64) -> Result<()> {
        let later: Vec<i64> = self.snapshot_offsets()?.into_iter().filter(|o| *o > end_offset).collect();
        if later.is_empty() {
            return Ok(());
        }
        for o in later {
            let p = self.dir.join(segment::file_name(o, SNAPSHOT_EXT));
            self.disk.remove_file(&p).map_err(|e| StorageError::io("remove snapshot", &p, e))?;
        }
        self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))
    }

    /// Reads a segment's whole bytes (compaction and fixtures).
    pub(crate) fn read_segment_bytes(&self, base: i64) -> Result<Vec<u8>> {
        let seg = self.segments.get(&base).expect("caller passes a live base");
        let mut buf = vec![0u8; seg.size_bytes as usize];
        let path = seg.log_path();
        seg.file.read_exact_at(&mut buf, 0).map_err(|e| StorageError::io("read segment", &path, e))?;
        Ok(buf)
    }
}
