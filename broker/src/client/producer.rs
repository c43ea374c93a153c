//! The producer: batches records per partition, sends them with the
//! configured acks, and retries with exponential backoff.
//!
//! Retries and duplicates: without idempotence, resending a batch whose
//! outcome is unknown (a timeout, a connection lost after sending) can
//! append it twice. So by default the producer retries only failures that
//! certainly had no effect (no connection, or an error code from the
//! broker, which appends nothing on error), and reports ambiguous ones to
//! the caller as such. `retry_ambiguous = true` restores Kafka's
//! at-least-once behaviour and its duplicates.
//!
//! With `enable_idempotence` the producer gets a producer id
//! (InitProducerId) and numbers each partition's batches (the sequence of
//! a batch's first record, fixed when the batch is made, so every retry of
//! it carries the same one). The partition leader then recognises a retry
//! of a batch it already appended and answers with the original offset, so
//! every failure may be retried without duplicates. A batch whose outcome
//! stays unknown after the last retry leaves the sequence in doubt: the
//! producer then takes a new producer id, starting again at sequence 0 (as
//! Kafka's producer bumps its epoch, KIP-360). So do OUT_OF_ORDER_SEQUENCE_NUMBER
//! and UNKNOWN_PRODUCER_ID, which say the broker lost track of the
//! producer; the batch is then sent again under the new id.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    produce_request::{PartitionProduceData, TopicProduceData},
    InitProducerIdRequest, ProduceRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use kafka_protocol::ResponseError;

use super::{ClientError, Cluster, TopicPartition};

/// Produce request version this client speaks.
pub const PRODUCE_VERSION: i16 = 7;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `host:port` of any broker.
    pub bootstrap: String,
    /// Client id sent in every request header.
    pub client_id: String,
    /// 0 (no response), 1 (leader), -1 (all in-sync replicas).
    pub acks: i16,
    /// Per-request timeout.
    pub request_timeout_ms: u64,
    /// How many times a definite failure is retried.
    pub retries: u32,
    /// First retry backoff; doubles per attempt.
    pub retry_backoff_ms: u64,
    /// Cap on the retry backoff.
    pub retry_backoff_ms_max: u64,
    /// Also retry sends whose outcome is unknown (may duplicate).
    pub retry_ambiguous: bool,
    /// Most records held per partition before `enqueue` asks for a flush.
    pub batch_records_max: usize,
    /// Idempotent sends (producer id and sequence numbers).
    pub enable_idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            client_id: "dlog-producer".into(),
            acks: -1,
            request_timeout_ms: 5_000,
            retries: 5,
            retry_backoff_ms: 100,
            retry_backoff_ms_max: 1_000,
            retry_ambiguous: false,
            batch_records_max: 500,
            enable_idempotence: false,
        }
    }
}

/// Why a send failed, and whether it may still have happened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// True when the records certainly were not appended.
    pub definite: bool,
    /// Idempotence: the broker no longer knows this producer's sequence
    /// (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH).
    pub producer_lost: bool,
    /// The broker's error code, when the broker answered with one.
    pub error_code: Option<i16>,
    /// What went wrong.
    pub message: String,
}

/// A successful send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Offset of the first record, when the broker told it (`None` with acks=0).
    pub base_offset: Option<i64>,
}

/// A producer.
pub struct Producer {
    config: ProducerConfig,
    cluster: Cluster,
    pending: BTreeMap<TopicPartition, Vec<(Option<Bytes>, Option<Bytes>)>>,
    /// Wall-clock source for record timestamps, in milliseconds.
    now_ms: Box<dyn Fn() -> i64 + Send>,
    /// Idempotence: the producer id and epoch, once handed out.
    producer: Option<(i64, i16)>,
    /// Idempotence: each partition's next sequence number.
    sequences: BTreeMap<TopicPartition, i32>,
    /// Set by [`super::TransactionalProducer`]: batches carry the
    /// transactional attribute, and the producer id comes from the
    /// transaction coordinator (never taken anew here).
    transactional: bool,
    /// The transactional id the produce requests name (KIP-890: the
    /// partition leader verifies the batch with its coordinator).
    transactional_id: Option<String>,
    /// Transactional: a send's outcome stayed unknown, so the partition's
    /// sequence is in doubt until the producer's epoch is bumped.
    sequence_in_doubt: bool,
}

/// InitProducerId request version this client speaks.
pub const INIT_PRODUCER_ID_VERSION: i16 = 3;

