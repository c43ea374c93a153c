//! A transactional producer (KIP-98), as Kafka's Java producer behaves:
//! `init_transactions`, then per transaction `begin_transaction`, `send`,
//! optionally `send_offsets_to_transaction`, and `commit_transaction` or
//! `abort_transaction`.
//!
//! - **Coordinator.** FindCoordinator with key type 1 names the broker
//!   coordinating the transactional id; it is asked again after
//!   NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or a lost connection.
//! - **Init.** InitProducerId with the transactional id returns the
//!   producer id and a new epoch, which fences every older producer with
//!   the same transactional id (their next request gets PRODUCER_FENCED or
//!   INVALID_PRODUCER_EPOCH) and aborts a transaction they left open.
//! - **Sends.** Before the first record to a partition within a
//!   transaction, the partition is added with AddPartitionsToTxn (so the
//!   coordinator will write its marker); records are sent as transactional
//!   batches under the producer id and epoch, with sequences as an
//!   idempotent producer's ([`super::Producer`] does the sending).
//! - **Offsets.** `send_offsets_to_transaction` adds the group's
//!   `__consumer_offsets` partition (AddOffsetsToTxn) and sends the offsets
//!   to the group coordinator (TxnOffsetCommit): they become the group's
//!   committed offsets only if the transaction commits.
//! - **End.** EndTxn asks the coordinator to commit or abort; it answers
//!   once the decision is durable, and writes the markers to every
//!   partition itself. A retried EndTxn with the same decision succeeds.
//! - **Errors.** CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS,
//!   NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE and lost connections are
//!   retried with backoff. PRODUCER_FENCED and INVALID_PRODUCER_EPOCH are
//!   fatal ([`TransactionError::Fenced`]): another producer took the
//!   transactional id. A send that failed, or whose outcome is unknown,
//!   makes the transaction abortable ([`TransactionError::Abortable`]):
//!   only `abort_transaction` is allowed then; after it, the next
//!   transaction starts under a bumped epoch when the sequence is in doubt.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    add_partitions_to_txn_request::AddPartitionsToTxnTopic,
    txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic},
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId, InitProducerIdRequest, ProducerId, TopicName,
    TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;

use super::{ClientError, Producer, ProducerConfig, SendOutcome, TopicPartition};

/// Request versions this producer speaks (those librdkafka 2.x uses).
const INIT_PRODUCER_ID_VERSION: i16 = 3;
const ADD_PARTITIONS_TO_TXN_VERSION: i16 = 3;
const ADD_OFFSETS_TO_TXN_VERSION: i16 = 3;
const END_TXN_VERSION: i16 = 3;
const TXN_OFFSET_COMMIT_VERSION: i16 = 3;
/// How many times a retriable coordinator error is retried.
const COORDINATOR_RETRIES: u32 = 50;

/// Transactional producer settings.
#[derive(Debug, Clone)]
pub struct TransactionalProducerConfig {
    /// The sender's settings (acks must stay -1; idempotence is implied).
    pub producer: ProducerConfig,
    /// `transactional.id`.
    pub transactional_id: String,
    /// `transaction.timeout.ms` (Kafka's default: one minute).
    pub transaction_timeout_ms: i32,
}

impl TransactionalProducerConfig {
    /// Settings for `transactional_id` with Kafka's defaults.
    pub fn new(producer: ProducerConfig, transactional_id: impl Into<String>) -> Self {
        Self { producer, transactional_id: transactional_id.into(), transaction_timeout_ms: 60_000 }
    }
}

/// Why a transactional call failed.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// A newer producer with the same transactional id fenced this one; it
    /// can do nothing more (Kafka's ProducerFencedException).
    #[error("fenced by a newer producer with the same transactional id (error code {0})")]
    Fenced(i16),
    /// The transaction cannot commit any more (a send failed or its outcome
    /// is unknown): abort it.
    #[error("the transaction must be aborted: {0}")]
    Abortable(String),
    /// The coordinator refused with this Kafka error code.
    #[error("error code {0}")]
    Kafka(i16),
    /// No answer after every retry: the outcome is unknown.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The call does not fit the producer's state (e.g. commit outside a
    /// transaction).
    #[error("invalid call: {0}")]
    State(&'static str),
}

/// Where the producer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Uninitialized,
    Ready,
    InTransaction,
    /// A send failed: only an abort is allowed.
    Abortable,
    /// Fenced: nothing is allowed.
    Fenced,
}

/// A transactional producer.
pub struct TransactionalProducer {
    config: TransactionalProducerConfig,
    sender: Producer,
    coordinator: Option<String>,
    producer: Option<(i64, i16)>,
    phase: Phase,
    /// Partitions added to the current transaction.
    partitions: BTreeSet<TopicPartition>,
    /// Groups whose offsets partition was added to the current transaction.
    groups: BTreeSet<String>,
    /// Why the transaction became abortable.
    abort_reason: Option<String>,
}

