//! [`PartitionLog`]: the segmented log of one partition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Clock;
use crate::disk::{Disk, OpenMode};

use super::batch::{self, BatchHeader, HEADER_BYTES};
use super::checkpoint::{self, CheckpointKind, EpochEntry};
use super::config::{CorruptMiddlePolicy, FlushPolicy, LogConfig, TimestampType};
use super::error::{Result, StorageError};
use super::segment::{self, Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};

/// Name of the clean-shutdown marker written by [`PartitionLog::close`].
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Name of the leader epoch checkpoint.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Name of the log start offset checkpoint.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// ListOffsets special timestamp: the log end offset.
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets special timestamp: the log start offset.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets special timestamp: the record with the largest timestamp.
pub const MAX_TIMESTAMP: i64 = -3;
/// Extension of producer state snapshots.
pub const SNAPSHOT_EXT: &str = "snapshot";

/// Who is appending: a producer (offsets assigned here) or replication
/// (offsets kept).
#[derive(Debug, Clone, Copy)]
enum AppendMode {
    Producer { leader_epoch: Option<i32> },
    Replicated,
}

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The broker time stamped on the batches if the topic uses
    /// LogAppendTime, else -1 (Kafka's convention for CreateTime).
    pub log_append_time_ms: i64,
    /// Number of batches appended.
    pub batch_count: usize,
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole RecordBatch v2 batches, CRC-verified, starting with the batch
    /// holding the requested offset (or the first batch after it).
    pub records: Bytes,
    /// The offset after the last returned batch (the next offset to fetch);
    /// equals the requested offset when nothing was returned.
    pub next_offset: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// Answer of [`PartitionLog::offset_for_timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The timestamp of the record found.
    pub timestamp_ms: i64,
    /// Its offset.
    pub offset: i64,
}

/// What [`PartitionLog::open`] found and did; for logs, tests and benches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// A clean-shutdown marker was present and valid.
    pub clean_shutdown: bool,
    /// Segments loaded.
    pub segments: usize,
    /// Segments whose indexes were rebuilt from the log.
    pub rebuilt_indexes: usize,
    /// Bytes CRC-validated during recovery.
    pub validated_bytes: u64,
    /// Bytes truncated away (torn tail or, with `corrupt_middle=truncate`,
    /// corrupt data and everything after it).
    pub truncated_bytes: u64,
    /// Interrupted compaction swaps completed.
    pub completed_swaps: usize,
    /// Stray temporary files removed.
    pub removed_temp_files: usize,
}

