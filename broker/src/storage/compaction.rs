//! Log compaction (`cleanup.policy=compact` or `compact,delete`).
//!
//! Why this shape: a compacted topic is a table; a consumer reading from
//! the start must end with the latest value of every key. The cleaner keeps,
//! in every *sealed* segment, only records that are the latest for their key
//! across all sealed segments (the active segment is never touched and never
//! contributes to the key map, so nothing is removed in favour of a record
//! that is not yet sealed, hence synced). With
//! [`PartitionLog::set_max_compactable_offset`] (the high watermark) only
//! segments wholly below it are used, so a follower truncation can never
//! remove the record that superseded a cleaned one (the broker passes the
//! last stable offset when it is lower, so no open transaction is cleaned).
//! Records of aborted transactions ([`PartitionLog::set_aborted_ranges`])
//! never enter the key map, so they never supersede a committed record,
//! and are dropped by the pass like any superseded record (Kafka's cleaner
//! discards them the same way); end-transaction markers are kept.
//! Offsets are preserved: cleaned
//! batches keep their baseOffset and lastOffsetDelta and simply hold fewer
//! records (gaps), and get a fresh CRC.
//!
//! Tombstones (null value) are kept after the pass that first cleans them,
//! and their batch is stamped with a delete horizon (`now +
//! delete.retention.ms`, Kafka's attribute bit 6 with baseTimestamp holding
//! the horizon and record timestamp deltas re-based); a later pass after the
//! horizon drops them.
//!
//! # Atomic swap
//!
//! For a segment with base offset `B`:
//! 1. write `B.log.cleaned`, fsync it;
//! 2. rename it to `B.log.swap`, fsync the directory (the commit point);
//! 3. remove `B.log` and its indexes, fsync the directory;
//! 4. rename `B.log.swap` to `B.log`, fsync the directory;
//! 5. write and fsync the new indexes.
//!
//! Recovery deletes any `.cleaned` (step 1 incomplete: the old segment is
//! intact) and completes any `.swap` (removes the old `B.log` if present,
//! renames the swap file in). A crash at any point leaves either the old or
//! the new segment, never neither, and never loses the latest record of a
//! key. Memory: one segment at a time plus a map of every key (a
//! production cleaner would bound the map, as Kafka's offset map does).

use std::collections::BTreeMap;

use crate::disk::OpenMode;

use super::batch::{self, BatchHeader};
use super::error::{Result, StorageError};
use super::log::PartitionLog;
use super::segment::{self, Segment, LOG_EXT};

/// What a compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Segments rewritten.
    pub cleaned_segments: usize,
    /// Records removed because a later record has the same key.
    pub records_removed: u64,
    /// Tombstones removed because their delete horizon passed.
    pub tombstones_removed: u64,
    /// Bytes of the sealed segments before the pass.
    pub bytes_before: u64,
    /// Bytes of the sealed segments after the pass.
    pub bytes_after: u64,
}

impl PartitionLog {
    /// Limits compaction to segments wholly below `offset`; the broker sets
    /// it to the high watermark. Records above it (which a follower may
    /// still truncate away) then never justify removing an older record of
    /// the same key. Default: no limit beyond the active segment.
    pub fn set_max_compactable_offset(&mut self, offset: i64) {
        self.max_compactable_offset = offset;
    }

    /// Sets the aborted transactions, as `(producer_id, first_offset,
    /// marker_offset)`, whose records compaction drops.
    pub fn set_aborted_ranges(&mut self, aborted: impl IntoIterator<Item = (i64, i64, i64)>) {
        self.aborted_ranges.clear();
        for (producer_id, first_offset, last_offset) in aborted {
            debug_assert!(first_offset <= last_offset);
            self.aborted_ranges.entry(producer_id).or_default().push((first_offset, last_offset));
        }
    }