/// What one coordinator round trip ended in.
enum Attempt<T> {
    Done(T),
    Retry,
}

impl TransactionalProducer {
    /// A producer for `config.transactional_id`; call
    /// [`TransactionalProducer::init_transactions`] before anything else.
    pub fn new(config: TransactionalProducerConfig, now_ms: Box<dyn Fn() -> i64 + Send>) -> Self {
        let mut producer_config = config.producer.clone();
        producer_config.acks = -1;
        producer_config.enable_idempotence = false;
        Self {
            sender: Producer::new(producer_config, now_ms),
            config,
            coordinator: None,
            producer: None,
            phase: Phase::Uninitialized,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            abort_reason: None,
        }
    }

    /// The producer id and epoch, once initialized.
    pub fn producer_id_and_epoch(&self) -> Option<(i64, i16)> {
        self.producer
    }

    /// The cluster view (for topic creation and metadata).
    pub fn cluster(&mut self) -> &mut super::Cluster {
        self.sender.cluster()
    }

    /// Whether the current transaction can only be aborted.
    pub fn must_abort(&self) -> bool {
        self.phase == Phase::Abortable
    }

    /// Sends `request` to the coordinator, retrying what Kafka retries;
    /// `code_of` reads the response's error code.
    async fn coordinator_call<R: Request>(&mut self, request: &R, version: i16, code_of: impl Fn(&R::Response) -> i16) -> Result<R::Response, TransactionError> {
        let mut attempt = 0u32;
        loop {
            match self.coordinator_attempt(request, version, &code_of).await? {
                Attempt::Done(response) => return Ok(response),
                Attempt::Retry if attempt >= COORDINATOR_RETRIES => {
                    return Err(TransactionError::Client(ClientError::BadResponse(format!("the transaction coordinator did not answer after {COORDINATOR_RETRIES} retries"))));
                }
                Attempt::Retry => {}
            }
            let backoff_ms = self.config.producer.retry_backoff_ms.saturating_mul(1 << attempt.min(4)).min(self.config.producer.retry_backoff_ms_max);
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            attempt += 1;
        }
    }

    async fn coordinator_attempt<R: Request>(&mut self, request: &R, version: i16, code_of: &impl Fn(&R::Response) -> i16) -> Result<Attempt<R::Response>, TransactionError> {
        let addr = match &self.coordinator {
            Some(addr) => addr.clone(),
            None => match self.sender.cluster().find_coordinator(&self.config.transactional_id, 1).await {
                Ok(Ok(addr)) => {
                    self.coordinator = Some(addr.clone());
                    addr
                }
                Ok(Err(code)) if retriable(code) => return Ok(Attempt::Retry),
                Ok(Err(code)) => return Err(TransactionError::Kafka(code)),
                Err(_) => return Ok(Attempt::Retry),
            },
        };
        let timeout_ms = self.config.producer.request_timeout_ms;
        let cluster = self.sender.cluster();
        let response = match cluster.connection(&addr).await {
            Ok(connection) => connection.request(request, version, timeout_ms).await,
            Err(error) => Err(error),
        };
        let response = match response {
            Ok(response) => response,
            Err(_) => {
                self.sender.cluster().drop_connection(&addr);
                self.coordinator = None;
                return Ok(Attempt::Retry);
            }
        };
        let code = code_of(&response);
        if code == 0 {
            return Ok(Attempt::Done(response));
        }
        if [ResponseError::NotCoordinator.code(), ResponseError::CoordinatorNotAvailable.code()].contains(&code) {
            self.coordinator = None;
            return Ok(Attempt::Retry);
        }
        if retriable(code) {
            return Ok(Attempt::Retry);
        }
        if fenced(code) {
            self.phase = Phase::Fenced;
            return Err(TransactionError::Fenced(code));
        }
        Err(TransactionError::Kafka(code))
    }

