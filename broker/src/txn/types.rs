//! Inputs and outputs of the transaction coordinator core.

use std::collections::BTreeSet;

/// A request the driver holds open until the core answers it (every
/// request that changes a transaction waits for its record to be durable).
pub type Waiter = u64;

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// A producer id and its epoch, as InitProducerId hands them out.
pub type ProducerIdAndEpoch = (i64, i16);

/// What a request is answered with: the producer id and epoch it now
/// holds (InitProducerId; the others echo the transaction's), or why not.
pub type Answer = Result<ProducerIdAndEpoch, TxnError>;

/// An answer now, or later through [`TxnOutput::Answer`] carrying the waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answered at once (refused, or nothing to write).
    Now(Answer),
    /// Answered once the transition's record is durable (or failed).
    Later,
}

/// Settings of the transaction coordinator (Kafka's names in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// Largest transaction timeout a producer may ask for (`transaction.max.timeout.ms`).
    pub max_timeout_ms: i32,
    /// A transactional id in a complete state and unused for this long is
    /// forgotten (`transactional.id.expiration.ms`).
    pub transactional_id_expiration_ms: u64,
    /// How often timed-out transactions and expired ids are looked for
    /// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub abort_timed_out_cleanup_interval_ms: u64,
    /// InitProducerId of an existing transactional id bumps its epoch, so
    /// the previous producer instance (a zombie) is refused
    /// (`transaction.fence.zombies`). A teaching knob: false keeps the
    /// epoch, and two instances of one producer both write and commit.
    pub fence_zombies: bool,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_cleanup_interval_ms: 10_000,
            fence_zombies: true,
        }
    }
}

/// The state of a transactional id (Kafka's `TransactionState`; the
/// number is the `transaction_status` byte of its record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction open (after InitProducerId).
    Empty,
    /// Partitions were added: a transaction is open.
    Ongoing,
    /// Commit decided and durable; markers are being written.
    PrepareCommit,
    /// Abort decided and durable; markers are being written.
    PrepareAbort,
    /// Commit markers written everywhere.
    CompleteCommit,
    /// Abort markers written everywhere.
    CompleteAbort,
    /// Being removed (expired id); never answered as a live state.
    Dead,
    /// An open transaction is being aborted to fence its producer. Kafka
    /// keeps it in memory only; here it is the in-memory state of an id
    /// while the fencing abort's record is pending, and never written.
    PrepareEpochFence,
}

impl TxnState {
    /// The `transaction_status` byte.
    pub fn status_byte(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state a `transaction_status` byte names.
    pub fn from_status_byte(byte: i8) -> Option<TxnState> {
        Some(match byte {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Commit or abort decided, markers not all written.
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// No transaction open or being finished.
    pub fn is_complete(self) -> bool {
        matches!(self, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
    }

    /// The states a transition into `self` may start from (Kafka's
    /// `validPreviousStates`).
    pub fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteCommit, CompleteAbort],
            PrepareEpochFence => &[Ongoing],
        }
    }
}

/// What the coordinator knows of one transactional id (Kafka's
/// `TransactionMetadata`); its record is this, minus `last_producer_epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1 none): a retried InitProducerId
    /// naming it (KIP-360) gets the current epoch instead of another bump.
    pub last_producer_epoch: i16,
    /// The transaction timeout the producer asked for.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// The partitions of the open transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction began (-1 none).
    pub start_timestamp_ms: i64,
    /// When the id last changed.
    pub last_update_timestamp_ms: i64,
}

/// "Write these markers": the driver sends WriteTxnMarkers to each
/// partition's leader and calls [`super::TxnCoordinator::markers_written`]
/// once every partition answered success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRequest {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch the markers carry.
    pub producer_epoch: i16,
    /// The coordinator epoch of the id's `__transaction_state` partition.
    pub coordinator_epoch: i32,
    /// Commit (true) or abort.
    pub commit: bool,
    /// Where to write them.
    pub partitions: BTreeSet<TopicPartition>,
}

/// What the core asks of its driver, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutput {
    /// Append `record` to `partition` of `__transaction_state` durably,
    /// then call [`super::TxnCoordinator::append_done`] with `append_id`.
    Append {
        /// The `__transaction_state` partition.
        partition: i32,
        /// The transition this append makes durable.
        append_id: u64,
        /// The record.
        record: super::records::TxnRecord,
    },
    /// Answer a waiting request.
    Answer {
        /// The request.
        waiter: Waiter,
        /// Its answer.
        answer: Answer,
    },
    /// Write a transaction's markers.
    SendMarkers(MarkerRequest),
}

/// Why the coordinator refused a request; each maps to Kafka's error code
/// in [`crate::error_codes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// This broker does not coordinate the id's partition (NOT_COORDINATOR).
    #[error("not coordinator")]
    NotCoordinator,
    /// The id's partition is being loaded (COORDINATOR_LOAD_IN_PROGRESS).
    #[error("coordinator load in progress")]
    CoordinatorLoadInProgress,
    /// The coordinator cannot serve now, e.g. its log refused the record
    /// (COORDINATOR_NOT_AVAILABLE).
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// Another transition of the id is under way; retry
    /// (CONCURRENT_TRANSACTIONS).
    #[error("concurrent transactions")]
    ConcurrentTransactions,
    /// The producer id is not the id's (INVALID_PRODUCER_ID_MAPPING).
    #[error("invalid producer id mapping")]
    InvalidProducerIdMapping,
    /// The epoch is not the id's current one: another instance took over
    /// (PRODUCER_FENCED).
    #[error("producer fenced")]
    ProducerFenced,
    /// [`TxnError::ProducerFenced`] as clients before PRODUCER_FENCED
    /// existed are told (INVALID_PRODUCER_EPOCH).
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
    /// The request does not fit the transaction's state, e.g. abort after
    /// commit (INVALID_TXN_STATE).
    #[error("invalid transaction state")]
    InvalidTxnState,
    /// The timeout is not positive or over `transaction.max.timeout.ms`
    /// (INVALID_TRANSACTION_TIMEOUT).
    #[error("invalid transaction timeout")]
    InvalidTransactionTimeout,
    /// An empty transactional id (INVALID_REQUEST).
    #[error("invalid request")]
    InvalidRequest,
    /// The transactional id is not known (TRANSACTIONAL_ID_NOT_FOUND).
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// No producer id could be handed out (COORDINATOR_NOT_AVAILABLE:
    /// clients retry InitProducerId on it).
    #[error("no producer id could be allocated")]
    ProducerIdUnavailable,
}

impl TxnError {
    /// The error as a client of `version` of an API understands it: before
    /// PRODUCER_FENCED (KIP-588) existed, a fenced producer was told
    /// INVALID_PRODUCER_EPOCH. `first_fenced_version` is the API's first
    /// version that knows PRODUCER_FENCED.
    pub fn for_version(self, version: i16, first_fenced_version: i16) -> TxnError {
        if self == TxnError::ProducerFenced && version < first_fenced_version {
            TxnError::InvalidProducerEpoch
        } else {
            self
        }
    }
}
