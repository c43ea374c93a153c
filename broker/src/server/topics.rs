//! Topics: their metadata files and their partition logs.
//!
//! # Files
//!
//! | file                                  | what it holds |
//! |---------------------------------------|---------------|
//! | `<data_dir>/<topic>.topic`            | [`TopicMeta`] as JSON: `{"partitions": N, "configs": {...}}` |
//! | `<data_dir>/<topic>-<p>/`             | partition `p`'s log (see [`crate::storage`]) |
//! | `<data_dir>/<topic>-<p>/partition.metadata` | cluster mode only: the id of the topic incarnation the log belongs to |
//!
//! Every one of these files is written the same way ([`write_atomically`]):
//! to `<name>.tmp`, fsynced, renamed into place, then the directory is
//! fsynced, so a crash leaves the old file or the new one, never a mix. A
//! stray `partition.metadata.tmp` is removed by the log's recovery (it
//! removes every `*.tmp`).
//!
//! ## `partition.metadata`
//!
//! Modelled on Kafka's file of the same name: ASCII text, two lines, each
//! ending in `\n`:
//!
//! ```text
//! version: 0
//! topic_id: 42
//! ```
//!
//! (fixture: `broker/tests/fixtures/partition-metadata/v0/`). `topic_id`
//! is the controller's topic id (a `u64` in decimal: the Raft
//! offset of the record that created the topic, so a topic created later
//! always has a larger id). Anything else (another version, a missing line,
//! trailing bytes) is [`TopicError::BadPartitionMetadata`].
//!
//! ## Why: a deleted topic must not come back
//!
//! In cluster mode a broker opens a partition's log on first use, from the
//! directory named after the topic. If topic `t` is deleted and created
//! again, the directory may still hold the first incarnation's records;
//! serving them under the new topic would resurrect deleted data. So the
//! log is opened only through [`create`] with the view's topic id, which
//! checks each partition directory first:
//!
//! | stored id               | action |
//! |-------------------------|--------|
//! | equal to the view's     | open the log as it is |
//! | smaller, or unreadable  | an older incarnation: remove its files ([`wipe_partition`]), write the new id, open an empty log |
//! | larger                  | the view is older than the data: refuse ([`TopicError::StaleTopicId`]), remove nothing |
//! | no file                 | a fresh directory, or data written before ids existed: write the id and keep the data |
//!
//! [`wipe_partition`] removes `partition.metadata` last, after a directory
//! fsync has made the other removals durable, so a crash part-way leaves
//! either the old id (and the next open wipes again) or an empty directory.
//!
//! In standalone mode there are no topic ids: a topic exists exactly when
//! its `.topic` file does. Deleting removes the `.topic` file first (then
//! the partitions' files), and creating a topic first removes whatever a
//! partition directory still holds, so leftovers of a deleted topic (or of
//! a crash during a delete) never reach a new topic of the same name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::controller::TopicId;
use crate::disk::{Disk, OpenMode};
use super::partition::Partition;
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
    /// A `partition.metadata` file does not parse.
    #[error("partition metadata {path}: {reason}")]
    BadPartitionMetadata {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A partition directory belongs to a newer incarnation of the topic
    /// than the metadata view asking for it: the view is stale.
    #[error("partition {partition} of {topic} holds topic id {stored}, newer than the view's {requested}")]
    StaleTopicId {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The id on disk.
        stored: TopicId,
        /// The id the view names.
        requested: TopicId,
    },
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

/// The topic id (a UUID) clients see for a topic: Metadata v10+ reports
/// it, and KIP-848 assignments name topics by it. Derived from the name
/// and the incarnation (the controller's [`TopicId`] in cluster mode, none
/// standalone), so every broker hands out the same id and a recreated
/// topic (cluster mode) gets a new one. Never the all-zero UUID, which
/// Kafka reserves for "no id".
pub fn kafka_topic_uuid(name: &str, incarnation: Option<TopicId>) -> uuid::Uuid {
    // FNV-1a, twice with different offsets: stable across builds and
    // platforms (std's hasher is not guaranteed to be).
    let fnv = |offset: u64| {
        let mut hash = offset;
        for byte in name.bytes().chain(incarnation.unwrap_or(0).to_le_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    };
    let (high, low) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4) | 1);
    uuid::Uuid::from_u64_pair(high, low)
}

/// A topic and its partition logs, each behind its own lock.
pub struct Topic {
    /// The topic's name.
    pub name: String,
    /// What was persisted about it.
    pub meta: TopicMeta,
    /// Cluster mode: the controller's id of the incarnation whose data the
    /// partitions hold (`None` in standalone mode, or when the partitions'
    /// `partition.metadata` files are missing or disagree).
    pub topic_id: Option<TopicId>,
    /// Partition logs, indexed by partition number.
    pub partitions: Vec<Arc<Mutex<Partition>>>,
}

