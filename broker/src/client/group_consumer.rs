//! A group consumer, as a Kafka user knows it: subscribe, then `poll` in a
//! loop. [`GroupConsumer`] is a [`GroupMember`] (membership, assignment,
//! commits) and a [`Consumer`] (fetching) driven together by `poll`:
//!
//! 1. **Membership.** If the member must (re)join, it does so within this
//!    poll: with an eager assignor it first commits (auto-commit) and gives
//!    up everything; with `cooperative-sticky` it keeps its partitions,
//!    gives up only those the new assignment no longer lists, and rejoins
//!    once more when it gave up any (KIP-429, see [`super::assignors`]).
//!    Newly assigned partitions start at the group's committed offset.
//! 2. **Heartbeat**, when `heartbeat.interval.ms` has passed since the last
//!    one; REBALANCE_IN_PROGRESS (and the other generation-ending answers)
//!    send the member back to step 1 at once.
//! 3. **Auto-commit** (`enable.auto.commit`, on by default), when
//!    `auto.commit.interval.ms` has passed: the positions after what the
//!    previous polls returned. Also before every rejoin (so an eager
//!    revocation hands the next owner the right offset), for partitions a
//!    cooperative rebalance takes away, and on [`GroupConsumer::close`].
//! 4. **Offset reset** for a partition with no committed offset, or whose
//!    position fell out of the log's range: `auto.offset.reset` earliest,
//!    latest (Kafka's default) or none, in which case `poll` fails with
//!    [`GroupConsumerError::NoOffset`] naming the partitions, as Java's
//!    `NoOffsetForPartitionException` does, until the caller seeks them.
//! 5. **Fetch** once from every assigned partition.
//!
//! Heartbeats are sent only from `poll`, so the caller must poll more often
//! than the session timeout (Java's background heartbeat thread is out of
//! place in a single-task client that also runs in the simulation). Time
//! is `tokio::time`, virtual in the simulation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::assignors::{Assignor, RebalanceProtocol};
use super::{ClientError, CommitOutcome, ConsumedRecord, Consumer, ConsumerConfig, GroupClientError, GroupMember, GroupMemberConfig, TopicPartition};

/// Joins tried within one poll before it gives up (and the next poll goes on).
const REJOINS_PER_POLL_MAX: usize = 8;

/// `auto.offset.reset`: where a partition without a valid offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset (Kafka's default).
    Latest,
    /// No reset: `poll` fails with [`GroupConsumerError::NoOffset`].
    None,
}

impl OffsetReset {
    /// The value of `auto.offset.reset` (`earliest`, `latest`, `none`).
    pub fn from_name(name: &str) -> Option<OffsetReset> {
        match name.trim() {
            "earliest" => Some(OffsetReset::Earliest),
            "latest" => Some(OffsetReset::Latest),
            "none" => Some(OffsetReset::None),
            _ => None,
        }
    }
}

/// Group consumer settings; the defaults are the Java consumer's, except
/// the shorter timeouts noted.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// `bootstrap.servers`: `host:port` of brokers, comma-separated.
    pub bootstrap: String,
    /// `client.id`.
    pub client_id: String,
    /// `group.id`.
    pub group_id: String,
    /// The topics subscribed to.
    pub topics: Vec<String>,
    /// `session.timeout.ms` (45 000).
    pub session_timeout_ms: i32,
    /// The rebalance timeout sent in JoinGroup (Java sends
    /// `max.poll.interval.ms`, 300 000; here 60 000).
    pub rebalance_timeout_ms: i32,
    /// `heartbeat.interval.ms` (3 000).
    pub heartbeat_interval_ms: u64,
    /// Per-request timeout (5 000; Java's `request.timeout.ms` is 30 000).
    pub request_timeout_ms: u64,
    /// `partition.assignment.strategy` (range, cooperative-sticky: Java's
    /// default, under which a group of such members uses range).
    pub assignors: Vec<Assignor>,
    /// `enable.auto.commit` (true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5 000).
    pub auto_commit_interval_ms: u64,
    /// `auto.offset.reset` (latest).
    pub auto_offset_reset: OffsetReset,
    /// `fetch.max.wait.ms` (500).
    pub fetch_wait_ms_max: u64,
    /// `fetch.max.bytes` (1 MiB here; Java's is 50 MiB).
    pub fetch_bytes_max: i32,
    /// `isolation.level`: 0 read_uncommitted (the default), 1 read_committed.
    pub isolation_level: i8,
}

impl Default for GroupConsumerConfig {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            client_id: "dlog-group-consumer".into(),
            group_id: String::new(),
            topics: Vec::new(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 60_000,
            heartbeat_interval_ms: 3_000,
            request_timeout_ms: 5_000,
            assignors: vec![Assignor::Range, Assignor::CooperativeSticky],
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            auto_offset_reset: OffsetReset::Latest,
            fetch_wait_ms_max: 500,
            fetch_bytes_max: 1024 * 1024,
            isolation_level: 0,
        }
    }
}