    /// Whether `h` is a data batch of an aborted transaction.
    fn is_aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted_ranges.get(&h.producer_id).is_some_and(|ranges| ranges.iter().any(|&(first, last)| first <= h.base_offset && h.base_offset < last))
    }

    /// The segments compaction may read and rewrite: sealed (not active)
    /// and wholly below the max compactable offset, oldest first.
    fn cleanable_segments(&self) -> Vec<i64> {
        let active = *self.segments.keys().next_back().expect("non-empty");
        self.segments.range(..active).take_while(|(_, s)| s.next_offset <= self.max_compactable_offset).map(|(b, _)| *b).collect()
    }

    /// Dirty bytes (cleanable segments not yet cleaned) / cleanable bytes.
    pub fn dirty_ratio(&self) -> f64 {
        let (mut dirty, mut total) = (0u64, 0u64);
        for b in self.cleanable_segments() {
            let s = &self.segments[&b];
            total += s.size_bytes;
            if b >= self.first_dirty_offset || s.next_offset > self.first_dirty_offset {
                dirty += s.size_bytes;
            }
        }
        if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        }
    }

    /// Compacts if the policy compacts and either the dirty ratio reached
    /// `min.cleanable.dirty.ratio` or a tombstone's delete horizon passed.
    pub fn compact_if_needed(&mut self) -> Result<Option<CompactionOutcome>> {
        if !self.config.cleanup_policy.compacts() {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let horizon_due = self.min_delete_horizon_ms.is_some_and(|h| now >= h);
        let ratio = self.dirty_ratio();
        if (ratio > 0.0 && ratio >= self.config.min_cleanable_dirty_ratio) || horizon_due {
            return self.compact().map(Some);
        }
        Ok(None)
    }

    /// Runs a compaction pass over all sealed segments now (whatever the
    /// ratio). A no-op unless the cleanup policy compacts.
    pub fn compact(&mut self) -> Result<CompactionOutcome> {
        self.ensure_online()?;
        let mut outcome = CompactionOutcome::default();
        if !self.config.cleanup_policy.compacts() {
            return Ok(outcome);
        }
        let now = self.clock.now_ms();
        let sealed = self.cleanable_segments();
        let Some(&last_cleanable) = sealed.last() else {
            return Ok(outcome);
        };
        let first_uncleaned = self.segments[&last_cleanable].next_offset;
        // Pass 1: latest offset per key over all sealed segments.
        // Segments are read one at a time (twice) so memory holds one
        // segment plus the key map, not the whole log.
        let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for &base in &sealed {
            let bytes = self.read_segment_bytes(base)?;
            let path = self.dir.join(segment::file_name(base, LOG_EXT));
            for (pos, h) in self.checked_batches(&bytes, &path)? {
                if h.compression() != 0 || h.is_control() || self.is_aborted(&h) {
                    continue;
                }
                let recs = batch::parse_records(&bytes[pos..pos + h.size_bytes() as usize])
                    .map_err(|reason| StorageError::Corrupt { path: path.clone(), position: pos as u64, reason })?;
                for r in recs {
                    if let Some(k) = r.key {
                        let off = h.base_offset + i64::from(r.offset_delta);
                        latest.insert(k.to_vec(), off);
                    }
                }
            }
            outcome.bytes_before += bytes.len() as u64;
        }
        // Pass 2: rewrite each sealed segment.
        let mut min_horizon: Option<i64> = None;
        for &base in &sealed {
            let bytes = self.read_segment_bytes(base)?;
            let path = self.dir.join(segment::file_name(base, LOG_EXT));
            let mut out = Vec::with_capacity(bytes.len());
            for (pos, h) in self.checked_batches(&bytes, &path)? {
                let raw = &bytes[pos..pos + h.size_bytes() as usize];
                if h.compression() != 0 || h.is_control() {
                    out.extend_from_slice(raw);
                    continue;
                }
                let recs = batch::parse_records(raw).map_err(|reason| StorageError::Corrupt { path: path.clone(), position: pos as u64, reason })?;
                let horizon = h.delete_horizon_ms();
                let mut keep = Vec::with_capacity(recs.len());
                let mut has_tombstone = false;
                for r in &recs {
                    let off = h.base_offset + i64::from(r.offset_delta);
                    let is_latest = r.key.is_none_or(|k| latest.get(k).copied() == Some(off));
                    if !is_latest {
                        outcome.records_removed += 1;
                        continue;
                    }
                    if r.value.is_none() {
                        if horizon.is_some_and(|hz| now >= hz) {
                            outcome.tombstones_removed += 1;
                            continue;
                        }
                        has_tombstone = true;
                    }
                    keep.push(r.clone());
                }
                if keep.is_empty() {
                    continue;
                }
                let new_horizon = if has_tombstone && horizon.is_none() { Some(now.saturating_add(self.config.delete_retention_ms)) } else { None };
                if has_tombstone {
                    let hz = new_horizon.or(horizon).expect("one of them is set");
                    min_horizon = Some(min_horizon.map_or(hz, |m: i64| m.min(hz)));
                }
                if keep.len() == recs.len() && new_horizon.is_none() {
                    out.extend_from_slice(raw);
                } else {
                    let rebuilt = batch::rebuild_batch(raw, &keep, new_horizon);
                    debug_assert!(batch::crc_ok(&rebuilt));
                    out.extend_from_slice(&rebuilt);
                }
            }
            outcome.bytes_after += out.len() as u64;
            if out != bytes {
                self.swap_segment(base, &out)?;
                outcome.cleaned_segments += 1;
                crate::mark!("storage.compaction.segment");
            }
        }
        self.first_dirty_offset = first_uncleaned;
        self.min_delete_horizon_ms = min_horizon;
        self.check_invariants();
        tracing::debug!(dir = ?self.dir, ?outcome, "compaction pass");
        Ok(outcome)
    }

    fn checked_batches(&self, bytes: &[u8], path: &std::path::Path) -> Result<Vec<(usize, BatchHeader)>> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let bad = |reason: String| StorageError::Corrupt { path: path.to_path_buf(), position: pos as u64, reason };
            let h = BatchHeader::parse(&bytes[pos..]).ok_or_else(|| bad("short batch header".into()))?;
            h.check_structure().map_err(bad)?;
            let size = h.size_bytes() as usize;
            if pos + size > bytes.len() || !batch::crc_ok(&bytes[pos..pos + size]) {
                return Err(bad("CRC-32C mismatch or overrun".into()));
            }
            out.push((pos, h));
            pos += size;
        }
        Ok(out)
    }

    /// Replaces segment `base` with `bytes` using the atomic swap protocol
    /// in the module docs.
    fn swap_segment(&mut self, base: i64, bytes: &[u8]) -> Result<()> {
        let disk = self.disk.clone();
        let dir = self.dir.clone();
        let log_name = segment::file_name(base, LOG_EXT);
        let log_path = dir.join(&log_name);
        let cleaned = dir.join(format!("{log_name}.cleaned"));
        let swap = dir.join(format!("{log_name}.swap"));
        let io = |op: &'static str, p: &std::path::Path| {
            let p = p.to_path_buf();
            move |e| StorageError::io(op, p, e)
        };
        // 1.
        let f = disk.open(&cleaned, OpenMode::Truncate).map_err(io("create cleaned", &cleaned))?;
        f.write_at(bytes, 0).map_err(io("write cleaned", &cleaned))?;
        f.sync().map_err(io("sync cleaned", &cleaned))?;
        // 2. commit point
        disk.rename(&cleaned, &swap).map_err(io("rename to swap", &swap))?;
        disk.sync_dir(&dir).map_err(io("sync dir", &dir))?;
        // 3.
        self.remove_segment_files(base)?;
        disk.sync_dir(&dir).map_err(io("sync dir", &dir))?;
        // 4.
        disk.rename(&swap, &log_path).map_err(io("rename swap in", &log_path))?;
        disk.sync_dir(&dir).map_err(io("sync dir", &dir))?;
        // 5.
        let file = disk.open(&log_path, OpenMode::Existing).map_err(io("open cleaned segment", &log_path))?;
        let old = self.segments.get(&base).expect("live segment");
        let mut seg = Segment::new(base, &dir, file.clone(), old.created_ms);
        let interval = self.config.index_interval_bytes;
        let out = segment::scan(&*file, &log_path, 0, bytes.len() as u64, base, false, &mut |pos, h| seg.record_batch(pos, h, interval))?;
        debug_assert!(out.problem.is_none(), "the cleaner wrote whole batches");
        // Keep the segment's offset extent even if its last batches went,
        // so the log end never moves back.
        seg.next_offset = seg.next_offset.max(old.next_offset);
        self.segments.insert(base, seg);
        // Indexes are derived data: if writing them fails the segment is
        // still swapped; they are rewritten at close or rebuilt at open.
        let seg = self.segments.get_mut(&base).expect("just inserted");
        if let Err(e) = seg.write_indexes(&*disk).and_then(|()| disk.sync_dir(&dir).map_err(io("sync dir", &dir))) {
            tracing::warn!(segment = ?log_path, error = %e, "could not write the cleaned segment's indexes; they will be rebuilt");
            seg.index_dirty = true;
        }
        Ok(())
    }
}