impl Topic {
    /// The topic's `min.insync.replicas`, or the broker's.
    pub fn min_insync_replicas(&self, config: &BrokerConfig) -> usize {
        self.meta
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(config.min_insync_replicas)
    }
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

/// Where a topic's metadata file lives.
pub fn meta_path(data_dir: &Path, topic: &str) -> PathBuf {
    data_dir.join(format!("{topic}.topic"))
}

/// The file in a partition directory naming the topic id it belongs to.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// The only `partition.metadata` version written and read.
const PARTITION_METADATA_VERSION: u32 = 0;

/// Writes `<dir>/<name>` atomically and durably ([`crate::disk::replace_file`]).
pub fn write_atomically(disk: &dyn Disk, dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::disk::replace_file(disk, dir, name, bytes, true).map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))
}

/// The text of a `partition.metadata` file.
pub fn encode_partition_metadata(topic_id: TopicId) -> String {
    format!("version: {PARTITION_METADATA_VERSION}\ntopic_id: {topic_id}\n")
}

/// Parses a `partition.metadata` file; `Err` says what is wrong.
pub fn decode_partition_metadata(bytes: &[u8]) -> Result<TopicId, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let body = text.strip_suffix('\n').ok_or("no final newline")?;
    let mut lines = body.split('\n');
    let version = lines.next().and_then(|l| l.strip_prefix("version: ")).ok_or("no version line")?;
    if version != PARTITION_METADATA_VERSION.to_string() {
        return Err(format!("unknown version {version:?}"));
    }
    let id = lines.next().and_then(|l| l.strip_prefix("topic_id: ")).ok_or("no topic_id line")?;
    if lines.next().is_some() {
        return Err("trailing lines".into());
    }
    // `u64::from_str` accepts a leading '+'; the format does not.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad topic id {id:?}"));
    }
    id.parse().map_err(|_| format!("bad topic id {id:?}"))
}