    /// InitProducerId with the transactional id: fences older producers
    /// of the id and aborts what they left open; then ready to begin.
    pub async fn init_transactions(&mut self) -> Result<(), TransactionError> {
        if self.phase == Phase::Fenced {
            return Err(TransactionError::State("fenced"));
        }
        // A producer re-initializing after an aborted, doubtful transaction
        // names its id and epoch (KIP-360), so the coordinator bumps it.
        let (producer_id, producer_epoch) = self.producer.unwrap_or((-1, -1));
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(self.config.transactional_id.clone()))))
            .with_transaction_timeout_ms(self.config.transaction_timeout_ms)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch);
        let response = self.coordinator_call(&request, INIT_PRODUCER_ID_VERSION, |r| r.error_code).await?;
        let producer = (response.producer_id.0, response.producer_epoch);
        self.producer = Some(producer);
        self.sender.use_transactional_id(&self.config.transactional_id, producer);
        self.phase = Phase::Ready;
        self.partitions.clear();
        self.groups.clear();
        self.abort_reason = None;
        Ok(())
    }

    /// Starts a transaction (nothing is sent until the first record).
    pub fn begin_transaction(&mut self) -> Result<(), TransactionError> {
        match self.phase {
            Phase::Ready => {
                self.phase = Phase::InTransaction;
                Ok(())
            }
            Phase::Fenced => Err(TransactionError::State("fenced")),
            Phase::Uninitialized => Err(TransactionError::State("init_transactions first")),
            Phase::InTransaction | Phase::Abortable => Err(TransactionError::State("a transaction is already open")),
        }
    }

    fn check_open(&self) -> Result<(i64, i16), TransactionError> {
        match self.phase {
            Phase::InTransaction => Ok(self.producer.expect("an open transaction has a producer id")),
            Phase::Abortable => Err(TransactionError::Abortable(self.abort_reason.clone().unwrap_or_default())),
            Phase::Fenced => Err(TransactionError::State("fenced")),
            Phase::Ready | Phase::Uninitialized => Err(TransactionError::State("no transaction is open")),
        }
    }

    fn make_abortable(&mut self, reason: String) -> TransactionError {
        self.phase = Phase::Abortable;
        self.abort_reason = Some(reason.clone());
        TransactionError::Abortable(reason)
    }

    fn transactional_id(&self) -> TransactionalId {
        TransactionalId(StrBytes::from_string(self.config.transactional_id.clone()))
    }

    async fn add_partition(&mut self, tp: &TopicPartition) -> Result<(), TransactionError> {
        let (producer_id, producer_epoch) = self.check_open()?;
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(self.transactional_id())
            .with_v3_and_below_producer_id(ProducerId(producer_id))
            .with_v3_and_below_producer_epoch(producer_epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                .with_partitions(vec![tp.partition])]);
        let result = self
            .coordinator_call(&request, ADD_PARTITIONS_TO_TXN_VERSION, |r| {
                r.results_by_topic_v3_and_below.iter().flat_map(|t| &t.results_by_partition).map(|p| p.partition_error_code).find(|&c| c != 0).unwrap_or(0)
            })
            .await;
        match result {
            Ok(_) => {
                self.partitions.insert(tp.clone());
                Ok(())
            }
            Err(TransactionError::Fenced(code)) => Err(TransactionError::Fenced(code)),
            Err(error) => Err(self.make_abortable(format!("adding {tp} to the transaction: {error}"))),
        }
    }

    /// Sends one record within the open transaction and waits for its
    /// acknowledgement (visible to read_committed consumers only once the
    /// transaction commits).
    pub async fn send(&mut self, tp: &TopicPartition, key: Option<Bytes>, value: Option<Bytes>) -> Result<SendOutcome, TransactionError> {
        self.send_batch(tp, &[(key, value)]).await
    }

    /// Sends records to one partition as one batch within the open transaction.
    pub async fn send_batch(&mut self, tp: &TopicPartition, records: &[(Option<Bytes>, Option<Bytes>)]) -> Result<SendOutcome, TransactionError> {
        self.check_open()?;
        if !self.partitions.contains(tp) {
            self.add_partition(tp).await?;
        }
        match self.sender.send_batch(tp, records).await {
            Ok(outcome) => Ok(outcome),
            Err(error) if error.error_code.is_some_and(fenced) => {
                self.phase = Phase::Fenced;
                Err(TransactionError::Fenced(error.error_code.unwrap_or_default()))
            }
            Err(error) => Err(self.make_abortable(format!("send to {tp}: {error}"))),
        }
    }

    /// Commits `offsets` (the next offset to consume, per partition) for
    /// `group_id` as part of the transaction. `member` is the consumer's
    /// group generation and member id, when it is in a group (the
    /// coordinator then refuses a stale generation, KIP-447).
    pub async fn send_offsets_to_transaction(&mut self, offsets: &BTreeMap<TopicPartition, i64>, group_id: &str, member: Option<(i32, String)>) -> Result<(), TransactionError> {
        let (producer_id, producer_epoch) = self.check_open()?;
        if !self.groups.contains(group_id) {
            let request = AddOffsetsToTxnRequest::default()
                .with_transactional_id(self.transactional_id())
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
                .with_group_id(GroupId(StrBytes::from_string(group_id.into())));
            match self.coordinator_call(&request, ADD_OFFSETS_TO_TXN_VERSION, |r| r.error_code).await {
                Ok(_) => {
                    self.groups.insert(group_id.to_string());
                }
                Err(TransactionError::Fenced(code)) => return Err(TransactionError::Fenced(code)),
                Err(error) => return Err(self.make_abortable(format!("adding group {group_id}'s offsets: {error}"))),
            }
        }
        let (generation_id, member_id) = member.unwrap_or((-1, String::new()));
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, offset) in offsets {
            topics.entry(tp.topic.as_str()).or_default().push(
                TxnOffsetCommitRequestPartition::default().with_partition_index(tp.partition).with_committed_offset(*offset).with_committed_leader_epoch(-1),
            );
        }
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(self.transactional_id())
            .with_group_id(GroupId(StrBytes::from_string(group_id.into())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_generation_id(generation_id)
            .with_member_id(StrBytes::from_string(member_id))
            .with_topics(topics.into_iter().map(|(topic, partitions)| TxnOffsetCommitRequestTopic::default().with_name(TopicName(StrBytes::from_string(topic.into()))).with_partitions(partitions)).collect());
        // TxnOffsetCommit goes to the group's coordinator, not the
        // transaction's.
        let mut attempt = 0u32;
        loop {
            let code = match self.sender.cluster().find_coordinator(group_id, 0).await {
                Ok(Ok(addr)) => {
                    let timeout_ms = self.config.producer.request_timeout_ms;
                    let cluster = self.sender.cluster();
                    let response = match cluster.connection(&addr).await {
                        Ok(connection) => connection.request(&request, TXN_OFFSET_COMMIT_VERSION, timeout_ms).await,
                        Err(error) => Err(error),
                    };
                    match response {
                        Ok(response) => response.topics.iter().flat_map(|t| &t.partitions).map(|p| p.error_code).find(|&c| c != 0).unwrap_or(0),
                        Err(_) => {
                            self.sender.cluster().drop_connection(&addr);
                            ResponseError::CoordinatorNotAvailable.code()
                        }
                    }
                }
                Ok(Err(code)) => code,
                Err(_) => ResponseError::CoordinatorNotAvailable.code(),
            };
            if code == 0 {
                return Ok(());
            }
            if fenced(code) {
                self.phase = Phase::Fenced;
                return Err(TransactionError::Fenced(code));
            }
            if !retriable(code) || attempt >= COORDINATOR_RETRIES {
                return Err(self.make_abortable(format!("TxnOffsetCommit for group {group_id}: error code {code}")));
            }
            let backoff_ms = self.config.producer.retry_backoff_ms.saturating_mul(1 << attempt.min(4)).min(self.config.producer.retry_backoff_ms_max);
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            attempt += 1;
        }
    }

    async fn end(&mut self, commit: bool) -> Result<(), TransactionError> {
        let (producer_id, producer_epoch) = self.producer.ok_or(TransactionError::State("init_transactions first"))?;
        if self.partitions.is_empty() && self.groups.is_empty() {
            // Nothing was added: the coordinator has no transaction to end
            // (Kafka's producer sends no EndTxn then either).
            self.phase = Phase::Ready;
            return Ok(());
        }
        let request = EndTxnRequest::default()
            .with_transactional_id(self.transactional_id())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_committed(commit);
        self.coordinator_call(&request, END_TXN_VERSION, |r| r.error_code).await?;
        self.partitions.clear();
        self.groups.clear();
        self.phase = Phase::Ready;
        Ok(())
    }

    /// Commits the open transaction: once this returns, every record sent
    /// in it is visible to read_committed consumers (the coordinator writes
    /// the markers), and its offsets are the group's committed offsets.
    pub async fn commit_transaction(&mut self) -> Result<(), TransactionError> {
        self.check_open()?;
        self.end(true).await
    }

    /// Aborts the open transaction: no read_committed consumer ever sees
    /// its records. If a send's outcome was unknown, the producer then
    /// re-initializes (bumping its epoch) so the next transaction's
    /// sequences start afresh.
    pub async fn abort_transaction(&mut self) -> Result<(), TransactionError> {
        match self.phase {
            Phase::InTransaction | Phase::Abortable => {}
            Phase::Fenced => return Err(TransactionError::State("fenced")),
            Phase::Ready | Phase::Uninitialized => return Err(TransactionError::State("no transaction is open")),
        }
        self.end(false).await?;
        if self.sender.sequence_in_doubt() {
            self.init_transactions().await?;
        }
        Ok(())
    }
}

fn retriable(code: i16) -> bool {
    [
        ResponseError::ConcurrentTransactions.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::NotCoordinator.code(),
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::RequestTimedOut.code(),
        ResponseError::NotEnoughReplicas.code(),
        ResponseError::NotEnoughReplicasAfterAppend.code(),
        ResponseError::UnknownTopicOrPartition.code(),
        ResponseError::NotLeaderOrFollower.code(),
    ]
    .contains(&code)
}

fn fenced(code: i16) -> bool {
    code == ResponseError::ProducerFenced.code() || code == ResponseError::InvalidProducerEpoch.code()
}
