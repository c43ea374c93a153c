//! Typed storage errors (their Kafka error codes: `crate::error_codes`).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk failed (EIO or any other I/O error); the operation had no
    /// effect that a later read can observe.
    #[error("I/O error during {op} on {path:?}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The disk is full (ENOSPC); the append was not acknowledged and the
    /// log is unchanged.
    #[error("disk full during {op} on {path:?}")]
    StorageFull {
        /// What the log was doing.
        op: &'static str,
        /// The file involved.
        path: PathBuf,
    },
    /// Stored data failed its checksum or structural check: the log refuses
    /// to return it.
    #[error("corrupt data in {path:?} at byte {position}: {reason}")]
    Corrupt {
        /// The file holding the bad bytes.
        path: PathBuf,
        /// Byte position of the bad batch or entry in that file.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// Recovery found a corrupt batch followed by valid data (not a torn
    /// tail) and `corrupt_middle = fail`: the partition does not load.
    #[error("corrupt batch before the tail of {path:?} at byte {position} ({valid_bytes_after} valid bytes follow); refusing to load (log.recovery.corrupt_middle=fail)")]
    CorruptMiddle {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the corrupt batch.
        position: u64,
        /// Bytes of valid batches that follow it.
        valid_bytes_after: u64,
    },
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// First offset held.
        log_start_offset: i64,
        /// Next offset to be assigned.
        log_end_offset: i64,
    },
    /// A batch from a producer is malformed (bad length, bad CRC): Kafka's
    /// CORRUPT_MESSAGE.
    #[error("malformed batch at byte {position} of the request: {reason}")]
    CorruptBatch {
        /// Byte position in the appended buffer.
        position: usize,
        /// What check failed.
        reason: String,
    },
    /// A batch is well formed but not acceptable here (e.g. a record without
    /// a key on a compacted topic).
    #[error("invalid record: {reason}")]
    InvalidRecord {
        /// Why it was rejected.
        reason: String,
    },
    /// A batch uses a message format other than v2 (magic 2).
    #[error("unsupported magic {magic} (only 2 is supported)")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// The append is larger than a segment may hold.
    #[error("batch of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    RecordTooLarge {
        /// Size of the offending append.
        size_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// A configuration value could not be parsed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A previous failure left the log unable to accept writes (for example
    /// it could not truncate away a failed append); reopen it.
    #[error("log is offline after an earlier failure: {0}")]
    Offline(String),
}

impl StorageError {
    /// Wraps an `io::Error`, turning ENOSPC into [`StorageError::StorageFull`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::StorageFull {
            StorageError::StorageFull { op, path }
        } else {
            StorageError::Io { op, path, source }
        }
    }

    /// Whether this error came from the disk (EIO/ENOSPC) rather than bad
    /// input; such errors leave the log consistent and may clear.
    pub fn is_disk_error(&self) -> bool {
        matches!(self, StorageError::Io { .. } | StorageError::StorageFull { .. })
    }
}

/// Shorthand for storage results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
