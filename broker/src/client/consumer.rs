//! The consumer: manual assignment, seek, and poll.
//!
//! A position is the next offset to return. A partition without a position
//! (fresh assignment, or after OFFSET_OUT_OF_RANGE) is reset with
//! ListOffsets to the earliest offset (`auto.offset.reset=earliest`) or the
//! latest one. Records below the position in a returned batch are skipped;
//! control records (transaction markers) are never returned, and with
//! `isolation_level` 1 (read_committed, the default) neither are the
//! records of aborted transactions the broker lists in its answer.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    BrokerId, FetchRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

use super::{ClientError, Cluster, TopicPartition};

/// Fetch request version this client speaks.
pub const FETCH_VERSION: i16 = 11;
/// ListOffsets request version this client speaks.
pub const LIST_OFFSETS_VERSION: i16 = 5;

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `host:port` of any broker.
    pub bootstrap: String,
    /// Client id sent in every request header.
    pub client_id: String,
    /// Per-request timeout.
    pub request_timeout_ms: u64,
    /// How long a fetch may wait on the broker for data.
    pub fetch_wait_ms_max: u64,
    /// Largest fetch response asked for.
    pub fetch_bytes_max: i32,
    /// Reset to the earliest (true) or latest (false) offset when a position is unknown.
    pub reset_to_earliest: bool,
    /// 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            client_id: "dlog-consumer".into(),
            request_timeout_ms: 5_000,
            fetch_wait_ms_max: 500,
            fetch_bytes_max: 1024 * 1024,
            reset_to_earliest: true,
            isolation_level: 1,
        }
    }
}

/// A record returned by `poll`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Where it came from.
    pub tp: TopicPartition,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
}

/// A consumer with manual assignment.
pub struct Consumer {
    config: ConsumerConfig,
    cluster: Cluster,
    positions: BTreeMap<TopicPartition, Option<i64>>,
    high_watermarks: BTreeMap<TopicPartition, i64>,
    /// Successful fetches per partition, so a caller can tell a fresh high
    /// watermark from one remembered from before a leader went away.
    fetches: BTreeMap<TopicPartition, u64>,
}

impl Consumer {
    /// A consumer; connects lazily.
    pub fn new(config: ConsumerConfig) -> Self {
        let cluster = Cluster::new(&config.bootstrap, &config.client_id, config.request_timeout_ms);
        Self {
            config,
            cluster,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            fetches: BTreeMap::new(),
        }
    }

    /// Replaces the assignment; partitions kept keep their position.
    pub fn assign(&mut self, partitions: &[TopicPartition]) {
        let old = std::mem::take(&mut self.positions);
        for tp in partitions {
            self.positions.insert(tp.clone(), old.get(tp).copied().flatten());
        }
    }