/// Whether a broker error code means "nothing was appended, try again".
fn retriable_code(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

impl Producer {
    /// A producer; connects lazily. `now_ms` gives record timestamps.
    pub fn new(config: ProducerConfig, now_ms: Box<dyn Fn() -> i64 + Send>) -> Self {
        let cluster = Cluster::new(&config.bootstrap, &config.client_id, config.request_timeout_ms);
        Self {
            config,
            cluster,
            pending: BTreeMap::new(),
            now_ms,
            producer: None,
            sequences: BTreeMap::new(),
            transactional: false,
            transactional_id: None,
            sequence_in_doubt: false,
        }
    }

    /// Makes this a transactional producer's sender: batches are sent under
    /// `producer` (the id and epoch InitProducerId with a transactional id
    /// returned), numbered from 0 on every partition, and marked
    /// transactional.
    pub(crate) fn use_transactional_id(&mut self, transactional_id: &str, producer: (i64, i16)) {
        self.transactional_id = Some(transactional_id.to_string());
        self.producer = Some(producer);
        self.sequences.clear();
        self.transactional = true;
        self.sequence_in_doubt = false;
    }

    /// Transactional: whether a send's outcome stayed unknown (or the
    /// broker lost the producer's sequence) since the last
    /// [`Producer::use_transactional_id`], so the transaction must abort
    /// and the epoch be bumped before the next.
    pub(crate) fn sequence_in_doubt(&self) -> bool {
        self.sequence_in_doubt
    }

    /// The cluster view (for topic creation and metadata).
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// Sends one record now and waits for the outcome.
    pub async fn send(&mut self, tp: &TopicPartition, key: Option<Bytes>, value: Option<Bytes>) -> Result<SendOutcome, SendError> {
        self.send_batch(tp, &[(key, value)]).await
    }

    /// Adds a record to its partition's batch; returns true when the batch
    /// is full and the caller should `flush`.
    pub fn enqueue(&mut self, tp: TopicPartition, key: Option<Bytes>, value: Option<Bytes>) -> bool {
        let batch = self.pending.entry(tp).or_default();
        batch.push((key, value));
        batch.len() >= self.config.batch_records_max
    }

    /// Sends every pending batch; returns each partition's outcome.
    pub async fn flush(&mut self) -> Vec<(TopicPartition, Result<SendOutcome, SendError>)> {
        let pending = std::mem::take(&mut self.pending);
        let mut outcomes = Vec::with_capacity(pending.len());
        for (tp, records) in pending {
            let outcome = self.send_batch(&tp, &records).await;
            outcomes.push((tp, outcome));
        }
        outcomes
    }

    fn encode_batch(&self, records: &[(Option<Bytes>, Option<Bytes>)], producer: Option<(i64, i16, i32)>) -> Result<Bytes, SendError> {
        let timestamp = (self.now_ms)();
        let (producer_id, producer_epoch, base_sequence) = producer.unwrap_or((NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE));
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: self.transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if base_sequence == NO_SEQUENCE { NO_SEQUENCE } else { base_sequence.wrapping_add(i as i32) & i32::MAX },
                timestamp,
                key: key.clone(),
                value: value.clone(),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).map_err(|e| SendError {
            definite: true,
            producer_lost: false,
            error_code: None,
            message: format!("encode failed: {e}"),
        })?;
        Ok(buf.freeze())
    }

    /// An idempotent producer's id and epoch, asking for one if needed.
    async fn producer_id(&mut self) -> Result<(i64, i16), SendError> {
        if let Some(producer) = self.producer {
            return Ok(producer);
        }
        if self.transactional {
            return Err(SendError { definite: true, producer_lost: false, error_code: None, message: "the transactional producer has no producer id (init_transactions first)".into() });
        }
        let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
        let timeout_ms = self.config.request_timeout_ms;
        let server = self.config.bootstrap.split(',').map(str::trim).find(|s| !s.is_empty()).unwrap_or_default().to_string();
        let response = match self.cluster.connection(&server).await {
            Ok(connection) => connection.request(&request, INIT_PRODUCER_ID_VERSION, timeout_ms).await,
            Err(error) => Err(error),
        };
        let response = response.map_err(|error| {
            self.cluster.drop_connection(&server);
            SendError { definite: true, producer_lost: false, error_code: None, message: format!("InitProducerId: {error}") }
        })?;
        if response.error_code != 0 {
            return Err(SendError { definite: true, producer_lost: false, error_code: None, message: format!("InitProducerId: error code {}", response.error_code) });
        }
        let producer = (response.producer_id.0, response.producer_epoch);
        self.producer = Some(producer);
        self.sequences.clear();
        Ok(producer)
    }

    /// The batch to send for `records`: with idempotence, under the
    /// current producer id at `tp`'s next sequence.
    async fn make_batch(&mut self, tp: &TopicPartition, records: &[(Option<Bytes>, Option<Bytes>)]) -> Result<Bytes, SendError> {
        if !self.config.enable_idempotence && !self.transactional {
            return self.encode_batch(records, None);
        }
        let (producer_id, producer_epoch) = self.producer_id().await?;
        let sequence = self.sequences.get(tp).copied().unwrap_or(0);
        self.encode_batch(records, Some((producer_id, producer_epoch, sequence)))
    }

    /// Sends one batch to `tp`'s leader with retries.
    pub async fn send_batch(&mut self, tp: &TopicPartition, records: &[(Option<Bytes>, Option<Bytes>)]) -> Result<SendOutcome, SendError> {
        let mut batch = None;
        let mut attempt = 0;
        // Once an attempt may have been appended, the send's outcome stays
        // unknown whatever later attempts say (a connection refused on the
        // retry does not undo the first attempt).
        let mut maybe_appended = false;
        loop {
            let error = match &batch {
                None => match self.make_batch(tp, records).await {
                    Ok(made) => {
                        batch = Some(made);
                        continue;
                    }
                    Err(error) => error,
                },
                Some(made) => match self.try_send(tp, made).await {
                    Ok(outcome) => {
                        if self.config.enable_idempotence || self.transactional {
                            let next = self.sequences.get(tp).copied().unwrap_or(0).wrapping_add(records.len() as i32) & i32::MAX;
                            self.sequences.insert(tp.clone(), next);
                        }
                        return Ok(outcome);
                    }
                    Err(error) if self.transactional && error.producer_lost => {
                        // Only the transaction coordinator hands out this
                        // producer's id: the transaction must abort.
                        self.sequence_in_doubt = true;
                        return Err(error);
                    }
                    Err(error) => {
                        if self.config.enable_idempotence && error.producer_lost {
                            // The broker lost track of this producer: a new
                            // id, and the batch again under it.
                            self.producer = None;
                            batch = None;
                        }
                        error
                    }
                },
            };
            maybe_appended |= !error.definite && batch.is_some();
            let may_retry = error.definite || self.config.retry_ambiguous || self.config.enable_idempotence || self.transactional;
            if !may_retry || attempt >= self.config.retries {
                let error = SendError { definite: error.definite && !maybe_appended, ..error };
                if self.transactional && !error.definite {
                    self.sequence_in_doubt = true;
                } else if self.config.enable_idempotence && !error.definite {
                    // The batch may or may not be in the log: its sequence
                    // is in doubt, so the next batch starts a new producer.
                    self.producer = None;
                }
                return Err(error);
            }
            let backoff_ms = self
                .config
                .retry_backoff_ms
                .saturating_mul(1 << attempt.min(16))
                .min(self.config.retry_backoff_ms_max);
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            attempt += 1;
        }
    }

    async fn try_send(&mut self, tp: &TopicPartition, batch: &Bytes) -> Result<SendOutcome, SendError> {
        let leader = match self.cluster.leader(tp).await {
            Ok(Some(addr)) => addr,
            Ok(None) => {
                return Err(SendError {
                    definite: true,
                    producer_lost: false,
                    error_code: None,
                    message: format!("no leader known for {tp}"),
                })
            }
            Err(error) => return Err(client_error(error)),
        };
        let request = ProduceRequest::default()
            .with_transactional_id(self.transactional_id.clone().map(|id| TransactionalId(StrBytes::from_string(id))))
            .with_acks(self.config.acks)
            .with_timeout_ms(self.config.request_timeout_ms as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(tp.partition)
                    .with_records(Some(batch.clone()))])]);
        let timeout_ms = self.config.request_timeout_ms;
        let acks = self.config.acks;
        let connection = match self.cluster.connection(&leader).await {
            Ok(connection) => connection,
            Err(error) => {
                self.cluster.drop_connection(&leader);
                return Err(client_error(error));
            }
        };
        if acks == 0 {
            return match connection.send(&request, PRODUCE_VERSION).await {
                Ok(_) => Ok(SendOutcome { base_offset: None }),
                Err(error) => {
                    self.cluster.drop_connection(&leader);
                    Err(client_error(error))
                }
            };
        }
        let response = match connection.request(&request, PRODUCE_VERSION, timeout_ms).await {
            Ok(response) => response,
            Err(error) => {
                self.cluster.drop_connection(&leader);
                return Err(client_error(error));
            }
        };
        let partition = response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .find(|p| p.index == tp.partition)
            .ok_or_else(|| SendError {
                definite: false,
                producer_lost: false,
                error_code: None,
                message: format!("response did not mention {tp}"),
            })?;
        if partition.error_code != 0 {
            self.cluster.invalidate(tp);
            let code = partition.error_code;
            return Err(SendError {
                definite: !appended_maybe(code),
                error_code: Some(code),
                producer_lost: [ResponseError::OutOfOrderSequenceNumber.code(), ResponseError::UnknownProducerId.code(), ResponseError::InvalidProducerEpoch.code()].contains(&code),
                message: format!(
                    "broker error {} on {tp}{}",
                    partition.error_code,
                    if retriable_code(partition.error_code) { " (retriable)" } else { "" }
                ),
            });
        }
        Ok(SendOutcome {
            base_offset: Some(partition.base_offset),
        })
    }
}

/// Error codes that leave the append's outcome unknown: the leader wrote
/// the batch but could not confirm replication in time, or stopped leading
/// while an acks=all produce waited (NOT_LEADER_OR_FOLLOWER then; the batch
/// may still be committed by the next leader).
fn appended_maybe(code: i16) -> bool {
    code == ResponseError::RequestTimedOut.code()
        || code == ResponseError::NotEnoughReplicasAfterAppend.code()
        || code == ResponseError::NotLeaderOrFollower.code()
}

fn client_error(error: ClientError) -> SendError {
    SendError {
        definite: error.is_definite(),
        producer_lost: false,
        error_code: None,
        message: error.to_string(),
    }
}
