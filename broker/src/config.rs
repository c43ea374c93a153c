//! Broker settings, and their parsing from `KEY=VALUE` pairs (`--config`).
//!
//! Every setting has a Kafka-style dotted name. Unknown names are an error,
//! so a typo on the command line never silently does nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

pub use crate::storage::FlushPolicy;
use crate::controller::ControllerConfig;
use crate::quorum::{ControllerNodeConfig, QuorumClient};
use crate::raft::{NodeId, RaftConfig};

/// A setting that could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The text was not of the form `KEY=VALUE`.
    #[error("expected KEY=VALUE, got {0:?}")]
    NotKeyValue(String),
    /// No setting has this name.
    #[error("unknown setting {0:?}")]
    UnknownKey(String),
    /// The value does not parse for this setting.
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    InvalidValue {
        /// The setting's name.
        key: String,
        /// The rejected value.
        value: String,
        /// What the setting accepts.
        expected: &'static str,
    },
    /// A role is on but a setting it needs is not set.
    #[error("{role} role needs {key}: {why}")]
    Missing {
        /// The role (`process.roles`) that needs it.
        role: &'static str,
        /// The missing setting.
        key: &'static str,
        /// What the setting is for.
        why: &'static str,
    },
    /// Settings that parse one by one but do not fit together.
    #[error("{key}: {reason}")]
    Inconsistent {
        /// The setting to fix.
        key: &'static str,
        /// What does not fit.
        reason: String,
    },
}

/// What one process runs (`process.roles`): the Kafka-facing broker, a
/// controller of the metadata quorum, or both in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    /// Serve Kafka clients on `--listen`.
    pub broker: bool,
    /// Be a voter of the controller quorum.
    pub controller: bool,
}

impl Default for ProcessRoles {
    fn default() -> Self {
        Self {
            broker: true,
            controller: false,
        }
    }
}

impl FromStr for ProcessRoles {
    type Err = ();

    /// `broker`, `controller`, or both separated by a comma (any order).
    fn from_str(text: &str) -> Result<Self, ()> {
        let mut roles = Self {
            broker: false,
            controller: false,
        };
        for role in text.split(',').map(str::trim) {
            let seen = match role {
                "broker" => &mut roles.broker,
                "controller" => &mut roles.controller,
                _ => return Err(()),
            };
            if std::mem::replace(seen, true) {
                return Err(()); // a role named twice is a typo, not a wish
            }
        }
        Ok(roles)
    }
}

impl std::fmt::Display for ProcessRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.broker, self.controller) {
            (true, true) => f.write_str("broker,controller"),
            (false, true) => f.write_str("controller"),
            _ => f.write_str("broker"),
        }
    }
}

