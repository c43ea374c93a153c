//! Sans-IO core of transactions: Kafka's transaction coordinator (KIP-98)
//! for InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn.
//!
//! # Why sans-IO
//!
//! As with [`crate::group`], the decisions live in a plain state machine,
//! [`TxnCoordinator`]: requests and ticks (`now_ms`) go in; records to
//! append to `__transaction_state`, delayed answers and "write these
//! markers" come out ([`TxnCoordinator::take_outputs`]). It holds no
//! sockets, no clock and no log, so the property test (`tests.rs`) drives
//! it through random requests, failed appends and coordinator failovers.
//! The driver (`server::txn`) owns the `__transaction_state` partitions,
//! appends what the core asks for, sends the markers and reports back.
//!
//! # The contract with the driver
//!
//! - **Ownership.** [`TxnCoordinator::begin_load`] (with the partition's
//!   leader epoch, the *coordinator epoch*), one
//!   [`TxnCoordinator::load_record`] per record in log order,
//!   [`TxnCoordinator::finish_load`]; [`TxnCoordinator::unload`] when this
//!   broker stops leading the partition. Ids of partitions not loaded are
//!   answered NOT_COORDINATOR.
//! - **Every transition is a record.** A request that changes an id
//!   returns [`Reply::Later`] and emits [`TxnOutput::Append`]; the driver
//!   appends the record durably (in cluster mode: the high watermark
//!   passed it) and calls [`TxnCoordinator::append_done`] with the append
//!   id. Only then does the transition take effect and its request get its
//!   answer ([`TxnOutput::Answer`]); a failed append drops the transition
//!   and the request gets COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR,
//!   which clients retry. While a transition is pending, other requests of
//!   the id get CONCURRENT_TRANSACTIONS.
//! - **Markers.** Once PrepareCommit/PrepareAbort is durable the core emits
//!   [`TxnOutput::SendMarkers`]; the driver writes the markers to every
//!   partition (retrying until each answers success, or the partition is
//!   unloaded) and calls [`TxnCoordinator::markers_written`]; the
//!   CompleteCommit/CompleteAbort record follows (nobody waits for it).
//! - **Time.** [`TxnCoordinator::tick`] aborts timed-out transactions and
//!   expires unused ids.
//!
//! # The state machine (one per transactional id)
//!
//! ```text
//!            AddPartitions            EndTxn(commit)            markers written
//!   Empty ───────────────► Ongoing ───────────────► PrepareCommit ─────────────► CompleteCommit
//!     ▲ InitProducerId       │ │     EndTxn(abort),                                  │
//!     │ (epoch + 1)          │ └──── timeout, or ─────► PrepareAbort ─────────────► CompleteAbort
//!     │                      │       InitProducerId                                  │
//!     └──────────────────────┴──(fence: epoch+1)──────────────────────────────────────┘
//!                                    AddPartitions from a complete state opens a new transaction
//! ```
//!
//! - **InitProducerId**: a new id gets a fresh producer id (asked of the
//!   driver) at epoch 0. An id in a complete state gets its epoch bumped
//!   (a new producer id once the epoch reaches `i16::MAX - 1`), which
//!   fences the previous instance of the producer. An id with an open
//!   transaction is fenced first: the transaction is aborted with a bumped
//!   epoch (PrepareEpochFence, then PrepareAbort) and the request answered
//!   CONCURRENT_TRANSACTIONS until the abort is complete; the client
//!   retries. Prepare* → CONCURRENT_TRANSACTIONS. A timeout above
//!   `transaction.max.timeout.ms` → INVALID_TRANSACTION_TIMEOUT. KIP-360:
//!   a producer naming its producer id must name the id's; in a complete
//!   state its epoch must be the current one (bumped) or the one before a
//!   bump it asked for (a retry whose answer was lost: answered with the
//!   current epoch), else PRODUCER_FENCED. A fencing or timeout abort
//!   honours no earlier epoch, so a timed-out producer stays fenced.
//! - **The teaching knob `transaction.fence.zombies`** (default true):
//!   false makes InitProducerId of an existing id keep its epoch, so the
//!   previous instance of a producer (a zombie, e.g. one that was paused
//!   and is presumed dead) keeps writing and committing beside its
//!   replacement: duplicates and interleaved transactions, which is what
//!   epoch fencing exists to prevent.
//! - **AddPartitionsToTxn / AddOffsetsToTxn** (the latter adds the group's
//!   `__consumer_offsets` partition): another producer id →
//!   INVALID_PRODUCER_ID_MAPPING, another epoch → PRODUCER_FENCED
//!   (INVALID_PRODUCER_EPOCH for clients older than KIP-588, chosen by the
//!   handler with [`TxnError::for_version`]), Prepare* →
//!   CONCURRENT_TRANSACTIONS, else → Ongoing. Verify-only (KIP-890 part 1):
//!   [`TxnCoordinator::verify_partitions`].
//! - **EndTxn**: Ongoing → PrepareCommit/PrepareAbort. A retry with the
//!   same decision once complete → success, while prepared →
//!   CONCURRENT_TRANSACTIONS (as Kafka: the client retries until the
//!   markers are written); the other decision, or EndTxn on Empty →
//!   INVALID_TXN_STATE.
//! - **Load**: the last record of each id wins; a transaction found
//!   prepared has its record written again and, once that is durable, its
//!   markers sent again with the new coordinator epoch (the loaded record
//!   may have been in a tail no majority had).
//!
//! # Invariants (asserted)
//!
//! - Epochs never go back for a producer id; a new producer id starts at 0.
//! - Transitions follow Kafka's table of valid previous states
//!   ([`TxnState::valid_previous`]); a prepared transaction's decision
//!   never changes and completes with the epoch it was decided with.
//! - Markers are only emitted from PrepareCommit and PrepareAbort.
//! - At most one transition is pending per id.

mod coordinator;
pub mod records;
mod types;

#[cfg(test)]
mod tests;

pub use coordinator::{partition_for_transactional_id, InitProducerIdRequest, TxnCoordinator, PRODUCER_EPOCH_EXHAUSTED};
pub use types::*;
