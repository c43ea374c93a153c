//! Segmented log storage: one [`PartitionLog`] per partition, on the
//! [`crate::disk::Disk`] seam so the same code runs on a real disk and on
//! the simulation's faulty disk.
//!
//! (Full format documentation: see the "On-disk format" section below.)

mod batch;
mod checkpoint;
mod compaction;
mod config;
mod error;
mod index;
mod log;
mod maintenance;
mod segment;

pub use batch::{build_batch, crc_ok as batch_crc_ok, parse_records, BatchHeader, Record, SimpleRecord};
pub use checkpoint::EpochEntry;
pub use compaction::CompactionOutcome;
pub use maintenance::RetentionOutcome;
pub use config::{CleanupPolicy, CorruptMiddlePolicy, FlushPolicy, LogConfig, TimestampType};
pub use error::{StorageError, CORRUPT_MESSAGE, INVALID_RECORD, KAFKA_STORAGE_ERROR, MESSAGE_TOO_LARGE, OFFSET_OUT_OF_RANGE, UNSUPPORTED_FOR_MESSAGE_FORMAT};
pub use log::{AppendInfo, PartitionLog, ReadResult, RecoveryReport, TimestampOffset, CLEAN_SHUTDOWN_FILE, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE};
pub use segment::{file_name as segment_file_name, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