    /// The current assignment.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// Sets the next offset to read from an assigned partition.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(position) = self.positions.get_mut(tp) {
            *position = Some(offset);
        }
    }

    /// The next offset to read, if known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).copied().flatten()
    }

    /// The high watermark seen in the last fetch of `tp`.
    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        self.high_watermarks.get(tp).copied()
    }

    /// How many fetches of `tp` have succeeded so far.
    pub fn fetch_count(&self, tp: &TopicPartition) -> u64 {
        self.fetches.get(tp).copied().unwrap_or(0)
    }

    async fn reset_positions(&mut self) -> Result<(), ClientError> {
        let unknown: Vec<TopicPartition> = self.positions.iter().filter(|(_, p)| p.is_none()).map(|(tp, _)| tp.clone()).collect();
        let timestamp = if self.config.reset_to_earliest { -2 } else { -1 };
        for tp in unknown {
            let Some(leader) = self.cluster.leader(&tp).await? else {
                continue;
            };
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(self.config.isolation_level)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_timestamp(timestamp)])]);
            let timeout_ms = self.config.request_timeout_ms;
            let result = match self.cluster.connection(&leader).await {
                Ok(connection) => connection.request(&request, LIST_OFFSETS_VERSION, timeout_ms).await,
                Err(error) => Err(error),
            };
            let response = result.inspect_err(|_| self.cluster.drop_connection(&leader))?;
            for partition in response.topics.iter().flat_map(|t| &t.partitions) {
                if partition.error_code == 0 && partition.partition_index == tp.partition {
                    self.positions.insert(tp.clone(), Some(partition.offset));
                } else {
                    self.cluster.invalidate(&tp);
                }
            }
        }
        Ok(())
    }

    /// Fetches once from every assigned partition and returns the records
    /// at or past each position, in offset order per partition.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, ClientError> {
        self.reset_positions().await?;
        let mut by_leader: BTreeMap<String, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        let known: Vec<(TopicPartition, i64)> = self.positions.iter().filter_map(|(tp, p)| p.map(|p| (tp.clone(), p))).collect();
        for (tp, position) in known {
            if let Some(leader) = self.cluster.leader(&tp).await? {
                by_leader.entry(leader).or_default().push((tp, position));
            }
        }
        let mut out = Vec::new();
        let mut first_error = None;
        for (leader, partitions) in by_leader {
            let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
            for (tp, position) in &partitions {
                topics.entry(tp.topic.clone()).or_default().push(
                    FetchPartition::default()
                        .with_partition(tp.partition)
                        .with_fetch_offset(*position)
                        .with_current_leader_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(self.config.fetch_bytes_max),
                );
            }
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(self.config.fetch_wait_ms_max as i32)
                .with_min_bytes(1)
                .with_max_bytes(self.config.fetch_bytes_max)
                .with_isolation_level(self.config.isolation_level)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            FetchTopic::default()
                                .with_topic(TopicName(StrBytes::from_string(topic)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            let timeout_ms = self.config.request_timeout_ms + self.config.fetch_wait_ms_max;
            let result = match self.cluster.connection(&leader).await {
                Ok(connection) => connection.request(&request, FETCH_VERSION, timeout_ms).await,
                Err(error) => Err(error),
            };
            // One leader failing must not cost the records already taken
            // from others (their positions moved on): keep going, and
            // report the error only if nothing at all was read.
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    self.cluster.drop_connection(&leader);
                    first_error.get_or_insert(error);
                    continue;
                }
            };
            for topic in response.responses {
                let name = topic.topic.0.as_str().to_string();
                for partition in topic.partitions {
                    let tp = TopicPartition::new(name.clone(), partition.partition_index);
                    if partition.error_code == ResponseError::OffsetOutOfRange.code() {
                        self.positions.insert(tp, None);
                        continue;
                    }
                    if partition.error_code != 0 {
                        self.cluster.invalidate(&tp);
                        continue;
                    }
                    self.high_watermarks.insert(tp.clone(), partition.high_watermark);
                    *self.fetches.entry(tp.clone()).or_default() += 1;
                    let Some(position) = self.position(&tp) else { continue };
                    let mut next = position;
                    let mut records = partition.records.unwrap_or_default();
                    let batches = match RecordBatchDecoder::decode_all(&mut records) {
                        Ok(batches) => batches,
                        Err(e) => {
                            first_error.get_or_insert(ClientError::BadResponse(format!("records of {tp}: {e}")));
                            continue;
                        }
                    };
                    // read_committed: the broker lists the aborted
                    // transactions overlapping what it returned; a
                    // transactional record of a listed producer at or after
                    // the transaction's first offset is skipped, until that
                    // producer's abort marker (Kafka's consumer does the same).
                    let mut aborted: Vec<(i64, i64)> = partition.aborted_transactions.iter().flatten().map(|t| (t.first_offset, t.producer_id.0)).collect();
                    aborted.sort_unstable();
                    let mut aborting: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
                    let mut next_aborted = aborted.into_iter().peekable();
                    for record in batches.into_iter().flat_map(|b| b.records) {
                        while let Some(&(first_offset, producer_id)) = next_aborted.peek() {
                            if first_offset > record.offset {
                                break;
                            }
                            aborting.insert(producer_id);
                            next_aborted.next();
                        }
                        if record.control {
                            if is_abort_marker(&record) {
                                aborting.remove(&record.producer_id);
                            }
                        } else if record.transactional && aborting.contains(&record.producer_id) {
                            next = next.max(record.offset + 1);
                            continue;
                        }
                        if record.offset < next || record.control {
                            next = next.max(record.offset + i64::from(record.control));
                            continue;
                        }
                        next = record.offset + 1;
                        out.push(ConsumedRecord {
                            tp: tp.clone(),
                            offset: record.offset,
                            key: record.key,
                            value: record.value,
                        });
                    }
                    self.positions.insert(tp, Some(next));
                }
            }
        }
        match first_error {
            Some(error) if out.is_empty() => Err(error),
            _ => Ok(out),
        }
    }
}

/// Whether a control record is an abort marker (its key: version int16,
/// type int16, 0 = abort, 1 = commit).
fn is_abort_marker(record: &kafka_protocol::records::Record) -> bool {
    record.key.as_ref().is_some_and(|key| key.len() >= 4 && i16::from_be_bytes([key[2], key[3]]) == 0)
}
