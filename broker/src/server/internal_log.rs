//! What the coordinators (groups, transactions) share about their internal
//! topics (`__consumer_offsets`, `__transaction_state`): creating one
//! standalone, knowing whether this broker leads a partition of it,
//! replaying a partition, and appending records durably.
//!
//! **Durability.** Records are appended as the partition's leader; with
//! `durable`, in cluster mode the append is complete only once the high
//! watermark passes them (acks=all with the topic's
//! `min.insync.replicas`), so what a coordinator acted on survives its
//! failover. The wait is returned to the caller ([`ReplicationWait`]) so a
//! coordinator can hold its answer, not its lock, until then.

use tokio::sync::oneshot;

use crate::replication::ProduceOutcome;
use crate::server::topics::TopicMeta;
use crate::server::Broker;
use crate::storage::{build_batch, build_transactional_batch, parse_control_marker, parse_records, split_batches, SimpleRecord};

/// One item of a replayed internal partition.
pub(crate) enum Replayed<'a> {
    /// A record; `transaction` names its producer (id, epoch) when it was
    /// written inside a transaction.
    Record { key: Option<&'a [u8]>, value: Option<&'a [u8]>, transaction: Option<(i64, i16)> },
    /// An end-transaction marker of `producer_id`.
    Marker { producer_id: i64, commit: bool },
}

/// Most bytes read per step while replaying a partition.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// A durable append still waiting for replication.
pub(crate) type ReplicationWait = Option<oneshot::Receiver<ProduceOutcome>>;

/// Why an internal append did not happen, or its fate is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InternalLogError {
    /// This broker does not lead the partition (a coordinator answers NOT_COORDINATOR).
    #[error("not the partition's leader")]
    NotLeader,
    /// Refused, or not replicated in time (COORDINATOR_NOT_AVAILABLE).
    #[error("append refused or not replicated")]
    Unavailable,
}

