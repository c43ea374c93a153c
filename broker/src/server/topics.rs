//! Topics: their metadata files and their partition logs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::disk::{Disk, OpenMode};
use crate::storage::{LogConfig, PartitionLog, StorageError};

/// Longest legal topic name, as in Kafka.
pub const TOPIC_NAME_LEN_MAX: usize = 249;

/// What is persisted about a topic (`<data_dir>/<name>.topic`, JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopicMeta {
    /// Number of partitions.
    pub partitions: i32,
    /// Per-topic settings given at creation.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// Why a topic could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The name has characters outside `[a-zA-Z0-9._-]`, is empty, `.`/`..`, or too long.
    #[error("invalid topic name {0:?}")]
    InvalidName(String),
    /// The topic exists already.
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    /// Partition count below 1.
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    /// A topic config is unknown or its value does not parse.
    #[error("invalid topic config: {0}")]
    InvalidConfig(String),
    /// The metadata file is unreadable or not valid JSON.
    #[error("topic metadata {path}: {reason}")]
    BadMeta {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing metadata failed.
    #[error("topic metadata I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A partition log failed to open or recover.
    #[error("partition {partition} of {topic}: {source}")]
    Storage {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The storage error.
        source: StorageError,
    },
}

/// A topic and its partition logs, each behind its own lock.
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// What was persisted about it.
    pub meta: TopicMeta,
    /// Partition logs, indexed by partition number.
    pub partitions: Vec<Arc<Mutex<PartitionLog>>>,
}

/// Checks a topic name the way Kafka does.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let legal = !name.is_empty()
        && name.len() <= TOPIC_NAME_LEN_MAX
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if legal {
        Ok(())
    } else {
        Err(TopicError::InvalidName(name.into()))
    }
}

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// The per-topic settings a topic may be created with (Kafka names).
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "min.cleanable.dirty.ratio",
    "delete.retention.ms",
    "max.message.bytes",
];

/// The log settings of a topic: the broker's defaults, overridden by the
/// topic's own configs. An unknown name or a bad value is an error.
pub fn log_config(config: &BrokerConfig, configs: &BTreeMap<String, String>) -> Result<LogConfig, TopicError> {
    let mut log = LogConfig {
        segment_bytes: config.log_segment_bytes,
        flush: config.log_flush,
        ..LogConfig::default()
    };
    for (key, value) in configs {
        let bad = || TopicError::InvalidConfig(format!("{key}={value}"));
        match key.as_str() {
            "segment.bytes" => log.segment_bytes = value.parse().map_err(|_| bad())?,
            "segment.ms" => log.segment_ms = value.parse().map_err(|_| bad())?,
            // Kafka spells "no limit" as -1.
            "retention.ms" => log.retention_ms = Some(value.parse::<i64>().map_err(|_| bad())?).filter(|ms| *ms >= 0),
            "retention.bytes" => log.retention_bytes = value.parse::<i64>().map_err(|_| bad())?.try_into().ok(),
            "cleanup.policy" => log.cleanup_policy = value.parse().map_err(|_| bad())?,
            "min.cleanable.dirty.ratio" => log.min_cleanable_dirty_ratio = value.parse().map_err(|_| bad())?,
            "delete.retention.ms" => log.delete_retention_ms = value.parse().map_err(|_| bad())?,
            "max.message.bytes" => log.max_message_bytes = value.parse().map_err(|_| bad())?,
            _ => {
                return Err(TopicError::InvalidConfig(format!(
                    "unknown topic config {key:?} (known: {})",
                    TOPIC_CONFIG_KEYS.join(", ")
                )))
            }
        }
    }
    Ok(log)
}

fn open_partitions(
    config: &BrokerConfig,
    disk: &Arc<dyn Disk>,
    clock: &Arc<dyn Clock>,
    name: &str,
    meta: &TopicMeta,
) -> Result<Vec<Arc<Mutex<PartitionLog>>>, TopicError> {
    let log = log_config(config, &meta.configs)?;
    (0..meta.partitions)
        .map(|partition| {
            let dir = partition_dir(&config.data_dir, name, partition);
            PartitionLog::open(disk.clone(), clock.clone(), dir, log.clone())
                .map(|log| Arc::new(Mutex::new(log)))
                .map_err(|source| TopicError::Storage {
                    topic: name.into(),
                    partition,
                    source,
                })
        })
        .collect()
}

/// Loads every topic whose metadata file is in the data directory.
pub fn load_all(
    config: &BrokerConfig,
    disk: &Arc<dyn Disk>,
    clock: &Arc<dyn Clock>,
) -> Result<BTreeMap<String, Arc<Topic>>, super::BrokerError> {
    let data_dir = &config.data_dir;
    let dir_error = |source| super::BrokerError::DataDir {
        path: data_dir.display().to_string(),
        source,
    };
    disk.create_dir_all(data_dir).map_err(dir_error)?;
    let mut topics = BTreeMap::new();
    for file_name in disk.list_dir(data_dir).map_err(dir_error)? {
        let Some(name) = file_name.strip_suffix(".topic") else {
            continue;
        };
        let path = data_dir.join(&file_name);
        let meta = read_meta(disk.as_ref(), &path)?;
        let partitions = open_partitions(config, disk, clock, name, &meta)?;
        topics.insert(
            name.to_string(),
            Arc::new(Topic {
                name: name.into(),
                meta,
                partitions,
            }),
        );
    }
    Ok(topics)
}

fn read_meta(disk: &dyn Disk, path: &Path) -> Result<TopicMeta, TopicError> {
    let bad = |reason: String| TopicError::BadMeta {
        path: path.display().to_string(),
        reason,
    };
    let file = disk.open(path, OpenMode::Existing)?;
    let mut bytes = vec![0u8; file.len()? as usize];
    file.read_exact_at(&mut bytes, 0)?;
    let meta: TopicMeta = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if meta.partitions < 1 {
        return Err(bad(format!("partition count {}", meta.partitions)));
    }
    Ok(meta)
}

/// Checks a topic before creating it: name, partition count, configs.
pub fn validate(config: &BrokerConfig, name: &str, meta: &TopicMeta) -> Result<(), TopicError> {
    validate_name(name)?;
    if meta.partitions < 1 {
        return Err(TopicError::InvalidPartitions(meta.partitions));
    }
    log_config(config, &meta.configs).map(|_| ())
}

/// Creates a topic durably: partition directories first, then the metadata
/// file (temp, fsync, rename, fsync dir), so a crash never leaves a topic
/// whose metadata names partitions that do not exist.
pub fn create(
    config: &BrokerConfig,
    disk: &Arc<dyn Disk>,
    clock: &Arc<dyn Clock>,
    name: &str,
    meta: TopicMeta,
) -> Result<Topic, TopicError> {
    validate(config, name, &meta)?;
    let data_dir = &config.data_dir;
    let partitions = open_partitions(config, disk, clock, name, &meta)?;
    disk.sync_dir(data_dir)?;
    let temp = data_dir.join(format!("{name}.topic.tmp"));
    let file = disk.open(&temp, OpenMode::Truncate)?;
    let bytes = serde_json::to_vec(&meta).map_err(|e| std::io::Error::other(e.to_string()))?;
    file.write_at(&bytes, 0)?;
    file.sync()?;
    disk.rename(&temp, &data_dir.join(format!("{name}.topic")))?;
    disk.sync_dir(data_dir)?;
    Ok(Topic {
        name: name.into(),
        meta,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a/b", "spaces here", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