/// The topic id stored in a partition directory: `Ok(None)` if there is no
/// `partition.metadata` (or no directory).
fn read_partition_id(disk: &dyn Disk, dir: &Path) -> Result<Option<TopicId>, TopicError> {
    let path = dir.join(PARTITION_METADATA_FILE);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let file = disk.open(&path, OpenMode::Existing)?;
    let len = file.len()?;
    // The file is a few dozen bytes; anything long is not ours.
    const PARTITION_METADATA_BYTES_MAX: u64 = 256;
    let bad = |reason: String| TopicError::BadPartitionMetadata {
        path: path.display().to_string(),
        reason,
    };
    if len > PARTITION_METADATA_BYTES_MAX {
        return Err(bad(format!("{len} bytes")));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    decode_partition_metadata(&bytes).map(Some).map_err(bad)
}

/// Removes every file of a partition directory, `partition.metadata`
/// last and only once the other removals are durable (see the module
/// docs). The directory itself stays (the disk seam cannot remove
/// directories); an empty directory opens as an empty log. A missing
/// directory is fine.
pub fn wipe_partition(disk: &dyn Disk, dir: &Path) -> std::io::Result<()> {
    if !disk.exists(dir) {
        return Ok(());
    }
    let names = disk.list_dir(dir)?;
    let mut removed = 0;
    for name in names.iter().filter(|n| *n != PARTITION_METADATA_FILE) {
        disk.remove_file(&dir.join(name))?;
        removed += 1;
    }
    if removed > 0 {
        disk.sync_dir(dir)?;
    }
    if names.iter().any(|n| n == PARTITION_METADATA_FILE) {
        disk.remove_file(&dir.join(PARTITION_METADATA_FILE))?;
        disk.sync_dir(dir)?;
    }
    Ok(())
}

/// Makes partition directory `dir` belong to topic incarnation `topic_id`
/// before its log is opened (the table in the module docs).
fn claim_partition(disk: &dyn Disk, data_dir: &Path, name: &str, partition: i32, topic_id: TopicId) -> Result<(), TopicError> {
    let dir = partition_dir(data_dir, name, partition);
    let stored = match read_partition_id(disk, &dir) {
        Ok(stored) => stored,
        Err(error @ TopicError::BadPartitionMetadata { .. }) => {
            tracing::warn!(%error, "unreadable partition metadata: treating the partition as an older incarnation");
            Some(0)
        }
        Err(error) => return Err(error),
    };
    match stored {
        Some(stored) if stored == topic_id => return Ok(()),
        Some(stored) if stored > topic_id => {
            return Err(TopicError::StaleTopicId {
                topic: name.into(),
                partition,
                stored,
                requested: topic_id,
            })
        }
        Some(stored) => {
            tracing::info!(topic = name, partition, stored, topic_id, "removing the data of an older incarnation of the topic");
            wipe_partition(disk, &dir)?;
        }
        None => {
            disk.create_dir_all(&dir)?;
            disk.sync_dir(data_dir)?;
        }
    }
    write_atomically(disk, &dir, PARTITION_METADATA_FILE, encode_partition_metadata(topic_id).as_bytes())?;
    Ok(())
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
    "min.insync.replicas",
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
            // Not a log setting: acks=all reads it (`Topic::min_insync_replicas`).
            "min.insync.replicas" => {
                value.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
            }
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
) -> Result<Vec<Arc<Mutex<Partition>>>, TopicError> {
    open_partition_range(config, disk, clock, name, meta, 0..meta.partitions)
}

fn open_partition_range(
    config: &BrokerConfig,
    disk: &Arc<dyn Disk>,
    clock: &Arc<dyn Clock>,
    name: &str,
    meta: &TopicMeta,
    range: std::ops::Range<i32>,
) -> Result<Vec<Arc<Mutex<Partition>>>, TopicError> {
    let log = log_config(config, &meta.configs)?;
    let cluster_mode = config.controller_quorum_voters.is_some();
    range
        .map(|partition| {
            let dir = partition_dir(&config.data_dir, name, partition);
            PartitionLog::open(disk.clone(), clock.clone(), dir, log.clone())
                .map(|log| {
                    let partition = if cluster_mode { Partition::cluster(log) } else { Partition::standalone(log) };
                    Arc::new(Mutex::new(partition.with_producer_id_expiration_ms(config.producer_id_expiration_ms)))
                })
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
        let topic_id = stored_topic_id(disk.as_ref(), data_dir, name, meta.partitions);
        topics.insert(
            name.to_string(),
            Arc::new(Topic {
                name: name.into(),
                meta,
                topic_id,
                partitions,
            }),
        );
    }
    Ok(topics)
}

/// The topic id every partition directory of a topic names, if they all
/// name the same one.
fn stored_topic_id(disk: &dyn Disk, data_dir: &Path, name: &str, partitions: i32) -> Option<TopicId> {
    let mut ids = (0..partitions).map(|p| read_partition_id(disk, &partition_dir(data_dir, name, p)).ok().flatten());
    let first = ids.next()??;
    ids.all(|id| id == Some(first)).then_some(first)
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

/// Creates (or, in cluster mode, opens) a topic durably: partition
/// directories first, then the metadata file (temp, fsync, rename, fsync
/// dir), so a crash never leaves a topic whose metadata names partitions
/// that do not exist.
///
/// `topic_id` is the controller's id of the incarnation to open (cluster
/// mode): each partition directory is claimed for it first, which removes
/// an older incarnation's data and keeps this one's. Without an id
/// (standalone mode) the topic is new by definition, so whatever its
/// partition directories still hold is a deleted topic's leftover and is
/// removed.
pub fn create(
    config: &BrokerConfig,
    disk: &Arc<dyn Disk>,
    clock: &Arc<dyn Clock>,
    name: &str,
    meta: TopicMeta,
    topic_id: Option<TopicId>,
) -> Result<Topic, TopicError> {
    validate(config, name, &meta)?;
    let data_dir = &config.data_dir;
    for partition in 0..meta.partitions {
        match topic_id {
            Some(id) => claim_partition(disk.as_ref(), data_dir, name, partition, id)?,
            None => wipe_partition(disk.as_ref(), &partition_dir(data_dir, name, partition))?,
        }
    }
    let partitions = open_partitions(config, disk, clock, name, &meta)?;
    disk.sync_dir(data_dir)?;
    let bytes = serde_json::to_vec(&meta).map_err(|e| std::io::Error::other(e.to_string()))?;
    write_atomically(disk.as_ref(), data_dir, &format!("{name}.topic"), &bytes)?;
    Ok(Topic {
        name: name.into(),
        meta,
        topic_id,
        partitions,
    })
}

/// CreatePartitions: the open `topic` grown to `partitions` partitions.
/// The new partition directories are prepared as [`create`] does (claimed
/// for the topic id in cluster mode, wiped of leftovers otherwise), then
/// the metadata file names the new count (the commit point: a crash before
/// it leaves the topic as it was, and the next growth prepares the
/// directories again). The existing partitions are shared, not reopened.
pub fn grow(
    config: &BrokerConfig,
    disk: &Arc<dyn Disk>,
    clock: &Arc<dyn Clock>,
    topic: &Topic,
    partitions: i32,
) -> Result<Topic, TopicError> {
    let old = topic.meta.partitions;
    if partitions <= old {
        return Err(TopicError::InvalidPartitions(partitions));
    }
    let meta = TopicMeta { partitions, configs: topic.meta.configs.clone() };
    let data_dir = &config.data_dir;
    for partition in old..partitions {
        match topic.topic_id {
            Some(id) => claim_partition(disk.as_ref(), data_dir, &topic.name, partition, id)?,
            None => wipe_partition(disk.as_ref(), &partition_dir(data_dir, &topic.name, partition))?,
        }
    }
    let mut all = topic.partitions.clone();
    all.extend(open_partition_range(config, disk, clock, &topic.name, &meta, old..partitions)?);
    disk.sync_dir(data_dir)?;
    let bytes = serde_json::to_vec(&meta).map_err(|e| std::io::Error::other(e.to_string()))?;
    write_atomically(disk.as_ref(), data_dir, &format!("{}.topic", topic.name), &bytes)?;
    Ok(Topic { name: topic.name.clone(), meta, topic_id: topic.topic_id, partitions: all })
}

/// Takes a topic out of service: every partition log is flushed (if its
/// data is to be kept) and marked offline, so a request that still holds a
/// handle gets an error instead of writing into files that are about to go
/// or be reopened by a new handle. Call it after removing the topic from
/// the broker's table.
pub fn retire(topic: &Topic, keep_data: bool) {
    for partition in &topic.partitions {
        let mut guard = partition.lock().unwrap_or_else(|e| e.into_inner());
        let log = &mut guard.log;
        if keep_data && !log.is_offline() {
            if let Err(error) = log.flush() {
                tracing::warn!(topic = %topic.name, %error, "flush of a retired partition failed");
            }
        }
        log.retire(&format!("topic {} was deleted or replaced", topic.name));
    }
}

/// Deletes a topic's files: its `.topic` file first (durably: from then on
/// the topic does not exist, even after a crash), then each partition's
/// files. The topic must already be [`retire`]d. Leftovers of a failure in
/// the second step are removed by the next [`create`] of the name.
pub fn delete(config: &BrokerConfig, disk: &dyn Disk, topic: &Topic) -> Result<(), TopicError> {
    delete_meta(config, disk, &topic.name)?;
    wipe_partitions(disk, &config.data_dir, topic)
}

/// Removes a topic's `.topic` file durably (a missing file is fine).
pub fn delete_meta(config: &BrokerConfig, disk: &dyn Disk, name: &str) -> Result<(), TopicError> {
    let data_dir = &config.data_dir;
    let path = meta_path(data_dir, name);
    if disk.exists(&path) {
        disk.remove_file(&path)?;
        disk.sync_dir(data_dir)?;
    }
    Ok(())
}

/// Removes the files of each of a topic's partitions ([`wipe_partition`]).
pub fn wipe_partitions(disk: &dyn Disk, data_dir: &Path, topic: &Topic) -> Result<(), TopicError> {
    for partition in 0..topic.meta.partitions {
        wipe_partition(disk, &partition_dir(data_dir, &topic.name, partition))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_metadata_round_trips_and_rejects_garbage() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(decode_partition_metadata(encode_partition_metadata(id).as_bytes()), Ok(id));
        }
        assert_eq!(encode_partition_metadata(42), "version: 0\ntopic_id: 42\n");
        for bad in [
            "",
            "version: 0\ntopic_id: 42",
            "version: 1\ntopic_id: 42\n",
            "version: 0\ntopic_id: +42\n",
            "version: 0\ntopic_id: -1\n",
            "version: 0\ntopic_id: \n",
            "version: 0\ntopic_id: 42\nextra\n",
            "topic_id: 42\nversion: 0\n",
            "version: 0\ntopic_id: 99999999999999999999999\n",
        ] {
            assert!(decode_partition_metadata(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
        assert!(decode_partition_metadata(&[0xff, 0xfe]).is_err());
    }

    /// The v0 fixture (`tests/fixtures/partition-metadata/v0/`) still
    /// reads, and the current code writes exactly its bytes.
    #[test]
    fn partition_metadata_v0_fixture_reads_and_is_what_we_write() {
        let fixture = include_bytes!("../../tests/fixtures/partition-metadata/v0/partition.metadata");
        assert_eq!(decode_partition_metadata(fixture), Ok(42));
        assert_eq!(encode_partition_metadata(42).as_bytes(), fixture);
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a/b", "spaces here", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
