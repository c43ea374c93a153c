//! One partition replica on this broker: its log and its replication role,
//! behind one lock, so the log and what the replication core believes of it
//! never disagree.
//!
//! Standalone and cluster mode differ only in the role: a standalone broker
//! is the only replica ([`Role::Standalone`]: everything appended is
//! committed), a cluster broker is leader, follower or neither as the
//! controller's metadata says ([`Partition::apply_metadata`]). The
//! replication decisions are the sans-IO core's ([`crate::replication`]);
//! this type applies them to the log and keeps the two in step:
//!
//! - the storage log is the truth about offsets and leader epochs; a role is
//!   always built from it ([`local_log`]), and after any storage error the
//!   role is rebuilt from it again, so the core's view cannot run ahead of
//!   what the log holds;
//! - a leader stamps its epoch on every batch it appends and records the
//!   epoch's start offset durably before it accepts the first append;
//! - a follower appends the leader's batches as they are (offsets, epochs,
//!   timestamps) and records each new epoch it sees;
//! - idempotent produce: a leader checks each batch that carries a producer
//!   id against the partition's producer state ([`crate::producer_state`])
//!   before appending (a retry gets the original's offsets and is not
//!   appended; a gap, a fenced epoch or an unknown id is refused). The
//!   state is a function of the log: it is rebuilt from the log's batch
//!   headers when first needed after the partition opens, and again after
//!   any truncation, storage error or compaction; followers apply what they
//!   replicate, so a new leader after failover recognises retries. (It is
//!   built on first need rather than at open: the first idempotent
//!   produce, marker or consumer fetch, since every fetch answer carries
//!   the last stable offset. A partition nobody reads or writes is never
//!   scanned.)
//! - transactions: the producer state also tracks each producer's open
//!   transaction and the aborted ones, from the transactional batches and
//!   the end-transaction markers in the log. A leader appends a marker for
//!   the transaction coordinator ([`Partition::append_marker_as_leader`])
//!   through the same path as a produce, so it is replicated like any
//!   batch and durable once the high watermark passes it; followers and
//!   recovery decode the markers they find. Consumers see the last stable
//!   offset ([`Partition::last_stable_offset`]) and, for read_committed,
//!   the aborted transactions of what they read
//!   ([`Partition::aborted_transactions`]). Clients may not produce control
//!   batches themselves (INVALID_RECORD, as in Kafka).

use bytes::Bytes;

use crate::controller::PartitionState;
use crate::error_codes::KafkaErrorCode;
use crate::producer_state::{
    last_sequence, AbortedTxn, AppendCheck, LoggedBatch, ProducerBatch, ProducerEpoch, ProducerId, ProducerStateConfig, ProducerStateError, ProducerStateManager,
    TxnMarker,
};
use crate::replication::{
    EpochEntry, FetchAnswer, FetchResponse, FollowerDecision, FollowerFetch, FollowerState, LeaderEffect, LeaderEpoch,
    LeaderState, LocalLog, MetadataVerdict, Offset, PartitionMetadata, ReplicaId, ReplicationConfig, ReplicationError,
};
use crate::storage::{build_control_batch, parse_control_marker, AppendInfo, BatchHeader, ControlMarker, PartitionLog, StorageError};

/// Why a partition operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The log refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Replication refused (not leader, fenced epoch, too few replicas...).
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    /// An idempotent producer's batch was refused (out of order, fenced...).
    #[error(transparent)]
    ProducerState(#[from] ProducerStateError),
}

impl KafkaErrorCode for PartitionError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            PartitionError::Storage(error) => error.kafka_error_code(),
            PartitionError::Replication(error) => error.kafka_error_code(),
            PartitionError::ProducerState(error) => error.kafka_error_code(),
        }
    }
}

/// What this broker is for the partition.
#[derive(Debug)]
pub(crate) enum Role {
    /// Standalone mode: the only replica; everything appended is committed.
    Standalone,
    /// Cluster mode, neither leader nor follower (no leader, not a replica,
    /// or metadata not read yet). Keeps the high watermark it knew.
    Offline { high_watermark: Offset },
    /// Leads the partition.
    Leader(Box<LeaderState>),
    /// Follows the leader named in its state.
    Follower(Box<FollowerState>),
}

/// What a metadata update did to the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing changed (or only the ISR of a leader).
    Unchanged,
    /// Became leader of this epoch.
    BecameLeader { leader_epoch: LeaderEpoch },
    /// Became follower of `leader_id` in this epoch: start fetching.
    BecameFollower { leader_id: ReplicaId, leader_epoch: LeaderEpoch },
    /// Stopped leading or following.
    Stopped,
}