/// The log of one partition. See the module docs of [`crate::storage`].
///
/// Not internally synchronised: the broker wraps it in a lock; `read` takes
/// `&self`, so a read-write lock lets reads proceed while no append runs,
/// and a read never sees past the log end offset of the moment it started.
pub struct PartitionLog {
    pub(crate) disk: Arc<dyn Disk>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<i64, Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    /// Every offset below this is known durable.
    pub(crate) recovery_point: i64,
    pub(crate) last_flush_ms: i64,
    /// If set, the active segment must be truncated to this size before
    /// the next write (a rollback whose truncate failed).
    pub(crate) pending_truncate: Option<u64>,
    /// Set when the in-memory state could not be rebuilt after a failure:
    /// every write fails with [`StorageError::Offline`] until reopened.
    pub(crate) offline: Option<String>,
    /// A truncation failed half-way: writes are refused until one succeeds.
    pub(crate) truncation_interrupted: bool,
    pub(crate) epochs: Vec<EpochEntry>,
    /// Compaction: offsets below this have been cleaned.
    pub(crate) first_dirty_offset: i64,
    /// Compaction: only segments wholly below this are cleaned.
    pub(crate) max_compactable_offset: i64,
    /// Aborted transactions' data batches, per producer id as
    /// `(first_offset, marker_offset)`: compaction drops them instead of
    /// letting them supersede committed records.
    pub(crate) aborted_ranges: BTreeMap<i64, Vec<(i64, i64)>>,
    /// Compaction: earliest delete horizon stamped on a cleaned batch.
    pub(crate) min_delete_horizon_ms: Option<i64>,
    pub(crate) recovery: RecoveryReport,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |e| StorageError::io(op, path, e)
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset)
            .field("log_end_offset", &self.log_end_offset)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl PartitionLog {
    /// Opens the log in `dir`, creating it if empty, recovering it
    /// otherwise (see "Recovery" in the module docs).
    pub fn open(disk: Arc<dyn Disk>, clock: Arc<dyn Clock>, dir: PathBuf, config: LogConfig) -> Result<PartitionLog> {
        if config.segment_bytes == 0 || config.index_interval_bytes == 0 {
            return Err(StorageError::Config("segment_bytes and index_interval_bytes must be positive".into()));
        }
        disk.create_dir_all(&dir).map_err(io_err("create dir", &dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent).map_err(io_err("sync dir", parent))?;
        }
        let now = clock.now_ms();
        let mut log = PartitionLog {
            disk,
            clock,
            dir,
            config,
            segments: BTreeMap::new(),
            log_start_offset: 0,
            log_end_offset: 0,
            recovery_point: 0,
            last_flush_ms: now,
            pending_truncate: None,
            offline: None,
            truncation_interrupted: false,
            epochs: Vec::new(),
            first_dirty_offset: 0,
            max_compactable_offset: i64::MAX,
            aborted_ranges: BTreeMap::new(),
            min_delete_horizon_ms: None,
            recovery: RecoveryReport::default(),
        };
        log.recover()?;
        Ok(log)
    }

    // ------------------------------------------------------------ recovery

    pub(crate) fn recover(&mut self) -> Result<()> {
        let disk = self.disk.clone();
        let dir = self.dir.clone();
        let now = self.clock.now_ms();

        // 1. Finish or roll back interrupted file operations.
        let mut changed = false;
        for name in disk.list_dir(&dir).map_err(io_err("list dir", &dir))? {
            let path = dir.join(&name);
            if name.ends_with(".tmp") || name.ends_with(".cleaned") || name.ends_with(".deleted") {
                // Incomplete new files (checkpoint temp, compaction output not
                // yet renamed to .swap) or files already logically deleted.
                disk.remove_file(&path).map_err(io_err("remove temp", &path))?;
                self.recovery.removed_temp_files += 1;
                changed = true;
            } else if let Some(log_name) = name.strip_suffix(".swap") {
                // A complete, synced compaction output: finish the swap.
                if let Some(base) = segment::parse_file_name(log_name, LOG_EXT) {
                    for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
                        let old = dir.join(segment::file_name(base, ext));
                        if disk.exists(&old) {
                            disk.remove_file(&old).map_err(io_err("remove swapped-out", &old))?;
                        }
                    }
                    let dst = dir.join(log_name);
                    disk.rename(&path, &dst).map_err(io_err("complete swap", &dst))?;
                    tracing::info!(dir = ?dir, base, "completed an interrupted compaction swap");
                    self.recovery.completed_swaps += 1;
                    changed = true;
                }
            }
        }
        if changed {
            disk.sync_dir(&dir).map_err(io_err("sync dir", &dir))?;
        }

        // 2. Checkpoints.
        let clean_marker = match checkpoint::read_checkpoint(&*disk, &dir, CLEAN_SHUTDOWN_FILE, CheckpointKind::CleanShutdown) {
            Ok(Some(p)) if p.len() == 8 => Some(i64::from_be_bytes(p[..8].try_into().expect("8"))),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring damaged clean-shutdown marker; doing full recovery");
                None
            }
        };
        self.recovery.clean_shutdown = clean_marker.is_some();
        let start_ckpt = match checkpoint::read_checkpoint(&*disk, &dir, LOG_START_OFFSET_FILE, CheckpointKind::LogStartOffset) {
            Ok(Some(p)) if p.len() == 8 => Some(i64::from_be_bytes(p[..8].try_into().expect("8"))),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "damaged log start offset checkpoint; log start falls back to the first segment's base offset (records below a delete_records point may reappear)");
                None
            }
        };
        self.epochs = match checkpoint::read_checkpoint(&*disk, &dir, LEADER_EPOCH_FILE, CheckpointKind::LeaderEpochs)? {
            Some(p) => checkpoint::decode_epochs(&p).map_err(|reason| StorageError::Corrupt { path: dir.join(LEADER_EPOCH_FILE), position: 0, reason })?,
            None => Vec::new(),
        };

        // 3. Segments.
        let names = disk.list_dir(&dir).map_err(io_err("list dir", &dir))?;
        let bases: Vec<i64> = names.iter().filter_map(|n| segment::parse_file_name(n, LOG_EXT)).collect();
        if bases.is_empty() {
            let base = start_ckpt.unwrap_or(0).max(0);
            let path = dir.join(segment::file_name(base, LOG_EXT));
            let file = disk.open(&path, OpenMode::Truncate).map_err(io_err("create segment", &path))?;
            disk.sync_dir(&dir).map_err(io_err("sync dir", &dir))?;
            self.segments.insert(base, Segment::new(base, &dir, file, now));
            self.log_start_offset = base;
            self.log_end_offset = base;
            self.recovery_point = base;
            self.first_dirty_offset = base;
            self.recovery.segments = 1;
            self.remove_clean_marker()?;
            return Ok(());
        }

        let mut files = Vec::with_capacity(bases.len());
        for &base in &bases {
            let path = dir.join(segment::file_name(base, LOG_EXT));
            let file = disk.open(&path, OpenMode::Existing).map_err(io_err("open segment", &path))?;
            let len = file.len().map_err(io_err("stat segment", &path))?;
            files.push((base, file, len));
        }
        let n = files.len();
        let mut i = 0;
        let mut truncate_rest = false;
        let mut removed_stray = false;
        while i < n {
            let (base, file, len) = files[i].clone();
            let path = dir.join(segment::file_name(base, LOG_EXT));
            let is_last = i + 1 == n;
            let later_has_data = files[i + 1..].iter().any(|f| f.2 > 0);
            let mut seg = Segment::new(base, &dir, file.clone(), now);
            let mut trusted = false;
            if !is_last || clean_marker.is_some() {
                match seg.load_indexes(&*disk, len) {
                    Ok(()) => trusted = true,
                    Err(why) => {
                        if len > 0 {
                            tracing::info!(segment = ?path, why, "rebuilding index from the log");
                        }
                        self.recovery.rebuilt_indexes += 1;
                        crate::mark!("storage.recovery.rebuild_index");
                        seg = Segment::new(base, &dir, file.clone(), now);
                    }
                }
            }
            let mut scan_from = None;
            if !trusted && is_last && clean_marker.is_none() { crate::mark!("storage.recovery.unclean_tail_scan"); }
            if !trusted {
                scan_from = Some(0);
            } else if is_last {
                // Clean shutdown: validate only the tail (from the last
                // index entry), trusting the rest.
                scan_from = Some(u64::from(seg.index.last_position()));
            }
            if let Some(from) = scan_from {
                if trusted {
                    let out = segment::scan(&*file, &path, from, len, i64::MIN, true, &mut |_, _| {})?;
                    self.recovery.validated_bytes += out.valid_end - from;
                    if out.problem.is_some() {
                        tracing::warn!(segment = ?path, "tail validation failed despite a clean-shutdown marker; full recovery");
                        seg = Segment::new(base, &dir, file.clone(), now);
                        trusted = false;
                    }
                }
                if !trusted {
                    let interval = self.config.index_interval_bytes;
                    let mut s2 = Segment::new(base, &dir, file.clone(), now);
                    let out = segment::scan(&*file, &path, 0, len, base, true, &mut |pos, h| s2.record_batch(pos, h, interval))?;
                    self.recovery.validated_bytes += out.valid_end;
                    seg = s2;
                    if let Some(problem) = out.problem {
                        let is_middle = problem.valid_bytes_after.is_some() || later_has_data;
                        let dropped = len - out.valid_end;
                        if is_middle {
                            match self.config.corrupt_middle {
                                CorruptMiddlePolicy::Fail => {
                                    tracing::error!(segment = ?path, position = problem.position, reason = %problem.reason, "corrupt batch before the tail; refusing to load");
                                    return Err(StorageError::CorruptMiddle {
                                        path,
                                        position: problem.position,
                                        valid_bytes_after: problem.valid_bytes_after.unwrap_or(0) + files[i + 1..].iter().map(|f| f.2).sum::<u64>(),
                                    });
                                }
                                CorruptMiddlePolicy::Truncate => {
                                    tracing::warn!(segment = ?path, position = problem.position, reason = %problem.reason, dropped_bytes = dropped,
                                        later_segments = n - i - 1,
                                        "DATA LOSS: corrupt batch before the tail; truncating the log here (log.recovery.corrupt_middle=truncate)");
                                    truncate_rest = true;
                                }
                            }
                        } else {
                            crate::mark!("storage.recovery.torn_tail");
                            tracing::warn!(segment = ?path, position = problem.position, reason = %problem.reason, dropped_bytes = dropped, "truncating a torn tail");
                        }
                        file.set_len(out.valid_end).map_err(io_err("truncate", &path))?;
                        file.sync().map_err(io_err("sync", &path))?;
                        self.recovery.truncated_bytes += dropped;
                    }
                }
            }
            // Age for segment.ms: first batch's timestamp if any.
            if seg.size_bytes > 0 {
                let mut hb = [0u8; HEADER_BYTES];
                if let Ok(h) = seg.read_header(0, &mut hb) {
                    seg.first_timestamp_ms = h.max_timestamp;
                    if h.max_timestamp > 0 {
                        seg.created_ms = h.max_timestamp.min(now);
                    }
                }
            }
            if let Some((_, prev)) = self.segments.iter().next_back() {
                if seg.base_offset < prev.next_offset && seg.is_empty() {
                    // An empty file left by a roll that failed after
                    // creating it, overtaken by later appends: not data.
                    tracing::warn!(segment = ?path, prev_end = prev.next_offset, "removing an empty segment left by a failed roll");
                    self.remove_segment_files(base)?;
                    removed_stray = true;
                    i += 1;
                    continue;
                }
                if seg.base_offset < prev.next_offset {
                    return Err(StorageError::Corrupt {
                        path,
                        position: 0,
                        reason: format!("segment base {} overlaps the previous segment ending at {}", seg.base_offset, prev.next_offset),
                    });
                }
            }
            self.segments.insert(base, seg);
            i += 1;
            if truncate_rest {
                break;
            }
        }
        // Segments after a truncation point (corrupt_middle=truncate) go.
        // (A trailing empty segment is kept: a roll syncs the old segment
        // before creating the new file, so its base is the true log end.)
        let mut removed = removed_stray;
        for (base, _, _) in files.iter().skip(i) {
            self.remove_segment_files(*base)?;
            removed = true;
        }
        if removed {
            disk.sync_dir(&dir).map_err(io_err("sync dir", &dir))?;
        }

        let first_base = *self.segments.keys().next().expect("at least one segment");
        let last = self.segments.values().next_back().expect("at least one segment");
        self.log_end_offset = last.next_offset.max(last.base_offset);
        if let Some(marker_end) = clean_marker {
            if marker_end != self.log_end_offset {
                tracing::warn!(marker_end, log_end = self.log_end_offset, "clean-shutdown marker disagrees with the log end");
            }
        }
        self.log_start_offset = start_ckpt.map_or(first_base, |s| s.clamp(first_base, self.log_end_offset));
        self.first_dirty_offset = self.log_start_offset;
        // Whatever survived is made durable now (a process crash without an
        // OS crash leaves unsynced bytes readable in the page cache).
        let active = self.segments.values().next_back().expect("at least one segment");
        active.file.sync().map_err(io_err("sync", &active.log_path()))?;
        self.recovery_point = self.log_end_offset;
        self.recovery.segments = self.segments.len();
        // Epochs past the log end are stale.
        let end = self.log_end_offset;
        self.epochs.retain(|e| e.start_offset < end);
        self.remove_snapshots_after(end)?;
        self.remove_clean_marker()?;
        self.check_invariants();
        Ok(())
    }

    fn remove_clean_marker(&mut self) -> Result<()> {
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        if self.disk.exists(&marker) {
            self.disk.remove_file(&marker).map_err(io_err("remove marker", &marker))?;
            self.disk.sync_dir(&self.dir).map_err(io_err("sync dir", &self.dir))?;
        }
        Ok(())
    }

    pub(crate) fn remove_segment_files(&self, base: i64) -> Result<()> {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let p = self.dir.join(segment::file_name(base, ext));
            if self.disk.exists(&p) {
                self.disk.remove_file(&p).map_err(io_err("remove segment file", &p))?;
            }
        }
        Ok(())
    }

    pub(crate) fn check_invariants(&self) {
        debug_assert!(self.log_start_offset <= self.log_end_offset, "start {} > end {}", self.log_start_offset, self.log_end_offset);
        debug_assert!(self.recovery_point <= self.log_end_offset);
        debug_assert!(!self.segments.is_empty());
        if cfg!(debug_assertions) {
            let mut prev_end = i64::MIN;
            for (b, s) in &self.segments {
                debug_assert_eq!(*b, s.base_offset);
                debug_assert!(s.base_offset >= prev_end, "segments overlap");
                debug_assert!(s.next_offset >= s.base_offset);
                prev_end = s.next_offset;
            }
            let last = self.segments.values().next_back().expect("non-empty");
            debug_assert_eq!(last.next_offset.max(last.base_offset), self.log_end_offset, "end offset equals what was written");
        }
    }

    // ------------------------------------------------------------- accessors

    /// First offset held (advanced by retention and `delete_records`).
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// Every offset below this is known to be on stable storage.
    pub fn durable_end_offset(&self) -> i64 {
        self.recovery_point
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the configuration (takes effect on the next append, roll,
    /// retention or compaction pass).
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        if config.segment_bytes == 0 || config.index_interval_bytes == 0 {
            return Err(StorageError::Config("segment_bytes and index_interval_bytes must be positive".into()));
        }
        self.config = config;
        Ok(())
    }

    /// What the last `open` found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size_bytes).sum()
    }

    // --------------------------------------------------------------- append

    /// `Err(Offline)` if an earlier failure left the in-memory state
    /// unreliable; every mutating method checks this first.
    pub(crate) fn ensure_online(&self) -> Result<()> {
        match &self.offline {
            Some(why) => Err(StorageError::Offline(why.clone())),
            None => Ok(()),
        }
    }

    /// Takes the log out of service for good: every later write is refused
    /// with `Offline(reason)`. The broker calls it before it removes or
    /// reopens the log's files (a deleted or replaced topic), so a request
    /// that still holds this handle cannot write into them.
    pub fn retire(&mut self, reason: &str) {
        if self.offline.is_none() {
            self.offline = Some(reason.to_string());
        }
    }

    /// Whether the log refuses writes until reopened.
    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    fn check_writable(&mut self) -> Result<()> {
        self.ensure_online()?;
        if self.truncation_interrupted {
            return Err(StorageError::Offline("a truncation was interrupted; retry truncate_to or reopen the log".into()));
        }
        if let Some(size) = self.pending_truncate {
            let active = self.segments.values().next_back().expect("non-empty");
            let path = active.log_path();
            active.file.set_len(size).map_err(io_err("truncate failed append", &path))?;
            self.pending_truncate = None;
        }
        Ok(())
    }

    fn validate_batch(&self, position: usize, h: &BatchHeader, bytes: &[u8], mode: AppendMode) -> Result<()> {
        let from_producer = !matches!(mode, AppendMode::Replicated);
        if from_producer && h.size_bytes() > self.config.max_message_bytes {
            return Err(StorageError::RecordTooLarge { size_bytes: h.size_bytes(), limit_bytes: self.config.max_message_bytes });
        }
        if !batch::crc_ok(bytes) {
            return Err(StorageError::CorruptBatch { position, reason: "CRC-32C mismatch".into() });
        }
        if from_producer && i64::from(h.records_count) != i64::from(h.last_offset_delta) + 1 {
            return Err(StorageError::CorruptBatch {
                position,
                reason: format!("recordsCount {} does not match lastOffsetDelta {}", h.records_count, h.last_offset_delta),
            });
        }
        let compacted = self.config.cleanup_policy.compacts();
        if h.compression() != 0 {
            if compacted && from_producer {
                return Err(StorageError::InvalidRecord {
                    reason: "compressed batches are not supported on compacted topics".into(),
                });
            }
            return Ok(());
        }
        let records = batch::parse_records(bytes).map_err(|reason| StorageError::CorruptBatch { position, reason })?;
        if from_producer {
            if let Some((i, r)) = records.iter().enumerate().find(|(i, r)| r.offset_delta as usize != *i) {
                return Err(StorageError::CorruptBatch { position, reason: format!("record {i} has offset delta {}", r.offset_delta) });
            }
            if compacted && !h.is_control() && records.iter().any(|r| r.key.is_none()) {
                return Err(StorageError::InvalidRecord { reason: "compacted topic requires a non-null key on every record".into() });
            }
        }
        Ok(())
    }

    /// Appends one or more RecordBatch v2 batches exactly as a producer sent
    /// them: validates each (length, magic 2, CRC-32C, record framing and
    /// offset deltas; keys on compacted topics), assigns offsets by
    /// rewriting baseOffset, writes them and syncs per the flush policy. On
    /// any error nothing is acknowledged and the log is as before the call.
    pub fn append(&mut self, batches: &[u8]) -> Result<AppendInfo> {
        self.append_inner(batches, AppendMode::Producer { leader_epoch: None })
    }

    /// Like [`PartitionLog::append`], and also stamps `partitionLeaderEpoch`
    /// (not under the CRC) with the leader's epoch, as a Kafka leader does.
    pub fn append_as_leader(&mut self, batches: &[u8], leader_epoch: i32) -> Result<AppendInfo> {
        self.append_inner(batches, AppendMode::Producer { leader_epoch: Some(leader_epoch) })
    }

    /// Appends batches copied from the leader, keeping their offsets (and
    /// epochs, timestamps): a follower's append. Each batch's base offset
    /// must be >= the log end and offsets must increase (gaps are allowed:
    /// the leader may have compacted). CRC and framing are still verified.
    pub fn append_replicated(&mut self, batches: &[u8]) -> Result<AppendInfo> {
        self.append_inner(batches, AppendMode::Replicated)
    }

    fn append_inner(&mut self, batches: &[u8], mode: AppendMode) -> Result<AppendInfo> {
        self.check_writable()?;
        let headers = batch::split_batches(batches)?;
        if headers.is_empty() {
            return Err(StorageError::CorruptBatch { position: 0, reason: "no batch in the request".into() });
        }
        for (pos, h) in &headers {
            self.validate_batch(*pos, h, &batches[*pos..*pos + h.size_bytes() as usize], mode)?;
        }
        let now = self.clock.now_ms();
        let mut buf = batches.to_vec();
        let mut next = self.log_end_offset;
        let stamp = self.config.timestamp_type == TimestampType::LogAppendTime && !matches!(mode, AppendMode::Replicated);
        let base_offset = match mode {
            AppendMode::Replicated => headers[0].1.base_offset,
            AppendMode::Producer { .. } => next,
        };
        for (pos, h) in &headers {
            let b = &mut buf[*pos..*pos + h.size_bytes() as usize];
            match mode {
                AppendMode::Replicated => {
                    if h.base_offset < next {
                        return Err(StorageError::InvalidRecord {
                            reason: format!("replicated batch at offset {} is below the expected offset {next}", h.base_offset),
                        });
                    }
                    next = h.last_offset() + 1;
                }
                AppendMode::Producer { leader_epoch } => {
                    batch::set_base_offset(b, next);
                    if let Some(epoch) = leader_epoch {
                        b[12..16].copy_from_slice(&epoch.to_be_bytes());
                    }
                    if stamp {
                        batch::stamp_log_append_time(b, now);
                    }
                    next += i64::from(h.last_offset_delta) + 1;
                }
            }
        }
        let last_offset = next - 1;
        self.maybe_roll(buf.len() as u64, last_offset, now)?;

        let active = self.segments.values_mut().next_back().expect("non-empty");
        let position = active.size_bytes;
        let path = active.log_path();
        if let Err(e) = active.file.write_at(&buf, position) {
            self.rollback(position);
            return Err(StorageError::io("append", path, e));
        }
        let sync_now = match self.config.flush {
            FlushPolicy::EveryBatch => true,
            FlushPolicy::Interval { interval_ms } => now.saturating_sub(self.last_flush_ms) >= interval_ms as i64,
            FlushPolicy::Never => false,
        };
        if sync_now {
            let active = self.segments.values().next_back().expect("non-empty");
            if let Err(e) = active.file.sync() {
                self.rollback(position);
                return Err(StorageError::io("sync", path, e));
            }
        }
        // Committed: account the batches.
        let interval = self.config.index_interval_bytes;
        let active = self.segments.values_mut().next_back().expect("non-empty");
        for (pos, _) in &headers {
            let h = BatchHeader::parse(&buf[*pos..]).expect("validated");
            active.record_batch(position + *pos as u64, &h, interval);
        }
        debug_assert!(next > self.log_end_offset, "offsets only grow");
        self.log_end_offset = next;
        if sync_now {
            self.recovery_point = self.log_end_offset;
            self.last_flush_ms = now;
        }
        self.check_invariants();
        Ok(AppendInfo { base_offset, last_offset, log_append_time_ms: if stamp { now } else { -1 }, batch_count: headers.len() })
    }

    /// Undoes a failed append: truncates the active segment back to
    /// `position` (and tries to make that durable). If the truncate itself
    /// fails, the next append retries it before writing.
    fn rollback(&mut self, position: u64) {
        let active = self.segments.values().next_back().expect("non-empty");
        debug_assert_eq!(active.size_bytes, position, "in-memory end is untouched by a failed append");
        crate::mark!("storage.append.rollback");
        match active.file.set_len(position) {
            Ok(()) => {
                // Best effort: make the truncation durable so a crash cannot
                // resurrect bytes of the failed append.
                if self.recovery_point == self.log_end_offset {
                    let _ = active.file.sync();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not truncate a failed append; will retry before the next write");
                self.pending_truncate = Some(position);
            }
        }
    }

    fn maybe_roll(&mut self, append_bytes: u64, last_offset: i64, now: i64) -> Result<()> {
        let active = self.segments.values().next_back().expect("non-empty");
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.size_bytes + append_bytes > self.config.segment_bytes || active.size_bytes + append_bytes > u64::from(u32::MAX);
        let too_old = now.saturating_sub(active.created_ms) >= self.config.segment_ms;
        let offset_overflow = last_offset - active.base_offset > i64::from(i32::MAX);
        if too_big || too_old || offset_overflow || crate::buggify!("storage.roll.early") {
            self.roll()?;
        }
        Ok(())
    }

    /// Seals the active segment (fsync log, write+fsync indexes) and starts
    /// a new one at the log end offset (create, fsync directory). A no-op
    /// if the active segment is empty.
    pub fn roll(&mut self) -> Result<()> {
        self.ensure_online()?;
        let now = self.clock.now_ms();
        let new_base = self.log_end_offset;
        let disk = self.disk.clone();
        let active = self.segments.values_mut().next_back().expect("non-empty");
        if active.is_empty() {
            return Ok(());
        }
        debug_assert!(active.base_offset < new_base);
        let path = active.log_path();
        active.file.sync().map_err(io_err("sync", &path))?;
        self.recovery_point = self.log_end_offset;
        active.write_indexes(&*disk)?;
        let new_path = self.dir.join(segment::file_name(new_base, LOG_EXT));
        let file = disk.open(&new_path, OpenMode::Truncate).map_err(io_err("create segment", &new_path))?;
        if let Err(e) = disk.sync_dir(&self.dir) {
            // Best effort: do not leave an empty segment file that later
            // appends to the old segment would overtake (recovery also
            // removes such a file).
            let _ = disk.remove_file(&new_path);
            return Err(StorageError::io("sync dir", &self.dir, e));
        }
        self.segments.insert(new_base, Segment::new(new_base, &self.dir, file, now));
        self.last_flush_ms = now;
        self.check_invariants();
        Ok(())
    }

    /// Syncs the active segment now (the broker calls this on a timer for
    /// [`FlushPolicy::Interval`]). Afterwards every appended batch is
    /// durable.
    pub fn flush(&mut self) -> Result<()> {
        self.ensure_online()?;
        let now = self.clock.now_ms();
        if self.recovery_point < self.log_end_offset {
            let active = self.segments.values().next_back().expect("non-empty");
            active.file.sync().map_err(io_err("sync", &active.log_path()))?;
            self.recovery_point = self.log_end_offset;
        }
        self.last_flush_ms = now;
        Ok(())
    }

    /// Whether an interval flush is due (always false for other policies).
    pub fn flush_due(&self) -> bool {
        match self.config.flush {
            FlushPolicy::Interval { interval_ms } => {
                self.recovery_point < self.log_end_offset && self.clock.now_ms().saturating_sub(self.last_flush_ms) >= interval_ms as i64
            }
            _ => false,
        }
    }

    /// Flushes, writes the active segment's indexes and a clean-shutdown
    /// marker so the next `open` validates only the tail.
    pub fn close(mut self) -> Result<()> {
        self.close_in_place()
    }

    /// [`close`](Self::close) for a log others still hold a handle to (the
    /// broker's logs sit behind shared locks): does the same, then retires
    /// the log, so no write can land after the marker says "clean".
    pub fn close_in_place(&mut self) -> Result<()> {
        self.ensure_online()?;
        self.flush()?;
        let disk = self.disk.clone();
        let active = self.segments.values_mut().next_back().expect("non-empty");
        active.write_indexes(&*disk)?;
        for seg in self.segments.values_mut() {
            if seg.index_dirty {
                seg.write_indexes(&*disk)?;
            }
        }
        let marker = checkpoint::encode(CheckpointKind::CleanShutdown, &self.log_end_offset.to_be_bytes());
        checkpoint::write_atomic(&*disk, &self.dir, CLEAN_SHUTDOWN_FILE, &marker)?;
        self.retire("closed for shutdown");
        Ok(())
    }

    // ----------------------------------------------------------------- read

    /// Reads whole batches starting with the one containing `offset`, up to
    /// `max_bytes` (at least one batch even if larger). Every batch returned
    /// passed its CRC. `offset == log_end_offset` returns no bytes; outside
    /// `[log_start_offset, log_end_offset]` is `OffsetOutOfRange`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        self.read_bounded(offset, max_bytes, self.log_end_offset)
    }

    /// Like [`PartitionLog::read`] but never returns a batch whose base
    /// offset is at or past `upper_offset` (e.g. the high watermark).
    pub fn read_bounded(&self, offset: i64, max_bytes: usize, upper_offset: i64) -> Result<ReadResult> {
        let upper = upper_offset.min(self.log_end_offset);
        let empty = |next| ReadResult { records: Bytes::new(), next_offset: next, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset };
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset });
        }
        if offset >= upper {
            return Ok(empty(offset));
        }
        let first_key = self.segments.range(..=offset).next_back().map_or(i64::MIN, |(k, _)| *k);
        for seg in self.segments.range(first_key..).map(|(_, s)| s) {
            if let Some((pos, h)) = seg.find_batch(offset)? {
                if h.base_offset >= upper {
                    return Ok(empty(offset));
                }
                let max_bytes = if crate::buggify!("storage.read.short") { 0 } else { max_bytes };
                let (records, last) = seg.read_batches(pos, &h, max_bytes, upper)?;
                debug_assert!(last < self.log_end_offset, "never read past the end");
                return Ok(ReadResult { records, next_offset: last + 1, log_start_offset: self.log_start_offset, log_end_offset: self.log_end_offset });
            }
        }
        Ok(empty(offset))
    }

    /// The header of every batch at or after the log start, in log order
    /// (for rebuilding producer state). The header of a batch with a
    /// producer id is taken from the whole batch after its CRC passed, so a
    /// flipped bit cannot forge producer state; others are read as headers
    /// only.
    pub fn batch_headers(&self) -> Result<Vec<BatchHeader>> {
        let mut headers = Vec::new();
        let mut buf = [0u8; HEADER_BYTES];
        for seg in self.segments.values() {
            let mut pos = 0u64;
            while pos < seg.size_bytes {
                let mut h = seg.read_header(pos, &mut buf)?;
                if h.producer_id >= 0 {
                    let (bytes, _) = seg.read_batches(pos, &h, 0, i64::MAX)?;
                    h = BatchHeader::parse(&bytes).ok_or_else(|| StorageError::Corrupt { path: seg.log_path(), position: pos, reason: "short batch".into() })?;
                }
                pos += h.size_bytes();
                if h.last_offset() >= self.log_start_offset {
                    headers.push(h);
                }
            }
        }
        Ok(headers)
    }

    /// Like [`PartitionLog::batch_headers`], with each control batch's
    /// decoded end-transaction marker (read from the whole batch after its
    /// CRC passed; `None` for data batches, and for a control batch whose
    /// marker does not decode, which is logged and skipped: the log is
    /// still readable, only that marker is lost to the producer state).
    pub fn batch_headers_with_markers(&self) -> Result<Vec<(BatchHeader, Option<batch::ControlMarker>)>> {
        let mut out = Vec::new();
        let mut buf = [0u8; HEADER_BYTES];
        for seg in self.segments.values() {
            let mut pos = 0u64;
            while pos < seg.size_bytes {
                let mut h = seg.read_header(pos, &mut buf)?;
                let mut marker = None;
                if h.producer_id >= 0 {
                    let (bytes, _) = seg.read_batches(pos, &h, 0, i64::MAX)?;
                    h = BatchHeader::parse(&bytes).ok_or_else(|| StorageError::Corrupt { path: seg.log_path(), position: pos, reason: "short batch".into() })?;
                    if h.is_control() {
                        let size = h.size_bytes() as usize;
                        match bytes.get(..size).map(batch::parse_control_marker) {
                            Some(Ok(decoded)) => marker = Some(decoded),
                            Some(Err(error)) => tracing::warn!(%error, offset = h.base_offset, dir = ?self.dir, "control batch marker does not decode; skipped"),
                            None => tracing::warn!(offset = h.base_offset, "control batch shorter than its length; skipped"),
                        }
                    }
                }
                pos += h.size_bytes();
                if h.last_offset() >= self.log_start_offset {
                    out.push((h, marker));
                }
            }
        }
        Ok(out)
    }

    /// ListOffsets by timestamp: the first record whose timestamp is >=
    /// `timestamp_ms` (at or after the log start), or `None`. For compressed
    /// batches the batch's base offset and max timestamp are returned.
    /// Kafka's special values: [`LATEST_TIMESTAMP`] (-1) gives the log end,
    /// [`EARLIEST_TIMESTAMP`] (-2) the log start, [`MAX_TIMESTAMP`] (-3) the
    /// batch holding the largest timestamp (timestamp -1 in the first two).
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimestampOffset>> {
        match timestamp_ms {
            LATEST_TIMESTAMP => return Ok(Some(TimestampOffset { timestamp_ms: -1, offset: self.log_end_offset })),
            EARLIEST_TIMESTAMP => return Ok(Some(TimestampOffset { timestamp_ms: -1, offset: self.log_start_offset })),
            MAX_TIMESTAMP => {
                let best = self
                    .segments
                    .values()
                    .filter(|s| s.max_timestamp_ms >= 0 && s.next_offset > self.log_start_offset)
                    .max_by_key(|s| (s.max_timestamp_ms, std::cmp::Reverse(s.base_offset)));
                return Ok(best.map(|s| TimestampOffset { timestamp_ms: s.max_timestamp_ms, offset: s.max_timestamp_offset.max(self.log_start_offset) }));
            }
            _ => {}
        }
        for seg in self.segments.values() {
            if seg.max_timestamp_ms < timestamp_ms || seg.next_offset <= self.log_start_offset {
                continue;
            }
            let rel = seg.time_index.lookup(timestamp_ms);
            let mut pos = u64::from(seg.index.lookup(rel));
            let mut hb = [0u8; HEADER_BYTES];
            while pos < seg.size_bytes {
                let h = seg.read_header(pos, &mut hb)?;
                if h.max_timestamp >= timestamp_ms && h.last_offset() >= self.log_start_offset {
                    let (bytes, _) = seg.read_batches(pos, &h, 0, i64::MAX)?;
                    if h.compression() != 0 {
                        return Ok(Some(TimestampOffset { timestamp_ms: h.max_timestamp, offset: h.base_offset.max(self.log_start_offset) }));
                    }
                    let records = batch::parse_records(&bytes).map_err(|reason| StorageError::Corrupt { path: seg.log_path(), position: pos, reason })?;
                    for r in records {
                        let ts = if h.attributes & batch::ATTR_LOG_APPEND_TIME != 0 { h.max_timestamp } else { h.base_timestamp.wrapping_add(r.timestamp_delta) };
                        let off = h.base_offset + i64::from(r.offset_delta);
                        if ts >= timestamp_ms && off >= self.log_start_offset {
                            return Ok(Some(TimestampOffset { timestamp_ms: ts, offset: off }));
                        }
                    }
                }
                pos += h.size_bytes();
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_log_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::PartitionLog>();
        check::<super::StorageError>();
    }
}