/// Why a poll (or commit) failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupConsumerError {
    /// A group request failed (the next poll tries again).
    #[error(transparent)]
    Group(#[from] GroupClientError),
    /// A fetch or offset lookup failed (the next poll tries again).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `auto.offset.reset=none` and these partitions have no committed
    /// offset or their position is out of range: seek them first.
    #[error("no valid offset and auto.offset.reset=none for {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    NoOffset(Vec<TopicPartition>),
}

/// One rebalance as this member lived it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance {
    /// The generation it ended in.
    pub generation_id: i32,
    /// The assignor the group used.
    pub assignor: Assignor,
    /// What the member gave up (everything it had, for an eager assignor).
    pub revoked: Vec<TopicPartition>,
    /// What it holds afterwards.
    pub assigned: Vec<TopicPartition>,
}

/// A subscribing consumer in a group: see the module docs.
pub struct GroupConsumer {
    config: GroupConsumerConfig,
    member: GroupMember,
    consumer: Consumer,
    /// Whether the next poll must (re)join first.
    rejoin_needed: bool,
    /// The rebalance protocol of the generation the member is in.
    protocol: RebalanceProtocol,
    last_heartbeat: Instant,
    last_auto_commit: Instant,
    /// What this member last committed (skips commits that change nothing).
    committed: BTreeMap<TopicPartition, i64>,
    /// Newly assigned partitions whose committed offset is not known yet:
    /// none is fetched (or reset) before it is.
    offsets_unknown: Vec<TopicPartition>,
    rebalances: Vec<Rebalance>,
}

impl GroupConsumer {
    /// A consumer that joins its group on the first poll.
    pub fn new(config: GroupConsumerConfig) -> Self {
        let member = GroupMember::new(GroupMemberConfig {
            bootstrap: config.bootstrap.clone(),
            client_id: config.client_id.clone(),
            group_id: config.group_id.clone(),
            topics: config.topics.clone(),
            session_timeout_ms: config.session_timeout_ms,
            rebalance_timeout_ms: config.rebalance_timeout_ms,
            request_timeout_ms: config.request_timeout_ms,
            assignors: config.assignors.clone(),
        });
        let consumer = Consumer::new(ConsumerConfig {
            bootstrap: config.bootstrap.clone(),
            client_id: config.client_id.clone(),
            request_timeout_ms: config.request_timeout_ms,
            fetch_wait_ms_max: config.fetch_wait_ms_max,
            fetch_bytes_max: config.fetch_bytes_max,
            reset_to_earliest: config.auto_offset_reset == OffsetReset::Earliest,
            isolation_level: config.isolation_level,
        });
        let now = Instant::now();
        Self { config, member, consumer, rejoin_needed: true, protocol: RebalanceProtocol::Eager, last_heartbeat: now, last_auto_commit: now, committed: BTreeMap::new(), offsets_unknown: Vec::new(), rebalances: Vec::new() }
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer.assignment()
    }