/// A partition's log and replication role.
#[derive(Debug)]
pub struct Partition {
    pub(crate) log: PartitionLog,
    pub(crate) role: Role,
    /// Idempotent producers' state; `None` until first needed, and after
    /// anything that rewrote the log (rebuilt from the log then).
    producers: Option<ProducerStateManager>,
    producer_config: ProducerStateConfig,
}

/// The core's view of `log`: its offsets and leader epochs, with
/// `high_watermark` clamped into it.
fn local_log(log: &PartitionLog, high_watermark: Offset) -> LocalLog {
    let entries: Vec<EpochEntry> = log
        .leader_epochs()
        .iter()
        .map(|e| EpochEntry { epoch: e.epoch, start_offset: e.start_offset })
        .collect();
    LocalLog::recover(log.log_start_offset(), log.log_end_offset(), high_watermark, entries).unwrap_or_else(|error| {
        // The storage keeps its epochs monotonic; if that ever failed, the
        // epochs are dropped (followers then truncate to the leader's
        // answer) rather than the partition.
        tracing::warn!(%error, dir = ?log.dir(), "leader epochs unusable; continuing without them");
        LocalLog::recover(log.log_start_offset(), log.log_end_offset(), high_watermark, Vec::new())
            .expect("log offsets are ordered")
    })
}

/// The batches in `records` (a fetch response's record set), whole ones
/// only, each control batch with its decoded marker (`None` if it does not
/// decode: logged, and skipped by the producer state).
fn logged_batches(records: &[u8]) -> Vec<LoggedBatch> {
    let mut out = Vec::new();
    let mut position = 0usize;
    for header in batch_headers(records) {
        let size = header.size_bytes() as usize;
        let marker = if header.is_control() {
            match parse_control_marker(&records[position..position + size]) {
                Ok(marker) => Some(marker),
                Err(error) => {
                    tracing::warn!(%error, offset = header.base_offset, "replicated control batch does not decode; skipped by the producer state");
                    None
                }
            }
        } else {
            None
        };
        out.push(LoggedBatch { header, marker });
        position += size;
    }
    out
}

/// The batches in `records` (a fetch response's record set), whole ones only.
fn batch_headers(records: &[u8]) -> Vec<BatchHeader> {
    let mut headers = Vec::new();
    let mut position = 0usize;
    while let Some(header) = records.get(position..).and_then(BatchHeader::parse) {
        let size = header.size_bytes() as usize;
        if header.batch_length <= 0 || position + size > records.len() {
            break;
        }
        headers.push(header);
        position += size;
    }
    headers
}

impl Partition {
    /// A standalone broker's partition.
    pub(crate) fn standalone(log: PartitionLog) -> Self {
        Self { log, role: Role::Standalone, producers: None, producer_config: ProducerStateConfig::default() }
    }

    /// A cluster broker's partition, before metadata says its role.
    pub(crate) fn cluster(log: PartitionLog) -> Self {
        Self { log, role: Role::Offline { high_watermark: 0 }, producers: None, producer_config: ProducerStateConfig::default() }
    }

