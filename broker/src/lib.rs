//! DistributedLog broker: a Kafka-compatible log broker whose code runs both
//! in a deterministic simulation (`--cfg madsim`) and in production on tokio.

pub mod testbed;
pub mod clock;
pub mod controller;
pub mod disk;
pub mod error_codes;
pub mod group;
pub mod txn;
pub mod raft;
pub mod storage;
pub mod client;
pub mod config;
pub mod server;
pub mod wire;
pub mod quorum;
pub mod replication;
pub mod producer_state;