impl Broker {
    /// Standalone: creates the compacted internal topic `name` with
    /// `partitions` partitions, unless it exists.
    pub(crate) fn create_internal_topic_standalone(&self, name: &str, partitions: i32) -> Result<(), InternalLogError> {
        let meta = TopicMeta { partitions, configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect() };
        match super::handlers::create_topic(self, name, meta) {
            Ok(()) => {
                tracing::info!(partitions, "created {name}");
                Ok(())
            }
            Err(super::TopicError::AlreadyExists(_)) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "creating {name} failed");
                Err(InternalLogError::Unavailable)
            }
        }
    }

    /// Whether this broker leads `partition` of `topic` now. In cluster
    /// mode the partition is opened here if the last view assigns it to
    /// this broker (it then takes the view's role at once).
    pub(crate) fn leads_internal_partition(&self, topic: &str, partition: i32) -> bool {
        if self.cluster.is_some() {
            let Ok(log) = self.partition(topic, partition) else { return false };
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            return log.check_leader(None).is_ok();
        }
        self.topic(topic).is_some_and(|t| usize::try_from(partition).is_ok_and(|i| i < t.partitions.len()))
    }

    /// The leader epoch of `partition` of `topic` here (0 standalone).
    pub(crate) fn internal_leader_epoch(&self, topic: &str, partition: i32) -> i32 {
        let Some(log) = self.topic(topic).and_then(|t| usize::try_from(partition).ok().and_then(|i| t.partitions.get(i).cloned())) else { return 0 };
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.leader_epoch().unwrap_or(0)
    }

    /// Replays `partition` of `topic` in log order, handing each record
    /// and each end-transaction marker to `each`; batches that do not parse
    /// are logged and skipped. Returns how many records were seen, or an
    /// error when the log could not be read (the caller leaves the
    /// partition unloaded and tries again on the next request).
    pub(crate) fn replay_internal_partition(
        &self,
        topic: &str,
        partition: i32,
        mut each: impl FnMut(Replayed<'_>),
    ) -> Result<u64, InternalLogError> {
        let log = self
            .topic(topic)
            .and_then(|t| usize::try_from(partition).ok().and_then(|i| t.partitions.get(i).cloned()))
            .ok_or(InternalLogError::NotLeader)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        let end = log.log.log_end_offset();
        let mut offset = log.log.log_start_offset();
        let mut records = 0u64;
        while offset < end {
            let read = log.log.read_bounded(offset, REPLAY_READ_BYTES, end).map_err(|error| {
                tracing::warn!(partition, offset, %error, "reading {topic} failed");
                InternalLogError::Unavailable
            })?;
            if read.next_offset <= offset {
                break;
            }
            offset = read.next_offset;
            let Ok(batches) = split_batches(&read.records) else {
                tracing::warn!(partition, offset, "a {topic} read did not split into batches; skipped");
                continue;
            };
            for (position, header) in batches {
                let bytes = &read.records[position..position + header.size_bytes() as usize];
                if header.is_control() {
                    match parse_control_marker(bytes) {
                        Ok(marker) => each(Replayed::Marker { producer_id: header.producer_id, commit: marker.commit }),
                        Err(error) => tracing::warn!(partition, offset = header.base_offset, %error, "a {topic} control batch is no transaction marker; skipped"),
                    }
                    continue;
                }
                let transaction = header.is_transactional().then_some((header.producer_id, header.producer_epoch));
                match parse_records(bytes) {
                    Ok(parsed) => {
                        for record in parsed {
                            each(Replayed::Record { key: record.key, value: record.value, transaction });
                            records += 1;
                        }
                    }
                    Err(error) => tracing::warn!(partition, %error, "a {topic} batch did not parse; skipped"),
                }
            }
        }
        Ok(records)
    }

    /// Appends `records` (key, value; None a tombstone) to `partition` of
    /// `topic` as its leader, in one batch. With `durable`, returns the
    /// wait for the high watermark to pass them (cluster mode).
    pub(crate) fn append_internal_records(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        durable: bool,
    ) -> Result<ReplicationWait, InternalLogError> {
        self.append_internal_batch(topic, partition, records, durable, None)
    }

    /// As [`Broker::append_internal_records`]; with `transaction` (producer
    /// id and epoch), as one transactional batch of that producer, written
    /// on its behalf by a coordinator (TxnOffsetCommit: no sequence, Kafka's
    /// coordinator origin), which an end-transaction marker later resolves.
    pub(crate) fn append_internal_batch(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        durable: bool,
        transaction: Option<(i64, i16)>,
    ) -> Result<ReplicationWait, InternalLogError> {
        if records.is_empty() {
            return Ok(None);
        }
        let meta = self.topic(topic).ok_or(InternalLogError::NotLeader)?;
        let log = usize::try_from(partition).ok().and_then(|i| meta.partitions.get(i).cloned()).ok_or(InternalLogError::NotLeader)?;
        let timestamp_ms = i64::try_from(self.now_ms()).unwrap_or(i64::MAX);
        let simple: Vec<SimpleRecord> = records.into_iter().map(|(key, value)| SimpleRecord { key: Some(key), value, timestamp_ms }).collect();
        let min_insync_replicas = meta.min_insync_replicas(&self.config);
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let appended = match transaction {
            None => log.append_as_leader(&build_batch(&simple), durable.then_some(min_insync_replicas)),
            // Base sequence -1: the coordinator's own batch, not a producer's.
            Some((producer_id, producer_epoch)) => log.append_as_coordinator(&build_transactional_batch(producer_id, producer_epoch, -1, &simple), durable.then_some(min_insync_replicas)),
        };
        let info = appended.map_err(|error| {
            tracing::debug!(partition, %error, "{topic} append refused");
            match error {
                super::PartitionError::Replication(crate::replication::ReplicationError::NotLeaderOrFollower) => InternalLogError::NotLeader,
                _ => InternalLogError::Unavailable,
            }
        })?;
        self.appended.notify_waiters();
        let mut wait = None;
        if durable && log.is_replicated() {
            let (request_id, receiver) = self.replication.register_produce();
            let deadline_ms = self.now_ms().saturating_add(self.config.controller_request_timeout_ms.max(5_000));
            match log.wait_for_replication(request_id, info.last_offset + 1, min_insync_replicas, deadline_ms) {
                Ok(()) => wait = Some(receiver),
                Err(_) => {
                    self.replication.forget_produce(request_id);
                    return Err(InternalLogError::Unavailable);
                }
            }
        }
        let effects = log.take_effects();
        drop(log);
        self.dispatch_effects(topic, partition, effects);
        Ok(wait)
    }

    /// Waits for a durable append (see [`Broker::append_internal_records`]).
    pub(crate) async fn await_internal_replication(wait: ReplicationWait) -> Result<(), InternalLogError> {
        let Some(receiver) = wait else { return Ok(()) };
        match receiver.await {
            Ok(Ok(())) => Ok(()),
            // Not replicated in time, or this broker stopped leading: the
            // append's fate is unknown.
            Ok(Err(_)) | Err(_) => Err(InternalLogError::Unavailable),
        }
    }

    /// Starts a coordinator's clock once (`ticking` remembers it): every
    /// `period_ms` of the broker's clock, `tick` runs on the broker, until
    /// the broker is gone.
    pub(crate) fn start_coordinator_ticker(&self, ticking: &std::sync::atomic::AtomicBool, period_ms: u64, tick: fn(&Broker)) {
        if ticking.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(broker) = self.self_ref.upgrade() else { return };
        tokio::spawn(async move {
            let weak = std::sync::Arc::downgrade(&broker);
            drop(broker);
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(period_ms)).await;
                let Some(broker) = weak.upgrade() else { return };
                tick(&broker);
            }
        });
    }
}