    /// Sets `producer.id.expiration.ms`.
    pub(crate) fn with_producer_id_expiration_ms(mut self, expiration_ms: u64) -> Self {
        self.producer_config.producer_id_expiration_ms = expiration_ms;
        self.producers = None;
        self
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.log.clock.now_ms()).unwrap_or(0)
    }

    /// Whether `producer_id` has a transaction open on this partition
    /// (a transactional batch since its last marker).
    pub(crate) fn has_open_transaction(&mut self, producer_id: ProducerId) -> Result<bool, StorageError> {
        Ok(self.producer_state()?.entry(producer_id).is_some_and(|entry| entry.current_txn_first_offset.is_some()))
    }

    /// The producer state, rebuilt from the log if it was dropped, with
    /// expired producers forgotten.
    fn producer_state(&mut self) -> Result<&mut ProducerStateManager, StorageError> {
        let now_ms = self.now_ms();
        if self.producers.is_none() {
            let batches: Vec<LoggedBatch> =
                self.log.batch_headers_with_markers()?.into_iter().map(|(header, marker)| LoggedBatch { header, marker }).collect();
            let state = ProducerStateManager::rebuild(self.producer_config, batches.iter(), self.log.log_start_offset());
            tracing::debug!(dir = ?self.log.dir(), producers = state.producers().len(), "producer state rebuilt from the log");
            self.producers = Some(state);
        }
        let state = self.producers.as_mut().expect("just built");
        state.tick(now_ms);
        Ok(state)
    }

    /// The log was rewritten (truncated, compacted, or failed): rebuild the
    /// producer state from it when next needed.
    pub(crate) fn forget_producer_state(&mut self) {
        self.producers = None;
    }

    /// The log start moved forward (retention, DeleteRecords).
    pub(crate) fn on_log_start_advanced(&mut self) {
        let start = self.log.log_start_offset();
        if let Some(state) = &mut self.producers {
            state.truncate_head(start);
        }
    }

    /// For a producer's record set: `None` if no batch carries a producer
    /// id, else the one idempotent batch (it must be alone, as Kafka
    /// requires of every v3+ produce) checked against the producer state.
    fn check_idempotent(&mut self, records: &[u8]) -> Result<Option<(BatchHeader, AppendCheck)>, PartitionError> {
        let headers = batch_headers(records);
        let Some(header) = headers.iter().find(|h| h.producer_id >= 0 && !h.is_control()).copied() else { return Ok(None) };
        let whole: usize = headers.iter().map(|h| h.size_bytes() as usize).sum();
        if headers.len() != 1 || whole != records.len() {
            return Err(ProducerStateError::InvalidBatch("a batch with a producer id must be the only batch of its partition's records".into()).into());
        }
        if header.last_offset_delta < 0 || header.base_sequence < 0 {
            return Err(ProducerStateError::InvalidBatch(format!("sequence {} with offset delta {}", header.base_sequence, header.last_offset_delta)).into());
        }
        let last_seq = last_sequence(header.base_sequence, header.last_offset_delta);
        let state = self.producer_state()?;
        let check = state.check_append(header.producer_id, header.producer_epoch, header.base_sequence, last_seq, header.is_transactional())?;
        Ok(Some((header, check)))
    }

    /// After a leader's append of `header`'s batch at `info`.
    fn record_idempotent_append(&mut self, header: &BatchHeader, info: &AppendInfo) {
        let Some(state) = &mut self.producers else { return };
        let max_timestamp_ms = if info.log_append_time_ms >= 0 { info.log_append_time_ms } else { header.max_timestamp };
        let stored = BatchHeader { base_offset: info.base_offset, max_timestamp: max_timestamp_ms, ..*header };
        let batch = ProducerBatch::from_header(&stored).expect("checked as idempotent");
        debug_assert_eq!(batch.last_offset, info.last_offset);
        state.record_append(&batch);
    }

    /// Offsets below this are decided (Kafka's last stable offset): below
    /// the high watermark and below every open transaction's first offset.
    /// Builds the producer state if it was dropped.
    pub fn last_stable_offset(&mut self) -> Result<Offset, StorageError> {
        let high_watermark = self.high_watermark();
        let log_start = self.log.log_start_offset();
        let last_stable = self.producer_state()?.last_stable_offset(high_watermark).max(log_start.min(high_watermark));
        debug_assert!(last_stable <= high_watermark);
        Ok(last_stable)
    }

    /// The aborted transactions a read_committed fetch of
    /// `[fetch_offset, upper_offset)` reports.
    pub fn aborted_transactions(&mut self, fetch_offset: Offset, upper_offset: Offset) -> Result<Vec<AbortedTxn>, StorageError> {
        Ok(self.producer_state()?.aborted_overlapping(fetch_offset, upper_offset))
    }

    /// For compaction: the last stable offset and every aborted
    /// transaction as `(producer_id, first_offset, marker_offset)`.
    pub(crate) fn compaction_bounds(&mut self) -> Result<(Offset, Vec<(i64, i64, i64)>), StorageError> {
        let last_stable = self.last_stable_offset()?;
        let state = self.producer_state()?;
        Ok((last_stable, state.aborted().map(|a| (a.producer_id, a.first_offset, a.last_offset)).collect()))
    }

    /// Offsets below this are committed: consumers may read them.
    pub fn high_watermark(&self) -> Offset {
        match &self.role {
            Role::Standalone => self.log.log_end_offset(),
            Role::Offline { high_watermark } => (*high_watermark).min(self.log.log_end_offset()),
            Role::Leader(leader) => leader.high_watermark(),
            Role::Follower(follower) => follower.high_watermark(),
        }
    }

    /// The leader epoch this replica leads or follows in.
    pub fn leader_epoch(&self) -> Option<LeaderEpoch> {
        match &self.role {
            Role::Leader(leader) => Some(leader.leader_epoch()),
            Role::Follower(follower) => Some(follower.leader_epoch()),
            Role::Standalone | Role::Offline { .. } => None,
        }
    }

    /// Whether this replica leads replicated data (acks=all must wait).
    pub fn is_replicated(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// Whether this replica leads (standalone counts).
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Standalone | Role::Leader(_))
    }

    /// For a client request (produce, consumer fetch, list offsets): this
    /// replica must lead, and `current_leader_epoch` (if the client sent
    /// one) must be its epoch (KIP-320).
    pub fn check_leader(&self, current_leader_epoch: Option<LeaderEpoch>) -> Result<(), ReplicationError> {
        match &self.role {
            Role::Standalone => Ok(()),
            Role::Leader(leader) => leader.validate_leader_epoch(current_leader_epoch),
            Role::Follower(follower) => {
                // A client with a newer epoch than ours must not be told we
                // are the wrong replica before we know of that epoch.
                follower.validate_leader_epoch(current_leader_epoch)?;
                Err(ReplicationError::NotLeaderOrFollower)
            }
            Role::Offline { .. } => Err(ReplicationError::NotLeaderOrFollower),
        }
    }

    /// Appends a producer's batches as leader. With `min_insync_replicas`
    /// (acks=all) the committed ISR must be at least that large first
    /// (NOT_ENOUGH_REPLICAS, nothing appended).
    pub(crate) fn append_as_leader(&mut self, records: &[u8], min_insync_replicas: Option<usize>) -> Result<AppendInfo, PartitionError> {
        self.check_leader_append(min_insync_replicas)?;
        if batch_headers(records).iter().any(BatchHeader::is_control) {
            return Err(ProducerStateError::InvalidBatch("control batches are written by the transaction coordinator, not produced".into()).into());
        }
        let idempotent = self.check_idempotent(records)?;
        if let Some((header, AppendCheck::Duplicate { base_offset, last_offset })) = idempotent {
            crate::mark!("producer_state.duplicate_answered");
            tracing::debug!(producer_id = header.producer_id, base_sequence = header.base_sequence, base_offset, "duplicate batch: answered with the original offsets");
            return Ok(AppendInfo { base_offset, last_offset, log_append_time_ms: -1, batch_count: 1 });
        }
        let info = self.append_checked(records)?;
        if let Some((header, _)) = idempotent {
            self.record_idempotent_append(&header, &info);
        }
        Ok(info)
    }

    /// Appends an end-transaction marker as leader, for the transaction
    /// coordinator (WriteTxnMarkers): checked against the producer state
    /// (a fenced producer epoch or coordinator epoch appends nothing), then
    /// appended like a produce (replicated to followers; with
    /// `min_insync_replicas` the committed ISR must be that large first),
    /// then recorded, which ends the producer's open transaction and moves
    /// the last stable offset. Waiting for durability is the caller's
    /// ([`Self::wait_for_replication`] with the marker's offset + 1).
    pub(crate) fn append_marker_as_leader(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: ProducerEpoch,
        commit: bool,
        coordinator_epoch: i32,
        min_insync_replicas: Option<usize>,
    ) -> Result<AppendInfo, PartitionError> {
        self.check_leader_append(min_insync_replicas)?;
        let now_ms = self.log.clock.now_ms();
        self.producer_state()?.check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let batch = build_control_batch(producer_id, producer_epoch, commit, coordinator_epoch, now_ms);
        let info = self.append_checked(&batch)?;
        assert_eq!(info.base_offset, info.last_offset, "a marker is one record");
        let timestamp_ms = if info.log_append_time_ms >= 0 { info.log_append_time_ms } else { now_ms };
        let marker = TxnMarker { producer_id, producer_epoch, commit, coordinator_epoch, offset: info.base_offset, timestamp_ms };
        // The state was built by the check above and an append that
        // succeeded keeps it.
        let state = self.producers.as_mut().expect("producer state built before the append");
        let completed = state.record_marker(&marker);
        tracing::debug!(producer_id, producer_epoch, commit, coordinator_epoch, offset = info.base_offset, ?completed, "end-transaction marker appended");
        Ok(info)
    }

    /// Appends a batch the group coordinator wrote (Kafka's
    /// `AppendOrigin.COORDINATOR`): a transactional batch of offsets whose
    /// producer fields name the transaction, not a producer's sequence
    /// (`baseSequence` -1), so no sequence check applies; the coordinator
    /// checks the producer epoch itself.
    pub(crate) fn append_as_coordinator(&mut self, records: &[u8], min_insync_replicas: Option<usize>) -> Result<AppendInfo, PartitionError> {
        self.check_leader_append(min_insync_replicas)?;
        self.append_checked(records)
    }

    /// A leader's append may go ahead: this replica leads, and with
    /// `min_insync_replicas` (acks=all) the committed ISR is large enough.
    fn check_leader_append(&self, min_insync_replicas: Option<usize>) -> Result<(), PartitionError> {
        match &self.role {
            Role::Standalone => Ok(()),
            Role::Leader(leader) => {
                if let Some(min) = min_insync_replicas {
                    leader.check_enough_replicas(min)?;
                }
                Ok(())
            }
            Role::Follower(_) | Role::Offline { .. } => Err(ReplicationError::NotLeaderOrFollower.into()),
        }
    }

    fn append_checked(&mut self, records: &[u8]) -> Result<AppendInfo, PartitionError> {
        match &mut self.role {
            Role::Standalone => Ok(self.log.append(records)?),
            Role::Leader(leader) => {
                let info = match self.log.append_as_leader(records, leader.leader_epoch()) {
                    Ok(info) => info,
                    Err(error) => {
                        self.resync_after_storage_error();
                        return Err(error.into());
                    }
                };
                leader.on_local_append(info.last_offset + 1);
                debug_assert_eq!(leader.log_end_offset(), self.log.log_end_offset(), "core and log agree on the log end");
                Ok(info)
            }
            Role::Follower(_) | Role::Offline { .. } => Err(ReplicationError::NotLeaderOrFollower.into()),
        }
    }

    /// Registers an acks=all produce of a batch ending at `required_offset`
    /// (its last offset + 1); it completes through a `CompleteProduce` effect.
    pub(crate) fn wait_for_replication(
        &mut self,
        request_id: u64,
        required_offset: Offset,
        min_insync_replicas: usize,
        deadline_ms: u64,
    ) -> Result<(), ReplicationError> {
        match &mut self.role {
            Role::Leader(leader) => leader.try_append_acks_all(request_id, required_offset, min_insync_replicas, deadline_ms),
            Role::Standalone => Ok(()),
            Role::Follower(_) | Role::Offline { .. } => Err(ReplicationError::NotLeaderOrFollower),
        }
    }

    /// A follower's fetch, on the leader.
    pub(crate) fn on_follower_fetch(&mut self, fetch: &FollowerFetch, now_ms: u64) -> Result<FetchAnswer, ReplicationError> {
        match &mut self.role {
            Role::Leader(leader) => leader.on_follower_fetch(fetch, now_ms),
            Role::Follower(follower) => {
                follower.validate_leader_epoch(fetch.current_leader_epoch)?;
                Err(ReplicationError::NotLeaderOrFollower)
            }
            Role::Standalone | Role::Offline { .. } => Err(ReplicationError::NotLeaderOrFollower),
        }
    }

    /// The fetch a follower of `leader_epoch` sends next, or `None` if this
    /// replica no longer follows in that epoch.
    pub(crate) fn follower_fetch(&self, leader_epoch: LeaderEpoch) -> Option<FollowerFetch> {
        match &self.role {
            Role::Follower(follower) if follower.leader_epoch() == leader_epoch => Some(follower.fetch_request()),
            _ => None,
        }
    }

    /// The leader's answer to a follower fetch sent in `leader_epoch` from
    /// `fetch_offset`: applies the core's decision to the log. `Ok(false)`
    /// if this replica no longer follows in that epoch (the fetcher stops).
    pub(crate) fn on_leader_response(
        &mut self,
        leader_epoch: LeaderEpoch,
        fetch_offset: Offset,
        high_watermark: Offset,
        diverging_epoch: Option<crate::replication::EpochEndOffset>,
        records: &Bytes,
    ) -> Result<bool, PartitionError> {
        let Role::Follower(follower) = &mut self.role else { return Ok(false) };
        if follower.leader_epoch() != leader_epoch {
            return Ok(false);
        }
        let headers = batch_headers(records);
        let response = FetchResponse {
            leader_epoch,
            fetch_offset,
            high_watermark,
            diverging_epoch,
            batches: headers
                .iter()
                .map(|h| crate::replication::BatchInfo {
                    base_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    leader_epoch: h.partition_leader_epoch,
                })
                .collect(),
        };
        let outcome = match follower.on_fetch_response(&response) {
            FollowerDecision::Ignore => Ok(()),
            FollowerDecision::Append { new_log_end_offset } => {
                let whole: usize = headers.iter().map(|h| h.size_bytes() as usize).sum();
                self.append_replicated(&records[..whole], &headers, new_log_end_offset)
            }
            FollowerDecision::TruncateTo { offset } => {
                self.forget_producer_state();
                self.log.truncate_to(offset).map(|_| ())
            }
        };
        let follower_end = match &self.role {
            Role::Follower(follower) => follower.log_end_offset(),
            _ => unreachable!("still a follower"),
        };
        if outcome.is_err() || follower_end != self.log.log_end_offset() {
            self.resync_after_storage_error();
        }
        outcome.map(|()| true).map_err(PartitionError::from)
    }

    fn append_replicated(&mut self, records: &[u8], headers: &[BatchHeader], new_log_end_offset: Offset) -> Result<(), StorageError> {
        self.log.append_replicated(records)?;
        debug_assert_eq!(self.log.log_end_offset(), new_log_end_offset, "appended what the core expects");
        let logged = logged_batches(records);
        debug_assert_eq!(logged.len(), headers.len());
        let batches: Vec<&LoggedBatch> =
            logged.iter().filter(|b| b.header.producer_id >= 0 && (b.marker.is_some() || ProducerBatch::from_header(&b.header).is_some())).collect();
        match &mut self.producers {
            Some(state) => {
                for logged in &batches {
                    match logged.marker.and_then(|m: ControlMarker| TxnMarker::from_header(&logged.header, m)) {
                        Some(marker) => {
                            state.apply_replicated_marker(&marker);
                        }
                        None => {
                            if let Some(batch) = ProducerBatch::from_header(&logged.header) {
                                state.apply_replicated(&batch);
                            }
                        }
                    }
                }
            }
            // Build it now, so that this replica recognises retries at once
            // if it becomes leader. It is rebuilt on first need otherwise.
            None if !batches.is_empty() => {
                if let Err(error) = self.producer_state() {
                    tracing::warn!(%error, "producer state not rebuilt; retried when needed");
                }
            }
            None => {}
        }
        for header in headers {
            if self.log.latest_epoch().is_none_or(|latest| header.partition_leader_epoch > latest) && header.partition_leader_epoch >= 0 {
                self.log.assign_epoch_start(header.partition_leader_epoch, header.base_offset)?;
            }
        }
        Ok(())
    }

    /// After a storage error (or any disagreement), rebuild the role's view
    /// of the log from the log itself, keeping the role and epoch.
    fn resync_after_storage_error(&mut self) {
        self.forget_producer_state();
        let high_watermark = self.high_watermark();
        let local = local_log(&self.log, high_watermark);
        match &mut self.role {
            Role::Follower(follower) => {
                let config = ReplicationConfig { truncate_to_high_watermark: false, ..ReplicationConfig::default() };
                let (rebuilt, _) = FollowerState::new(config, follower.replica_id(), follower.leader_id(), follower.leader_epoch(), local);
                **follower = rebuilt;
            }
            Role::Leader(leader) => {
                // The leader's core appends only after the log did, so they
                // cannot disagree; a failed append changed neither.
                debug_assert_eq!(leader.log_end_offset(), self.log.log_end_offset());
            }
            Role::Standalone | Role::Offline { .. } => {}
        }
    }

    /// Applies the controller's state of this partition: become leader,
    /// follower or neither (Kafka's `makeLeader` / `makeFollower`). Effects
    /// of a resigning leader (its waiting produce requests fail) go to
    /// `effects`.
    pub(crate) fn apply_metadata(
        &mut self,
        config: &ReplicationConfig,
        replica_id: ReplicaId,
        state: &PartitionState,
        now_ms: u64,
        effects: &mut Vec<LeaderEffect>,
    ) -> Result<Transition, PartitionError> {
        if matches!(self.role, Role::Standalone) {
            return Ok(Transition::Unchanged);
        }
        let metadata = PartitionMetadata {
            leader: state.leader,
            leader_epoch: state.leader_epoch as LeaderEpoch,
            partition_epoch: state.partition_epoch as i32,
            isr: state.isr.iter().copied().collect(),
        };
        let is_replica = state.replicas.contains(&replica_id);
        // An update older than the epoch we act in changes nothing: views
        // may arrive out of order.
        if let Some(current) = self.leader_epoch() {
            if metadata.leader_epoch < current {
                return Ok(Transition::Unchanged);
            }
        }
        if let Role::Leader(leader) = &mut self.role {
            match leader.on_metadata(&metadata) {
                MetadataVerdict::StillLeader | MetadataVerdict::Stale => {
                    effects.extend(leader.drain_effects());
                    return Ok(Transition::Unchanged);
                }
                MetadataVerdict::Resign => {}
            }
        }
        if let Role::Follower(follower) = &self.role {
            if metadata.leader == Some(follower.leader_id()) && metadata.leader_epoch == follower.leader_epoch() && is_replica {
                return Ok(Transition::Unchanged);
            }
        }
        let stays_offline = matches!(self.role, Role::Offline { .. })
            && !(is_replica && metadata.leader.is_some());
        if stays_offline {
            return Ok(Transition::Unchanged);
        }
        // The role changes: stop the old one first.
        let high_watermark = self.stop(effects);
        match metadata.leader {
            Some(leader_id) if leader_id == replica_id && is_replica => {
                // Record the epoch's start durably before any append of it.
                self.log.assign_epoch_start(metadata.leader_epoch, self.log.log_end_offset())?;
                let replicas = state.replicas.iter().copied().collect();
                let mut leader = LeaderState::new(config.clone(), replica_id, replicas, &metadata, local_log(&self.log, high_watermark), now_ms);
                effects.extend(leader.drain_effects());
                self.role = Role::Leader(Box::new(leader));
                Ok(Transition::BecameLeader { leader_epoch: metadata.leader_epoch })
            }
            Some(leader_id) if is_replica => {
                let (follower, truncate_to) =
                    FollowerState::new(config.clone(), replica_id, leader_id, metadata.leader_epoch, local_log(&self.log, high_watermark));
                self.role = Role::Follower(Box::new(follower));
                if let Some(offset) = truncate_to {
                    self.forget_producer_state();
                    if let Err(error) = self.log.truncate_to(offset) {
                        self.resync_after_storage_error();
                        return Err(error.into());
                    }
                }
                Ok(Transition::BecameFollower { leader_id, leader_epoch: metadata.leader_epoch })
            }
            _ => Ok(Transition::Stopped),
        }
    }

    /// Leaves the current role for `Offline`, returning the high watermark
    /// it knew; a leader's waiting produce requests fail into `effects`.
    fn stop(&mut self, effects: &mut Vec<LeaderEffect>) -> Offset {
        let high_watermark = self.high_watermark();
        let old = std::mem::replace(&mut self.role, Role::Offline { high_watermark });
        if let Role::Leader(leader) = old {
            let (_, resign_effects) = leader.resign();
            effects.extend(resign_effects);
        }
        high_watermark
    }

    /// Leaves a leader or follower role (the broker was fenced); `true` if
    /// there was one.
    pub(crate) fn stop_replicating(&mut self, effects: &mut Vec<LeaderEffect>) -> bool {
        if !matches!(self.role, Role::Leader(_) | Role::Follower(_)) {
            return false;
        }
        self.stop(effects);
        true
    }

    /// The leader's periodic duties (ISR shrink, produce timeouts).
    pub(crate) fn tick(&mut self, now_ms: u64) -> Vec<LeaderEffect> {
        match &mut self.role {
            Role::Leader(leader) => {
                leader.tick(now_ms);
                leader.drain_effects()
            }
            _ => Vec::new(),
        }
    }

    /// The leader's effects produced since the last call.
    pub(crate) fn take_effects(&mut self) -> Vec<LeaderEffect> {
        match &mut self.role {
            Role::Leader(leader) => leader.drain_effects(),
            _ => Vec::new(),
        }
    }

    /// The answer to our AlterPartition, if we still lead in `leader_epoch`.
    pub(crate) fn on_alter_partition(
        &mut self,
        leader_epoch: LeaderEpoch,
        outcome: Option<(std::collections::BTreeSet<ReplicaId>, i32)>,
    ) -> Vec<LeaderEffect> {
        let Role::Leader(leader) = &mut self.role else { return Vec::new() };
        if leader.leader_epoch() != leader_epoch {
            return Vec::new();
        }
        match outcome {
            Some((isr, partition_epoch)) if partition_epoch > leader.partition_epoch() => leader.on_isr_committed(isr, partition_epoch),
            Some(_) => {}
            None => {
                if leader.pending_isr().is_some() {
                    leader.on_alter_partition_failed();
                }
            }
        }
        leader.drain_effects()
    }

    /// The leader's partition epoch and ISR, for an AlterPartition.
    pub(crate) fn leader_view(&self) -> Option<(LeaderEpoch, i32)> {
        match &self.role {
            Role::Leader(leader) => Some((leader.leader_epoch(), leader.partition_epoch())),
            _ => None,
        }
    }

    /// OffsetForLeaderEpoch: where `epoch` ends in this log.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> crate::replication::EpochEndOffset {
        if matches!(self.role, Role::Standalone) {
            // One replica that never changes leader: all of it is epoch 0,
            // the epoch standalone Metadata reports.
            return if epoch >= 0 {
                crate::replication::EpochEndOffset { epoch: 0, end_offset: self.log.log_end_offset() }
            } else {
                crate::replication::EpochEndOffset::UNDEFINED
            };
        }
        local_log(&self.log, 0).epoch_cache().end_offset_for(epoch, self.log.log_end_offset())
    }
}