    /// The next offset to return from `tp`, if known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.consumer.position(tp)
    }

    /// Sets the next offset to return from an assigned partition.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        self.consumer.seek(tp, offset);
    }

    /// The group membership underneath (member id, generation, committed offsets).
    pub fn member(&mut self) -> &mut GroupMember {
        &mut self.member
    }

    /// Every rebalance this consumer went through, oldest first.
    pub fn rebalances(&self) -> &[Rebalance] {
        &self.rebalances
    }

    /// Joins if needed, heartbeats and auto-commits when due, then fetches
    /// once from every assigned partition (see the module docs).
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, GroupConsumerError> {
        self.ensure_active().await?;
        if self.last_heartbeat.elapsed() >= Duration::from_millis(self.config.heartbeat_interval_ms) {
            self.last_heartbeat = Instant::now();
            match self.member.heartbeat().await {
                Err(error) if error.needs_rejoin() => {
                    self.rejoin_needed = true;
                    self.ensure_active().await?;
                }
                // The coordinator moved or did not answer: the member found
                // it again on the next heartbeat.
                _ => {}
            }
        }
        if !self.offsets_unknown.is_empty() {
            let committed = self.member.committed(&self.offsets_unknown).await?;
            for (tp, offset) in committed {
                if offset >= 0 {
                    self.consumer.seek(&tp, offset);
                    self.committed.insert(tp, offset);
                }
            }
            self.offsets_unknown.clear();
        }
        if self.config.enable_auto_commit && self.last_auto_commit.elapsed() >= Duration::from_millis(self.config.auto_commit_interval_ms) {
            self.last_auto_commit = Instant::now();
            self.commit_positions(None).await;
        }
        if self.config.auto_offset_reset == OffsetReset::None {
            let unpositioned: Vec<TopicPartition> = self.consumer.assignment().into_iter().filter(|tp| self.consumer.position(tp).is_none()).collect();
            if !unpositioned.is_empty() {
                return Err(GroupConsumerError::NoOffset(unpositioned));
            }
        }
        if self.consumer.assignment().is_empty() {
            // Nothing to fetch: wait as a fetch would, so a poll loop does not spin.
            tokio::time::sleep(Duration::from_millis(self.config.fetch_wait_ms_max)).await;
            return Ok(Vec::new());
        }
        Ok(self.consumer.poll().await?)
    }

    /// Commits the positions of every assigned partition (what poll returned).
    pub async fn commit_sync(&mut self) -> CommitOutcome {
        self.commit_positions(None).await
    }

    /// Auto-commits (if enabled) and leaves the group.
    pub async fn close(&mut self) {
        if self.config.enable_auto_commit {
            self.commit_positions(None).await;
        }
        self.member.leave().await;
        self.consumer.assign(&[]);
        self.rejoin_needed = true;
    }

    /// Commits the positions of `only` (or of every assigned partition)
    /// that moved since this member's last commit.
    async fn commit_positions(&mut self, only: Option<&[TopicPartition]>) -> CommitOutcome {
        if self.member.generation_id() < 0 {
            return CommitOutcome::Committed;
        }
        let partitions = only.map_or_else(|| self.consumer.assignment(), <[TopicPartition]>::to_vec);
        let offsets: BTreeMap<TopicPartition, i64> =
            partitions.into_iter().filter_map(|tp| self.consumer.position(&tp).map(|p| (tp, p))).filter(|(tp, p)| self.committed.get(tp) != Some(p)).collect();
        if offsets.is_empty() {
            return CommitOutcome::Committed;
        }
        let outcome = self.member.commit(&offsets).await;
        match outcome {
            CommitOutcome::Committed => self.committed.extend(offsets),
            CommitOutcome::Refused(code) if GroupClientError::Kafka(code).needs_rejoin() => self.rejoin_needed = true,
            _ => {}
        }
        outcome
    }

    /// Joins and syncs until the member holds a settled assignment (see
    /// the module docs), at most [`REJOINS_PER_POLL_MAX`] times.
    async fn ensure_active(&mut self) -> Result<(), GroupConsumerError> {
        for _ in 0..REJOINS_PER_POLL_MAX {
            if !self.rejoin_needed {
                return Ok(());
            }
            let before: Vec<TopicPartition> = self.consumer.assignment();
            if self.config.enable_auto_commit {
                self.commit_positions(None).await;
            }
            let mut revoked: BTreeSet<TopicPartition> = BTreeSet::new();
            if self.protocol == RebalanceProtocol::Eager || self.member.owned().is_empty() {
                // Eager (or out of the group: its partitions are lost): give
                // up everything before joining.
                revoked.extend(before.iter().cloned());
                self.consumer.assign(&[]);
                self.member.set_owned(Vec::new());
            }
            let joined = match self.member.join().await {
                Ok(joined) => joined,
                Err(error) if error.needs_rejoin() => continue,
                Err(error) => return Err(error.into()),
            };
            let assigned = match self.member.sync(&joined).await {
                Ok(assigned) => assigned,
                Err(error) if error.needs_rejoin() => continue,
                Err(error) => return Err(error.into()),
            };
            let held: BTreeSet<TopicPartition> = self.consumer.assignment().into_iter().collect();
            let assigned_set: BTreeSet<TopicPartition> = assigned.iter().cloned().collect();
            let taken: Vec<TopicPartition> = held.difference(&assigned_set).cloned().collect();
            if !taken.is_empty() && self.config.enable_auto_commit {
                self.commit_positions(Some(&taken)).await;
            }
            revoked.extend(taken.iter().cloned());
            let added: Vec<TopicPartition> = assigned_set.difference(&held).cloned().collect();
            self.consumer.assign(&assigned);
            self.member.set_owned(assigned.clone());
            for tp in &taken {
                self.committed.remove(tp);
            }
            self.offsets_unknown.retain(|tp| assigned_set.contains(tp));
            self.offsets_unknown.extend(added);
            self.protocol = joined.rebalance_protocol();
            self.last_heartbeat = Instant::now();
            self.rebalances.push(Rebalance { generation_id: joined.generation_id, assignor: joined.assignor, revoked: revoked.into_iter().collect(), assigned });
            // Cooperative: having given partitions up, rejoin so the next
            // generation can hand them to their new owner.
            self.rejoin_needed = self.protocol == RebalanceProtocol::Cooperative && !taken.is_empty();
        }
        Ok(())
    }
}
