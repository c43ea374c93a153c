//! Per-partition log configuration (Kafka topic-level names in the docs).

use std::str::FromStr;

use super::error::StorageError;

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    #[default]
    /// Sync before every append returns `Ok` (an acknowledged batch is on
    /// disk). Parsed from `every-batch`.
    EveryBatch,
    /// Sync when an append finds the last sync older than `interval_ms`, and
    /// whenever the broker calls [`super::PartitionLog::flush`] on its timer.
    /// Parsed from `interval` (100 ms) or `interval:<ms>`.
    Interval {
        /// Longest time unsynced data may wait, in milliseconds.
        interval_ms: u64,
    },
    /// Never sync on append; data is synced at segment roll, on `flush()` and
    /// at `close()`. Parsed from `never`.
    Never,
}

impl FromStr for FlushPolicy {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "every-batch" | "every_batch" | "everybatch" => Ok(FlushPolicy::EveryBatch),
            "never" => Ok(FlushPolicy::Never),
            "interval" => Ok(FlushPolicy::Interval { interval_ms: 100 }),
            _ => {
                if let Some(ms) = s.strip_prefix("interval:").or_else(|| s.strip_prefix("interval=")) {
                    let interval_ms = ms
                        .trim()
                        .trim_end_matches("ms")
                        .parse::<u64>()
                        .map_err(|e| StorageError::Config(format!("bad flush interval {ms:?}: {e}")))?;
                    Ok(FlushPolicy::Interval { interval_ms })
                } else {
                    Err(StorageError::Config(format!(
                        "unknown flush policy {s:?} (expected every-batch, interval, interval:<ms> or never)"
                    )))
                }
            }
        }
    }
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushPolicy::EveryBatch => write!(f, "every-batch"),
            FlushPolicy::Interval { interval_ms } => write!(f, "interval:{interval_ms}"),
            FlushPolicy::Never => write!(f, "never"),
        }
    }
}

/// Kafka `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// `delete`: retention by time/size only.
    #[default]
    Delete,
    /// `compact`: keep the latest record per key.
    Compact,
    /// `compact,delete`: both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether compaction applies (and keyless records are rejected).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
    /// Whether time/size retention applies.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

impl std::fmt::Display for CleanupPolicy {
    /// Kafka's spelling, as `cleanup.policy` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        })
    }
}

impl FromStr for CleanupPolicy {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts: Vec<&str> = s.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["delete"] => Ok(CleanupPolicy::Delete),
            ["compact"] => Ok(CleanupPolicy::Compact),
            ["compact", "delete"] => Ok(CleanupPolicy::CompactDelete),
            _ => Err(StorageError::Config(format!("unknown cleanup.policy {s:?}"))),
        }
    }
}

/// What recovery does when it finds a corrupt batch that is followed by
/// valid data (so it is not a torn tail): `log.recovery.corrupt_middle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorruptMiddlePolicy {
    /// `fail`: the partition does not load ([`StorageError::CorruptMiddle`]).
    #[default]
    Fail,
    /// `truncate`: truncate the log at the corrupt batch (losing it and
    /// everything after it) with a loud `tracing::warn!`.
    Truncate,
}

impl FromStr for CorruptMiddlePolicy {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "fail" => Ok(CorruptMiddlePolicy::Fail),
            "truncate" => Ok(CorruptMiddlePolicy::Truncate),
            _ => Err(StorageError::Config(format!("unknown log.recovery.corrupt_middle {s:?} (fail | truncate)"))),
        }
    }
}

/// Kafka `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// Stamp every batch with the broker's clock at append
    /// (`maxTimestamp` rewritten, attribute bit 3 set, CRC recomputed).
    LogAppendTime,
}

/// Configuration of one partition's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when an append would make it
    /// larger than this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment when it is older than this
    /// (age from its creation, or its first batch's timestamp on recovery).
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of log between sparse index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete sealed segments whose newest record is older
    /// than this. `None` = unlimited.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest sealed segments while the log is
    /// larger than this. `None` = unlimited.
    pub retention_bytes: Option<u64>,
    /// `flush.*`: when appends are fsynced.
    pub flush: FlushPolicy,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: compact when dirty bytes / cleanable
    /// bytes is at least this.
    pub min_cleanable_dirty_ratio: f64,
    /// `delete.retention.ms`: how long a tombstone survives after the
    /// cleaning pass that first saw it.
    pub delete_retention_ms: i64,
    /// `max.message.bytes`: largest append accepted.
    pub max_message_bytes: u64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `log.recovery.corrupt_middle`.
    pub corrupt_middle: CorruptMiddlePolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            flush: FlushPolicy::EveryBatch,
            cleanup_policy: CleanupPolicy::Delete,
            min_cleanable_dirty_ratio: 0.5,
            delete_retention_ms: 24 * 3600 * 1000,
            max_message_bytes: 1024 * 1024 + 12,
            timestamp_type: TimestampType::CreateTime,
            corrupt_middle: CorruptMiddlePolicy::Fail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_parses() {
        assert_eq!("every-batch".parse::<FlushPolicy>().unwrap(), FlushPolicy::EveryBatch);
        assert_eq!("never".parse::<FlushPolicy>().unwrap(), FlushPolicy::Never);
        assert_eq!("interval".parse::<FlushPolicy>().unwrap(), FlushPolicy::Interval { interval_ms: 100 });
        assert_eq!("interval:250".parse::<FlushPolicy>().unwrap(), FlushPolicy::Interval { interval_ms: 250 });
        assert!("sometimes".parse::<FlushPolicy>().is_err());
        assert!("interval:x".parse::<FlushPolicy>().is_err());
        assert_eq!("compact, delete".parse::<CleanupPolicy>().unwrap(), CleanupPolicy::CompactDelete);
    }
}