#[cfg(test)]
mod tests {
    //! A follower applies the transactional batches and markers it
    //! replicates, so after a failover the new leader has the same open
    //! transactions, aborted list and coordinator epochs.

    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::disk::RealDisk;
    use crate::storage::{build_batch, set_producer, LogConfig, SimpleRecord};

    fn open(dir: &std::path::Path) -> Partition {
        let _ = std::fs::remove_dir_all(dir);
        let log = PartitionLog::open(Arc::new(RealDisk), ManualClock::new(1_000), dir.to_path_buf(), LogConfig::default()).unwrap();
        Partition::cluster(log)
    }

    fn state(leader: ReplicaId, leader_epoch: u32) -> PartitionState {
        PartitionState { replicas: vec![1, 2], isr: vec![1, 2], leader: Some(leader), leader_epoch, partition_epoch: leader_epoch, elr: vec![] }
    }

    fn txn_batch(pid: i64, first_seq: i32, value: &str) -> Vec<u8> {
        let mut batch = build_batch(&[SimpleRecord { key: None, value: Some(value.as_bytes().to_vec()), timestamp_ms: 1_000 }]);
        batch[21..23].copy_from_slice(&(1i16 << 4).to_be_bytes());
        set_producer(&mut batch, pid, 0, first_seq);
        batch
    }

