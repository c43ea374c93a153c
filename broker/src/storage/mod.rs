//! Segmented log storage: one [`PartitionLog`] per partition, written
//! through the [`crate::disk::Disk`] seam so the same code runs on the real
//! disk and on the simulation's faulty disk (which crashes, tears writes,
//! flips bits and runs out of space on purpose).
//!
//! # Why it is built this way
//!
//! - **Batches are stored exactly as the producer sent them** (Kafka
//!   RecordBatch v2), with only the 8-byte `baseOffset` rewritten. The CRC
//!   does not cover `baseOffset`, so the producer's CRC stays valid and is
//!   the log's end-to-end checksum: every batch is verified on append, on
//!   every read (a mismatch is [`StorageError::Corrupt`], never bad bytes)
//!   and during recovery.
//! - **Acknowledged means durable under `flush=every-batch`**: the append
//!   fsyncs before returning `Ok`. Whatever fails (write, fsync, ENOSPC),
//!   nothing is acknowledged and the file is truncated back, so a later
//!   append succeeds once the fault clears.
//! - **Indexes are derived data**, kept in memory and written (with a
//!   checksum) when a segment is sealed or the log is closed; a missing,
//!   stale or corrupt index is rebuilt from the log, so the append path
//!   never fsyncs an index.
//! - **Every file-system namespace change is followed by an fsync of the
//!   directory** (segment creation at roll, deletion by retention, the
//!   compaction swap, checkpoint renames), because a crash can undo any
//!   unsynced create, rename or remove.
//!
//! # On-disk format (version 1)
//!
//! A partition directory holds:
//!
//! | file                                | contents                                  |
//! |-------------------------------------|-------------------------------------------|
//! | `<base:020>.log`                    | concatenated RecordBatch v2 (segment)     |
//! | `<base:020>.index`                  | sparse offset index (derived)             |
//! | `<base:020>.timeindex`              | time index (derived)                      |
//! | `leader-epoch-checkpoint`           | epoch -> start offset                     |
//! | `log-start-offset-checkpoint`       | log start offset (after DeleteRecords)    |
//! | `<offset:020>.snapshot`             | opaque producer-state snapshot            |
//! | `.clean-shutdown`                   | present only between `close` and `open`   |
//! | `*.tmp`, `*.log.cleaned`            | incomplete; deleted at open               |
//! | `*.log.swap`                        | complete compaction output; swapped in at open |
//!
//! There is no `.txnindex` (Kafka's per-segment aborted-transaction index):
//! the aborted transactions are derived from the end-transaction markers in
//! the segments when the producer state is rebuilt (`crate::producer_state`),
//! which recovery does anyway in the absence of producer-state snapshots.
//!
//! `<base:020>` is the segment's first offset, zero-padded to 20 digits
//! (Kafka style: `00000000000000000000.log`). All integers are big-endian.
//! All checksums are CRC-32C (Castagnoli).
//!
//! ## `.log`: RecordBatch v2
//!
//! | bytes  | field                  | notes                                           |
//! |--------|------------------------|-------------------------------------------------|
//! | 0..8   | baseOffset i64         | assigned by the log; not under the CRC          |
//! | 8..12  | batchLength i32        | bytes after this field (>= 49)                  |
//! | 12..16 | partitionLeaderEpoch   | not under the CRC                               |
//! | 16     | magic i8               | must be 2 (the format version of the batch)     |
//! | 17..21 | crc u32                | CRC-32C of bytes 21..end                        |
//! | 21..23 | attributes i16         | 0-2 codec, 3 log-append-time, 4 txn, 5 control, 6 delete horizon |
//! | 23..27 | lastOffsetDelta i32    |                                                 |
//! | 27..35 | baseTimestamp i64      | delete horizon when attribute bit 6 is set      |
//! | 35..43 | maxTimestamp i64       |                                                 |
//! | 43..51 | producerId i64         |                                                 |
//! | 51..53 | producerEpoch i16      |                                                 |
//! | 53..57 | baseSequence i32       |                                                 |
//! | 57..61 | recordsCount i32       |                                                 |
//! | 61..   | records                | Kafka varint record encoding                    |
//!
//! Batches follow each other with no padding; base offsets strictly
//! increase (compaction leaves gaps, never reorders).
//!
//! ## `.index` and `.timeindex`
//!
//! Versioned (u16 = 1) with magic `DLOI` / `DLTI`, a header summarising the
//! segment (log bytes covered, next offset, max timestamp) and a CRC-32C over
//! header and entries; entries are `(relative_offset u32, position u32)` and
//! `(timestamp i64, relative_offset u32)`. Byte tables: see `index.rs`.
//! An index is used only if its checksum, base offset, and covered length
//! all match the `.log`.
//!
//! ## Checkpoints
//!
//! Framed as magic `DLCK`, version u16 = 1, kind u16, payload length u32,
//! payload CRC-32C u32, payload; replaced atomically (write `.tmp`, fsync,
//! rename, fsync directory). Payloads: see `checkpoint.rs`.
//!
//! ## Fixtures
//!
//! `broker/tests/fixtures/storage/v1/` is a partition directory written by
//! this version; `broker/tests/storage_fixtures.rs` opens it and checks every
//! record, and checks that the current code still writes the same bytes.
//! A format change bumps a version and adds a `v2/` fixture beside `v1/`.
//!
//! # Recovery rule (at [`PartitionLog::open`])
//!
//! 1. Delete `*.tmp` and `*.log.cleaned`; complete any `*.log.swap`
//!    (remove the old `.log` and its indexes, rename the swap file in);
//!    fsync the directory.
//! 2. Sealed segments (all but the last) whose `.index`/`.timeindex` are
//!    valid are trusted (they were fsynced at roll). Others are scanned.
//! 3. The last segment: after a clean shutdown (valid `.clean-shutdown`
//!    marker and index), only the tail from the last index entry is
//!    validated. Otherwise it is scanned batch by batch from the start:
//!    length bounds, magic, increasing offsets and CRC-32C (a failing batch
//!    is re-read twice before it counts, so a transient read error never
//!    truncates data).
//! 4. The first invalid batch ends the scan. If its length is implausible,
//!    it runs past the end of the file, or nothing valid follows it, it is a
//!    **torn tail**: the file is truncated there and fsynced (with a
//!    `warn!`). If whole valid batches follow it (or later segments hold
//!    data), it is **corruption before the tail**: with
//!    `log.recovery.corrupt_middle = fail` (default) open returns
//!    [`StorageError::CorruptMiddle`] and the partition does not load; with
//!    `truncate` the log is truncated at the bad batch (later segments
//!    deleted) with a loud `warn!` naming the bytes lost. Data is never
//!    skipped silently.
//! 5. The log end is the last segment's next offset; the log start is the
//!    first segment's base or the checkpointed start if higher. The active
//!    segment is fsynced, the marker removed (directory fsynced), epochs and
//!    snapshots past the end dropped.
//!
//! # API in brief
//!
//! - [`PartitionLog::open`] creates or recovers; [`PartitionLog::close`]
//!   leaves a clean-shutdown marker.
//! - Writes: [`PartitionLog::append`] (producer batches, offsets assigned),
//!   [`PartitionLog::append_as_leader`] (also stamps the leader epoch),
//!   [`PartitionLog::append_replicated`] (follower: offsets kept),
//!   [`PartitionLog::flush`], [`PartitionLog::roll`],
//!   [`PartitionLog::truncate_to`] (follower truncation).
//! - Reads: [`PartitionLog::read`], [`PartitionLog::read_bounded`] (e.g. up to
//!   the high watermark), [`PartitionLog::offset_for_timestamp`].
//! - Housekeeping: [`PartitionLog::enforce_retention`],
//!   [`PartitionLog::delete_records`], [`PartitionLog::compact_if_needed`],
//!   [`PartitionLog::compact`].
//! - Beside the log: [`PartitionLog::assign_epoch_start`],
//!   [`PartitionLog::end_offset_for_epoch`],
//!   [`PartitionLog::save_producer_snapshot`],
//!   [`PartitionLog::load_producer_snapshot`].
//!
//! # Concurrency
//!
//! `append` takes `&mut self`, `read` takes `&self`: the broker holds the log
//! in a lock (a read-write lock lets reads share). A read is bounded by the
//! log end offset it saw (and by `upper_offset`, e.g. the high watermark, in
//! [`PartitionLog::read_bounded`]), so it never returns uncommitted bytes.

mod batch;
mod checkpoint;
mod compaction;
mod config;
mod error;
mod index;
mod log;
mod maintenance;
mod segment;

pub use batch::{
    build_batch, build_control_batch, build_transactional_batch, crc_ok as batch_crc_ok, parse_control_marker, parse_records, set_producer, split_batches, BatchHeader,
    ControlBatchError, ControlMarker, Record, SimpleRecord,
};
pub use checkpoint::{EpochEntry, CHECKPOINT_VERSION};
pub use compaction::CompactionOutcome;
pub use config::{CleanupPolicy, CorruptMiddlePolicy, FlushPolicy, LogConfig, TimestampType};
pub use error::StorageError;
pub use index::{OFFSET_INDEX_VERSION, TIME_INDEX_VERSION};
pub use log::{
    AppendInfo, PartitionLog, ReadResult, RecoveryReport, TimestampOffset, CLEAN_SHUTDOWN_FILE, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE,
    MAX_TIMESTAMP,
};
pub use maintenance::RetentionOutcome;
pub use segment::{file_name as segment_file_name, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
