//! Broker settings, and their parsing from `KEY=VALUE` pairs (`--config`).
//!
//! Every setting has a Kafka-style dotted name. Unknown names are an error,
//! so a typo on the command line never silently does nothing.

use std::path::PathBuf;
use std::str::FromStr;

pub use crate::storage::FlushPolicy;

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
            _ => return Err(ConfigError::UnknownKey(key.into())),
        }
        Ok(())
    }

    /// Applies every pair in order; the first bad one is the error.
    pub fn apply<'a>(&mut self, pairs: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
        pairs.into_iter().try_for_each(|pair| self.set(pair))
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
}