    /// One follower fetch round: the follower asks, the leader answers
    /// with its log from the fetch offset.
    fn replicate(leader: &mut Partition, follower: &mut Partition, leader_epoch: LeaderEpoch) {
        let fetch = follower.follower_fetch(leader_epoch).expect("following");
        let FetchAnswer::Records { high_watermark, .. } = leader.on_follower_fetch(&fetch, 1_000).unwrap() else { panic!("no divergence here") };
        let records = leader.log.read(fetch.fetch_offset, 1 << 20).unwrap().records;
        assert!(follower.on_leader_response(leader_epoch, fetch.fetch_offset, high_watermark, None, &records).unwrap());
    }

    #[test]
    fn a_follower_applies_replicated_markers_and_keeps_them_after_failover() {
        let root = std::env::temp_dir().join(format!("dlog-partition-txn-{}", std::process::id()));
        let (mut leader, mut follower) = (open(&root.join("leader")), open(&root.join("follower")));
        let config = ReplicationConfig::default();
        let mut effects = Vec::new();
        leader.apply_metadata(&config, 1, &state(1, 1), 1_000, &mut effects).unwrap();
        follower.apply_metadata(&config, 2, &state(1, 1), 1_000, &mut effects).unwrap();
        leader.append_as_leader(&txn_batch(7, 0, "aborted"), None).unwrap();
        leader.append_as_leader(&txn_batch(8, 0, "open"), None).unwrap();
        leader.append_marker_as_leader(7, 0, false, 4, None).unwrap();
        replicate(&mut leader, &mut follower, 1);
        replicate(&mut leader, &mut follower, 1);
        assert_eq!(follower.log.log_end_offset(), 3);
        assert_eq!(leader.last_stable_offset().unwrap(), 1, "producer 8's transaction holds it");

        // The follower takes over.
        follower.apply_metadata(&config, 2, &state(2, 2), 1_000, &mut effects).unwrap();
        assert!(follower.is_leader());
        assert_eq!(follower.last_stable_offset().unwrap(), 1);
        let aborted = follower.aborted_transactions(0, 3).unwrap();
        assert_eq!(aborted, vec![AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 2, last_stable_offset: 1 }]);
        assert!(matches!(
            follower.append_marker_as_leader(7, 0, true, 3, None),
            Err(PartitionError::ProducerState(ProducerStateError::TransactionCoordinatorFenced { .. }))
        ));
        follower.append_marker_as_leader(8, 0, true, 4, None).unwrap();
        assert_eq!(follower.last_stable_offset().unwrap(), follower.high_watermark().min(4));
        let _ = std::fs::remove_dir_all(&root);
    }
}