/// Settings of one broker node.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// This broker's id in metadata responses (`node.id`).
    pub node_id: i32,
    /// Host advertised to clients in metadata (`advertised.host`).
    pub advertised_host: String,
    /// Port advertised to clients in metadata (`advertised.port`).
    pub advertised_port: i32,
    /// Directory holding topic metadata and partition logs.
    pub data_dir: PathBuf,
    /// When appends are fsynced (`log.flush`).
    pub log_flush: FlushPolicy,
    /// Segment size at which the log rolls (`log.segment.bytes`).
    pub log_segment_bytes: u64,
    /// Create unknown topics on Metadata/Produce (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic (`num.partitions`).
    pub default_num_partitions: i32,
    /// Largest request frame accepted, in bytes (`socket.request.max.bytes`).
    pub request_frame_bytes_max: usize,
    /// Most bytes a single fetch response carries (`fetch.max.bytes`).
    pub fetch_response_bytes_max: usize,
    /// Cap on a fetch's long-poll wait (`fetch.max.wait.ms`).
    pub fetch_wait_ms_max: u64,
    /// Seed for any randomness the broker needs.
    pub seed: u64,
    /// The controller quorum's API addresses, `ID@HOST:PORT,...`
    /// (`controller.quorum.voters`). Unset: a standalone broker that keeps
    /// its own metadata. Set: metadata comes from the quorum.
    pub controller_quorum_voters: Option<String>,
    /// How often a broker heartbeats to the controller (`broker.heartbeat.interval.ms`).
    pub broker_heartbeat_interval_ms: u64,
    /// Timeout of one controller call (`controller.request.timeout.ms`).
    pub controller_request_timeout_ms: u64,
    /// How often retention and compaction run (`log.retention.check.interval.ms`).
    pub log_retention_check_interval_ms: u64,
    /// What this process runs (`process.roles`, default `broker`).
    pub process_roles: ProcessRoles,
    /// Where this controller takes Raft messages from the other controllers
    /// (`controller.raft.listen`).
    pub controller_raft_listen: Option<SocketAddr>,
    /// Where this controller takes broker requests (`controller.api.listen`);
    /// the address `controller.quorum.voters` names for it.
    pub controller_api_listen: Option<SocketAddr>,
    /// Every voter's Raft address, `ID@HOST:PORT,...`, ids being `node.id`s
    /// (`controller.raft.voters`). Empty: unset.
    pub controller_raft_voters: BTreeMap<NodeId, String>,
    /// Run a pre-vote round before an election (`raft.prevote`).
    pub raft_prevote: bool,
    /// Sync the Raft log before acknowledging (`raft.fsync`); false is a
    /// teaching knob that loses committed metadata on power loss.
    pub raft_fsync: bool,
    /// Election timeout in ticks (`raft.election_tick`).
    pub raft_election_tick: u32,
    /// Leader heartbeat period in ticks (`raft.heartbeat_tick`).
    pub raft_heartbeat_tick: u32,
    /// Milliseconds per Raft tick (`raft.tick.ms`).
    pub raft_tick_ms: u64,
    /// A broker silent this long is fenced by the controllers
    /// (`broker.session.timeout.ms`).
    pub broker_session_timeout_ms: i64,
    /// Fewest in-sync replicas an acks=all produce needs
    /// (`min.insync.replicas`, Kafka's default 1).
    pub min_insync_replicas: usize,
    /// A follower not caught up for this long leaves the ISR
    /// (`replica.lag.time.max.ms`).
    pub replica_lag_time_max_ms: u64,
    /// How long a follower's fetch may wait on the leader for data
    /// (`replica.fetch.wait.max.ms`).
    pub replica_fetch_wait_max_ms: u64,
    /// Pause after a failed follower fetch (`replica.fetch.backoff.ms`).
    pub replica_fetch_backoff_ms: u64,
    /// Most acks=all produce requests waiting at once per partition.
    pub delayed_produce_max: usize,
    /// TEACHING KNOB (`replication.truncate_to_high_watermark`): followers
    /// truncate to their high watermark as before KIP-101. Loses
    /// acknowledged records after two failures in a row.
    pub replication_truncate_to_high_watermark: bool,
    /// A producer id idle this long (by its last batch's timestamp) is
    /// forgotten by each partition (`producer.id.expiration.ms`).
    pub producer_id_expiration_ms: u64,
    /// TEACHING KNOB (`transaction.aborted.index.enable`, default true):
    /// false answers every read_committed fetch with an empty list of
    /// aborted transactions, so consumers cannot tell aborted records from
    /// committed ones and deliver them. Breaks read_committed; it shows
    /// what the aborted-transaction index is for.
    pub transaction_aborted_index_enable: bool,
    /// KIP-890 part 1 (`transaction.partition.verification.enable`, default
    /// true): before a partition leader accepts a transactional batch that
    /// would open its producer's transaction on the partition, it asks the
    /// transaction coordinator whether the partition is in that producer's
    /// ongoing transaction, and refuses the batch (INVALID_TXN_STATE) if
    /// not. A produce delayed past the end of its transaction would
    /// otherwise open a transaction no coordinator knows (a hanging
    /// transaction: the last stable offset stops) or slip into the
    /// producer's next one. False is a TEACHING KNOB that turns the defense
    /// off.
    pub transaction_partition_verification_enable: bool,
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`,
    /// Kafka's default 50). Fixed once the topic exists: a group's
    /// coordinator follows from it.
    pub offsets_topic_num_partitions: i32,
    /// Replication factor of `__consumer_offsets`
    /// (`offsets.topic.replication.factor`, default 3, capped by the live
    /// brokers when the topic is created).
    pub offsets_topic_replication_factor: i16,
    /// The group coordinator's settings (`group.*`, `offsets.retention.*`).
    pub group: crate::group::GroupConfig,
    /// Partitions of `__transaction_state`
    /// (`transaction.state.log.num.partitions`, Kafka's default 50). Fixed
    /// once the topic exists: a transactional id's coordinator follows from it.
    pub transaction_state_log_num_partitions: i32,
    /// Replication factor of `__transaction_state`
    /// (`transaction.state.log.replication.factor`, default 3, capped by
    /// the live brokers when the topic is created).
    pub transaction_state_log_replication_factor: i16,
    /// `min.insync.replicas` of `__transaction_state`
    /// (`transaction.state.log.min.isr`, default 2, capped by its
    /// replication factor).
    pub transaction_state_log_min_isr: i16,
    /// The transaction coordinator's settings (`transaction.*`,
    /// `transactional.id.expiration.ms`).
    pub txn: crate::txn::TxnConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            data_dir: PathBuf::from("data"),
            log_flush: FlushPolicy::EveryBatch,
            log_segment_bytes: 64 * 1024 * 1024,
            auto_create_topics: true,
            default_num_partitions: 1,
            request_frame_bytes_max: 100 * 1024 * 1024,
            fetch_response_bytes_max: 50 * 1024 * 1024,
            fetch_wait_ms_max: 1_000,
            seed: 0,
            controller_quorum_voters: None,
            broker_heartbeat_interval_ms: 1_000,
            controller_request_timeout_ms: 1_000,
            log_retention_check_interval_ms: 5_000,
            process_roles: ProcessRoles::default(),
            controller_raft_listen: None,
            controller_api_listen: None,
            controller_raft_voters: BTreeMap::new(),
            raft_prevote: true,
            raft_fsync: true,
            raft_election_tick: 10,
            raft_heartbeat_tick: 2,
            raft_tick_ms: 100,
            broker_session_timeout_ms: ControllerConfig::default().broker_session_timeout_ms,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            delayed_produce_max: 1_024,
            replication_truncate_to_high_watermark: false,
            producer_id_expiration_ms: crate::producer_state::DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            transaction_aborted_index_enable: true,
            transaction_partition_verification_enable: true,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            group: crate::group::GroupConfig::default(),
            transaction_state_log_num_partitions: 50,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_min_isr: 2,
            txn: crate::txn::TxnConfig::default(),
        }
    }
}

fn parse_number<T: FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        expected: "a number",
    })
}

fn parse_socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        expected: "an IP:PORT socket address, e.g. 0.0.0.0:9093",
    })
}

/// Parses `ID@HOST:PORT,...`; every address must end in a port.
fn parse_voters(key: &str, value: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let invalid = || ConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        expected: "ID@HOST:PORT,... with distinct numeric ids",
    };
    let voters = QuorumClient::parse_voters(value).map_err(|_| invalid())?;
    let listed = value.split(',').filter(|part| !part.trim().is_empty()).count();
    let has_port = |addr: &String| addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if voters.is_empty() || voters.len() != listed || !voters.values().all(has_port) {
        return Err(invalid());
    }
    Ok(voters)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::InvalidValue {
            key: key.into(),
            value: value.into(),
            expected: "true | false",
        }),
    }
}

impl BrokerConfig {
    /// The names of all settings `set` accepts, for help texts.
    pub const KEYS: &'static [&'static str] = &[
        "node.id",
        "advertised.host",
        "advertised.port",
        "log.dir",
        "log.flush",
        "log.segment.bytes",
        "auto.create.topics.enable",
        "num.partitions",
        "socket.request.max.bytes",
        "fetch.max.bytes",
        "fetch.max.wait.ms",
        "controller.quorum.voters",
        "broker.heartbeat.interval.ms",
        "controller.request.timeout.ms",
        "log.retention.check.interval.ms",
        "process.roles",
        "controller.raft.listen",
        "controller.api.listen",
        "controller.raft.voters",
        "raft.prevote",
        "raft.fsync",
        "raft.election_tick",
        "raft.heartbeat_tick",
        "raft.tick.ms",
        "broker.session.timeout.ms",
        "min.insync.replicas",
        "replica.lag.time.max.ms",
        "replica.fetch.wait.max.ms",
        "replica.fetch.backoff.ms",
        "replication.delayed_produce_max",
        "replication.truncate_to_high_watermark",
        "producer.id.expiration.ms",
        "transaction.aborted.index.enable",
        "transaction.partition.verification.enable",
        "offsets.topic.num.partitions",
        "offsets.topic.replication.factor",
        "offsets.retention.minutes",
        "offsets.retention.check.interval.ms",
        "group.initial.rebalance.delay.ms",
        "group.min.session.timeout.ms",
        "group.max.session.timeout.ms",
        "group.fence.generations",
        "group.consumer.session.timeout.ms",
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.max.size",
        "transaction.state.log.num.partitions",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "transaction.max.timeout.ms",
        "transactional.id.expiration.ms",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "transaction.fence.zombies",
    ];

    /// Applies one `KEY=VALUE` pair.
    pub fn set(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::NotKeyValue(pair.into()))?;
        let (key, value) = (key.trim(), value.trim());
        match key {
            "node.id" => self.node_id = parse_number(key, value)?,
            "advertised.host" => self.advertised_host = value.into(),
            "advertised.port" => self.advertised_port = parse_number(key, value)?,
            "log.dir" => self.data_dir = PathBuf::from(value),
            "log.flush" => {
                self.log_flush = value.parse().map_err(|_| ConfigError::InvalidValue {
                    key: key.into(),
                    value: value.into(),
                    expected: "every-batch | interval | interval:MS | never",
                })?
            }
            "log.segment.bytes" => self.log_segment_bytes = parse_number(key, value)?,
            "auto.create.topics.enable" => self.auto_create_topics = parse_bool(key, value)?,
            "num.partitions" => self.default_num_partitions = parse_number(key, value)?,
            "socket.request.max.bytes" => self.request_frame_bytes_max = parse_number(key, value)?,
            "fetch.max.bytes" => self.fetch_response_bytes_max = parse_number(key, value)?,
            "fetch.max.wait.ms" => self.fetch_wait_ms_max = parse_number(key, value)?,
            "controller.quorum.voters" => self.controller_quorum_voters = Some(value.into()),
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = parse_number(key, value)?,
            "controller.request.timeout.ms" => self.controller_request_timeout_ms = parse_number(key, value)?,
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms = parse_number(key, value)?,
            "process.roles" => {
                self.process_roles = value.parse().map_err(|()| ConfigError::InvalidValue {
                    key: key.into(),
                    value: value.into(),
                    expected: "broker | controller | broker,controller",
                })?
            }
            "controller.raft.listen" => self.controller_raft_listen = Some(parse_socket_addr(key, value)?),
            "controller.api.listen" => self.controller_api_listen = Some(parse_socket_addr(key, value)?),
            "controller.raft.voters" => self.controller_raft_voters = parse_voters(key, value)?,
            "raft.prevote" => self.raft_prevote = parse_bool(key, value)?,
            "raft.fsync" => self.raft_fsync = parse_bool(key, value)?,
            "raft.election_tick" => self.raft_election_tick = parse_number(key, value)?,
            "raft.heartbeat_tick" => self.raft_heartbeat_tick = parse_number(key, value)?,
            "raft.tick.ms" => self.raft_tick_ms = parse_number(key, value)?,
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = parse_number(key, value)?,
            "min.insync.replicas" => self.min_insync_replicas = parse_number(key, value)?,
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = parse_number(key, value)?,
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max_ms = parse_number(key, value)?,
            "replica.fetch.backoff.ms" => self.replica_fetch_backoff_ms = parse_number(key, value)?,
            "replication.delayed_produce_max" => self.delayed_produce_max = parse_number(key, value)?,
            "replication.truncate_to_high_watermark" => self.replication_truncate_to_high_watermark = parse_bool(key, value)?,
            "producer.id.expiration.ms" => self.producer_id_expiration_ms = parse_number(key, value)?,
            "transaction.aborted.index.enable" => self.transaction_aborted_index_enable = parse_bool(key, value)?,
            "transaction.partition.verification.enable" => self.transaction_partition_verification_enable = parse_bool(key, value)?,
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions = parse_number(key, value)?,
            "offsets.topic.replication.factor" => self.offsets_topic_replication_factor = parse_number(key, value)?,
            "offsets.retention.minutes" => {
                let minutes: u64 = parse_number(key, value)?;
                self.group.offsets_retention_ms = minutes.saturating_mul(60_000);
            }
            "offsets.retention.check.interval.ms" => self.group.offsets_retention_check_interval_ms = parse_number(key, value)?,
            "group.initial.rebalance.delay.ms" => self.group.initial_rebalance_delay_ms = parse_number(key, value)?,
            "group.min.session.timeout.ms" => self.group.min_session_timeout_ms = parse_number(key, value)?,
            "group.max.session.timeout.ms" => self.group.max_session_timeout_ms = parse_number(key, value)?,
            "group.fence.generations" => self.group.fence_generations = parse_bool(key, value)?,
            "group.consumer.session.timeout.ms" => self.group.consumer_session_timeout_ms = parse_number(key, value)?,
            "group.consumer.heartbeat.interval.ms" => self.group.consumer_heartbeat_interval_ms = parse_number(key, value)?,
            "group.consumer.max.size" => self.group.consumer_max_size = parse_number(key, value)?,
            "transaction.state.log.num.partitions" => self.transaction_state_log_num_partitions = parse_number(key, value)?,
            "transaction.state.log.replication.factor" => self.transaction_state_log_replication_factor = parse_number(key, value)?,
            "transaction.state.log.min.isr" => self.transaction_state_log_min_isr = parse_number(key, value)?,
            "transaction.max.timeout.ms" => self.txn.max_timeout_ms = parse_number(key, value)?,
            "transactional.id.expiration.ms" => self.txn.transactional_id_expiration_ms = parse_number(key, value)?,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => self.txn.abort_timed_out_cleanup_interval_ms = parse_number(key, value)?,
            "transaction.fence.zombies" => self.txn.fence_zombies = parse_bool(key, value)?,
            _ => return Err(ConfigError::UnknownKey(key.into())),
        }
        Ok(())
    }

    /// Applies every pair in order; the first bad one is the error.
    pub fn apply<'a>(&mut self, pairs: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
        pairs.into_iter().try_for_each(|pair| self.set(pair))
    }

    /// Checks that the settings fit the roles this process runs; call it
    /// once every pair is applied (the order of pairs must not matter).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let roles = self.process_roles;
        if self.min_insync_replicas == 0 {
            return Err(ConfigError::Inconsistent {
                key: "min.insync.replicas",
                reason: "must be at least 1".into(),
            });
        }
        if self.offsets_topic_num_partitions < 1 {
            return Err(ConfigError::Inconsistent { key: "offsets.topic.num.partitions", reason: "must be at least 1".into() });
        }
        if self.offsets_topic_replication_factor < 1 {
            return Err(ConfigError::Inconsistent { key: "offsets.topic.replication.factor", reason: "must be at least 1".into() });
        }
        if self.transaction_state_log_num_partitions < 1 {
            return Err(ConfigError::Inconsistent { key: "transaction.state.log.num.partitions", reason: "must be at least 1".into() });
        }
        if self.transaction_state_log_replication_factor < 1 || self.transaction_state_log_min_isr < 1 {
            return Err(ConfigError::Inconsistent { key: "transaction.state.log.replication.factor", reason: "replication factor and min.isr must be at least 1".into() });
        }
        if self.txn.max_timeout_ms < 1 {
            return Err(ConfigError::Inconsistent { key: "transaction.max.timeout.ms", reason: "must be at least 1".into() });
        }
        if self.group.min_session_timeout_ms > self.group.max_session_timeout_ms {
            return Err(ConfigError::Inconsistent {
                key: "group.min.session.timeout.ms",
                reason: "must not exceed group.max.session.timeout.ms".into(),
            });
        }
        if !roles.broker && !roles.controller {
            // Unreachable through `set`, but the fields are public.
            return Err(ConfigError::Inconsistent {
                key: "process.roles",
                reason: "names no role".into(),
            });
        }
        if roles.controller {
            self.controller_node_config()?;
        } else {
            // Like an unknown key: a controller address on a process that
            // runs no controller is a forgotten `process.roles`, not a wish.
            let controller_only = [
                ("controller.raft.listen", self.controller_raft_listen.is_some()),
                ("controller.api.listen", self.controller_api_listen.is_some()),
                ("controller.raft.voters", !self.controller_raft_voters.is_empty()),
            ];
            if let Some((key, _)) = controller_only.into_iter().find(|(_, set)| *set) {
                return Err(ConfigError::Inconsistent {
                    key,
                    reason: "is set, but process.roles has no controller".into(),
                });
            }
        }
        if roles.broker && roles.controller {
            let Some(text) = &self.controller_quorum_voters else {
                return Err(ConfigError::Missing {
                    role: "broker,controller",
                    key: "controller.quorum.voters",
                    why: "the controllers' API addresses this broker registers with (else it would keep metadata of its own)",
                });
            };
            let api_voters = parse_voters("controller.quorum.voters", text)?;
            // Leader hints are Raft ids that brokers look up among the API
            // voters, so both lists must name the same controllers.
            if !api_voters.keys().eq(self.controller_raft_voters.keys()) {
                return Err(ConfigError::Inconsistent {
                    key: "controller.quorum.voters",
                    reason: format!(
                        "ids {:?} differ from the ids of controller.raft.voters {:?}",
                        api_voters.keys().collect::<Vec<_>>(),
                        self.controller_raft_voters.keys().collect::<Vec<_>>()
                    ),
                });
            }
            if self.broker_heartbeat_interval_ms as i64 >= self.broker_session_timeout_ms {
                return Err(ConfigError::Inconsistent {
                    key: "broker.session.timeout.ms",
                    reason: format!(
                        "{} ms must exceed broker.heartbeat.interval.ms ({} ms), or every broker is fenced between heartbeats",
                        self.broker_session_timeout_ms, self.broker_heartbeat_interval_ms
                    ),
                });
            }
        }
        Ok(())
    }

    /// How this process runs its controller: the Raft log lives in
    /// `<log.dir>/__raft` (topic logs are `<topic>-<partition>`, so the
    /// names cannot meet). Fails with what is missing or inconsistent.
    pub fn controller_node_config(&self) -> Result<ControllerNodeConfig, ConfigError> {
        const ROLE: &str = "controller";
        let node_id = NodeId::try_from(self.node_id).map_err(|_| ConfigError::Inconsistent {
            key: "node.id",
            reason: format!("{} is negative; a controller's node.id is its Raft id", self.node_id),
        })?;
        let raft_listen = self.controller_raft_listen.ok_or(ConfigError::Missing {
            role: ROLE,
            key: "controller.raft.listen",
            why: "where the other controllers send Raft messages",
        })?;
        let api_listen = self.controller_api_listen.ok_or(ConfigError::Missing {
            role: ROLE,
            key: "controller.api.listen",
            why: "where brokers send metadata requests",
        })?;
        if raft_listen == api_listen {
            return Err(ConfigError::Inconsistent {
                key: "controller.api.listen",
                reason: format!("{api_listen} is also controller.raft.listen; the two need their own ports"),
            });
        }
        if self.controller_raft_voters.is_empty() {
            return Err(ConfigError::Missing {
                role: ROLE,
                key: "controller.raft.voters",
                why: "every voter's Raft address, ID@HOST:PORT,..., this node included",
            });
        }
        if !self.controller_raft_voters.contains_key(&node_id) {
            return Err(ConfigError::Inconsistent {
                key: "controller.raft.voters",
                reason: format!("does not name this node (node.id={node_id})"),
            });
        }
        if self.raft_tick_ms == 0 {
            return Err(ConfigError::Inconsistent {
                key: "raft.tick.ms",
                reason: "must be at least 1".into(),
            });
        }
        if self.broker_session_timeout_ms <= 0 {
            return Err(ConfigError::Inconsistent {
                key: "broker.session.timeout.ms",
                reason: "must be positive".into(),
            });
        }
        let mut raft = RaftConfig::new(node_id, self.controller_raft_voters.keys().copied().collect());
        raft.prevote = self.raft_prevote;
        raft.election_tick = self.raft_election_tick;
        raft.heartbeat_tick = self.raft_heartbeat_tick;
        // Checked here so a bad tick setting is a start-up error, not a
        // controller that fails (and is restarted) forever.
        raft.validate().map_err(|error| ConfigError::Inconsistent {
            key: "raft.election_tick",
            reason: error.to_string(),
        })?;
        Ok(ControllerNodeConfig {
            node_id,
            raft_peers: self.controller_raft_voters.clone(),
            raft_listen,
            api_listen,
            data_dir: self.data_dir.join("__raft"),
            raft,
            fsync: self.raft_fsync,
            tick_ms: self.raft_tick_ms,
            metadata: ControllerConfig {
                broker_session_timeout_ms: self.broker_session_timeout_ms,
                min_insync_replicas: self.min_insync_replicas,
                ..ControllerConfig::default()
            },
            // Distinct from the broker's own use of the seed.
            seed: self.seed ^ 0xc0de_0000_0000_0000 ^ node_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_parses_every_documented_form() {
        let mut config = BrokerConfig::default();
        assert_eq!(config.log_flush, FlushPolicy::EveryBatch, "acknowledged means on disk by default");
        config.set("log.flush=interval:250").unwrap();
        assert_eq!(config.log_flush, FlushPolicy::Interval { interval_ms: 250 });
        assert!(config.set("log.flush=sometimes").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let mut config = BrokerConfig::default();
        assert_eq!(config.set("log.flus=never"), Err(ConfigError::UnknownKey("log.flus".into())));
        assert!(matches!(config.set("num.partitions=three"), Err(ConfigError::InvalidValue { .. })));
        assert!(matches!(config.set("nonsense"), Err(ConfigError::NotKeyValue(_))));
        config.set("log.flush=never").unwrap();
        assert_eq!(config.log_flush, FlushPolicy::Never);
    }

    fn controller(extra: &[&str]) -> BrokerConfig {
        let mut config = BrokerConfig::default();
        config
            .apply([
                "process.roles=broker,controller",
                "node.id=2",
                "controller.raft.listen=127.0.0.1:9193",
                "controller.api.listen=127.0.0.1:9194",
                "controller.raft.voters=1@h1:9193,2@127.0.0.1:9193,3@h3:9193",
                "controller.quorum.voters=1@h1:9194,2@127.0.0.1:9194,3@h3:9194",
            ])
            .unwrap();
        config.apply(extra.iter().copied()).unwrap();
        config
    }

    #[test]
    fn process_roles_default_to_broker_and_reject_typos() {
        let mut config = BrokerConfig::default();
        assert_eq!(config.process_roles, ProcessRoles { broker: true, controller: false });
        config.validate().unwrap();
        config.set("process.roles=controller, broker").unwrap();
        assert_eq!(config.process_roles, ProcessRoles { broker: true, controller: true });
        for bad in ["process.roles=", "process.roles=brokers", "process.roles=broker,broker"] {
            assert!(matches!(config.set(bad), Err(ConfigError::InvalidValue { .. })), "{bad}");
        }
    }

    #[test]
    fn controller_settings_build_the_controller_config() {
        let config = controller(&["raft.prevote=false", "raft.fsync=false", "raft.tick.ms=50", "broker.session.timeout.ms=3000"]);
        config.validate().unwrap();
        let node = config.controller_node_config().unwrap();
        assert_eq!(node.node_id, 2);
        assert_eq!(node.raft.voters, vec![1, 2, 3]);
        assert_eq!(node.raft_peers[&3], "h3:9193");
        assert_eq!(node.api_listen.port(), 9194);
        assert_eq!(node.data_dir, PathBuf::from("data").join("__raft"));
        assert!(!node.raft.prevote && !node.fsync);
        assert_eq!((node.tick_ms, node.metadata.broker_session_timeout_ms), (50, 3000));
    }

    #[test]
    fn controller_role_names_what_is_missing_or_inconsistent() {
        let missing = |key: &str| {
            let mut config = BrokerConfig::default();
            config.set("process.roles=controller").unwrap();
            config.set("node.id=1").unwrap();
            for pair in ["controller.raft.listen=127.0.0.1:1", "controller.api.listen=127.0.0.1:2", "controller.raft.voters=1@h:1"] {
                if !pair.starts_with(key) {
                    config.set(pair).unwrap();
                }
            }
            config.validate()
        };
        for key in ["controller.raft.listen", "controller.api.listen", "controller.raft.voters"] {
            assert!(matches!(missing(key), Err(ConfigError::Missing { key: k, .. }) if k == key), "{key}");
        }
        assert_eq!(missing("none"), Ok(()), "a controller-only process needs no controller.quorum.voters");

        let not_a_voter = controller(&["node.id=4"]);
        assert!(matches!(not_a_voter.validate(), Err(ConfigError::Inconsistent { key: "controller.raft.voters", .. })));
        let negative = controller(&["node.id=-1"]);
        assert!(matches!(negative.validate(), Err(ConfigError::Inconsistent { key: "node.id", .. })));
        let ticks = controller(&["raft.election_tick=2"]);
        assert!(matches!(ticks.validate(), Err(ConfigError::Inconsistent { key: "raft.election_tick", .. })));
        let ids = controller(&["controller.quorum.voters=1@h1:9194,2@h2:9194"]);
        assert!(matches!(ids.validate(), Err(ConfigError::Inconsistent { key: "controller.quorum.voters", .. })));
        let session = controller(&["broker.session.timeout.ms=1000"]);
        assert!(matches!(session.validate(), Err(ConfigError::Inconsistent { key: "broker.session.timeout.ms", .. })));
        let forgotten_role = controller(&["process.roles=broker"]);
        assert!(matches!(forgotten_role.validate(), Err(ConfigError::Inconsistent { key: "controller.raft.listen", .. })));
        let mut no_api_voters = controller(&[]);
        no_api_voters.controller_quorum_voters = None;
        assert!(matches!(no_api_voters.validate(), Err(ConfigError::Missing { key: "controller.quorum.voters", .. })));
    }

    #[test]
    fn controller_addresses_are_parsed_when_set() {
        let mut config = BrokerConfig::default();
        for bad in [
            "controller.raft.listen=localhost",
            "controller.raft.voters=1@h1",
            "controller.raft.voters=1@h1:1,1@h2:1",
            "controller.raft.voters=x@h1:1",
            "controller.raft.voters=",
        ] {
            assert!(matches!(config.set(bad), Err(ConfigError::InvalidValue { .. })), "{bad}");
        }
    }
}
