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
        self.ensure_online()?;
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
        crate::mark!("storage.retention.delete_segment");
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
        self.ensure_online()?;
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
    /// synced, so a crash never resurrects truncated data past the cut of
    /// a truncation that returned `Ok`. After a failed truncation appends
    /// fail with [`StorageError::Offline`] until a truncation succeeds or
    /// the log is reopened (a crash may bring truncated data back). If the cut would fall below the log
    /// start offset, the log is emptied and restarted at `offset`
    /// ([`PartitionLog::truncate_fully_and_start_at`]). Returns the new log
    /// end offset. If a disk error interrupts it, the in-memory state is
    /// reloaded from the disk before the error is returned.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64> {
        self.ensure_online()?;
        self.finish_interrupted_truncation()?;
        if offset >= self.log_end_offset {
            return Ok(self.log_end_offset);
        }
        if offset < self.log_start_offset {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset });
        }
        crate::mark!("storage.truncate");
        let keep_base = *self.segments.range(..=offset).next_back().expect("offset >= log start >= first base").0;
        let seg = self.segments.get(&keep_base).expect("present");
        let (cut, cut_offset) = match seg.find_batch(offset)? {
            Some((pos, h)) => (pos, h.base_offset),
            None => (seg.size_bytes, seg.next_offset),
        };
        if cut_offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(self.log_end_offset);
        }
        // Offsets in [cut_offset, offset) are gone if the cut falls inside a
        // batch; if `offset` falls in a compaction gap, the end is `offset`.
        let new_end = offset.min(cut_offset);
        match self.truncate_at(keep_base, cut, new_end) {
            Ok(end) => {
                self.truncation_interrupted = false;
                Ok(end)
            }
            Err(e) => {
                self.reload_after_failure(&e);
                // Appending now could interleave new batches with data a
                // crash may resurrect; refuse writes until a truncation
                // completes or the log is reopened.
                self.truncation_interrupted = true;
                Err(e)
            }
        }
    }

    fn truncate_at(&mut self, keep_base: i64, cut: u64, new_end: i64) -> Result<i64> {
        let later: Vec<i64> = self.segments.range(keep_base + 1..).map(|(b, _)| *b).collect();
        for b in &later {
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
        debug_assert!(fresh.next_offset <= new_end, "kept batches end at or before the new end");
        for b in &later {
            self.segments.remove(b);
        }
        let gap = fresh.next_offset < new_end;
        let kept_empty = fresh.is_empty();
        self.segments.insert(keep_base, fresh);
        if gap {
            // The end lies past the last kept batch (a compaction gap). Make
            // that durable through the file names: seal the kept segment
            // with its extent in its index (or drop it if empty) and start
            // an empty segment at the new end.
            if kept_empty && self.segments.len() > 1 {
                self.segments.remove(&keep_base);
                self.remove_segment_files(keep_base)?;
            } else {
                let disk = self.disk.clone();
                let seg = self.segments.get_mut(&keep_base).expect("present");
                seg.next_offset = new_end;
                seg.write_indexes(&*disk)?;
                if kept_empty {
                    // The only segment and empty: replace it outright.
                    self.segments.remove(&keep_base);
                    self.remove_segment_files(keep_base)?;
                }
            }
            let path = self.dir.join(segment::file_name(new_end, super::segment::LOG_EXT));
            let file = self.disk.open(&path, crate::disk::OpenMode::Truncate).map_err(|e| StorageError::io("create segment", &path, e))?;
            self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
            self.segments.insert(new_end, Segment::new(new_end, &self.dir, file, self.clock.now_ms()));
        }
        debug_assert!(new_end <= self.log_end_offset, "truncation never extends the log");
        self.log_end_offset = new_end;
        // The active segment was synced at the cut and later ones removed.
        self.recovery_point = new_end;
        self.first_dirty_offset = self.first_dirty_offset.min(new_end);
        self.pending_truncate = None;
        self.truncate_epochs_from_end(new_end)?;
        self.remove_snapshots_after(new_end)?;
        self.check_invariants();
        Ok(new_end)
    }

    /// Empties the log and restarts it at `offset` (Kafka's
    /// truncateFullyAndStartAt: a follower whose log is behind the leader's
    /// log start, or whose truncation point is below its own log start).
    /// Order: checkpoint the new log start, remove every segment (fsync
    /// dir), create the new empty segment (fsync dir).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        self.ensure_online()?;
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset });
        }
        self.finish_interrupted_truncation()?;
        let result = (|| {
            let old_start = self.log_start_offset;
            self.log_start_offset = offset;
            if let Err(e) = self.write_log_start_checkpoint() {
                self.log_start_offset = old_start;
                return Err(e);
            }
            let bases: Vec<i64> = self.segments.keys().copied().collect();
            for b in &bases {
                self.remove_segment_files(*b)?;
            }
            self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
            let path = self.dir.join(segment::file_name(offset, super::segment::LOG_EXT));
            let file = self.disk.open(&path, crate::disk::OpenMode::Truncate).map_err(|e| StorageError::io("create segment", &path, e))?;
            self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
            self.segments.clear();
            self.segments.insert(offset, Segment::new(offset, &self.dir, file, self.clock.now_ms()));
            self.log_end_offset = offset;
            self.recovery_point = offset;
            self.first_dirty_offset = offset;
            self.min_delete_horizon_ms = None;
            self.pending_truncate = None;
            self.epochs.clear();
            self.write_epochs()?;
            self.remove_snapshots_after(offset)?;
            self.check_invariants();
            Ok(())
        })();
        match &result {
            Ok(()) => self.truncation_interrupted = false,
            Err(e) => {
                self.reload_after_failure(e);
                self.truncation_interrupted = true;
            }
        }
        result
    }

    /// Makes the state reloaded after an interrupted truncation durable
    /// (directory and active segment fsynced, epochs and snapshots past the
    /// end dropped) so appends may resume.
    fn finish_interrupted_truncation(&mut self) -> Result<()> {
        if !self.truncation_interrupted {
            return Ok(());
        }
        self.disk.sync_dir(&self.dir).map_err(|e| StorageError::io("sync dir", &self.dir, e))?;
        let active = self.segments.values().next_back().expect("non-empty");
        active.file.sync().map_err(|e| StorageError::io("sync", active.log_path(), e))?;
        self.recovery_point = self.log_end_offset;
        let end = self.log_end_offset;
        self.truncate_epochs_from_end(end)?;
        self.remove_snapshots_after(end)?;
        self.truncation_interrupted = false;
        Ok(())
    }

    /// After a multi-step operation failed half-way, rebuild the in-memory
    /// state from what is on disk (as a restart would). If even that fails
    /// the log goes offline until reopened.
    pub(crate) fn reload_after_failure(&mut self, cause: &StorageError) {
        crate::mark!("storage.reload_after_failure");
        tracing::warn!(dir = ?self.dir, error = %cause, "reloading log state from disk after a failed operation");
        let old_segments = std::mem::take(&mut self.segments);
        let old = (self.log_start_offset, self.log_end_offset, self.recovery_point, self.epochs.clone());
        self.pending_truncate = None;
        self.recovery = Default::default();
        if let Err(e) = self.recover() {
            tracing::error!(dir = ?self.dir, error = %e, "log offline: could not reload after a failed operation");
            // Keep a non-empty (stale) view so reads fail cleanly; writes
            // are refused until the log is reopened.
            self.segments = old_segments;
            (self.log_start_offset, self.log_end_offset, self.recovery_point, self.epochs) = old;
            self.offline = Some(format!("reload after `{cause}` failed: {e}"));
        }
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
        self.ensure_online()?;
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
        self.ensure_online()?;
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
